#!/usr/bin/env python3
"""Exports a BERT-family sentence encoder (all-MiniLM-L6-v2) to ONNX the way
`torch.onnx.export` writes `BertModel` + sentence-transformers pooling at opset 14:
dynamic `batch` and `sequence` axes, shape subgraphs (Shape → Gather → Unsqueeze →
Concat → Reshape) for the attention heads, layer norm decomposed (ReduceMean, Sub, Pow,
ReduceMean, Add, Sqrt, Div, Mul, Add), GELU as Div/Erf/Add/Mul/Mul, the attention mask
as (1 − mask) × float32-min, and Linear weights stored transposed for MatMul.

    python3 crates/models/scripts/export_bert_onnx.py MODEL_DIR OUT.onnx

Written with the `onnx` package's helper API (torch is not installable here); the
graph is checked with onnx.checker and runs on onnxruntime. Inputs: input_ids,
attention_mask, token_type_ids (int64 [batch, sequence]); output: sentence_embedding
(float32 [batch, hidden]).
"""

import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, value):
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type, inputs, **attrs):
        self.n += 1
        out = f"/{op_type}_{self.n}_output_0"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"/{op_type}_{self.n}", **attrs))
        return out


def export(d, out):
    cfg = json.load(open(f"{d}/config.json"))
    w = load_file(f"{d}/model.safetensors")
    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh = h // nh
    g = Graph()
    i64 = lambda v: np.array(v, np.int64)
    f32 = lambda v: np.array(v, np.float32)
    zero, one = g.const("c_zero", i64(0)), g.const("c_one", i64(1))
    ax0, ax1, ax2 = g.const("c_ax0", i64([0])), g.const("c_ax1", i64([1])), g.const("c_ax2", i64([2]))
    ax_last = g.const("c_axm1", i64([-1]))

    def layer_norm(x, p):
        mu = g.op("ReduceMean", [x], axes=[-1])
        dx = g.op("Sub", [x, mu])
        var = g.op("ReduceMean", [g.op("Pow", [dx, g.const(p + ".two", f32(2.0))])], axes=[-1])
        sd = g.op("Sqrt", [g.op("Add", [var, g.const(p + ".eps", f32(cfg["layer_norm_eps"]))])])
        y = g.op("Div", [dx, sd])
        y = g.op("Mul", [y, g.const(p + ".weight", w[p + ".weight"])])
        return g.op("Add", [y, g.const(p + ".bias", w[p + ".bias"])])

    def linear(x, p):
        y = g.op("MatMul", [x, g.const("onnx::MatMul_" + p, np.ascontiguousarray(w[p + ".weight"].T))])
        return g.op("Add", [g.const(p + ".bias", w[p + ".bias"]), y])

    ids, mask, types = "input_ids", "attention_mask", "token_type_ids"
    # Embeddings: positions are a slice of the position_ids buffer as long as the input.
    shape = g.op("Shape", [ids])
    seq = g.op("Gather", [shape, one], axis=0)
    seq1 = g.op("Unsqueeze", [seq, ax0])
    pos_ids = g.op("Slice", [g.const("embeddings.position_ids", i64(np.arange(cfg["max_position_embeddings"])[None])), g.const("c_s0", i64([0])), seq1, ax1, ax1])
    x = g.op("Gather", [g.const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]), ids])
    t = g.op("Gather", [g.const("embeddings.token_type_embeddings.weight", w["embeddings.token_type_embeddings.weight"]), types])
    x = g.op("Add", [x, t])
    p = g.op("Gather", [g.const("embeddings.position_embeddings.weight", w["embeddings.position_embeddings.weight"]), pos_ids])
    x = layer_norm(g.op("Add", [x, p]), "embeddings.LayerNorm")
    # The extended attention mask: (1 - mask[:, None, None, :]) * float32 min.
    m = g.op("Cast", [g.op("Unsqueeze", [g.op("Unsqueeze", [mask, ax1]), ax2])], to=TensorProto.FLOAT)
    m = g.op("Mul", [g.op("Sub", [g.const("c_onef", f32(1.0)), m]), g.const("c_min", f32(np.finfo(np.float32).min))])

    def heads(t):
        s = g.op("Shape", [t])
        b = g.op("Unsqueeze", [g.op("Gather", [s, zero], axis=0), ax0])
        l = g.op("Unsqueeze", [g.op("Gather", [s, one], axis=0), ax0])
        shp = g.op("Concat", [b, l, g.const(f"c_hd{g.n}", i64([nh, dh]))], axis=0)
        return g.op("Reshape", [t, shp])

    for i in range(cfg["num_hidden_layers"]):
        pre = f"encoder.layer.{i}."
        q = g.op("Transpose", [heads(linear(x, pre + "attention.self.query"))], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [heads(linear(x, pre + "attention.self.key"))], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [heads(linear(x, pre + "attention.self.value"))], perm=[0, 2, 1, 3])
        s = g.op("Div", [g.op("MatMul", [q, k]), g.const(f"c_scale{i}", f32(np.sqrt(dh)))])
        s = g.op("Softmax", [g.op("Add", [s, m])], axis=-1)
        c = g.op("Transpose", [g.op("MatMul", [s, v])], perm=[0, 2, 1, 3])
        cs = g.op("Shape", [c])
        b = g.op("Unsqueeze", [g.op("Gather", [cs, zero], axis=0), ax0])
        l = g.op("Unsqueeze", [g.op("Gather", [cs, one], axis=0), ax0])
        c = g.op("Reshape", [c, g.op("Concat", [b, l, g.const(f"c_h{i}", i64([h]))], axis=0)])
        x = layer_norm(g.op("Add", [linear(c, pre + "attention.output.dense"), x]), pre + "attention.output.LayerNorm")
        f = linear(x, pre + "intermediate.dense")
        gelu = g.op("Mul", [g.op("Mul", [f, g.op("Add", [g.op("Erf", [g.op("Div", [f, g.const(f"c_sqrt2_{i}", f32(1.4142135381698608))])]), g.const(f"c_1_{i}", f32(1.0))])]), g.const(f"c_half{i}", f32(0.5))])
        x = layer_norm(g.op("Add", [linear(gelu, pre + "output.dense"), x]), pre + "output.LayerNorm")
    # sentence-transformers pooling: mean over the mask, then L2 normalise.
    mf = g.op("Cast", [g.op("Unsqueeze", [mask, ax_last])], to=TensorProto.FLOAT)
    mf = g.op("Expand", [mf, g.op("Shape", [x])])
    summed = g.op("ReduceSum", [g.op("Mul", [x, mf]), ax1], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [mf, ax1], keepdims=0), g.const("c_1e9", f32(1e-9))])
    e = g.op("Div", [summed, count])
    norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [e, e]), ax_last], keepdims=1)])
    norm = g.op("Max", [norm, g.const("c_1e12", f32(1e-12))])
    g.nodes.append(helper.make_node("Div", [e, norm], ["sentence_embedding"], name="/Div_out"))

    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        g.nodes, "bert_sentence_encoder",
        [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n in (ids, mask, types)],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", h])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], producer_name="the-block export_bert_onnx")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out)
    print(f"export_bert_onnx: {len(g.nodes)} nodes, {len(g.inits)} initializers -> {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    export(*sys.argv[1:])
