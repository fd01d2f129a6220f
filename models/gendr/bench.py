#!/usr/bin/env python3
"""Time one tile of an exported gendr generator on ONNX Runtime CPU (no torch needed).

  python bench.py --onnx gendr-tiny.onnx --size 64 --threads 2
  python bench.py --onnx /tmp/gendr-full/gendr-full.onnx --size 128 --threads 2 --runs 2

Prints session load time, per-run latency, peak resident memory (this process) and the
metadata, as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np
import onnxruntime as ort


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", required=True)
    p.add_argument("--size", type=int, default=64, help="input tile width (output is 4x)")
    p.add_argument("--height", type=int, default=None, help="input tile height (default: --size)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--json", help="write the results here too")
    a = p.parse_args(argv)

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    t0 = time.perf_counter()
    sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    inp = sess.get_inputs()[0]
    dt = np.float16 if "float16" in inp.type else np.float32
    x = np.random.default_rng(0).random((a.batch, 3, a.height or a.size, a.size), dtype=np.float32).astype(dt)
    for _ in range(a.warmup):
        sess.run(None, {inp.name: x})
    ts = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        y = sess.run(None, {inp.name: x})[0]
        ts.append(time.perf_counter() - t0)
    meta = sess.get_modelmeta().custom_metadata_map
    res = {
        "onnx": os.path.basename(a.onnx),
        "input": list(x.shape), "output": list(y.shape),
        "threads": a.threads, "runs": a.runs, "warmup": a.warmup,
        "load_s": round(load_s, 3),
        "latency_ms_median": round(1000 * float(np.median(ts)), 1),
        "latency_ms_min": round(1000 * float(np.min(ts)), 1),
        "peak_rss_mib_after_load": round(rss_loaded, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu": cpu_name(), "cores": os.cpu_count(), "onnxruntime": ort.__version__,
        "params": int(meta.get("gendr.params", 0)) or None,
        "name": meta.get("gendr.name"), "precision": meta.get("gendr.precision"),
    }
    txt = json.dumps(res, indent=1)
    print(txt)
    if a.json:
        with open(a.json, "w") as f:
            f.write(txt + "\n")


if __name__ == "__main__":
    main()
