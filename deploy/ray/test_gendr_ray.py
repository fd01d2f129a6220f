"""gendr_ray.py on a local Ray cluster of 2 worker CPUs: a 4-segment job
comes out as a plain `gendr upscale` does, a Ray worker killed in the
middle of a segment is retried without harm, and segments gendr refuses are
reported with its error. Outputs are read by ffprobe.

    GENDR=target/release/gendr .deps/venv-ray/bin/python deploy/ray/test_gendr_ray.py -v
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "gendr_ray.py"
GENDR = Path(os.environ.get("GENDR", HERE.parents[1] / "target/release/gendr")).resolve()


def ffprobe(path, entries, stream=None):
    """One line per item `entries` asks for (of `stream` only, if given), as ffprobe reads them."""
    select = ["-select_streams", stream] if stream else []
    out = subprocess.run(
        ["ffprobe", "-v", "error", *select, *entries, "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # Frames with side data get a trailing empty field.
    return [line.rstrip(",") for line in out.splitlines() if line]


def readout(path):
    """What must equal between two outputs: video frames and their times,
    the audio's packets and their times and sizes, the streams' codecs."""
    return {
        "video frames": ffprobe(path, ["-show_entries", "frame=pts_time"], "v:0"),
        "audio packets": ffprobe(path, ["-show_entries", "packet=pts_time,duration_time,size"], "a:0"),
        "streams": ffprobe(path, ["-show_entries", "stream=codec_type,codec_name,width,height,sample_rate"]),
    }


def launcher(*args):
    return subprocess.Popen(
        [sys.executable, str(LAUNCHER), "--gendr", str(GENDR), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def children_of(pid):
    return [
        int(p)
        for p in os.listdir("/proc")
        if p.isdigit() and _status(p).get("PPid") == str(pid)
    ]


def _status(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


class GendrRay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(GENDR, os.X_OK):
            raise unittest.SkipTest(f"no gendr binary at {GENDR} (set GENDR)")
        cls.dir = tempfile.TemporaryDirectory()
        d = Path(cls.dir.name)
        cls.clip = d / "clip.mp4"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25",
             "-f", "lavfi", "-i", "sine=frequency=440",
             "-t", "4", "-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-pix_fmt", "yuv420p",
             "-c:a", "aac", str(cls.clip)],
            check=True,
        )
        plain = d / "plain.mp4"
        subprocess.run([str(GENDR), "upscale", "-q", "-m", "fast", str(cls.clip), str(plain)], check=True)
        cls.expected = readout(plain)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def run_job(self, name, during=None):
        out = Path(self.dir.name) / name
        proc = launcher(str(self.clip), str(out), "--workers", "2", "--segment-seconds", "1", "--", "-m", "fast")
        watcher = threading.Thread(target=during, args=(proc,)) if during else None
        if watcher:
            watcher.start()
        log, _ = proc.communicate(timeout=240)
        if watcher:
            watcher.join()
        self.assertEqual(proc.returncode, 0, log)
        self.assertIn("4 segments planned", log)
        return out, log

    def check_like_plain(self, out, log):
        got = readout(out)
        self.assertEqual(len(got["video frames"]), 100, log)
        for what, expected in self.expected.items():
            self.assertEqual(got[what], expected, f"{what} differ from a plain gendr upscale\n{log}")
        leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
        self.assertEqual(leftovers, [], "the job folder the launcher made is removed on success")

    def test_a_four_segment_job_equals_a_plain_run(self):
        out, log = self.run_job("ray.mp4")
        self.assertEqual(log.count("done in"), 4, log)
        self.check_like_plain(out, log)

    def test_a_worker_killed_mid_segment_is_retried(self):
        killed = []

        def kill_a_worker(proc):
            # The first gendr run-segment seen: its parent is the Ray worker running the task.
            while proc.poll() is None and not killed:
                for pid in os.listdir("/proc"):
                    cmd = _cmdline(pid)
                    if b"run-segment" in cmd and str(GENDR).encode() in cmd and b"killed.mp4" in b" ".join(cmd):
                        worker = int(_status(pid).get("PPid", 0))
                        if worker > 1:
                            os.kill(worker, signal.SIGKILL)
                            killed.append((int(pid), worker))
                            break
                time.sleep(0.02)

        out, log = self.run_job("killed.mp4", during=kill_a_worker)
        self.assertTrue(killed, f"no gendr run-segment was seen to kill\n{log}")
        gendr_pid, _ = killed[0]
        state = _status(gendr_pid).get("State", "gone")
        self.assertTrue(state == "gone" or state.startswith("Z"), f"the killed worker's gendr died with it: {state}")
        self.check_like_plain(out, log)

    def test_a_stale_plan_in_the_job_folder_is_replaced(self):
        # An earlier run's job folder for another input and other options,
        # with a segment of it done: IN and the options given now must win.
        d = Path(self.dir.name)
        other = d / "other.mp4"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=48x32:rate=25",
             "-t", "2", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", str(other)],
            check=True,
        )
        stale = d / ".stale.mp4.gendr-ray-job"
        subprocess.run([str(GENDR), "plan", str(other), "--job", str(stale), "--segment-seconds", "1",
                        "-m", "fast", "--crf", "40"], check=True, capture_output=True)
        subprocess.run([str(GENDR), "run-segment", "-q", str(stale), "0"], check=True, capture_output=True)
        out, log = self.run_job("stale.mp4")
        self.assertIn("was for another input or other options", log)
        self.assertEqual(log.count("done in"), 4, log)
        self.check_like_plain(out, log)

    def test_segments_gendr_refuses_are_reported_with_its_stderr(self):
        d = Path(self.dir.name)
        clip, job = d / "changed.mp4", d / "changed.job"
        clip.write_bytes(self.clip.read_bytes())
        subprocess.run([str(GENDR), "plan", str(clip), "--job", str(job), "--segment-seconds", "1", "-m", "fast"],
                       check=True, capture_output=True)
        with open(clip, "ab") as f:
            f.write(b"changed after planning")
        proc = launcher("--job", str(job), "--workers", "2", str(d / "never.mp4"))
        log, _ = proc.communicate(timeout=240)
        self.assertEqual(proc.returncode, 1, log)
        failed = [line for line in log.splitlines() if line.startswith("gendr-ray: failed: segment")]
        self.assertEqual(len(failed), 4, log)
        self.assertIn("gendr exited 1", log)
        self.assertIn("gendr: error:", log, "the tail of gendr's stderr is shown")
        self.assertIn(f"the job is kept in {job}", log)
        self.assertFalse((d / "never.mp4").exists())


if __name__ == "__main__":
    unittest.main()
