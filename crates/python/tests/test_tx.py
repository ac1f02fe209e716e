"""Transactions: the seeds' names, canonical bytes, signatures, decoding."""

from __future__ import annotations

import pytest

import the_block as tb


def alice_to_bob(**kw: int) -> tb.TxPayload:
    alice, bob = tb.SecretKey.dev("alice"), tb.SecretKey.dev("bob")
    args = dict(amount_consumer=1_000, fee=10, fee_selector=0, nonce=1)
    args.update(kw)
    return tb.RawTxPayload(
        from_=alice.address, to=bob.address, memo=b"hello-world", **args
    )


def test_the_seeds_example() -> None:
    sk = tb.SecretKey.dev("alice")
    payload = alice_to_bob()
    stx = tb.sign_tx(sk, payload)
    assert tb.verify_signed_tx(stx)
    assert stx.payload == payload
    assert payload.kind == "Transfer"
    assert payload.fields()["memo"] == b"hello-world"
    assert payload.fields()["to"] == tb.SecretKey.dev("bob").address


def test_canonical_payload_round_trips() -> None:
    p = alice_to_bob()
    raw = tb.canonical_payload(p)
    d = tb.decode_payload(raw)
    assert d == p and d.from_ == p.from_ and d.nonce == 1
    assert tb.canonical_payload(d) == raw


def test_signature_binds_the_chain_and_the_bytes() -> None:
    sk = tb.SecretKey.dev("alice")
    stx = tb.sign_tx(sk, alice_to_bob(), chain_id=7)
    assert tb.verify_signed_tx(stx, chain_id=7)
    assert not tb.verify_signed_tx(stx, chain_id=8)
    assert not tb.verify_signed_tx(stx)  # the devnet's chain id
    b = bytearray(stx.to_bytes())
    assert tb.SignedTx.from_bytes(bytes(b)) == stx
    b[40] ^= 1  # inside the payload
    assert not tb.verify_signed_tx(tb.SignedTx.from_bytes(bytes(b)), chain_id=7)


def test_sign_sets_the_sender_and_pays_the_floor() -> None:
    sk = tb.SecretKey.dev("carol")
    p = alice_to_bob(fee=0)
    stx = tb.sign_tx(sk, p, fee_floor_per_byte=3)
    assert stx.payload.from_ == sk.address
    assert stx.payload.fee == 3 * len(stx)
    assert tb.verify_signed_tx(stx)


def test_ids_and_hex() -> None:
    stx = tb.sign_tx(tb.SecretKey.dev("alice"), alice_to_bob())
    assert len(stx.id) == 64 and bytes.fromhex(stx.hex()) == stx.to_bytes()
    again = tb.sign_tx(tb.SecretKey.dev("alice"), alice_to_bob())
    assert again.id == stx.id, "Ed25519 signing is deterministic"


def test_other_kinds() -> None:
    a = tb.SecretKey.dev("alice").address
    h = tb.TxPayload.register_handle(from_=a, handle="@alice")
    assert h.kind == "RegisterHandle" and h.fields() == {"handle": "@alice"}
    s = tb.TxPayload.stake(from_=a, amount=5)
    assert s.kind == "Stake" and s.fee_selector == 1
    assert tb.TxPayload.unstake(from_=a, amount=5).kind == "Unstake"
    c = tb.TxPayload.publish_chunk(
        from_=a, object=b"x" * 10, index=1, chunk_bytes=4, blob_fee_per_kib_micro=1000
    )
    assert c.kind == "PublishBlob" and c.fields()["bytes"] == 4 and c.fee == 1000
    with pytest.raises(tb.JobError):
        tb.TxPayload.publish_chunk(
            from_=a, object=b"x", index=5, chunk_bytes=4, blob_fee_per_kib_micro=1
        )


@pytest.mark.parametrize(
    "data", [b"", b"\x00", b"\xff" * 40, bytes(range(256))]
)
def test_bad_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(tb.DecodeError):
        tb.decode_payload(data)
    with pytest.raises(tb.DecodeError):
        tb.SignedTx.from_bytes(data)


def test_bad_addresses_in_payloads_raise() -> None:
    with pytest.raises(tb.KeyFormatError):
        tb.RawTxPayload(from_="deadbeef" * 4, to="bob")
