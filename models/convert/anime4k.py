"""Anime4K CNN x2 (S/M/L, WebSR JSON weights) -> ONNX.

WebSR (`@websr/websr`) keeps each layer as WGSL uniforms: `weights` is an
array of column-major mat4x4 (16 floats), one per (input block, tap); a tap
index i maps to the offset (dx, dy) = (i // 3 - 1, i % 3 - 1); a block is 4
channels.  Hidden layers read CReLU(x) = [max(x, 0), max(-x, 0)] of the
previous layer(s).  The last layer gives a residual per 2x2 sub-pixel
(channel index dx + 2*dy) that is added to a bilinear 2x upscale of the input:
one residual for all of R, G, B (S), or one per colour (M, L).

Network shapes (all convolutions 3x3, zero padding, except the 1x1 last layers
of M and L):
  S: 3->4, then 3 x (CReLU 8 -> 4); last is the 4th conv; luma residual.
  M: 3->4, then 6 x (CReLU 8 -> 4); last: 1x1 over CReLU of all 7 (56) -> 12.
  L: two 3->4 (one 8-channel level), then 6 x (CReLU 16 -> 8);
     last: 1x1 over CReLU of all 7 levels (112) -> 12.
The ONNX graph folds each CReLU into its convolution (weights [W; -W], then
ReLU) and computes the bilinear base as a 3x3 convolution at input resolution,
so the whole net is convolutions, ReLUs and one pixel shuffle.
Receptive radius = number of 3x3 layers (4 for S, 7 for M and L) plus the
bilinear base's 1 px, which is inside it.
"""

import numpy as np

from common import Graph, finish


def mats(layer) -> np.ndarray:
    """(n, in 4, out 4): column c of a mat4x4 is what input channel c adds to the 4 outputs."""
    return np.asarray(layer["weights"], np.float32).reshape(-1, 4, 4)


def conv3x3_weight(layer, cin_blocks: int, first: bool):
    """OIHW weight and bias of a 3x3 layer: mats index = block * 9 + tap."""
    k = mats(layer)
    assert k.shape[0] == 9 * cin_blocks
    w = np.zeros((4, 4 * cin_blocks, 3, 3), np.float32)
    for b in range(cin_blocks):
        for i in range(9):
            dx, dy = i // 3 - 1, i % 3 - 1
            w[:, 4 * b:4 * b + 4, dy + 1, dx + 1] = k[b * 9 + i].T
    bias = np.asarray(layer["bias"], np.float32).copy()
    if first:
        # first layer reads an RGBA texture: keep RGB, alpha (== 1) must not contribute
        assert not w[:, 3].any(), "alpha weights are not zero"
        w = w[:, :3]
    return w, bias


def conv1x1_weight(layer, bias):
    k = mats(layer)
    w = np.zeros((4, 4 * k.shape[0], 1, 1), np.float32)
    for b in range(k.shape[0]):
        w[:, 4 * b:4 * b + 4, 0, 0] = k[b].T
    return w, np.asarray(bias, np.float32)


def variant(layers) -> str:
    if "conv2d_tf1" in layers:
        return "L"
    if "conv2d_7_tf" in layers:
        return "M"
    return "S"


def conv_crelu(g: Graph, x: str, w, b, pad: int) -> str:
    """CReLU(conv(x)) as one convolution: weights [W; -W] then ReLU (ORT fuses the pair)."""
    return g.op("Relu", [g.conv(x, np.concatenate([w, -w]), np.concatenate([b, -b]), pad)], "crelu")


def bilinear_weight() -> np.ndarray:
    """3x3 conv, 3 -> 12 channels (colour * 4 + dx + 2*dy): the half-pixel bilinear 2x
    upscale of an edge-padded input, computed at input resolution."""
    taps = {0: {-1: 0.25, 0: 0.75}, 1: {0: 0.75, 1: 0.25}}
    w = np.zeros((12, 3, 3, 3), np.float32)
    for c in range(3):
        for dy in range(2):
            for dx in range(2):
                for oy, wy in taps[dy].items():
                    for ox, wx in taps[dx].items():
                        w[c * 4 + dx + 2 * dy, c, oy + 1, ox + 1] = wy * wx
    return w


def build(weights: dict, g: Graph, x: str) -> str:
    L = weights["layers"]
    v = variant(L)
    if v == "L":
        wa, ba = conv3x3_weight(L["conv2d_tf"], 1, True)
        wb, bb = conv3x3_weight(L["conv2d_tf1"], 1, True)
        t = conv_crelu(g, x, np.concatenate([wa, wb]), np.concatenate([ba, bb]), 1)
        levels = [t]
        for i in range(1, 7):
            wa, ba = conv3x3_weight(L[f"conv2d_{i}_tf"], 4, False)
            wb, bb = conv3x3_weight(L[f"conv2d_{i}_tf1"], 4, False)
            t = conv_crelu(g, t, np.concatenate([wa, wb]), np.concatenate([ba, bb]), 1)
            levels.append(t)
    else:
        w, b = conv3x3_weight(L["conv2d_tf"], 1, True)
        t = conv_crelu(g, x, w, b, 1)
        levels = [t]
        for i in range(1, (6 if v == "M" else 2) + 1):
            w, b = conv3x3_weight(L[f"conv2d_{i}_tf"], 2, False)
            t = conv_crelu(g, t, w, b, 1)
            levels.append(t)
    if v == "S":
        w, b = conv3x3_weight(L["conv2d_last_tf"], 2, False)
        # one luma residual for all three colours: repeat it per colour (CRD order)
        r = g.conv(t, np.concatenate([w] * 3), np.concatenate([b] * 3), 1)
    else:
        names = ["conv2d_7_tf", "conv2d_7_tf1", "conv2d_7_tf2"] if v == "M" else \
                ["conv2d_last_tf", "conv2d_last_tf1", "conv2d_last_tf2"]
        feats = g.op("Concat", levels, "features", axis=1)
        ws, bs = zip(*(conv1x1_weight(L[n], L[n]["bias"]) for n in names))
        r = g.conv(feats, np.concatenate(ws), np.concatenate(bs), 0)
    # the bilinear base, added at input resolution before the pixel shuffle
    xp = g.op("Pad", [x, g.const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))],
              "edgepad", mode="edge")
    base = g.conv(xp, bilinear_weight(), None, 0)
    y = g.op("Add", [base, r], "residual")
    # channel = colour * 4 + (dx + 2 * dy): ONNX's CRD order.  No in-graph clip: gendr clamps.
    return g.op("DepthToSpace", [y], "shuffle", blocksize=2, mode="CRD")


def radius(weights: dict) -> int:
    return {"S": 4, "M": 7, "L": 7}[variant(weights["layers"])]


def params(weights: dict) -> int:
    n = 0
    for layer in weights["layers"].values():
        n += len(layer.get("weights", [])) + len(layer.get("bias", []))
    return n


def convert(weights: dict, meta: dict):
    g = Graph()
    y = build(weights, g, "input")
    meta = dict(meta)
    meta.setdefault("gendr.min_overlap", radius(weights))
    meta.setdefault("gendr.tile_multiple", 1)
    meta.setdefault("gendr.tile_size", 512)
    return finish(g, "input", y, 2, meta, "anime4k_cnn_x2_" + variant(weights["layers"]).lower())


# ---- independent reference: follows the WGSL shaders literally ---------------

def _shift(a, dx, dy):
    """a[..., y+dy, x+dx] with zeros outside (a: C,H,W)."""
    out = np.zeros_like(a)
    H, W = a.shape[1:]
    ys, yd = (slice(dy, H), slice(0, H - dy)) if dy >= 0 else (slice(0, H + dy), slice(-dy, H))
    xs, xd = (slice(dx, W), slice(0, W - dx)) if dx >= 0 else (slice(0, W + dx), slice(-dx, W))
    out[:, yd, xd] = a[:, ys, xs]
    return out


def _mat(k, v):
    """WGSL mat4x4f * vec4f with k given as 16 floats, column-major; v: 4,H,W."""
    m = np.asarray(k, np.float64).reshape(4, 4).T  # row r, column c
    return np.einsum("rc,chw->rhw", m, v)


def _offsets():
    return [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0), (0, 1), (1, -1), (1, 0), (1, 1)]


def reference(weights: dict, rgb: np.ndarray) -> np.ndarray:
    """rgb: 3,H,W float in [0,1] -> 3,2H,2W, computed in float64."""
    L = weights["layers"]
    v = variant(L)
    H, W = rgb.shape[1:]
    rgba = np.concatenate([rgb.astype(np.float64), np.ones((1, H, W))])
    pos = lambda a: np.maximum(a, 0)
    neg = lambda a: np.maximum(-a, 0)

    def K(name, j):
        return L[name]["weights"][16 * j:16 * j + 16]

    def conv3x4(name):  # Anime4KConv3x4: texture input, no activation
        r = np.zeros((4, H, W))
        for i, (ox, oy) in enumerate(_offsets()):
            r += _mat(K(name, i), _shift(rgba, ox, oy))
        return r + np.asarray(L[name]["bias"])[:, None, None]

    def conv8x4(name, a):
        r = np.zeros((4, H, W))
        for i, (ox, oy) in enumerate(_offsets()):
            p = _shift(a, ox, oy)
            r += _mat(K(name, i), pos(p)) + _mat(K(name, i + 9), neg(p))
        return r + np.asarray(L[name]["bias"])[:, None, None]

    def conv16x4(name, a0, a1):
        r = np.zeros((4, H, W))
        for i, (ox, oy) in enumerate(_offsets()):
            p0, p1 = _shift(a0, ox, oy), _shift(a1, ox, oy)
            r += (_mat(K(name, i), pos(p0)) + _mat(K(name, i + 9), pos(p1))
                  + _mat(K(name, i + 18), neg(p0)) + _mat(K(name, i + 27), neg(p1)))
        return r + np.asarray(L[name]["bias"])[:, None, None]

    if v == "S":
        a = conv3x4("conv2d_tf")
        a = conv8x4("conv2d_1_tf", a)
        a = conv8x4("conv2d_2_tf", a)
        res = [conv8x4("conv2d_last_tf", a)] * 3
    elif v == "M":
        outs = [conv3x4("conv2d_tf")]
        for i in range(1, 7):
            outs.append(conv8x4(f"conv2d_{i}_tf", outs[-1]))
        res = []
        for name in ["conv2d_7_tf", "conv2d_7_tf1", "conv2d_7_tf2"]:  # Anime4KConv56x4
            r = np.zeros((4, H, W))
            for i, o in enumerate(outs):
                r += _mat(K(name, 2 * i), pos(o)) + _mat(K(name, 2 * i + 1), neg(o))
            res.append(r + np.asarray(L[name]["bias"])[:, None, None])
    else:
        a = [conv3x4("conv2d_tf")]
        b = [conv3x4("conv2d_tf1")]
        for i in range(1, 7):
            a_new = conv16x4(f"conv2d_{i}_tf", a[-1], b[-1])
            b_new = conv16x4(f"conv2d_{i}_tf1", a[-1], b[-1])
            a.append(a_new)
            b.append(b_new)
        res = []
        for name in ["conv2d_last_tf", "conv2d_last_tf1", "conv2d_last_tf2"]:  # 112x4 + concat2
            r = np.zeros((4, H, W))
            for i in range(7):
                r += (_mat(K(name, 4 * i), pos(a[i])) + _mat(K(name, 4 * i + 2), neg(a[i]))
                      + _mat(K(name, 4 * i + 1), pos(b[i])) + _mat(K(name, 4 * i + 3), neg(b[i])))
            res.append(r + np.asarray(L[name]["bias"])[:, None, None])

    # DisplayLayer(3C): output pixel (X, Y) takes residual[c][dx + 2*dy] of source pixel
    # (X//2, Y//2) and adds the bilinear sample of the input at the pixel centre.
    out = np.zeros((3, 2 * H, 2 * W))
    for dy in range(2):
        for dx in range(2):
            for c in range(3):
                out[c, dy::2, dx::2] = res[c][dx + 2 * dy]
    return np.clip(out + _bilinear2x(rgb.astype(np.float64)), 0, 1)


def _bilinear2x(a):
    """Texture-style bilinear 2x: sample at ((X + 0.5) / 2 - 0.5), clamped to the edge."""
    C, H, W = a.shape

    def axis(n):
        s = (np.arange(2 * n) + 0.5) / 2 - 0.5
        s = np.clip(s, 0, n - 1)
        i0 = np.floor(s).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        return i0, i1, s - i0

    y0, y1, fy = axis(H)
    x0, x1, fx = axis(W)
    top = a[:, y0][:, :, x0] * (1 - fx) + a[:, y0][:, :, x1] * fx
    bot = a[:, y1][:, :, x0] * (1 - fx) + a[:, y1][:, :, x1] * fx
    return top * (1 - fy[:, None]) + bot * fy[:, None]
