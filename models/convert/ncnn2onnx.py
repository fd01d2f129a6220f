"""A general ncnn (.param/.bin) -> ONNX converter for the layer types the
Real-ESRGAN and Real-CUGAN ncnn models use.

ncnn stores a net as a text .param (one layer a line: type, name, bottom and
top blob names, `key=value` parameters; array parameters have the key
-23300-k and the value `count,v1,v2,...`) and a .bin holding each layer's
weights in layer order.  A "tagged" weight blob starts with a 4-byte tag
(0x01306B47: fp16 follows, padded to 4 bytes; 0: fp32 follows); biases,
PReLU slopes and the like are raw fp32 with no tag.  ncnn blobs carry no batch
axis (C, H, W), so ncnn axis k is ONNX axis k + 1 here.

What each layer becomes (ncnn's own layer documentation gives the parameters):

  Convolution   Conv (+ fused activation 9=: 1 ReLU, 2 LeakyReLU, 4 Sigmoid)
  Deconvolution ConvTranspose, 4=/14=/15=/16= crop the output (ONNX pads)
  InnerProduct  a 1x1 Conv on the N x C x 1 x 1 pooled vector (+ activation)
  Pooling       global average only (4=1) -> GlobalAveragePool (the SE blocks)
  PReLU         PRelu, one slope per channel
  Eltwise       sum with coefficients (-23301) -> Mul/Add; product; max
  BinaryOp      Add/Sub/Mul/Div between two blobs (a C vector broadcasts over H, W)
  Concat        Concat on the channel axis
  Crop          Slice with starts/ends/axes (-23309/-23310/-23311)
  Interp        Resize: 1 nearest (asymmetric, floor: an integer upscale repeats
                pixels), 3 bicubic (a = -0.75, half-pixel, edge pixels repeated)
  PixelShuffle  DepthToSpace, CRD (PyTorch's pixel_shuffle)
  Split         nothing (a blob may feed several layers in ONNX)
"""

import struct

import numpy as np

from common import Graph, parse_param

FP16_TAG = 0x01306B47

ACT_NONE, ACT_RELU, ACT_LEAKY, ACT_SIGMOID = 0, 1, 2, 4


def pint(p, key, default=0):
    return int(p.get(key, default))


def parray(p, key, cast=float):
    """An array parameter stored under -23300-key: 'count,v1,...'."""
    v = p.get(-23300 - key)
    if v is None:
        return []
    parts = v.split(",")
    n = int(parts[0])
    vals = [cast(x) for x in parts[1:1 + n]]
    assert len(vals) == n
    return vals


class Bin:
    """Reads a .bin in order; checks that every byte is used."""

    def __init__(self, blob: bytes):
        self.blob, self.off = blob, 0

    def tagged(self, n: int) -> np.ndarray:
        (tag,) = struct.unpack_from("<I", self.blob, self.off)
        self.off += 4
        if tag == FP16_TAG:
            w = np.frombuffer(self.blob, "<f2", n, self.off).astype(np.float32)
            self.off += (2 * n + 3) // 4 * 4
        elif tag == 0:
            w = np.frombuffer(self.blob, "<f4", n, self.off).copy()
            self.off += 4 * n
        else:
            raise ValueError(f"unsupported ncnn weight tag {tag:#x}")
        return w

    def raw(self, n: int) -> np.ndarray:
        w = np.frombuffer(self.blob, "<f4", n, self.off).copy()
        self.off += 4 * n
        return w

    def done(self):
        if self.off != len(self.blob):
            raise ValueError(f".bin has {len(self.blob) - self.off} unread bytes")


def activation(g: Graph, x: str, p) -> str:
    t = pint(p, 9)
    if t == ACT_NONE:
        return x
    if t == ACT_RELU:
        return g.op("Relu", [x], "relu")
    if t == ACT_LEAKY:
        return g.op("LeakyRelu", [x], "lrelu", alpha=parray(p, 10)[0])
    if t == ACT_SIGMOID:
        return g.op("Sigmoid", [x], "sigmoid")
    raise ValueError(f"unsupported fused activation 9={t}")


def conv_geometry(p):
    kw = pint(p, 1)
    kh = pint(p, 11, kw)
    dw = pint(p, 2, 1)
    dh = pint(p, 12, dw)
    sw = pint(p, 3, 1)
    sh = pint(p, 13, sw)
    pl = pint(p, 4)
    if pl < 0:
        raise ValueError("SAME padding (4=-233/-234) is not supported")
    pt = pint(p, 14, pl)
    pr = pint(p, 15, pl)
    pb = pint(p, 16, pt)
    return kh, kw, dh, dw, sh, sw, (pt, pl, pb, pr)


def add_net(param_text: str, blob: bytes, g: Graph, x: str, input_blob=None) -> str:
    """Add the whole net to g with input x; return the ONNX name of its last top blob.

    Shapes are tracked only as channel counts (enough to lay out the weights)."""
    layers = parse_param(param_text)
    weights = Bin(blob)
    names = {}  # ncnn blob -> ONNX value
    chans = {}  # ncnn blob -> channels
    last = None
    for typ, lname, bottoms, tops, p in layers:
        ins = [names[b] for b in bottoms]
        cin = chans[bottoms[0]] if bottoms else None
        if typ == "Input":
            names[tops[0]], chans[tops[0]] = x, 3
            continue
        if typ == "Split":
            for t in tops:
                names[t], chans[t] = ins[0], cin
            continue
        if typ in ("Convolution", "Deconvolution"):
            cout = pint(p, 0)
            kh, kw, dh, dw, sh, sw, (pt, pl, pb, pr) = conv_geometry(p)
            n = pint(p, 6)
            assert n == cout * cin * kh * kw, (lname, n, cout, cin, kh, kw)
            w = weights.tagged(n).reshape(cout, cin, kh, kw)
            b = weights.raw(cout) if pint(p, 5) else None
            if typ == "Convolution":
                inputs = [ins[0], g.const("w", w)]
                if b is not None:
                    inputs.append(g.const("b", b))
                y = g.op("Conv", inputs, "conv", kernel_shape=[kh, kw], pads=[pt, pl, pb, pr],
                         strides=[sh, sw], dilations=[dh, dw])
            else:
                if pint(p, 18) or pint(p, 19) or pint(p, 20) or pint(p, 21):
                    raise ValueError(f"{lname}: output padding/size is not supported")
                # ncnn keeps deconvolution weights as (out, in, kh, kw); ONNX wants (in, out, kh, kw)
                wt = np.ascontiguousarray(w.transpose(1, 0, 2, 3))
                inputs = [ins[0], g.const("w", wt)]
                if b is not None:
                    inputs.append(g.const("b", b))
                y = g.op("ConvTranspose", inputs, "deconv", kernel_shape=[kh, kw],
                         strides=[sh, sw], dilations=[dh, dw], pads=[pt, pl, pb, pr])
            y = activation(g, y, p)
            cout_ = cout
        elif typ == "InnerProduct":
            cout = pint(p, 0)
            n = pint(p, 2)
            assert n == cout * cin, (lname, n, cout, cin)
            w = weights.tagged(n).reshape(cout, cin, 1, 1)
            b = weights.raw(cout) if pint(p, 1) else None
            inputs = [ins[0], g.const("w", w)] + ([g.const("b", b)] if b is not None else [])
            y = g.op("Conv", inputs, "fc", kernel_shape=[1, 1])
            y = activation(g, y, p)
            cout_ = cout
        elif typ == "Pooling":
            if not (pint(p, 0) == 1 and pint(p, 4) == 1):
                raise ValueError(f"{lname}: only global average pooling is supported")
            y, cout_ = g.op("GlobalAveragePool", ins, "gap"), cin
        elif typ == "PReLU":
            n = pint(p, 0, 1)
            slope = weights.raw(n)
            y = g.op("PRelu", [ins[0], g.const("slope", slope.reshape(n, 1, 1))], "prelu")
            cout_ = cin
        elif typ == "Eltwise":
            op, coeffs = pint(p, 0, 1), parray(p, 1)
            if op == 1:
                terms = []
                for i, v in enumerate(ins):
                    c = coeffs[i] if coeffs else 1.0
                    terms.append(v if c == 1.0 else
                                 g.op("Mul", [v, g.const("coeff", np.array(c, np.float32))], "scale"))
                y = terms[0]
                for t in terms[1:]:
                    y = g.op("Add", [y, t], "add")
            elif op in (0, 2):
                y = g.op("Mul" if op == 0 else "Max", ins, "eltwise")
            else:
                raise ValueError(f"{lname}: Eltwise op {op}")
            cout_ = cin
        elif typ == "BinaryOp":
            op = pint(p, 0)
            onnx_op = {0: "Add", 1: "Sub", 2: "Mul", 3: "Div"}.get(op)
            if onnx_op is None or pint(p, 1):
                raise ValueError(f"{lname}: BinaryOp {op} (with_scalar={pint(p, 1)}) is not supported")
            y = g.op(onnx_op, ins, onnx_op.lower())
            cout_ = max(chans[b] for b in bottoms)
        elif typ == "Concat":
            axis = pint(p, 0)
            if axis != 0:
                raise ValueError(f"{lname}: Concat on axis {axis}")
            y = g.op("Concat", ins, "concat", axis=1)
            cout_ = sum(chans[b] for b in bottoms)
        elif typ == "Crop":
            starts = parray(p, 9, int)
            ends = parray(p, 10, int)
            axes = parray(p, 11, int)
            if not starts:
                raise ValueError(f"{lname}: only the starts/ends/axes form of Crop is supported")
            axes = [a + 1 if a >= 0 else a for a in axes]  # ncnn has no batch axis
            y = g.op("Slice", [ins[0], g.const("starts", np.array(starts, np.int64)),
                               g.const("ends", np.array(ends, np.int64)),
                               g.const("axes", np.array(axes, np.int64))], "crop")
            cout_ = cin
        elif typ == "Interp":
            mode = pint(p, 0)
            hs, ws = float(p.get(1, 1)), float(p.get(2, 1))
            if pint(p, 3) or pint(p, 4) or pint(p, 6):
                raise ValueError(f"{lname}: Interp with a fixed size or align_corner")
            scales = g.const("scales", np.array([1, 1, hs, ws], np.float32))
            if mode == 1:
                y = g.op("Resize", [ins[0], "", scales], "nearest", mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor")
            elif mode == 3:
                y = g.op("Resize", [ins[0], "", scales], "bicubic", mode="cubic",
                         cubic_coeff_a=-0.75, coordinate_transformation_mode="half_pixel",
                         exclude_outside=0)
            else:
                raise ValueError(f"{lname}: Interp mode {mode}")
            cout_ = cin
        elif typ == "PixelShuffle":
            r = pint(p, 0, 1)
            if pint(p, 1):
                raise ValueError(f"{lname}: PixelShuffle mode {pint(p, 1)}")
            y = g.op("DepthToSpace", ins, "shuffle", blocksize=r, mode="CRD")
            cout_ = cin // (r * r)
        else:
            raise ValueError(f"{lname}: ncnn layer type {typ} is not supported")
        names[tops[0]], chans[tops[0]] = y, cout_
        last = tops[0]
    weights.done()
    return names[last]


def params(blob_param_text: str, blob: bytes) -> int:
    """Number of weights (what the model cards call params)."""
    layers = parse_param(blob_param_text)
    n = 0
    for typ, _, _, _, p in layers:
        if typ in ("Convolution", "Deconvolution"):
            n += pint(p, 6) + (pint(p, 0) if pint(p, 5) else 0)
        elif typ == "InnerProduct":
            n += pint(p, 2) + (pint(p, 0) if pint(p, 1) else 0)
        elif typ == "PReLU":
            n += pint(p, 0, 1)
    return n
