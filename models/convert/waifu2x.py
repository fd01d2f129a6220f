"""waifu2x upconv_7 (ncnn .param/.bin, fp16 weights) -> ONNX.

The ncnn net uses unpadded ("valid") 3x3 convolutions: six of them eat 6 px per
side, and the final 4x4 stride-2 deconvolution (crop 3) eats one more, so the
upstream runtime pads its input by 7 px.  The ONNX graph does that itself with
a reflect Pad, so its output is exactly 2H x 2W and the receptive radius is
7 input px (gendr.min_overlap = 7).  Because it pads itself, it declares
gendr.border = reflect: gendr adds no context at the frame's edges, only
between tiles.
"""

import struct

import numpy as np

from common import Graph, finish, parse_param

FP16_TAG = 0x01306B47
PREPAD = 7


def read_weights(layers, blob: bytes):
    """Walk the .bin in layer order: tagged weight blob, then raw fp32 bias."""
    off = 0
    out = []
    for typ, name, _, _, p in layers:
        if typ not in ("Convolution", "Deconvolution"):
            continue
        n = int(p[6])
        (tag,) = struct.unpack_from("<I", blob, off)
        off += 4
        if tag == FP16_TAG:
            w = np.frombuffer(blob, "<f2", n, off).astype(np.float32)
            off += (2 * n + 3) // 4 * 4
        elif tag == 0:
            w = np.frombuffer(blob, "<f4", n, off).copy()
            off += 4 * n
        else:
            raise ValueError(f"{name}: unsupported weight tag {tag:#x}")
        cout = int(p[0])
        b = None
        if int(p.get(5, 0)):
            b = np.frombuffer(blob, "<f4", cout, off).copy()
            off += 4 * cout
        out.append((typ, name, p, w, b))
    if off != len(blob):
        raise ValueError(f".bin has {len(blob) - off} trailing bytes")
    return out


def leaky_slope(p) -> float:
    # 9=2 is leaky ReLU; -23310=1,<slope> holds its parameter
    assert p.get(9) == "2", "expected a leaky ReLU activation"
    return float(p[-23310].split(",")[1])


def build(param_text: str, blob: bytes, g: Graph, x: str) -> str:
    """Add the network to graph g, reading x (N,3,H,W in [0,1]); return the 2x output."""
    layers = parse_param(param_text)
    weighted = read_weights(layers, blob)
    x = g.op("Pad", [x, g.const("pads", np.array([0, 0, PREPAD, PREPAD, 0, 0, PREPAD, PREPAD], np.int64))],
             "prepad", mode="reflect")
    cin = 3
    for typ, name, p, w, b in weighted:
        cout, k = int(p[0]), int(p[1])
        if typ == "Convolution":
            assert int(p.get(4, 0)) == 0 and int(p.get(3, 1)) == 1
            x = g.conv(x, w.reshape(cout, cin, k, k), b, pad=0)
            x = g.op("LeakyRelu", [x], "lrelu", alpha=leaky_slope(p))
        else:
            stride, crop = int(p[3]), int(p[4])
            # ncnn keeps deconvolution weights as (out, in, kh, kw); ONNX wants (in, out, kh, kw)
            wt = w.reshape(cout, cin, k, k).transpose(1, 0, 2, 3)
            inputs = [x, g.const("w", np.ascontiguousarray(wt)), g.const("b", b)]
            x = g.op("ConvTranspose", inputs, "deconv", kernel_shape=[k, k],
                     strides=[stride, stride], pads=[crop] * 4)
        cin = cout
    return g.clip01(x)


def convert(param_text: str, blob: bytes, meta: dict):
    g = Graph()
    y = build(param_text, blob, g, "input")
    meta = dict(meta)
    meta.setdefault("gendr.min_overlap", PREPAD)
    meta.setdefault("gendr.border", "reflect")
    meta.setdefault("gendr.tile_multiple", 1)
    meta.setdefault("gendr.tile_size", 256)
    return finish(g, "input", y, 2, meta, "waifu2x_upconv_7")
