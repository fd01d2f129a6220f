"""Shared ONNX building helpers: the gendr model contract in one place."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # readable by every ONNX Runtime from 1.10 on
PRODUCER = "gendr-models-convert"


class Graph:
    """A tiny builder: nodes and initializers with unique, readable names."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.nodes = []
        self.inits = []
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{self.prefix}{base}_{self._n}"

    def const(self, base: str, array) -> str:
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), n))
        return n

    def op(self, op_type: str, inputs, base: str = None, **attrs) -> str:
        out = self.name(base or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def conv(self, x, w, b, pad: int) -> str:
        w = np.asarray(w, np.float32)
        inputs = [x, self.const("w", w)]
        if b is not None:
            inputs.append(self.const("b", np.asarray(b, np.float32)))
        k = w.shape[2]
        return self.op("Conv", inputs, "conv", kernel_shape=[k, k], pads=[pad] * 4, strides=[1, 1])

    def clip01(self, x) -> str:
        lo = self.const("zero", np.array(0.0, np.float32))
        hi = self.const("one", np.array(1.0, np.float32))
        return self.op("Clip", [x, lo, hi], "clip")


def io_value(name: str, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def finish(g: Graph, inp: str, out: str, scale: int, meta: dict, graph_name: str,
           in_dims=("N", 3, "H", "W"), out_dims=None) -> onnx.ModelProto:
    """Wrap the graph so its input is `input` and its output `output`, add metadata, check."""
    if out_dims is None:
        out_dims = ("N", 3, f"H*{scale}" if isinstance(in_dims[2], str) else in_dims[2] * scale,
                    f"W*{scale}" if isinstance(in_dims[3], str) else in_dims[3] * scale)
    g.nodes.append(helper.make_node("Identity", [out], ["output"], name="output_identity"))
    graph = helper.make_graph(g.nodes, graph_name, [io_value(inp, list(in_dims))],
                              [io_value("output", list(out_dims))], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER, producer_version="1")
    model.ir_version = IR_VERSION
    props = {"gendr.scale": str(scale), "gendr.precision": "fp32"}
    props.update({k: str(v) for k, v in meta.items()})
    for k in sorted(props):
        e = model.metadata_props.add()
        e.key, e.value = k, props[k]
    onnx.checker.check_model(model, full_check=True)
    return model


def save(model: onnx.ModelProto, path: str) -> None:
    with open(path, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))


def parse_param(text: str):
    """[(type, name, bottoms, tops, {key: str})] in file order."""
    lines = [l.split() for l in text.splitlines() if l.strip()]
    if lines[0] != ["7767517"]:
        raise ValueError("not an ncnn .param file (magic 7767517 missing)")
    n_layers, _ = map(int, lines[1])
    layers = []
    for parts in lines[2:2 + n_layers]:
        typ, name, nb, nt = parts[0], parts[1], int(parts[2]), int(parts[3])
        bottoms = parts[4:4 + nb]
        tops = parts[4 + nb:4 + nb + nt]
        params = {}
        for kv in parts[4 + nb + nt:]:
            k, v = kv.split("=", 1)
            params[int(k)] = v
        layers.append((typ, name, bottoms, tops, params))
    if len(layers) != n_layers:
        raise ValueError(f".param lists {len(layers)} layers, header says {n_layers}")
    return layers
