"""x4 from a x2 network: the x2 graph applied twice inside one ONNX graph.

The first pass ends in a clip to [0, 1], so the second pass sees an image just
as it would from a file.  Receptive radius in input px: r + ceil(r / 2)
(7 + 4 = 11 for waifu2x upconv_7).  Both passes reflect-pad their own input,
so the x4 graph handles the frame's edges itself (gendr.border = reflect).
"""

import math

import waifu2x
from common import Graph, finish


def twice(param_text: str, blob: bytes, meta: dict):
    g1 = Graph("pass1_")
    mid = waifu2x.build(param_text, blob, g1, "input")
    g2 = Graph("pass2_")
    out = waifu2x.build(param_text, blob, g2, mid)
    # both passes use the same weights: keep one copy of each tensor
    seen = {(tuple(t.dims), t.data_type, t.raw_data): t.name for t in g1.inits}
    rename = {}
    for t in g2.inits:
        key = (tuple(t.dims), t.data_type, t.raw_data)
        if key in seen:
            rename[t.name] = seen[key]
        else:
            g1.inits.append(t)
    for node in g2.nodes:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    g1.nodes += g2.nodes
    r = waifu2x.PREPAD
    meta = dict(meta)
    meta.setdefault("gendr.min_overlap", r + math.ceil(r / 2))
    meta.setdefault("gendr.border", "reflect")
    meta.setdefault("gendr.tile_multiple", 1)
    meta.setdefault("gendr.tile_size", 128)
    return finish(g1, "input", out, 4, meta, "waifu2x_upconv_7_x4")
