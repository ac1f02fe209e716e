#!/usr/bin/env python3
"""onnxruntime's figure for BENCHMARKS.md, measured beside `tb-bench minilm`: the same
sentence encoder (exported by export_bert_onnx.py), the same full-length 128-token
inputs, `--threads` intra-op threads, median of `--runs`.

    python3 crates/models/scripts/bench_ort.py MINILM.onnx [--batch B] [--threads T] [--runs R]
"""

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort

a = argparse.ArgumentParser()
a.add_argument("onnx")
a.add_argument("--batch", type=int, default=1)
a.add_argument("--threads", type=int, default=2)
a.add_argument("--runs", type=int, default=5)
args = a.parse_args()
o = ort.SessionOptions()
o.intra_op_num_threads = args.threads
o.inter_op_num_threads = 1
t = time.perf_counter()
s = ort.InferenceSession(args.onnx, o, providers=["CPUExecutionProvider"])
load_ms = (time.perf_counter() - t) * 1e3
ids = np.random.default_rng(1).integers(1000, 30000, (args.batch, 128)).astype(np.int64)
feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
s.run(None, feeds)
times = []
for _ in range(args.runs):
    t = time.perf_counter()
    s.run(None, feeds)
    times.append(time.perf_counter() - t)
m = statistics.median(times)
print(json.dumps({"bench": "minilm-onnxruntime", "version": ort.__version__, "batch": args.batch, "seq": 128,
                  "threads": args.threads, "runs": args.runs, "load_ms": round(load_ms), "ms": round(m * 1e3, 1),
                  "sentences_per_s": round(args.batch / m, 1)}))
