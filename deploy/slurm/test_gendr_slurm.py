"""gendr-array.sh through a stand-in `sbatch` that runs each submitted job
at once the way Slurm does (a copy of the script, run by its #! interpreter,
once per array index with SLURM_ARRAY_TASK_ID set; `--wrap` text through
/bin/sh). Paths full of shell syntax must reach gendr as data: nothing they
spell is run, and the job comes out as a plain `gendr upscale` does.

    GENDR=target/release/gendr python3 deploy/slurm/test_gendr_slurm.py -v
"""

import os
import stat
import subprocess
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "gendr-array.sh"
GENDR = Path(os.environ.get("GENDR", HERE.parents[1] / "target/release/gendr")).resolve()

# Runs what it is given now and in order, so the join (afterok on the array)
# comes after every task; a failing task fails the submission.
STAND_IN_SBATCH = r"""#!/bin/bash
set -eu
array= wrap=
while [ $# -gt 0 ]; do
    case $1 in
        --array=*) array=${1#--array=} ;;
        --wrap=*) wrap=${1#--wrap=} ;;
        --parsable | --requeue | --*=*) ;;
        -*) echo "stand-in sbatch: unexpected option $1" >&2; exit 1 ;;
        *) break ;;
    esac
    shift
done
spool=$(mktemp -d "$SBATCH_SPOOL/job.XXXXXX")
if [ -n "$wrap" ]; then
    printf '#!/bin/sh\n%s\n' "$wrap" >"$spool/slurm_script"
else
    cp -- "$1" "$spool/slurm_script"
    shift
fi
chmod +x "$spool/slurm_script"
printf '%s\n' "$*" >>"$SBATCH_SPOOL/submitted"
if [ -n "$array" ]; then
    for ((i = ${array%-*}; i <= ${array#*-}; i++)); do
        SLURM_ARRAY_TASK_ID=$i "$spool/slurm_script" "$@" >&2
    done
else
    "$spool/slurm_script" "$@" >&2
fi
echo "$((RANDOM + 1));cluster0"
"""


def ffprobe(path, entries):
    return subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", entries,
         "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout.split()


class GendrSlurm(unittest.TestCase):
    def setUp(self):
        if not os.access(GENDR, os.X_OK):
            self.skipTest(f"no gendr binary at {GENDR} (set GENDR)")
        self.dir = tempfile.TemporaryDirectory()
        self.root = Path(self.dir.name)
        bin_dir = self.root / "bin"
        bin_dir.mkdir()
        sbatch = bin_dir / "sbatch"
        sbatch.write_text(STAND_IN_SBATCH)
        sbatch.chmod(sbatch.stat().st_mode | stat.S_IXUSR)
        (self.root / "spool").mkdir()
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "GENDR": str(GENDR),
            "SBATCH_SPOOL": str(self.root / "spool"),
        }

    def tearDown(self):
        self.dir.cleanup()

    def test_paths_with_shell_syntax_are_data(self):
        shared = self.root / "shared $(touch PWNED-dir) `touch PWNED-tick`"
        shared.mkdir()
        clip = shared / "in';touch PWNED-in;'.mp4"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25",
             "-t", "2", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", str(clip)],
            check=True,
        )
        out = shared / "x';touch PWNED;'.mp4"
        job = shared / "job\";touch PWNED-job;\""
        proc = subprocess.run(
            ["bash", str(LAUNCHER), str(clip), str(out), str(job), "--segment-seconds", "1", "-m", "fast"],
            cwd=shared, env=self.env, capture_output=True, text=True, timeout=240,
        )
        log = proc.stdout + proc.stderr
        pwned = sorted(p.name for p in self.root.rglob("PWNED*"))
        self.assertEqual(pwned, [], f"a path was run as shell code\n{log}")
        self.assertEqual(proc.returncode, 0, log)
        self.assertIn("submitted: 2 segment tasks", log)
        submitted = (self.root / "spool" / "submitted").read_text().splitlines()
        self.assertEqual(len(submitted), 2, submitted)
        self.assertEqual(ffprobe(out, "stream=width,height"), ["128,96"], log)
        self.assertEqual(len(ffprobe(out, "frame=pts_time")), 50, log)

    def test_too_few_arguments_is_a_usage_error(self):
        proc = subprocess.run(["bash", str(LAUNCHER), "in.mp4"], env=self.env, capture_output=True, text=True)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("usage:", proc.stderr)


if __name__ == "__main__":
    unittest.main()
