"""examples/python/embed.py against a real devnet: all-MiniLM-L6-v2 published,
run by the devnet's provider, verified, and its embeddings equal to a local run."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import the_block as tb
from conftest import REPO, Devnet

MINILM = os.environ.get("TB_MINILM_DIR")


@pytest.mark.skipif(not MINILM, reason="TB_MINILM_DIR is not set (.ci/run sets it)")
def test_embed_example(devnet: Devnet, capsys: pytest.CaptureFixture[str]) -> None:
    assert MINILM
    spec = importlib.util.spec_from_file_location("embed", REPO / "examples/python/embed.py")
    assert spec and spec.loader
    embed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(embed)
    devnet.funded()
    key = devnet.data / "dev-keys" / "devnet-alice.key"
    assert embed.main(["--model-dir", MINILM, "--rpc", devnet.url, "--key", str(key)]) == 0
    out = capsys.readouterr().out
    assert "verified: task" in out and "cosine similarities" in out
    # The verified embeddings are the local run's, bit for bit: the market's job is
    # the one built here.
    model = tb.import_bert(MINILM, batch=len(embed.SENTENCES))
    job = tb.text_job(model.encode(), Path(MINILM) / "tokenizer.json", embed.SENTENCES)
    local = job.run().outputs["embedding"]
    last = tb.Wallet(devnet.client, devnet.key("devnet-alice"))
    jobs = devnet.client.list_jobs(limit=1).jobs
    res = last.wait_result(jobs[0].task_id, timeout=60)
    assert np.array_equal(res.outputs["embedding"], local)
    cos = local @ local.T
    assert cos[0, 1] > cos[0, 2], "the two guitar sentences are the closest pair"
