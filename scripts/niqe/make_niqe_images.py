"""Model outputs for the NIQE check (tests/data/niqe/*.png), made once.

    PYTHONPATH=.deps/ort-cpu .deps/venv-niqe/bin/python scripts/niqe/make_niqe_images.py

Each eval image is shrunk by the model's scale with PIL's bicubic, upscaled
again by a shipped model (whole image, ONNX Runtime on the CPU) or by PIL's
bicubic, and rounded to 8 bits: the kind of picture `gendr eval` scores.
"""

from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/data/niqe"
# (eval image, model file or "bicubic", scale)
CASES = [
    ("bikes_f120", "waifu2x-upconv7-photo-x2.onnx", 2, "default_x2"),
    ("coffee", "waifu2x-upconv7-photo-x2.onnx", 2, "default_x2"),
    ("astronaut", "anime4k-cnn-x2-s-rl.onnx", 2, "fast_x2"),
    ("rocket", "waifu2x-upconv7-photo-x4.onnx", 4, "default-x4_x4"),
    ("chelsea", "bicubic", 2, "bicubic_x2"),
]


def upscale(model, small, scale):
    if model == "bicubic":
        return small.resize((small.width * scale, small.height * scale), Image.BICUBIC)
    session = onnxruntime.InferenceSession(str(ROOT / "models" / model), providers=["CPUExecutionProvider"])
    x = np.asarray(small, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    y = session.run(None, {session.get_inputs()[0].name: x})[0][0]
    return Image.fromarray(np.clip(np.rint(y.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, model, scale, label in CASES:
        reference = Image.open(ROOT / "tests/data/eval" / f"{name}.png").convert("RGB")
        small = reference.resize((reference.width // scale, reference.height // scale), Image.BICUBIC)
        upscale(model, small, scale).save(OUT / f"{name}_{label}.png", optimize=True)


if __name__ == "__main__":
    main()
