"""Against a real `the-block devnet`: transactions signed here are admitted and
included, refusals raise their classes, a job built from numpy goes through the market
(publish, submit, lease, receipt, challenge window) and comes back verified and equal
to the local run, and the WebSocket iterator sees the market's events."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, List, Tuple, Type

import numpy as np
import pytest

import the_block as tb
from conftest import Devnet


def small_job() -> tb.Job:
    rng = np.random.default_rng(11)
    b = tb.ProgramBuilder([2, 6])
    w = b.param("w", rng.standard_normal((6, 4)).astype(np.float32))
    b.output("y", b.gelu(b.matmul(b.input(), w)))
    return tb.Job.build(b.finish(), rng.standard_normal((2, 6)).astype(np.float32))


def test_chain_views(devnet: Devnet) -> None:
    c = devnet.client
    info = c.chain_info()
    assert info.chain_id == tb.DEVNET_CHAIN_ID
    assert info.market.blob_chunk_bytes > 0
    head = c.head()
    assert head.height >= 0 and len(head.id) == 64
    blk = c.get_block(head.height)
    assert blk is not None and blk.header.id == head.id
    assert c.get_block(10**9) is None
    assert "tb_" in c.metrics()
    assert c.net_info().enabled
    assert c.fund_balance().stakes >= 0
    assert c.governor_status().differs_from_genesis is False
    assert set(c.governor_intents()) >= {"voting", "scheduled", "shadowing"}
    assert c.list_jobs(limit=5).total >= 0
    assert {"height", "blocks", "receipt_checks", "queued"} <= set(c.stats())
    assert c.payouts(0).epoch == 0
    assert c.slashes() == []
    e = c.estimate(flops=1_000_000, max_price=1_000_000)
    assert e.escrow_micro == 1_000_000
    audit = c.audit_supply()
    assert audit["holds"] is True, audit
    assert audit["minted"] == audit["accounted"] and int(audit["minted"]["consumer"]) > 0


def test_a_transfer_signed_here_is_included(devnet: Devnet) -> None:
    w = devnet.funded()
    bob = tb.SecretKey.generate().address
    tx_id = w.transfer(bob, consumer=1_234_567, memo=b"from python")
    st = w.wait_included(tx_id, timeout=60)
    assert st.status == "included" and st.height is not None
    assert devnet.client.balance(bob).consumer == 1_234_567
    assert st.tx["kind"] == "Transfer"


def test_a_handle_registered_here_resolves(devnet: Devnet) -> None:
    w = devnet.funded("devnet-bob")
    assert devnet.client.resolve_handle("@pybob") is None
    tx_id = w.send(tb.TxPayload.register_handle(from_=w.address, handle="@pybob"), via="register_handle")
    w.wait_included(tx_id, timeout=60)
    assert devnet.client.resolve_handle("@pybob") == w.address
    assert devnet.client.balance("@pybob").address == str(w.address)
    alice = devnet.funded()
    with pytest.raises(tb.errors.ErrHandleTaken) as e:
        alice.send(
            tb.TxPayload.register_handle(from_=alice.address, handle="@pybob"),
            via="register_handle",
        )
    assert e.value.code == tb.ERR_HANDLE_TAKEN


def test_refusals_raise_their_classes(devnet: Devnet) -> None:
    w = devnet.funded()
    c = devnet.client
    me = w.address
    bob = tb.SecretKey.generate().address
    info = c.chain_info()

    def signed(p: tb.TxPayload, nonce: int) -> tb.SignedTx:
        return tb.sign_tx(w.key, p.with_nonce(nonce), info.chain_id, info.fee_floor_per_byte)

    nonce = c.balance(me).next_nonce
    t = tb.RawTxPayload(from_=me, to=bob, amount_consumer=1)
    cases: List[Tuple[tb.SignedTx, Type[tb.TxRejected]]] = [
        (signed(t, nonce + 5), tb.errors.ErrNonceGap),
        (signed(t, 0) if nonce > 0 else signed(t, nonce + 9), tb.errors.ErrNonceReused if nonce > 0 else tb.errors.ErrNonceGap),
        (signed(tb.RawTxPayload(from_=me, to=bob, fee_selector=3), nonce), tb.errors.ErrInvalidSelector),
        (signed(tb.RawTxPayload(from_=me, to=bob, memo=b"m" * 10_000), nonce), tb.errors.ErrMemoTooLarge),
        (signed(tb.RawTxPayload(from_=me, to=bob, amount_consumer=10**18), nonce), tb.errors.ErrInsufficientBalance),
        (signed(tb.TxPayload.register_handle(from_=me, handle="@No"), nonce), tb.errors.ErrInvalidHandle),
        (tb.sign_tx(w.key, t.with_nonce(nonce), info.chain_id + 1, info.fee_floor_per_byte), tb.errors.ErrBadSignature),
    ]
    if info.fee_floor_per_byte > 0:
        cases.append((tb.sign_tx(w.key, t.with_nonce(nonce), info.chain_id, 0), tb.errors.ErrFeeBelowFloor))
    for tx, cls in cases:
        with pytest.raises(cls) as e:
            c.submit_tx(tx)
        assert e.value.code == cls.refusal_code and e.value.reason == cls.refusal_reason
        assert isinstance(e.value, tb.TxRejected)
    # Nothing above consumed the nonce: the next honest transaction goes through.
    assert c.balance(me).next_nonce == nonce
    w.refresh_nonce()
    w.wait_included(w.transfer(bob, consumer=1), timeout=60)


def test_a_numpy_job_round_trips_through_the_market(devnet: Devnet) -> None:
    w = devnet.funded()
    job = small_job().by_reference()
    local = job.run()
    events: Dict[str, List[Dict[str, Any]]] = {"jobAssigned": [], "epochSettled": []}
    ready = threading.Event()

    async def listen() -> None:
        async def one(name: str) -> None:
            # The first of each: this devnet runs no other job, and settles an epoch
            # every 50 blocks (10 s).
            async for ev in devnet.client.subscribe(name):
                events[name].append(ev)
                return

        tasks = [asyncio.create_task(one(n)) for n in events]
        await asyncio.sleep(0.5)  # both subscriptions are open
        ready.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=180)

    listener = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    listener.start()
    assert ready.wait(30), "the subscriptions did not open"

    sub = w.submit_job(job, max_price=2_000_000, redundancy=1, deadline_blocks=300)
    assert sub.model_sha256 == job.model_sha256
    res = w.wait_result(sub, timeout=180, final=True)
    assert res.final and res.status == "final"
    assert res.output_digest == local.output_digest
    assert list(res.outputs) == ["y"]
    assert np.array_equal(res.outputs["y"], local.outputs["y"])

    # Every view of the job agrees.
    view = devnet.client.get_job(res.task_id)
    assert view is not None and view.model_sha256 == job.model_sha256
    assert view.task_id == res.task_id and view.requester == str(w.address)
    assert any(j.task_id == res.task_id for j in devnet.client.list_jobs().jobs)
    assert devnet.client.aicf_list_jobs().total == devnet.client.list_jobs().total
    every = devnet.client.list_jobs()
    first = devnet.client.list_jobs(limit=1, offset=0).jobs
    assert [j.task_id for j in first] == [j.task_id for j in every.jobs[:1]]
    assert devnet.client.list_jobs(offset=every.total).jobs == []
    fund_view = devnet.client.aicf_get_job(res.task_id)
    assert fund_view is not None and fund_view.task_id == res.task_id
    providers = devnet.client.providers()
    assert any(p.address == res.provider for p in providers)

    # The provider's trace agrees with a replay here, op by op.
    checks = tb.replay(devnet.client, res.task_id)
    assert checks and all(c.agrees for c in checks), checks
    receipts = devnet.client.get_receipts(res.task_id)
    assert receipts[0].trace_root == local.trace_root

    listener.join(180)
    assert not listener.is_alive(), "no epochSettled or jobAssigned event"
    assert any(ev.get("task_id") == res.task_id for ev in events["jobAssigned"]), events
    assert events["epochSettled"], events


def test_unknown_ids_are_none_and_bad_ids_are_refused(devnet: Devnet) -> None:
    c = devnet.client
    assert c.get_job("00" * 32) is None
    assert c.get_result("00" * 32) is None
    assert c.get_blob("00" * 32) is None
    with pytest.raises(tb.errors.InvalidParams):
        c.get_job("not-hex")
    with pytest.raises(ValueError, match="no event"):
        c.subscribe("noSuchEvent")
