#!/usr/bin/env python3
"""Writes the ONNX test cases `crates/models/tests/onnx_cases.rs` runs.

    python3 crates/models/scripts/onnx_cases.py OUT_DIR

Two sets, in the ONNX backend-test layout (`CASE/model.onnx`,
`CASE/test_data_set_N/input_I.pb`, `output_I.pb`, plus `CASE/op.txt`, the op the
case is counted under):

* `OUT_DIR/node/`: the ONNX project's own backend conformance cases
  (`onnx.backend.test.case.node`, the cases `backend-test-tools generate-data` writes)
  for every op the importer supports, expected outputs from ONNX's reference code.
* `OUT_DIR/ort/`: one or more small graphs per supported op, built with
  `onnx.helper`, expected outputs computed by onnxruntime.

Needs the `onnx` and `onnxruntime` packages (`.ci/run` pins them).
"""

import os
import re
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SUPPORTED = [
    "Abs", "Add", "Cast", "Concat", "Constant", "ConstantOfShape", "Div", "Dropout",
    "Equal", "Erf", "Exp", "Expand", "Flatten", "Gather", "Gelu", "Gemm", "Greater",
    "GreaterOrEqual", "Identity", "LayerNormalization", "Less", "LessOrEqual", "Log",
    "MatMul", "Max", "Min", "Mul", "Neg", "Not", "Pow", "Range", "Reciprocal",
    "ReduceMax", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Shape", "Sigmoid",
    "Sign", "Size", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Tanh",
    "Transpose", "Unsqueeze", "Where",
]
OPSET = 17


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def op_of_case(name):
    """The supported op a node case is about, from its name (longest match)."""
    base = name[len("test_"):]
    best = None
    for op in SUPPORTED:
        for key in (snake(op), op.lower()):
            if base == key or base.startswith(key + "_"):
                if best is None or len(key) > len(best[1]):
                    best = (op, key)
    return best[0] if best else None


def write_case(root, name, model, data_sets, op):
    d = os.path.join(root, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    with open(os.path.join(d, "op.txt"), "w") as f:
        f.write(op + "\n")
    for i, (inputs, outputs) in enumerate(data_sets):
        s = os.path.join(d, f"test_data_set_{i}")
        os.makedirs(s)
        for kind, values, infos in (("input", inputs, model.graph.input), ("output", outputs, model.graph.output)):
            for j, v in enumerate(values):
                if isinstance(v, TensorProto):
                    t = TensorProto()
                    t.CopyFrom(v)
                    t.name = infos[j].name
                else:
                    t = numpy_helper.from_array(np.asarray(v), infos[j].name)
                with open(os.path.join(s, f"{kind}_{j}.pb"), "wb") as f:
                    f.write(t.SerializeToString())


def node_cases(root):
    from onnx.backend.test.case import node

    n = 0
    for case in node.collect_testcases(None):
        op = op_of_case(case.name)
        if op is None or case.model is None:
            continue
        types = {x.op_type for x in case.model.graph.node}
        if not all(t in SUPPORTED for t in types):
            continue
        if any(i.type.WhichOneof("value") != "tensor_type" for i in case.model.graph.input):
            continue
        write_case(root, case.name, case.model, case.data_sets, op)
        n += 1
    return n


def ort_cases(root):
    import onnxruntime as ort

    rng = np.random.default_rng(20261204)
    cases = []

    def f32(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def add(name, op, nodes, inputs, outputs, initializers=(), opset=OPSET):
        graph = helper.make_graph(
            nodes,
            name,
            [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in inputs],
            [helper.make_empty_tensor_value_info(o) for o in outputs],
            [numpy_helper.from_array(v, k) for k, v in initializers],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        for o in model.graph.output:
            inferred = [v for v in model.graph.value_info if v.name == o.name]
            if inferred:
                o.type.CopyFrom(inferred[0].type)
        onnx.checker.check_model(model)
        cases.append((name, op, model, [v for _, v in inputs]))

    def n(op, ins, outs=("y",), **attrs):
        return helper.make_node(op, list(ins), list(outs), **attrs)

    for op in ["Add", "Sub", "Mul", "Div", "Max", "Min"]:
        b = f32(4) if op != "Div" else (np.abs(f32(4)) + 0.5).astype(np.float32)
        add(f"{snake(op)}_broadcast", op, [n(op, ["a", "b"])], [("a", f32(2, 3, 4)), ("b", b)], ["y"])
    add("pow_square", "Pow", [n("Pow", ["x", "e"])], [("x", f32(3, 5))], ["y"], [("e", np.array(2.0, np.float32))])
    add("pow_half", "Pow", [n("Pow", ["x", "e"])], [("x", np.abs(f32(3, 5)))], ["y"], [("e", np.array([0.5], np.float32))])
    for op in ["Sqrt", "Reciprocal", "Log"]:
        add(snake(op), op, [n(op, ["x"])], [("x", (np.abs(f32(4, 6)) + 0.1).astype(np.float32))], ["y"])
    for op in ["Erf", "Tanh", "Exp", "Neg", "Abs", "Relu", "Sigmoid", "Sign"]:
        add(snake(op), op, [n(op, ["x"])], [("x", f32(4, 6))], ["y"])
    add("gelu", "Gelu", [n("Gelu", ["x"])], [("x", f32(4, 6))], ["y"], opset=20)
    add("gelu_tanh", "Gelu", [n("Gelu", ["x"], approximate="tanh")], [("x", f32(4, 6))], ["y"], opset=20)
    add("softmax_last", "Softmax", [n("Softmax", ["x"])], [("x", f32(2, 3, 7))], ["y"])
    add("softmax_axis1", "Softmax", [n("Softmax", ["x"], axis=1)], [("x", f32(2, 3, 7))], ["y"])
    add("layer_norm", "LayerNormalization", [n("LayerNormalization", ["x", "w", "b"], epsilon=1e-12)],
        [("x", f32(2, 5, 16))], ["y"], [("w", f32(16)), ("b", f32(16))])
    add("layer_norm_axis1", "LayerNormalization", [n("LayerNormalization", ["x", "w"], axis=1)],
        [("x", f32(2, 5, 4))], ["y"], [("w", f32(5, 4))])
    # The pattern exporters wrote before opset 17: mean, centre, variance, eps, sqrt, div.
    add("layer_norm_decomposed", "LayerNormalization", [
        n("ReduceMean", ["x"], ["mu"], axes=[-1]), n("Sub", ["x", "mu"], ["d"]),
        n("Pow", ["d", "two"], ["d2"]), n("ReduceMean", ["d2"], ["var"], axes=[-1]),
        n("Add", ["var", "eps"], ["ve"]), n("Sqrt", ["ve"], ["sd"]), n("Div", ["d", "sd"], ["z"]),
        n("Mul", ["z", "w"], ["zw"]), n("Add", ["zw", "b"], ["y"]),
    ], [("x", f32(2, 5, 16))], ["y"], [("two", np.array(2.0, np.float32)), ("eps", np.array(1e-12, np.float32)),
                                        ("w", f32(16)), ("b", f32(16))])
    add("reduce_mean", "ReduceMean", [n("ReduceMean", ["x"], axes=[1], keepdims=0)], [("x", f32(3, 4, 5))], ["y"])
    add("reduce_mean_18", "ReduceMean", [n("ReduceMean", ["x", "ax"])], [("x", f32(3, 4, 5))], ["y"],
        [("ax", np.array([0, 2], np.int64))], opset=18)
    add("reduce_sum", "ReduceSum", [n("ReduceSum", ["x", "ax"], keepdims=1)], [("x", f32(3, 4, 5))], ["y"],
        [("ax", np.array([-1], np.int64))])
    add("reduce_max", "ReduceMax", [n("ReduceMax", ["x"], axes=[0, 1])], [("x", f32(3, 4, 5))], ["y"])
    add("matmul_batched", "MatMul", [n("MatMul", ["a", "b"])], [("a", f32(2, 3, 8, 16)), ("b", f32(2, 3, 16, 5))], ["y"])
    add("matmul_broadcast", "MatMul", [n("MatMul", ["a", "w"])], [("a", f32(2, 7, 16))], ["y"], [("w", f32(16, 9))])
    add("matmul_vector", "MatMul", [n("MatMul", ["a", "v"])], [("a", f32(4, 6))], ["y"], [("v", f32(6))])
    add("gemm", "Gemm", [n("Gemm", ["a", "b", "c"], alpha=0.5, beta=2.0, transB=1)],
        [("a", f32(3, 6))], ["y"], [("b", f32(4, 6)), ("c", f32(4))])
    add("gemm_trans_a", "Gemm", [n("Gemm", ["a", "b"], transA=1)], [("a", f32(6, 3)), ("b", f32(6, 4))], ["y"])
    add("gather_embedding", "Gather", [n("Gather", ["table", "ids"])], [("ids", rng.integers(0, 50, (2, 7)).astype(np.int64))],
        ["y"], [("table", f32(50, 8))])
    add("gather_axis1", "Gather", [n("Gather", ["x", "i"], axis=1)], [("x", f32(3, 5, 4))], ["y"],
        [("i", np.array([4, -1, 0], np.int64))])
    add("gather_scalar_index", "Gather", [n("Gather", ["x", "i"], axis=1)], [("x", f32(2, 6, 3))], ["y"],
        [("i", np.array(0, np.int64))])
    # The shape subgraph exporters write: Shape → Gather → Unsqueeze → Concat → Reshape.
    add("reshape_from_shape", "Reshape", [
        n("Shape", ["x"], ["s"]), n("Gather", ["s", "zero"], ["b"], axis=0),
        n("Unsqueeze", ["b", "ax0"], ["b1"]), n("Concat", ["b1", "rest"], ["shape"], axis=0),
        n("Reshape", ["x", "shape"], ["y"]),
    ], [("x", f32(2, 3, 4))], ["y"], [("zero", np.array(0, np.int64)), ("ax0", np.array([0], np.int64)),
                                       ("rest", np.array([-1, 2], np.int64))])
    add("reshape_zero", "Reshape", [n("Reshape", ["x", "s"])], [("x", f32(2, 3, 4))], ["y"], [("s", np.array([0, 12], np.int64))])
    add("transpose", "Transpose", [n("Transpose", ["x"], perm=[0, 2, 1, 3])], [("x", f32(2, 3, 4, 5))], ["y"])
    add("unsqueeze", "Unsqueeze", [n("Unsqueeze", ["x", "ax"])], [("x", f32(3, 4))], ["y"], [("ax", np.array([0, -1], np.int64))])
    add("squeeze", "Squeeze", [n("Squeeze", ["x", "ax"])], [("x", f32(3, 1, 4, 1))], ["y"], [("ax", np.array([1], np.int64))])
    add("squeeze_all", "Squeeze", [n("Squeeze", ["x"])], [("x", f32(1, 4, 1))], ["y"])
    add("concat", "Concat", [n("Concat", ["a", "b"], axis=1)], [("a", f32(2, 3, 4)), ("b", f32(2, 5, 4))], ["y"])
    add("slice", "Slice", [n("Slice", ["x", "s", "e", "ax", "st"])], [("x", f32(4, 10, 6))], ["y"],
        [("s", np.array([1, -8], np.int64)), ("e", np.array([9223372036854775807, 9], np.int64)),
         ("ax", np.array([1, 2], np.int64)), ("st", np.array([2, 3], np.int64))])
    add("split", "Split", [n("Split", ["x", "sp"], ["p", "q", "r"], axis=-1)], [("x", f32(2, 12))], ["p", "q", "r"],
        [("sp", np.array([4, 4, 4], np.int64))])
    add("where", "Where", [n("Greater", ["a", "b"], ["c"]), n("Where", ["c", "a", "b"])], [("a", f32(3, 4)), ("b", f32(4))], ["y"])
    add("equal_not", "Not", [n("Equal", ["a", "b"], ["e"]), n("Not", ["e"], ["y"])],
        [("a", rng.integers(0, 3, (3, 4)).astype(np.int64)), ("b", rng.integers(0, 3, (4,)).astype(np.int64))], ["y"])
    add("equal", "Equal", [n("Equal", ["a", "b"])], [("a", np.round(f32(3, 4))), ("b", np.round(f32(3, 4)))], ["y"])
    add("cast_mask", "Cast", [n("Cast", ["m"], ["f"], to=TensorProto.FLOAT), n("Sub", ["one", "f"], ["y"])],
        [("m", rng.integers(0, 2, (2, 6)).astype(np.int64))], ["y"], [("one", np.array(1.0, np.float32))])
    add("cast_to_int", "Cast", [n("Cast", ["x"], to=TensorProto.INT64)], [("x", (f32(3, 4) * 10).astype(np.float32))], ["y"])
    add("expand", "Expand", [n("Expand", ["x", "s"])], [("x", f32(3, 1))], ["y"], [("s", np.array([2, 3, 4], np.int64))])
    add("constant", "Constant", [n("Constant", [], ["c"], value=numpy_helper.from_array(f32(3), "c")), n("Add", ["x", "c"])],
        [("x", f32(2, 3))], ["y"])
    add("constant_of_shape", "ConstantOfShape", [
        n("Shape", ["x"], ["s"]), n("ConstantOfShape", ["s"], ["z"], value=numpy_helper.from_array(np.array([1.5], np.float32))),
        n("Mul", ["x", "z"])], [("x", f32(2, 3))], ["y"])
    add("shape_slice", "Shape", [n("Shape", ["x"], ["s"], start=1), n("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
                                n("Add", ["x", "sf"])], [("x", f32(3, 4, 2))], ["y"])
    add("range_positions", "Range", [n("Range", ["a", "b", "c"], ["r"]), n("Gather", ["table", "r"], ["g"]),
                                     n("Add", ["x", "g"])], [("x", f32(5, 3))], ["y"],
        [("a", np.array(0, np.int64)), ("b", np.array(5, np.int64)), ("c", np.array(1, np.int64)), ("table", f32(8, 3))])
    add("flatten", "Flatten", [n("Flatten", ["x"], axis=2)], [("x", f32(2, 3, 4, 5))], ["y"])
    add("identity_dropout", "Dropout", [n("Dropout", ["x"], ["d"]), n("Identity", ["d"])], [("x", f32(3, 3))], ["y"])
    # An attention block as torch.onnx.export writes it (shape subgraphs included).
    h, heads = 16, 2
    add("attention_block", "MatMul", [
        n("MatMul", ["x", "wq"], ["q0"]), n("Add", ["q0", "bq"], ["q1"]),
        n("Shape", ["q1"], ["qs"]), n("Gather", ["qs", "zero"], ["bsz"], axis=0), n("Gather", ["qs", "one"], ["len"], axis=0),
        n("Unsqueeze", ["bsz", "ax0"], ["bsz1"]), n("Unsqueeze", ["len", "ax0"], ["len1"]),
        n("Concat", ["bsz1", "len1", "hd"], ["shp"], axis=0), n("Reshape", ["q1", "shp"], ["q2"]),
        n("Transpose", ["q2"], ["q"], perm=[0, 2, 1, 3]), n("Transpose", ["q2"], ["kt"], perm=[0, 2, 3, 1]),
        n("MatMul", ["q", "kt"], ["s0"]), n("Div", ["s0", "scale"], ["s1"]),
        n("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT), n("Unsqueeze", ["mf", "ax12"], ["m4"]),
        n("Sub", ["one_f", "m4"], ["inv"]), n("Mul", ["inv", "neg"], ["madd"]), n("Add", ["s1", "madd"], ["s2"]),
        n("Softmax", ["s2"], ["p"], axis=-1), n("MatMul", ["p", "q"], ["c0"]),
        n("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3]), n("Reshape", ["c1", "back"], ["c2"]),
        n("Gelu", ["c2"], ["y"]),
    ], [("x", f32(2, 5, h)), ("attention_mask", np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], np.int64))], ["y"], [
        ("wq", f32(h, h)), ("bq", f32(h)), ("zero", np.array(0, np.int64)), ("one", np.array(1, np.int64)),
        ("ax0", np.array([0], np.int64)), ("hd", np.array([heads, h // heads], np.int64)),
        ("scale", np.array(np.sqrt(h // heads), np.float32)), ("ax12", np.array([1, 2], np.int64)),
        ("one_f", np.array(1.0, np.float32)), ("neg", np.array(-3.4028234663852886e38, np.float32)),
        ("back", np.array([0, 0, h], np.int64)),
    ], opset=20)

    for name, op, model, inputs in cases:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {i.name: v for i, v in zip(model.graph.input, inputs)}
        outs = sess.run(None, feeds)
        write_case(root, "ort_" + name, model, [(inputs, outs)], op)
    return len(cases)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    nn = node_cases(os.path.join(out, "node"))
    no = ort_cases(os.path.join(out, "ort"))
    print(f"onnx_cases: {nn} ONNX node cases, {no} onnxruntime cases in {out} "
          f"(onnx {onnx.__version__})")


if __name__ == "__main__":
    main()
