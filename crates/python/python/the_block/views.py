"""Typed views of the node's JSON-RPC answers (``docs/spec/rpc.md``).

Each class names the fields a client acts on, typed; ``raw`` keeps the whole answer
(fields a newer node adds included). Amounts are micro-tokens (1 token = 1,000,000),
hashes and ids lowercase hex.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = [
    "Account",
    "MarketInfo",
    "ChainInfo",
    "Header",
    "Block",
    "TxStatus",
    "BlobPresence",
    "BlobStatus",
    "Estimate",
    "JobView",
    "OutputInfo",
    "JobResult",
    "Receipt",
    "Provider",
    "Slash",
    "FundBalance",
    "Payout",
    "EpochPayouts",
    "JobSummary",
    "JobList",
    "GovernorStatus",
    "NetInfo",
    "VerifiedResult",
    "ReceiptCheck",
]

Json = Dict[str, Any]


def _int(v: Any) -> int:
    return int(v) if v is not None else 0


def _opt_int(v: Any) -> Optional[int]:
    return int(v) if v is not None else None


@dataclass(frozen=True)
class Account:
    """``balance``: an account at the tip."""

    address: str
    handle: Optional[str]
    nonce: int
    next_nonce: int
    consumer: int
    industrial: int
    stake: Optional[int]
    height: int
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "Account":
        return cls(
            address=v["address"],
            handle=v.get("handle"),
            nonce=_int(v["nonce"]),
            next_nonce=_int(v["next_nonce"]),
            consumer=_int(v["consumer"]),
            industrial=_int(v["industrial"]),
            stake=_opt_int(v.get("stake")),
            height=_int(v.get("height")),
            raw=v,
        )


@dataclass(frozen=True)
class MarketInfo:
    """``chain.info``'s ``market``: the governed market parameters at the tip."""

    epoch_blocks: int
    challenge_window_blocks: int
    min_stake_micro: int
    challenge_bond_micro: int
    blob_chunk_bytes: int
    blob_fee_per_kib_micro: int
    blob_retention_blocks: int
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "MarketInfo":
        return cls(
            epoch_blocks=_int(v["epoch_blocks"]),
            challenge_window_blocks=_int(v["challenge_window_blocks"]),
            min_stake_micro=_int(v["min_stake_micro"]),
            challenge_bond_micro=_int(v["challenge_bond_micro"]),
            blob_chunk_bytes=_int(v["blob_chunk_bytes"]),
            blob_fee_per_kib_micro=_int(v["blob_fee_per_kib_micro"]),
            blob_retention_blocks=_int(v["blob_retention_blocks"]),
            raw=v,
        )


@dataclass(frozen=True)
class ChainInfo:
    """``chain.info``: what signing and publishing need."""

    chain_id: int
    height: int
    tip: str
    genesis: str
    fee_floor_per_byte: int
    block_time_target_ms: int
    mining: bool
    market: MarketInfo
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "ChainInfo":
        return cls(
            chain_id=_int(v["chain_id"]),
            height=_int(v["height"]),
            tip=v["tip"],
            genesis=v["genesis"],
            fee_floor_per_byte=_int(v["fee_floor_per_byte"]),
            block_time_target_ms=_int(v.get("block_time_target_ms")),
            mining=bool(v.get("mining")),
            market=MarketInfo.from_json(v["market"]),
            raw=v,
        )


@dataclass(frozen=True)
class Header:
    """``chain.head`` and the ``newHeads`` subscription: a block header."""

    id: str
    height: int
    parent: str
    timestamp_ms: int
    difficulty: int
    beneficiary: str
    txs: int
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "Header":
        return cls(
            id=v["id"],
            height=_int(v["height"]),
            parent=v["parent"],
            timestamp_ms=_int(v["timestamp_ms"]),
            difficulty=_int(v["difficulty"]),
            beneficiary=v["beneficiary"],
            txs=_int(v.get("txs")),
            raw=v,
        )


@dataclass(frozen=True)
class Block:
    """``chain.getBlock``: the header and transaction summaries."""

    header: Header
    transactions: List[Json]

    @classmethod
    def from_json(cls, v: Json) -> "Block":
        return cls(header=Header.from_json(v), transactions=list(v.get("transactions", [])))


@dataclass(frozen=True)
class TxStatus:
    """``chain.getTx``: ``pending`` or ``included`` (with its block, height and index;
    a ``SubmitJob`` with its ``task_id``)."""

    status: str
    block: Optional[str]
    height: Optional[int]
    index: Optional[int]
    task_id: Optional[str]
    tx: Json

    @classmethod
    def from_json(cls, v: Json) -> "TxStatus":
        return cls(
            status=v["status"],
            block=v.get("block"),
            height=_opt_int(v.get("height")),
            index=_opt_int(v.get("index")),
            task_id=v.get("task_id"),
            tx=v.get("tx", {}),
        )


@dataclass(frozen=True)
class BlobPresence:
    """``compute.hasBlob``."""

    sha256: str
    stored: bool
    published: bool
    expires: Optional[int]

    @classmethod
    def from_json(cls, v: Json) -> "BlobPresence":
        return cls(
            sha256=v["sha256"],
            stored=bool(v["stored"]),
            published=bool(v["published"]),
            expires=_opt_int(v.get("expires")),
        )


@dataclass(frozen=True)
class BlobStatus:
    """``compute.blobStatus``: availability, and ``copy``, a poster's copy being
    assembled on chain (``received`` chunk indices), or ``None``."""

    sha256: str
    stored: bool
    published: bool
    expires: Optional[int]
    copy: Optional[Json]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "BlobStatus":
        return cls(
            sha256=v["sha256"],
            stored=bool(v["stored"]),
            published=bool(v["published"]),
            expires=_opt_int(v.get("expires")),
            copy=v.get("copy"),
            raw=v,
        )

    def received(self) -> List[int]:
        """Chunk indices of the poster's copy already on chain."""
        if not self.copy:
            return []
        return [int(i) for i in self.copy.get("received", [])]


@dataclass(frozen=True)
class Estimate:
    """``compute.estimate``: a dry run of submitting a job now."""

    capable: List[str]
    eligible_now: List[str]
    shortfall: int
    price_best_micro: int
    price_worst_micro: int
    escrow_micro: int
    expected_lease_height: Optional[int]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "Estimate":
        return cls(
            capable=list(v.get("capable", [])),
            eligible_now=list(v.get("eligible_now", [])),
            shortfall=_int(v.get("shortfall")),
            price_best_micro=_int(v.get("price_best_micro")),
            price_worst_micro=_int(v.get("price_worst_micro")),
            escrow_micro=_int(v.get("escrow_micro")),
            expected_lease_height=_opt_int(v.get("expected_lease_height")),
            raw=v,
        )


@dataclass(frozen=True)
class JobView:
    """``compute.getJob``: a job's record on chain."""

    task_id: str
    state: str
    requester: str
    blob_sha256: str
    blob_bytes: int
    model_sha256: Optional[str]
    model_bytes: Optional[int]
    max_price: int
    redundancy: int
    deadline: int
    submitted: int
    receipts: List[Json]
    failure: Optional[Json]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "JobView":
        return cls(
            task_id=v["task_id"],
            state=v["state"],
            requester=v["requester"],
            blob_sha256=v["blob_sha256"],
            blob_bytes=_int(v["blob_bytes"]),
            model_sha256=v.get("model_sha256"),
            model_bytes=_opt_int(v.get("model_bytes")),
            max_price=_int(v.get("max_price")),
            redundancy=_int(v.get("redundancy")),
            deadline=_int(v.get("deadline")),
            submitted=_int(v.get("submitted")),
            receipts=list(v.get("receipts", [])),
            failure=v.get("failure"),
            raw=v,
        )


@dataclass(frozen=True)
class OutputInfo:
    """One declared output of a result: name, dtype, shape and digest."""

    name: str
    dtype: str
    shape: List[int]
    digest: str


@dataclass(frozen=True)
class JobResult:
    """``compute.getResult``: a job's answer and how final it is. ``status`` is
    ``pending``, ``provisional``, ``challenged``, ``disputed``, ``final`` or
    ``failed``; ``hex`` holds the result object when it is at most 4 MiB."""

    task_id: str
    state: str
    status: str
    final: bool
    provider: Optional[str]
    output_digest: Optional[str]
    result_sha256: Optional[str]
    result_bytes: Optional[int]
    outputs: List[OutputInfo]
    failure: Optional[Json]
    hex: Optional[str] = field(repr=False)
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "JobResult":
        return cls(
            task_id=v["task_id"],
            state=v["state"],
            status=v["status"],
            final=bool(v.get("final")),
            provider=v.get("provider"),
            output_digest=v.get("output_digest"),
            result_sha256=v.get("result_sha256"),
            result_bytes=_opt_int(v.get("result_bytes")),
            outputs=[
                OutputInfo(o["name"], o["dtype"], [int(d) for d in o["shape"]], o["digest"])
                for o in (v.get("outputs") or [])
            ],
            failure=v.get("failure"),
            hex=v.get("hex"),
            raw=v,
        )


@dataclass(frozen=True)
class Receipt:
    """One receipt of ``compute.getReceipt``."""

    provider: str
    receipt_hash: str
    output_digest: str
    trace_root: str
    trace_sha256: str
    result_sha256: Optional[str]
    latency_blocks: int
    height: int
    payable: bool
    refuted: bool
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "Receipt":
        return cls(
            provider=v["provider"],
            receipt_hash=v["receipt_hash"],
            output_digest=v["output_digest"],
            trace_root=v["trace_root"],
            trace_sha256=v["trace_sha256"],
            result_sha256=v.get("result_sha256"),
            latency_blocks=_int(v.get("latency_blocks")),
            height=_int(v.get("height")),
            payable=bool(v.get("payable")),
            refuted=bool(v.get("refuted")),
            raw=v,
        )


@dataclass(frozen=True)
class Provider:
    """``aicf.listProviders`` / ``aicf.getProvider``: a registered provider."""

    address: str
    fabrics: List[str]
    stake: int
    unbonding: int
    active_leases: int
    receipts: int
    slashed: int
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "Provider":
        return cls(
            address=v["address"],
            fabrics=list(v.get("fabrics", [])),
            stake=_int(v.get("stake")),
            unbonding=_int(v.get("unbonding")),
            active_leases=_int(v.get("active_leases")),
            receipts=_int(v.get("receipts")),
            slashed=_int(v.get("slashed")),
            raw=v,
        )


@dataclass(frozen=True)
class Slash:
    """``aicf.slashes``: one slash."""

    provider: str
    reason: str
    task_id: Optional[str]
    amount: int
    height: int

    @classmethod
    def from_json(cls, v: Json) -> "Slash":
        return cls(
            provider=v["provider"],
            reason=v["reason"],
            task_id=v.get("task_id"),
            amount=_int(v.get("amount")),
            height=_int(v.get("height")),
        )


@dataclass(frozen=True)
class FundBalance:
    """``aicf.getBalance``: the AI Compute Fund and the market's totals."""

    consumer: int
    industrial: int
    stakes: int
    escrow: int
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "FundBalance":
        return cls(
            consumer=_int(v.get("consumer")),
            industrial=_int(v.get("industrial")),
            stakes=_int(v.get("stakes")),
            escrow=_int(v.get("escrow")),
            raw=v,
        )


@dataclass(frozen=True)
class Payout:
    """One payout of an epoch: the provider's, miner's and fund's shares."""

    task_id: str
    provider: str
    price_micro: int
    provider_micro: int
    miner_micro: int
    fund_micro: int

    @classmethod
    def from_json(cls, v: Json) -> "Payout":
        return cls(
            task_id=v["task_id"],
            provider=v["provider"],
            price_micro=_int(v.get("price_micro")),
            provider_micro=_int(v.get("provider_micro")),
            miner_micro=_int(v.get("miner_micro")),
            fund_micro=_int(v.get("fund_micro")),
        )


@dataclass(frozen=True)
class EpochPayouts:
    """``aicf.payouts``: an epoch's summary and payouts."""

    epoch: int
    summary: Optional[Json]
    payouts: List[Payout]

    @classmethod
    def from_json(cls, v: Json) -> "EpochPayouts":
        return cls(
            epoch=_int(v.get("epoch")),
            summary=v.get("summary"),
            payouts=[Payout.from_json(p) for p in v.get("payouts", [])],
        )


@dataclass(frozen=True)
class JobSummary:
    """One row of ``compute.listJobs``."""

    task_id: str
    state: str
    requester: str
    submitted: int

    @classmethod
    def from_json(cls, v: Json) -> "JobSummary":
        return cls(
            task_id=v["task_id"],
            state=v["state"],
            requester=v["requester"],
            submitted=_int(v.get("submitted")),
        )


@dataclass(frozen=True)
class JobList:
    """``compute.listJobs``: newest first."""

    total: int
    jobs: List[JobSummary]

    @classmethod
    def from_json(cls, v: Json) -> "JobList":
        return cls(total=_int(v.get("total")), jobs=[JobSummary.from_json(j) for j in v["jobs"]])


@dataclass(frozen=True)
class GovernorStatus:
    """``governor.status``: parameters changed from genesis and proposals by stage."""

    differs_from_genesis: bool
    voting: List[Json]
    scheduled: List[Json]
    shadowing: List[Json]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "GovernorStatus":
        return cls(
            differs_from_genesis=bool(v.get("differs_from_genesis")),
            voting=list(v.get("voting", [])),
            scheduled=list(v.get("scheduled", [])),
            shadowing=list(v.get("shadowing", [])),
            raw=v,
        )


@dataclass(frozen=True)
class NetInfo:
    """``net.info``: the peer-to-peer network."""

    enabled: bool
    peer_id: Optional[str]
    peers: List[Json]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Json) -> "NetInfo":
        return cls(
            enabled=bool(v.get("enabled")),
            peer_id=v.get("peer_id"),
            peers=list(v.get("peers", [])),
            raw=v,
        )


@dataclass(frozen=True)
class VerifiedResult:
    """A job's result, checked here: every output's digest recomputed, their
    output digest equal to the receipt's, the object's SHA-256 the one on chain."""

    task_id: str
    status: str
    final: bool
    provider: Optional[str]
    output_digest: str
    result_sha256: str
    outputs: Dict[str, Any]


@dataclass(frozen=True)
class ReceiptCheck:
    """One receipt checked by replaying its job here: ``agrees``, or the first op
    (``diverges_at``) where the provider's trace differs; ``unchecked`` says why a
    trace could not be checked."""

    provider: str
    agrees: bool
    diverges_at: Optional[int] = None
    unchecked: Optional[str] = None
