"""Property tests: every decoder given arbitrary bytes (and mutations of valid
encodings) either decodes or raises one of the package's own errors; it never
crashes the interpreter or raises anything else."""

from __future__ import annotations

from typing import Callable

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import the_block as tb

DECODERS: dict[str, Callable[[bytes], object]] = {
    "decode_payload": tb.decode_payload,
    "SignedTx.from_bytes": tb.SignedTx.from_bytes,
    "Job.decode": tb.Job.decode,
    "Program.decode": tb.Program.decode,
    "decode_result": tb.decode_result,
    "decode_trace": tb.decode_trace,
}


def _valid_samples() -> dict[str, bytes]:
    sk = tb.SecretKey.dev("props")
    p = tb.RawTxPayload(from_=sk.address, to=tb.SecretKey.dev("q").address, memo=b"m" * 9)
    b = tb.ProgramBuilder([2, 2])
    b.output("y", b.relu(b.input()))
    job = tb.Job.build(b.finish(), np.ones((2, 2), np.float32))
    r = job.run()
    return {
        "decode_payload": tb.canonical_payload(p),
        "SignedTx.from_bytes": tb.sign_tx(sk, p).to_bytes(),
        "Job.decode": job.encode(),
        "Program.decode": job.model_bytes(),
        "decode_result": r.result_bytes(),
        "decode_trace": b"",
    }


VALID = _valid_samples()


def _check(name: str, data: bytes) -> None:
    try:
        DECODERS[name](data)
    except tb.TheBlockError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(DECODERS)), st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash(name: str, data: bytes) -> None:
    _check(name, data)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(n for n in VALID if VALID[n])),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8),
    st.integers(0, 64),
)
def test_mutated_encodings_never_crash(name: str, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID[name])
    for pos, val in flips:
        data[pos % len(data)] = val
    _check(name, bytes(data[: max(0, len(data) - cut)]))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_key_and_address_text_never_crash(text: str) -> None:
    for f in (tb.SecretKey.from_pem, tb.SecretKey.from_seed_hex, tb.Address):
        try:
            f(text)
        except tb.TheBlockError:
            pass


def test_valid_samples_decode() -> None:
    for name, data in VALID.items():
        if data:
            DECODERS[name](data)
