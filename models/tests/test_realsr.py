"""Real-ESRGAN and Real-CUGAN: the ONNX graphs against the original ncnn nets.

Each model's ONNX output is compared with the ncnn .param/.bin from the pinned
wheel run by PyPI `ncnn` (CPU) on crops of the real eval images, over the whole
output (both sides get the same input: the ncnn net the reflect padding upstream
gives it, the ONNX graph the bare crop): max abs diff <= 2/255.  For Real-CUGAN
x4 the reference also adds the nearest-neighbour x4 input, as upstream does
outside the ncnn net.

`make -C models verify` (and so `make test`) runs a subset that covers every
ncnn layer type the converter handles (animevideov3 x2/x3/x4: Convolution,
PReLU, PixelShuffle, Interp nearest and bicubic, BinaryOp; Real-CUGAN x3 and
x4: strided Convolution, Deconvolution, Crop, Pooling, InnerProduct with ReLU
and Sigmoid, BinaryOp mul; x4plus-anime: Concat, Eltwise with coefficients);
`make -C models verify-all` adds the rest (x4plus, Real-CUGAN x2, more images).
The converted models need not be present: a missing one is converted in memory.
"""

import hashlib
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.dirname(HERE)
REPO = os.path.dirname(MODELS)
sys.path.insert(0, os.path.join(MODELS, "convert"))

import build  # noqa: E402
import ncnn2onnx  # noqa: E402
import realsr  # noqa: E402
import sources  # noqa: E402
from common import save  # noqa: E402

TOL = 2 / 255
ESR = ("realesrgan", build.ESR, "data", "output")
CUGAN = ("realcugan", build.CUGAN, "in0", "out0")

# model name -> (ncnn source, variant, scale, prepad)
MODELS_NCNN = {
    "realesrgan-animevideov3-x2": (ESR, "REALESRGAN_ANIMAVIDEOV3_UP2X", 2, 0),
    "realesrgan-animevideov3-x3": (ESR, "REALESRGAN_ANIMAVIDEOV3_UP3X", 3, 0),
    "realesrgan-animevideov3-x4": (ESR, "REALESRGAN_ANIMAVIDEOV3_UP4X", 4, 0),
    "realesrgan-x4plus": (ESR, "REALESRGAN_X4PLUS_UP4X", 4, 0),
    "realesrgan-x4plus-fp16": (ESR, "REALESRGAN_X4PLUS_UP4X", 4, 0),
    "realesrgan-x4plus-anime": (ESR, "REALESRGAN_X4PLUSANIME_UP4X", 4, 0),
    "realcugan-se-x2-conservative": (CUGAN, "REALCUGAN_SE_UP2X_CONSERVATIVE", 2, 18),
    "realcugan-se-x3-conservative": (CUGAN, "REALCUGAN_SE_UP3X_CONSERVATIVE", 3, 14),
    "realcugan-se-x4-conservative": (CUGAN, "REALCUGAN_SE_UP4X_CONSERVATIVE", 4, 19),
}

# (model, image, crop top, left, height, width); the first list runs in `make test`
FAST = [
    ("realesrgan-animevideov3-x2", "astronaut.png", 100, 100, 64, 80),
    ("realesrgan-animevideov3-x3", "coffee.png", 60, 90, 64, 80),
    ("realesrgan-animevideov3-x4", "bikes_f120.png", 120, 40, 64, 80),
    ("realcugan-se-x3-conservative", "chelsea.png", 80, 60, 64, 80),
    ("realcugan-se-x4-conservative", "rocket.png", 90, 110, 48, 64),
    ("realesrgan-x4plus-anime", "astronaut.png", 30, 130, 32, 40),
]
SLOW = [
    ("realesrgan-x4plus", "astronaut.png", 100, 100, 64, 80),
    ("realesrgan-x4plus", "bikes_f200.png", 100, 100, 48, 64),
    ("realesrgan-x4plus-fp16", "astronaut.png", 100, 100, 48, 64),
    ("realcugan-se-x2-conservative", "astronaut.png", 100, 100, 64, 80),
    ("realcugan-se-x2-conservative", "bikes_f040.png", 10, 10, 96, 128),
    ("realcugan-se-x3-conservative", "coffee.png", 0, 0, 96, 128),
    ("realcugan-se-x4-conservative", "chelsea.png", 100, 100, 64, 80),
    ("realesrgan-x4plus-anime", "coffee.png", 100, 100, 64, 80),
    ("realesrgan-animevideov3-x2", "bikes_f200.png", 0, 0, 128, 160),
    ("realesrgan-animevideov3-x3", "rocket.png", 0, 0, 128, 160),
    ("realesrgan-animevideov3-x4", "chelsea.png", 0, 0, 128, 160),
]


def crop(name, top, left, h, w):
    im = Image.open(os.path.join(REPO, "tests", "data", "eval", name)).convert("RGB")
    x = (np.asarray(im, np.float32) / 255).transpose(2, 0, 1)
    return np.ascontiguousarray(x[:, top:top + h, left:left + w])


_paths = {}


def model_path(name, tmp_dir):
    """The model's .onnx: the file in models/ if there, else converted into tmp_dir."""
    path = os.path.join(MODELS, name + ".onnx")
    if os.path.exists(path):
        return path
    if name not in _paths:
        _paths[name] = os.path.join(tmp_dir, name + ".onnx")
        save(build.converted()[name](), _paths[name])
    return _paths[name]


@pytest.fixture(scope="module")
def tmp_models():
    with tempfile.TemporaryDirectory() as d:
        yield d
    _paths.clear()


def run_onnx(path, x):
    """The model on CPU; an fp16 model gets and gives float16 (returned as float32)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    dtype = np.float16 if sess.get_inputs()[0].type == "tensor(float16)" else np.float32
    return sess.run(None, {"input": x[None].astype(dtype)})[0][0].astype(np.float32)


def run_ncnn(name, x):
    import ncnn
    (archive, folder, blob_in, blob_out), variant, scale, pad = MODELS_NCNN[name]
    with tempfile.TemporaryDirectory() as d:
        for ext in ("param", "bin"):
            with open(os.path.join(d, "m." + ext), "wb") as f:
                f.write(sources.read_member(archive, folder + variant + "." + ext))
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = 2
        net.load_param(os.path.join(d, "m.param"))
        net.load_model(os.path.join(d, "m.bin"))
        xp = np.ascontiguousarray(np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="reflect"))
        ex = net.create_extractor()
        ex.input(blob_in, ncnn.Mat(xp))
        ret, out = ex.extract(blob_out)
        assert ret == 0
        y = np.array(out)
    if name.startswith("realcugan") and scale == 4:
        y = y + x.repeat(4, axis=1).repeat(4, axis=2)
    return np.clip(y, 0, 1)


def check_parity(name, img, top, left, h, w, tmp_models):
    x = crop(img, top, left, h, w)
    scale = MODELS_NCNN[name][2]
    ours = run_onnx(model_path(name, tmp_models), x)
    ref = run_ncnn(name, x)
    assert ours.shape == ref.shape == (3, scale * h, scale * w)
    diff = np.abs(ours - ref).max()
    print(f"{name} vs ncnn on {img} [{top}:{top + h}, {left}:{left + w}]: "
          f"max abs diff {diff * 255:.4f}/255")
    assert diff <= TOL


@pytest.mark.parametrize("name,img,top,left,h,w", FAST)
def test_matches_ncnn(name, img, top, left, h, w, tmp_models):
    check_parity(name, img, top, left, h, w, tmp_models)


@pytest.mark.slow
@pytest.mark.parametrize("name,img,top,left,h,w", SLOW)
def test_matches_ncnn_more(name, img, top, left, h, w, tmp_models):
    check_parity(name, img, top, left, h, w, tmp_models)


def test_fp16_conversion_matches_ncnn(tmp_path):
    """realsr.to_fp16 (the fp16 presets' conversion) on the committed animevideov3 x4:
    fp16 weights, input and output; ONNX Runtime's CPU runs it with fp16 between layers.
    Measured: 0.83/255 max against ncnn on this crop."""
    m = realsr.to_fp16(onnx.load(os.path.join(MODELS, "realesrgan-animevideov3-x4.onnx")), "t")
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["gendr.precision"] == "fp16"
    inits = {i.name: i.data_type for i in m.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in inits.values()
    assert all(t == onnx.TensorProto.FLOAT for n in m.graph.node if n.op_type == "Resize"
               for t in [inits[n.input[2]]])
    save(m, str(tmp_path / "fp16.onnx"))
    x = crop("bikes_f120.png", 120, 40, 64, 80)
    ours = run_onnx(str(tmp_path / "fp16.onnx"), x)
    ref = run_ncnn("realesrgan-animevideov3-x4", x)
    diff = np.abs(ours - ref).max()
    print(f"animevideov3-x4 fp16 vs ncnn: max abs diff {diff * 255:.2f}/255")
    assert diff <= TOL


def test_fast_subset_covers_every_layer_type():
    """The `make test` subset exercises every ncnn layer type any of these models uses."""
    def types(name):
        (archive, folder, _, _), variant, _, _ = MODELS_NCNN[name]
        text = sources.read_member(archive, folder + variant + ".param").decode()
        return {layer[0] for layer in ncnn2onnx.parse_param(text)}
    every = set().union(*(types(n) for n in MODELS_NCNN))
    fast = set().union(*(types(n) for n, *_ in FAST))
    assert every == fast, every - fast
    assert {"Concat", "Eltwise", "Pooling", "InnerProduct", "Crop", "Deconvolution",
            "PReLU", "PixelShuffle", "Interp"} <= fast


def test_converted_models_reproduce_their_pinned_sums():
    pinned = build.pinned_converted(MODELS)
    assert set(pinned) == {n + ".onnx" for n in build.converted()}
    for name, make in build.converted().items():
        data = make().SerializeToString(deterministic=True)
        assert hashlib.sha256(data).hexdigest() == pinned[name + ".onnx"], name
        path = os.path.join(MODELS, name + ".onnx")
        if os.path.exists(path):  # `make models` was run: the file is the pinned one
            assert build.sha256_file(path) == pinned[name + ".onnx"], path


def meta(path):
    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}


@pytest.mark.parametrize("name", sorted(MODELS_NCNN))
def test_tiling_metadata(name, tmp_models):
    m = meta(model_path(name, tmp_models))
    scale, pad = MODELS_NCNN[name][2], MODELS_NCNN[name][3]
    assert m["gendr.scale"] == str(scale)
    if name.startswith("realcugan"):
        # pads its own edges by `pad`; U-Net sizes: a multiple of 2, or 4 for x3
        assert m["gendr.border"] == "reflect"
        assert int(m["gendr.min_overlap"]) >= pad
        assert m["gendr.tile_multiple"] == str(4 if scale == 3 else 2)
        assert int(m["gendr.tile_size"]) % int(m["gendr.tile_multiple"]) == 0
        assert m["gendr.license"] == "MIT"
    else:
        assert "gendr.border" not in m
        assert m["gendr.tile_multiple"] == "1"
        assert m["gendr.license"] == "BSD-3-Clause"


def window_vs_whole(path, x, top, left, size):
    """Max abs diff between the model's output on a window and on the whole input,
    over the part of the window at least gendr.min_overlap from its edges."""
    m = meta(path)
    s, o = int(m["gendr.scale"]), int(m["gendr.min_overlap"])
    whole = run_onnx(path, x)
    win = run_onnx(path, np.ascontiguousarray(x[:, top:top + size, left:left + size]))
    a = whole[:, s * (top + o):s * (top + size - o), s * (left + o):s * (left + size - o)]
    b = win[:, s * o:s * (size - o), s * o:s * (size - o)]
    return np.abs(a - b).max()


def test_animevideov3_min_overlap_is_its_receptive_radius():
    """Tiles with gendr.min_overlap of context give the untiled result (what
    src/tiling.rs relies on): 18 convolutions at input resolution, plus the
    bicubic downscale for x3."""
    x = crop("coffee.png", 40, 40, 128, 128)
    d = window_vs_whole(os.path.join(MODELS, "realesrgan-animevideov3-x3.onnx"), x, 20, 28, 64)
    print(f"animevideov3-x3 window vs whole: max abs diff {d * 255:.4f}/255")
    assert d <= 1e-4


@pytest.mark.parametrize("name", ["realcugan-se-x2-conservative", "realcugan-se-x3-conservative"])
def test_realcugan_tiles_differ_only_by_their_squeeze_excitation(name, tmp_models):
    """Real-CUGAN's SE blocks average over the whole (padded) tile, so a tile's output
    depends a little on the whole tile, not only on the context around it: a tiled
    frame is close to, not equal to, an untiled one.  Measured (128-px window at
    (64, 64) in a 256-px crop of coffee.png, 24 px context): max 7.1/255 (x2),
    5.5/255 (x3); mean 0.25/255 and 0.18/255."""
    path = model_path(name, tmp_models)
    x = crop("coffee.png", 0, 0, 256, 256)
    d = window_vs_whole(path, x, 64, 64, 128)
    print(f"{name} window vs whole: max abs diff {d * 255:.2f}/255")
    assert 0 < d <= 10 / 255
