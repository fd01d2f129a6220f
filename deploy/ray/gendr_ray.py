#!/usr/bin/env python3
"""Upscale one video on a Ray cluster: `gendr plan`, one Ray task per
segment running `gendr run-segment`, then one `gendr join`.

    gendr_ray.py IN OUT [launcher options] [-- gendr plan options]
    gendr_ray.py --job DIR OUT [launcher options]      (a job already planned)

Without --address a local Ray cluster is started on this machine. With
`--address auto` (or ray://HOST:PORT) the tasks go to a running cluster: the
job folder, the input and the gendr binary must then be at the same paths on
every node (shared storage), since each task runs gendr there.

Running the same command again resumes: the plan comes out the same for the
same input and options, and run-segment skips the segments already done. A
job folder planned for another input or with other options is planned anew,
and its old segments are made again.
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import ray

# Lines of a failed gendr's standard error kept in the report.
STDERR_TAIL_LINES = 15


class GendrKilled(RuntimeError):
    """gendr ended by a signal (OOM killer, pre-emption, a lost node): retried."""


class SegmentFailed(RuntimeError):
    """gendr refused or failed the segment itself: the same again would fail too."""


def _die_with_parent():
    # A retry must never race an orphaned gendr still writing the same
    # segment: if the Ray worker dies, its gendr is killed with it.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(text):
    return "\n".join(text.strip().splitlines()[-STDERR_TAIL_LINES:])


@ray.remote
def run_segment(gendr, job, index):
    started = time.monotonic()
    proc = subprocess.run(
        [gendr, "run-segment", "-q", job, str(index)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,
    )
    if proc.returncode < 0:
        raise GendrKilled(
            f"segment {index}: gendr killed by signal {-proc.returncode}\n{_tail(proc.stderr)}"
        )
    if proc.returncode != 0:
        raise SegmentFailed(
            f"segment {index}: gendr exited {proc.returncode}\n{_tail(proc.stderr)}"
        )
    return index, time.monotonic() - started


def say(line):
    print(f"gendr-ray: {line}", file=sys.stderr, flush=True)


def run_gendr(gendr, *args):
    """Runs gendr on this machine; exits with its message when it fails."""
    proc = subprocess.run([gendr, *args], stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        sys.exit(f"gendr-ray: gendr {args[0]} failed (exit {proc.returncode})")


def job_info(gendr, job):
    """The job folder's plan as `gendr job info --json` gives it."""
    proc = subprocess.run(
        [gendr, "job", "info", str(job), "--json"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    if proc.returncode != 0:
        sys.exit(f"gendr-ray: gendr job info failed (exit {proc.returncode})")
    return json.loads(proc.stdout)


def parse_args(argv):
    if "--" in argv:
        cut = argv.index("--")
        argv, plan_options = argv[:cut], argv[cut + 1 :]
    else:
        plan_options = []
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Options after -- go to gendr plan (e.g. -- -m fast --crf 20).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="IN OUT: input and output files; OUT alone with --job DIR of a planned job")
    p.add_argument("--job", type=Path, help="job folder on storage every node sees (default: .OUT.gendr-ray-job next to OUT, removed on success)")
    p.add_argument("--segment-seconds", type=float, help="segment length for gendr plan")
    p.add_argument("--address", help="Ray cluster: auto, ray://HOST:PORT, … (default: start a local one)")
    p.add_argument("--workers", type=int, help="segments running at once (default: what the cluster's CPUs allow)")
    p.add_argument("--num-cpus", type=float, default=1, help="CPUs Ray reserves per segment task (default 1)")
    p.add_argument("--num-gpus", type=float, default=0, help="GPUs Ray reserves per segment task (default 0)")
    p.add_argument("--max-retries", type=int, default=3, help="retries of a segment whose worker or gendr was killed (default 3)")
    p.add_argument("--gendr", default=os.environ.get("GENDR"), help="gendr binary, the same path on every node (default: $GENDR, gendr on PATH, or this checkout's target/release/gendr)")
    p.add_argument("--overwrite", "-y", action="store_true", help="replace OUT if it exists")
    args = p.parse_args(argv)
    args.plan_options = plan_options
    if len(args.paths) == 2:
        args.input, args.output = (Path(x) for x in args.paths)
    elif len(args.paths) == 1 and args.job:
        args.input, args.output = None, Path(args.paths[0])
    else:
        p.error("give IN OUT, or OUT with --job DIR of a planned job")
    return args


def main(argv):
    args = parse_args(argv)
    checkout = Path(__file__).resolve().parents[2] / "target/release/gendr"
    gendr = args.gendr or shutil.which("gendr") or str(checkout)
    gendr = shutil.which(gendr) or gendr
    if not os.access(gendr, os.X_OK):
        sys.exit(f"gendr-ray: {gendr}: no gendr binary there (pass --gendr PATH or set GENDR)")
    gendr = os.path.abspath(gendr)
    if args.output.exists() and not args.overwrite:
        sys.exit(f"gendr-ray: {args.output} exists; pass --overwrite to replace it")
    own_job = args.job is None
    job = (args.job or args.output.with_name(f".{args.output.name}.gendr-ray-job")).resolve()

    manifest = job / "manifest.json"
    if args.input is None:
        if not manifest.exists():
            sys.exit(f"gendr-ray: {manifest}: no plan there; give IN to make one")
        say(f"using the plan already in {job}")
    else:
        # Planned again every time, so that IN and the options given now are
        # what runs: the same input and options give the same plan, whose
        # finished segments are kept; a plan for anything else replaces the
        # old one, and its segments (made for another plan) are made again.
        before = manifest.read_bytes() if manifest.exists() else None
        plan = ["plan", str(args.input.resolve()), "--job", str(job)]
        if args.segment_seconds:
            plan += ["--segment-seconds", str(args.segment_seconds)]
        run_gendr(gendr, *plan, *args.plan_options)
        if before is not None:
            if manifest.read_bytes() == before:
                say(f"the plan in {job} is unchanged; its finished segments are kept")
            else:
                say(f"the plan in {job} was for another input or other options; its segments are made again")
    count = job_info(gendr, job)["segment_count"]

    if args.address:
        ray.init(address=args.address)
    else:
        workers = args.workers or max(1, int((os.cpu_count() or 1) // max(args.num_cpus, 1)))
        ray.init(
            num_cpus=workers * args.num_cpus,
            num_gpus=workers * args.num_gpus if args.num_gpus else None,
            include_dashboard=False,
        )
    task = run_segment.options(
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        max_retries=args.max_retries,
        retry_exceptions=[GendrKilled],
    )

    say(f"{count} segments on Ray ({ray.cluster_resources().get('CPU', 0):g} CPUs)")
    started = time.monotonic()
    waiting = list(range(count))
    running, failures, done = {}, [], 0
    while waiting or running:
        while waiting and (not args.workers or len(running) < args.workers):
            index = waiting.pop(0)
            running[task.remote(gendr, str(job), index)] = index
        ready, _ = ray.wait(list(running), num_returns=1)
        index = running.pop(ready[0])
        try:
            _, secs = ray.get(ready[0])
        except Exception as e:  # a RayTaskError carrying the gendr failure
            failures.append(f"segment {index}: {getattr(e, 'cause', None) or e}")
            say(f"segment {index} failed")
            continue
        done += 1
        elapsed = time.monotonic() - started
        eta = elapsed / done * (count - done - len(failures))
        say(f"segment {index} done in {secs:.1f} s ({done}/{count}, {elapsed:.0f} s, ETA {eta:.0f} s)")
    ray.shutdown()
    if failures:
        for failure in failures:
            print(f"gendr-ray: failed: {failure}", file=sys.stderr)
        sys.exit(f"gendr-ray: {len(failures)} of {count} segment(s) failed; the job is kept in {job}, run again to retry them")

    run_gendr(gendr, "join", str(job), str(args.output), *(["--overwrite"] if args.overwrite else []))
    if own_job:
        shutil.rmtree(job)
    say(f"wrote {args.output} ({count} segments, {time.monotonic() - started:.1f} s after planning)")


if __name__ == "__main__":
    main(sys.argv[1:])
