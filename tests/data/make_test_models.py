#!/usr/bin/env python3
"""Generate the small ONNX test models in tests/data (deterministic: seeded numpy).

    .deps/venv-models/bin/python tests/data/make_test_models.py

conv_x2.onnx          N x 3 x H x W -> N x 3 x 2H x 2W, dynamic N/H/W, full gendr.* metadata.
                      conv3x3(3->16) LeakyReLU(0.2) conv3x3(16->16) LeakyReLU(0.2)
                      conv3x3(16->12) DepthToSpace(2, CRD) Sigmoid; zero padding 1.
                      Receptive radius: three 3x3 convolutions at input resolution,
                      1 px each = 3 input px, so gendr.min_overlap = 3.  Output is in
                      (0, 1) (sigmoid) and varies with the input.
conv_x2_noscale.onnx  the same network and weights, no metadata at all (scale must be derived).
fixed64_x2.onnx       the same network with a fixed 1 x 3 x 64 x 64 input (output 1 x 3 x 128 x 128).
wrong_channels.onnx   1-channel input N x 1 x H x W (must be refused: channels != 3).
two_inputs.onnx       two inputs (must be refused).
not_a_model.onnx      a few bytes of text (must be refused).
conv_x2_fp16.onnx     conv_x2 with float16 weights, input and output (gendr.precision = fp16).
bad_multiple_x2.onnx  conv_x2 with gendr.tile_multiple = 1000000 (must be refused, not allocated).
bad_scale_x2.onnx     conv_x2 with gendr.scale = 2^64 - 1 (must be refused).
fixed_huge_x2.onnx    conv_x2 with a fixed 1 x 3 x 8192 x 8192 input: one run needs ~4 GiB (refused).
rank3_x2.onnx         conv_x2 without metadata whose output is squeezed to rank 3 at run time while
                      its declared output is rank 4 (must be refused at the probe run).
nan_x2.onnx           conv_x2 whose output is multiplied by NaN: every run gives non-finite values.
slow_x2.onnx          x2, deliberately slow on CPU: conv3x3(3->64) then 14 x conv3x3(64->64)
                      sharing one weight tensor, conv3x3(64->12), DepthToSpace, Sigmoid.
                      Receptive radius 16 input px (gendr.min_overlap = 16).  About 7.6 GMAC
                      for a 160x90 input (100-200 ms on 2 CPU threads), 0.2 MB on disk.
noisy_x2.onnx         x2 bilinear (Resize, linear, half_pixel) plus uniform noise in [-0.03, 0.03]
                      drawn afresh on every run (RandomUniformLike, no seed): a model that
                      flickers, for the temporal score of `gendr eval`.  gendr.min_overlap = 2.
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
IR_VERSION = 8


def conv_weight(rng, cout, cin, gain=1.0):
    std = gain * np.sqrt(2.0 / (cin * 9))
    return (rng.standard_normal((cout, cin, 3, 3)) * std).astype(np.float32)


def model(nodes, inits, inputs, outputs, meta=None, name="test"):
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="gendr-tests-make_test_models", producer_version="1")
    m.ir_version = IR_VERSION
    for k, v in sorted((meta or {}).items()):
        e = m.metadata_props.add()
        e.key, e.value = k, str(v)
    onnx.checker.check_model(m, full_check=True)
    return m


def conv_chain(prefix, x, layers, out_channels):
    """layers: [(weight name, bias name, activation?)] -> nodes; returns (nodes, output name)."""
    nodes = []
    for i, (w, b, act) in enumerate(layers):
        y = f"{prefix}conv{i}"
        nodes.append(helper.make_node("Conv", [x, w, b], [y], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        if act:
            nodes.append(helper.make_node("LeakyRelu", [y], [y + "_act"], alpha=0.2))
            y += "_act"
        x = y
    nodes.append(helper.make_node("DepthToSpace", [x], ["shuffled"], blocksize=2, mode="CRD"))
    nodes.append(helper.make_node("Sigmoid", ["shuffled"], ["output"]))
    return nodes


def conv_x2(rng, in_dims, out_dims, meta, channels=3):
    w0 = conv_weight(rng, 16, channels)
    w1 = conv_weight(rng, 16, 16)
    w2 = conv_weight(rng, 4 * channels, 16, gain=2.0)
    b0 = (rng.standard_normal(16) * 0.1).astype(np.float32)
    b1 = (rng.standard_normal(16) * 0.1).astype(np.float32)
    b2 = np.zeros(4 * channels, np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(w0, "w0"), (b0, "b0"), (w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]]
    # centre the input so the sigmoid sees both signs: x - 0.5
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    nodes = [helper.make_node("Sub", ["input", "half"], ["centred"])]
    nodes += conv_chain("", "centred", [("w0", "b0", True), ("w1", "b1", True), ("w2", "b2", False)], channels)
    return model(nodes, inits + [half],
                 [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_dims)],
                 [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_dims)], meta)


def meta_x2(name, overlap):
    return {
        "gendr.scale": 2, "gendr.tile_multiple": 1, "gendr.tile_size": 64,
        "gendr.min_overlap": overlap, "gendr.precision": "fp32", "gendr.name": name,
        "gendr.license": "CC0-1.0", "gendr.source": "tests/data/make_test_models.py (random weights, seed 1234)",
    }


def slow_x2(rng, depth=14, width=64):
    w_in = conv_weight(rng, width, 3)
    w_mid = conv_weight(rng, width, width, gain=1.0)  # one tensor shared by every middle layer
    w_out = conv_weight(rng, 12, width, gain=2.0)
    zero_w = np.zeros(width, np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(w_in, "w_in"), (w_mid, "w_mid"), (w_out, "w_out"), (zero_w, "b_mid"),
              (np.zeros(12, np.float32), "b_out"), (np.array(0.5, np.float32), "half")]]
    layers = [("w_in", "b_mid", True)] + [("w_mid", "b_mid", True)] * depth + [("w_out", "b_out", False)]
    nodes = [helper.make_node("Sub", ["input", "half"], ["centred"])]
    nodes += conv_chain("", "centred", layers, 3)
    dims = ["N", 3, "H", "W"]
    return model(nodes, inits, [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
                 [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H2", "W2"])],
                 meta_x2("slow-x2", depth + 2), name="slow")


def with_meta(m, **changes):
    """A copy of `m` with some gendr.* metadata replaced."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    for p in m.metadata_props:
        key = p.key.removeprefix("gendr.")
        if key in changes:
            p.value = str(changes[key])
    return m


def appended(m, op, constant, out_dims, check=True):
    """`m` with its output passed through `op(output, constant)`."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    g = m.graph
    for n in g.node:
        n.output[:] = ["pre_output" if o == "output" else o for o in n.output]
    g.initializer.append(numpy_helper.from_array(constant, "appended_constant"))
    g.node.append(helper.make_node(op, ["pre_output", "appended_constant"], ["output"]))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("output", TensorProto.FLOAT, out_dims))
    if check:
        onnx.checker.check_model(m)
    return m


def to_fp16(m):
    """The same graph in float16: weights, constants, input and output."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    g = m.graph
    for i, t in enumerate(g.initializer):
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32:
            g.initializer[i].CopyFrom(numpy_helper.from_array(a.astype(np.float16), t.name))
    for v in list(g.input) + list(g.output):
        v.type.tensor_type.elem_type = TensorProto.FLOAT16
    for p in m.metadata_props:
        if p.key == "gendr.precision":
            p.value = "fp16"
    onnx.checker.check_model(m, full_check=True)
    return m


def two_inputs():
    nodes = [helper.make_node("Mul", ["input", "gain"], ["scaled"]),
             helper.make_node("Resize", ["scaled", "", "scales"], ["output"], mode="nearest")]
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    return model(nodes, inits,
                 [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"]),
                  helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1])],
                 [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H2", "W2"])])


def noisy_x2():
    nodes = [helper.make_node("Resize", ["input", "", "scales"], ["upscaled"], mode="linear"),
             helper.make_node("RandomUniformLike", ["upscaled"], ["noise"], low=-0.03, high=0.03),
             helper.make_node("Add", ["upscaled", "noise"], ["output"])]
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    meta = meta_x2("noisy-x2", 2)
    meta["gendr.source"] = "tests/data/make_test_models.py (bilinear plus fresh noise every run)"
    return model(nodes, inits, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                 [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H2", "W2"])],
                 meta, name="noisy")


def save(m, name):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(m.SerializeToString(deterministic=True))


def main():
    dyn_in, dyn_out = ["N", 3, "H", "W"], ["N", 3, "H2", "W2"]
    save(conv_x2(np.random.default_rng(1234), dyn_in, dyn_out, meta_x2("conv-x2", 3)), "conv_x2.onnx")
    save(conv_x2(np.random.default_rng(1234), dyn_in, dyn_out, None), "conv_x2_noscale.onnx")
    save(to_fp16(conv_x2(np.random.default_rng(1234), dyn_in, dyn_out, meta_x2("conv-x2-fp16", 3))),
         "conv_x2_fp16.onnx")
    save(conv_x2(np.random.default_rng(1234), [1, 3, 64, 64], [1, 3, 128, 128], None), "fixed64_x2.onnx")
    save(conv_x2(np.random.default_rng(1234), ["N", 1, "H", "W"], ["N", 1, "H2", "W2"], None, channels=1),
         "wrong_channels.onnx")
    save(two_inputs(), "two_inputs.onnx")
    with open(os.path.join(HERE, "not_a_model.onnx"), "w") as f:
        f.write("this is not an ONNX model\n")
    save(slow_x2(np.random.default_rng(99)), "slow_x2.onnx")
    base = conv_x2(np.random.default_rng(1234), dyn_in, dyn_out, meta_x2("conv-x2", 3))
    save(with_meta(base, tile_multiple=1000000), "bad_multiple_x2.onnx")
    save(with_meta(base, scale=2**64 - 1), "bad_scale_x2.onnx")
    save(conv_x2(np.random.default_rng(1234), [1, 3, 8192, 8192], [1, 3, 16384, 16384], None),
         "fixed_huge_x2.onnx")
    bare = conv_x2(np.random.default_rng(1234), dyn_in, dyn_out, None)
    save(appended(bare, "Squeeze", np.array([0], np.int64), dyn_out, check=False), "rank3_x2.onnx")
    save(appended(base, "Mul", np.array([np.nan], np.float32), dyn_out), "nan_x2.onnx")
    save(noisy_x2(), "noisy_x2.onnx")
    print("wrote test models to", HERE)


if __name__ == "__main__":
    main()
