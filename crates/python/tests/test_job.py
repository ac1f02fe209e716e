"""Jobs from Python: a program built over numpy arrays, run on the CPU reference
fabric, with the same digests as `tb-cli job run`; results and traces decoded; a
real model (all-MiniLM-L6-v2) imported and run when CI provides it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import the_block as tb
from conftest import cli_json


def mlp() -> tuple[tb.Job, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    w1 = rng.standard_normal((8, 16)).astype(np.float32)
    w2 = rng.standard_normal((16, 3)).astype(np.float32)
    b = tb.ProgramBuilder([4, 8])
    h = b.relu(b.matmul(b.input(), b.param("w1", w1)))
    y = b.softmax(b.matmul(h, b.param("w2", w2)))
    b.output("probs", y)
    b.output("hidden", h)
    return tb.Job.build(b.finish(), x), x, w1, w2


def test_a_numpy_program_runs_and_matches_numpy() -> None:
    job, x, w1, w2 = mlp()
    r = job.run()
    assert list(r.outputs) == ["probs", "hidden"]
    h = np.maximum(x @ w1, 0)
    z = h @ w2
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    assert r.outputs["hidden"].dtype == np.float32 and r.outputs["hidden"].shape == (4, 16)
    np.testing.assert_allclose(r.outputs["hidden"], h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.outputs["probs"], p, rtol=1e-5, atol=1e-6)
    assert len(r.leaves) == r.n_ops == job.n_ops
    assert tb.trace_root(r.leaves) == r.trace_root
    assert r.fabric == "cpu"


def test_the_digest_is_tb_clis(tmp_path: Path) -> None:
    job, *_ = mlp()
    blob = tmp_path / "mlp.btj"
    blob.write_bytes(job.encode())
    ours = job.run()
    theirs = cli_json("job", "run", str(blob))
    assert theirs["output_digest_sha256"] == ours.output_digest
    assert theirs["trace_root"] == ours.trace_root
    assert theirs["task_id"] == tb.Job.task_id(job.encode())


def test_every_thread_count_gives_the_same_bits() -> None:
    job, *_ = mlp()
    runs = [job.run(threads=n) for n in (1, 2, 7)]
    assert len({r.output_digest for r in runs}) == 1
    assert len({r.trace_root for r in runs}) == 1
    assert all(np.array_equal(runs[0].outputs["probs"], r.outputs["probs"]) for r in runs)


def test_a_model_stays_uploaded_between_runs() -> None:
    job, *_ = mlp()
    first = job.run(threads=3)
    models, used, budget = tb.model_cache_usage()
    assert budget == 1 << 30 and 0 < used <= budget and models >= 1
    # The weights (w1, w2: 8*16 + 16*3 f32) are what is kept, at least once.
    assert used >= (8 * 16 + 16 * 3) * 4
    again = job.run(threads=3)
    assert tb.model_cache_usage() == (models, used, budget), "the second run reused them"
    assert again.output_digest == first.output_digest
    assert again.leaves == first.leaves
    for name in first.outputs:
        assert np.array_equal(first.outputs[name], again.outputs[name])


def test_by_reference_and_back() -> None:
    job, *_ = mlp()
    ref = job.by_reference()
    assert ref.is_by_reference and not job.is_by_reference
    blob = ref.encode()
    assert tb.Job.model_of(blob) == job.model_sha256
    assert tb.Job.model_of(job.encode()) is None
    with pytest.raises(tb.DecodeError):
        tb.Job.decode(blob)  # names its model, which is not given
    again = tb.Job.decode(blob, ref.model_bytes())
    assert again.run().output_digest == job.run().output_digest
    assert tb.Program.decode(ref.model_bytes()).sha256 == job.model_sha256


def test_result_object_round_trips() -> None:
    job, *_ = mlp()
    r = job.run()
    obj = tb.decode_result(r.result_bytes())
    assert obj.output_digest == r.output_digest
    for name, arr in r.outputs.items():
        assert np.array_equal(obj.outputs[name], arr)


def test_builder_errors_are_job_errors() -> None:
    b = tb.ProgramBuilder([2, 3])
    x = b.input()
    with pytest.raises(tb.JobError, match="float32"):
        b.param("w", np.zeros((3, 3)))  # type: ignore[arg-type]  # float64, refused
    w = b.param("w", np.zeros((4, 5), np.float32))
    with pytest.raises(tb.JobError):
        b.matmul(x, w)  # 3 != 4
    with pytest.raises(tb.JobError, match="no unary op"):
        b.unary("cube", x)
    b.output("y", b.relu(x))
    prog = b.finish()
    with pytest.raises(tb.JobError, match="finished"):
        b.finish()
    with pytest.raises(tb.JobError, match="built for"):
        tb.Job.build(prog, np.zeros((3, 2), np.float32))
    with pytest.raises(tb.JobError, match="threads"):
        tb.Job.build(prog, np.zeros((2, 3), np.float32)).run(threads=0)
    with pytest.raises(tb.JobError, match="no output"):
        tb.ProgramBuilder([1]).finish()


def test_strided_inputs_are_read_in_c_order() -> None:
    b = tb.ProgramBuilder([3, 2])
    b.output("y", b.add(b.input(), b.scalar(0.0)))
    prog = b.finish()
    x = np.arange(6, dtype=np.float32).reshape(2, 3).T  # not C-contiguous
    out = tb.Job.build(prog, x).run().outputs["y"]
    assert np.array_equal(out, np.ascontiguousarray(x))


def test_bad_models_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(tb.ModelError):
        tb.import_onnx(b"not an onnx model")
    with pytest.raises(tb.ModelError):
        tb.import_bert(tmp_path)


MINILM = os.environ.get("TB_MINILM_DIR")
MINILM_REF = os.environ.get("TB_MINILM_REF")


@pytest.mark.skipif(
    not (MINILM and MINILM_REF),
    reason="TB_MINILM_DIR and TB_MINILM_REF are not set (.ci/run sets them)",
)
def test_minilm_embeds_like_the_reference() -> None:
    assert MINILM and MINILM_REF
    ref = json.loads(Path(MINILM_REF).read_text())
    sentences = Path(__file__).resolve().parents[2] / "models/tests/data/sentences.txt"
    texts = [s for s in sentences.read_text(encoding="utf-8").splitlines() if s][:2]
    model = tb.import_bert(MINILM, batch=len(texts))
    job = tb.text_job(model.encode(), Path(MINILM) / "tokenizer.json", texts)
    r = job.run()
    emb = r.outputs["embedding"]
    want = np.asarray(ref["f64"][: len(texts)])
    assert emb.shape == want.shape
    # The bound the Rust test holds the same model to (crates/models/tests/minilm.rs).
    assert np.abs(emb.astype(np.float64) - want).max() <= 1e-5
