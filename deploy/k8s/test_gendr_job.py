"""The Kubernetes example (gendr-job.yaml), parsed: the join Job waits for
segments still running instead of spending its retries (Kubernetes' back-off
alone gave up after about 10 minutes), and the commands the pods run are
ones gendr takes.

    GENDR=target/release/gendr python3 deploy/k8s/test_gendr_job.py -v
"""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
GENDR = Path(os.environ.get("GENDR", HERE.parents[1] / "target/release/gendr")).resolve()

# Segments of a long film run for hours; the join must outlast them.
LEAST_WAIT_S = 24 * 3600


def jobs():
    with open(HERE / "gendr-job.yaml") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}


def container_command(job):
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container["command"]


class GendrJob(unittest.TestCase):
    def test_the_join_waits_for_segments_still_running(self):
        join = jobs()["gendr-join"]
        command = container_command(join)
        self.assertEqual(command[:2], ["gendr", "join"])
        self.assertIn("--wait", command, "the join gives up when Kubernetes' back-off does")
        wait = int(command[command.index("--wait") + 1])
        self.assertGreaterEqual(wait, LEAST_WAIT_S)
        deadline = join["spec"].get("activeDeadlineSeconds")
        self.assertTrue(deadline is None or deadline > wait, f"activeDeadlineSeconds {deadline}")

    def test_gendr_takes_the_pods_commands(self):
        with tempfile.TemporaryDirectory() as scratch:
            missing_job = str(Path(scratch) / "no-such-job")
            for name, job in jobs().items():
                command = container_command(job)
                args = [missing_job if a == "/job/film" else a for a in command[1:]]
                args = [str(Path(scratch) / "out.mkv") if a.startswith("/job/out/") else a for a in args]
                out = subprocess.run(
                    [str(GENDR), *args],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "JOB_COMPLETION_INDEX": "0"},
                    timeout=60,
                )
                # 2 is a usage error: an option the example spells wrong.
                self.assertEqual(out.returncode, 1, f"{name}: {out.stderr}")
                self.assertIn("no-such-job", out.stderr, f"{name}: {out.stderr}")


if __name__ == "__main__":
    unittest.main()
