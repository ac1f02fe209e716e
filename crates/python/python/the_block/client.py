"""The JSON-RPC client (HTTP, and WebSocket subscriptions) and the requester's
wallet: sign and send transactions, publish models and blobs, submit jobs, wait for
their verified results.

Every documented method (``docs/spec/rpc.md``) has a method here returning a typed
view (``the_block.views``). Errors are exceptions of ``the_block.errors``: a refused
transaction raises the class of its refusal code (``ErrNonceGap``, …).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, AsyncIterator, Dict, List, Optional, Union

from . import _native
from ._native import Address, Job, SecretKey, SignedTx, TxPayload
from .errors import (
    InvalidParams,
    JobFailed,
    NotFound,
    RpcError,
    RpcTransportError,
    TheBlockError,
    TxRejected,
    Unauthorized,
    Unavailable,
    WaitTimeout,
    refusal_class,
)
from .views import (
    Account,
    BlobPresence,
    BlobStatus,
    Block,
    ChainInfo,
    EpochPayouts,
    Estimate,
    FundBalance,
    GovernorStatus,
    Header,
    JobList,
    JobResult,
    JobView,
    NetInfo,
    Provider,
    Receipt,
    ReceiptCheck,
    Slash,
    TxStatus,
    VerifiedResult,
)

__all__ = ["Client", "Wallet", "Submitted", "EVENTS", "verify_result", "replay"]

#: The node's event subscriptions (``subscribe_<event>``), from its interface crate.
EVENTS = tuple(_native.EVENTS)

#: The largest answer the client reads (a 16 MiB blob range in hex, and its JSON).
RESPONSE_BYTES_MAX = 40 * 1024 * 1024
#: The largest blob range one ``compute.getBlob`` call asks for.
BLOB_RANGE_BYTES = 16 * 1024 * 1024
#: The largest blob sent whole with ``compute.uploadBlob`` (the node's request cap).
UPLOAD_BYTES_MAX = 3 * 1024 * 1024
#: Chunk transactions of one publication in flight at once, and their bytes.
IN_FLIGHT_TXS_MAX = 32
IN_FLIGHT_BYTES_MAX = 6 * 1024 * 1024
#: How often waits poll the node, seconds.
POLL_SECONDS = 0.2

AddressLike = Union[Address, str]


def _hex_id(value: str, what: str) -> str:
    v = value.lower().removeprefix("0x")
    if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise InvalidParams("client", -32602, f"{what} {value!r} is not 64 hex digits")
    return v


def _error(method: str, e: Dict[str, Any]) -> RpcError:
    code = int(e.get("code", 0))
    message = str(e.get("message", ""))
    data = e.get("data")
    if code == _native.RPC_ERR_TX_REJECTED:
        refusal = data.get("code") if isinstance(data, dict) else None
        cls = refusal_class(int(refusal)) if refusal is not None else TxRejected
        return cls(method, code, message, data)
    if code == _native.RPC_ERR_NOT_FOUND:
        return NotFound(method, code, message, data)
    if code == _native.RPC_ERR_UNAVAILABLE:
        return Unavailable(method, code, message, data)
    if code == _native.RPC_ERR_UNAUTHORIZED:
        return Unauthorized(method, code, message, data)
    if code == _native.RPC_ERR_PARAMS:
        return InvalidParams(method, code, message, data)
    return RpcError(method, code, message, data)


class Client:
    """A node's JSON-RPC endpoint. ``url`` is its HTTP address
    (``http://127.0.0.1:3030``); subscriptions use the same port over WebSocket.
    ``admin_token`` (the content of the node's admin token file) is sent as
    ``Authorization: Bearer`` for the admin methods."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:3030",
        *,
        admin_token: Optional[str] = None,
        timeout: float = 30.0,
    ) -> None:
        if not (url.startswith("http://") or url.startswith("https://")):
            raise ValueError(f"the RPC URL must start with http:// or https://: {url!r}")
        self.url = url.rstrip("/")
        self.admin_token = admin_token.strip() if admin_token else None
        self.timeout = timeout
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- the wire ---------------------------------------------------------------

    def call(self, method: str, *params: Any) -> Any:
        """Calls ``method`` with positional ``params``; returns the JSON result."""
        rid = next(self._ids)
        body = json.dumps(
            {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.admin_token:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read(RESPONSE_BYTES_MAX + 1)
        except urllib.error.HTTPError as e:
            text = e.read(4096).decode("utf-8", "replace")
            try:
                answer = json.loads(text)
            except ValueError:
                raise RpcTransportError(
                    f"{method}: {self.url} answered HTTP {e.code}: {text[:200]}"
                ) from None
            if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
                raise _error(method, answer["error"]) from None
            raise RpcTransportError(f"{method}: {self.url} answered HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            raise RpcTransportError(f"{method}: cannot reach {self.url}: {e}") from None
        if len(raw) > RESPONSE_BYTES_MAX:
            raise RpcTransportError(
                f"{method}: the answer is above {RESPONSE_BYTES_MAX} bytes"
            )
        try:
            answer = json.loads(raw)
        except ValueError:
            raise RpcTransportError(f"{method}: {self.url} sent a body that is not JSON") from None
        if not isinstance(answer, dict) or answer.get("id") != rid:
            raise RpcTransportError(f"{method}: {self.url} sent a reply that is not to this call")
        if "error" in answer:
            err = answer["error"]
            raise _error(method, err if isinstance(err, dict) else {"message": str(err)})
        return answer.get("result")

    def _find(self, method: str, *params: Any) -> Any:
        """``call``, with ``None`` for -32011 (not found)."""
        try:
            return self.call(method, *params)
        except NotFound:
            return None

    # -- accounts and transactions ---------------------------------------------

    def balance(self, address: AddressLike) -> Account:
        """An account (an address or an @handle) at the tip."""
        return Account.from_json(self.call("balance", str(address)))

    def submit_tx(self, tx: SignedTx) -> str:
        """Sends a signed transaction; returns its id. A refusal raises its class."""
        return str(self.call("submit_tx", tx.hex())["id"])

    def register_handle(self, tx: SignedTx) -> str:
        """Sends a signed ``RegisterHandle``; returns its id."""
        return str(self.call("register_handle", tx.hex())["id"])

    def resolve_handle(self, handle: str) -> Optional[Address]:
        """The address holding ``handle``, or ``None`` when it is unclaimed."""
        a = self.call("resolve_handle", handle).get("address")
        return Address(a) if a else None

    def metrics(self) -> str:
        """The node's Prometheus exposition text."""
        return str(self.call("metrics")["text"])

    # -- admin (needs admin_token) ----------------------------------------------

    def start_mining(self, miner: Optional[AddressLike] = None) -> bool:
        params = [str(miner)] if miner is not None else []
        return bool(self.call("start_mining", *params)["mining"])

    def stop_mining(self) -> bool:
        return bool(self.call("stop_mining")["mining"])

    def shutdown(self) -> None:
        self.call("admin.shutdown")

    def add_peer(self, multiaddr: str) -> str:
        return str(self.call("admin.addPeer", multiaddr)["dialing"])

    def audit_supply(self) -> Dict[str, Any]:
        """The supply audit at the tip (``admin.auditSupply``): ``holds``, and the
        minted and accounted-for sums as decimal strings of micro-tokens."""
        r: Dict[str, Any] = self.call("admin.auditSupply")
        return r

    # -- chain -------------------------------------------------------------------

    def chain_info(self) -> ChainInfo:
        return ChainInfo.from_json(self.call("chain.info"))

    def head(self) -> Header:
        return Header.from_json(self.call("chain.head"))

    def get_block(self, block: Union[int, str]) -> Optional[Block]:
        v = self._find("chain.getBlock", block)
        return Block.from_json(v) if v is not None else None

    def get_tx(self, tx_id: str) -> Optional[TxStatus]:
        v = self._find("chain.getTx", _hex_id(tx_id, "transaction id"))
        return TxStatus.from_json(v) if v is not None else None

    # -- compute -----------------------------------------------------------------

    def upload_blob(self, data: bytes) -> str:
        """Stores ``data`` in the node's blob store (not on chain); returns its SHA-256."""
        return str(self.call("compute.uploadBlob", data.hex())["sha256"])

    def get_blob(
        self, sha256: str, offset: Optional[int] = None, length: Optional[int] = None
    ) -> Optional[bytes]:
        """A blob (or ``length`` bytes of it from ``offset``), or ``None``. A whole blob
        is checked against its SHA-256."""
        sha = _hex_id(sha256, "SHA-256")
        params: List[Any] = [sha] if offset is None else [sha, offset, length]
        v = self._find("compute.getBlob", *params)
        if v is None:
            return None
        data = bytes.fromhex(v["hex"])
        if offset is None and hashlib.sha256(data).hexdigest() != sha:
            raise RpcTransportError(f"the node sent a blob whose SHA-256 is not {sha}")
        return data

    def fetch_object(self, sha256: str, size: int) -> bytes:
        """An object of ``size`` bytes read in ranges, checked against its SHA-256."""
        sha = _hex_id(sha256, "SHA-256")
        parts = []
        for off in range(0, size, BLOB_RANGE_BYTES):
            n = min(BLOB_RANGE_BYTES, size - off)
            part = self.get_blob(sha, off, n)
            if part is None or len(part) != n:
                raise NotFound("compute.getBlob", -32011, f"object {sha} is not available")
            parts.append(part)
        data = b"".join(parts)
        if hashlib.sha256(data).hexdigest() != sha:
            raise RpcTransportError(f"the node sent an object whose SHA-256 is not {sha}")
        return data

    def has_blob(self, sha256: str) -> BlobPresence:
        return BlobPresence.from_json(self.call("compute.hasBlob", _hex_id(sha256, "SHA-256")))

    def blob_status(self, sha256: str, poster: Optional[AddressLike] = None) -> BlobStatus:
        params: List[Any] = [_hex_id(sha256, "SHA-256")]
        if poster is not None:
            params.append(str(poster))
        return BlobStatus.from_json(self.call("compute.blobStatus", *params))

    def estimate(self, **job: Any) -> Estimate:
        """A dry run of submitting a job (``flops``, ``max_price``, ``redundancy``, …)."""
        return Estimate.from_json(self.call("compute.estimate", job))

    def submit_job(self, tx: SignedTx) -> str:
        """Sends a signed ``SubmitJob``; returns its transaction id."""
        return str(self.call("compute.submitJob", tx.hex())["id"])

    def get_job(self, task: str) -> Optional[JobView]:
        """A job by task id or by its ``SubmitJob`` transaction's id."""
        v = self._find("compute.getJob", _hex_id(task, "task id"))
        return JobView.from_json(v) if v is not None else None

    def get_result(self, task: str) -> Optional[JobResult]:
        v = self._find("compute.getResult", _hex_id(task, "task id"))
        return JobResult.from_json(v) if v is not None else None

    def list_jobs(
        self, state: Optional[str] = None, limit: Optional[int] = None, offset: Optional[int] = None
    ) -> JobList:
        """``compute.listJobs``: newest first, ``limit`` of them after the ``offset``
        newest (a page past the end is empty; ``total`` counts them all)."""
        return JobList.from_json(self.call("compute.listJobs", state, limit, offset))

    def get_receipts(self, task: str) -> List[Receipt]:
        v = self._find("compute.getReceipt", _hex_id(task, "task id"))
        return [Receipt.from_json(r) for r in v["receipts"]] if v is not None else []

    def stats(self) -> Dict[str, Any]:
        return dict(self.call("compute.stats"))

    # -- the AI Compute Fund -----------------------------------------------------

    def providers(self) -> List[Provider]:
        return [Provider.from_json(p) for p in self.call("aicf.listProviders")]

    def provider(self, address: AddressLike) -> Optional[Provider]:
        v = self._find("aicf.getProvider", str(address))
        return Provider.from_json(v) if v is not None else None

    def aicf_list_jobs(
        self, state: Optional[str] = None, limit: Optional[int] = None, offset: Optional[int] = None
    ) -> JobList:
        """``aicf.listJobs``: the same list as :meth:`list_jobs`, under the fund's name."""
        return JobList.from_json(self.call("aicf.listJobs", state, limit, offset))

    def aicf_get_job(self, task: str) -> Optional[JobView]:
        """``aicf.getJob``: as :meth:`get_job`."""
        v = self._find("aicf.getJob", _hex_id(task, "task id"))
        return JobView.from_json(v) if v is not None else None

    def fund_balance(self) -> FundBalance:
        return FundBalance.from_json(self.call("aicf.getBalance"))

    def payouts(self, epoch: int) -> EpochPayouts:
        return EpochPayouts.from_json(self.call("aicf.payouts", epoch))

    def slashes(self, provider: Optional[AddressLike] = None) -> List[Slash]:
        params = [str(provider)] if provider is not None else []
        return [Slash.from_json(s) for s in self.call("aicf.slashes", *params)]

    # -- governance and network --------------------------------------------------

    def governor_status(self) -> GovernorStatus:
        return GovernorStatus.from_json(self.call("governor.status"))

    def governor_intents(self) -> Dict[str, Any]:
        return dict(self.call("governor.intents"))

    def net_info(self) -> NetInfo:
        return NetInfo.from_json(self.call("net.info"))

    # -- subscriptions -------------------------------------------------------------

    def subscribe(self, event: str) -> AsyncIterator[Dict[str, Any]]:
        """The node's ``event`` notifications as they arrive, over one WebSocket
        (``async for ev in client.subscribe("jobAssigned")``; the events are
        :data:`EVENTS`). Leaving the loop unsubscribes and closes the connection."""
        if event not in EVENTS:
            raise ValueError(f"no event {event!r}; the events are {', '.join(EVENTS)}")
        return self._subscribe(event)

    async def _subscribe(self, event: str) -> AsyncIterator[Dict[str, Any]]:
        from websockets.asyncio.client import connect

        ws_url = "ws" + self.url[len("http") :]
        headers = {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else None
        async with connect(
            ws_url, additional_headers=headers, max_size=RESPONSE_BYTES_MAX
        ) as ws:
            await ws.send(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": f"subscribe_{event}", "params": []})
            )
            sub: Any = None
            while sub is None:
                msg = json.loads(await asyncio.wait_for(ws.recv(), self.timeout))
                if msg.get("id") == 1:
                    if "error" in msg:
                        raise _error(f"subscribe_{event}", msg["error"])
                    sub = msg["result"]
            try:
                async for raw in ws:
                    msg = json.loads(raw)
                    params = msg.get("params")
                    if (
                        msg.get("method") == event
                        and isinstance(params, dict)
                        and params.get("subscription") == sub
                    ):
                        yield params["result"]
            finally:
                try:
                    await ws.send(
                        json.dumps(
                            {
                                "jsonrpc": "2.0",
                                "id": 2,
                                "method": f"unsubscribe_{event}",
                                "params": [sub],
                            }
                        )
                    )
                except Exception:  # the connection may be gone already
                    pass


@dataclass(frozen=True)
class Submitted:
    """A submitted job: the ``SubmitJob``'s transaction id (which ``get_job`` and
    ``get_result`` accept until the task id is known), the blob and the model."""

    tx_id: str
    blob_sha256: str
    model_sha256: Optional[str]
    deadline: int
    fee: int


class Wallet:
    """One key signing on one node: nonces from the account's pending next nonce, fees
    raised to the node's floor, refusals raised as their exception class."""

    def __init__(self, client: Client, key: SecretKey) -> None:
        self.client = client
        self.key = key
        self.chain = client.chain_info()
        self._nonce = client.balance(key.address).next_nonce

    @property
    def address(self) -> Address:
        return self.key.address

    def refresh_nonce(self) -> int:
        """Takes the account's pending next nonce from the node again."""
        self._nonce = self.client.balance(self.key.address).next_nonce
        return self._nonce

    def sign(self, payload: TxPayload) -> SignedTx:
        """Signs ``payload`` with the next nonce (the sender set to this key)."""
        tx = _native.sign_tx(
            self.key,
            payload.with_nonce(self._nonce),
            self.chain.chain_id,
            self.chain.fee_floor_per_byte,
        )
        self._nonce += 1
        return tx

    def send(self, payload: TxPayload, *, via: str = "submit_tx") -> str:
        """Signs and sends ``payload`` (``via`` ``submit_tx``, ``compute.submitJob`` or
        ``register_handle``); returns the transaction id. On a refusal the nonce is
        not consumed."""
        tx = self.sign(payload)
        try:
            got = str(self.client.call(via, tx.hex())["id"])
        except TheBlockError:
            self._nonce -= 1
            raise
        if got != tx.id:
            raise RpcTransportError(f"the node admitted the transaction as {got}, not {tx.id}")
        return got

    def transfer(
        self,
        to: AddressLike,
        *,
        consumer: int = 0,
        industrial: int = 0,
        fee_selector: int = 0,
        memo: bytes = b"",
    ) -> str:
        """Sends micro-tokens to ``to``; returns the transaction id."""
        p = TxPayload.transfer(
            from_=self.address,
            to=to,
            amount_consumer=consumer,
            amount_industrial=industrial,
            fee_selector=fee_selector,
            memo=memo,
        )
        return self.send(p)

    def wait_included(self, tx_id: str, timeout: float = 60.0) -> TxStatus:
        """Waits until the transaction is in a block."""
        t0 = time.monotonic()
        while True:
            st = self.client.get_tx(tx_id)
            if st is not None and st.status == "included":
                return st
            if time.monotonic() - t0 > timeout:
                raise WaitTimeout(f"transaction {tx_id} not included after {timeout:.0f} s")
            time.sleep(POLL_SECONDS)

    def publish(self, data: bytes, *, timeout: float = 300.0, fee_selector: int = 1) -> str:
        """Publishes ``data`` on chain in the market's chunks (skipping those of this
        key's copy already there) and waits until it is available; returns its SHA-256.
        Nothing is sent for an object already available."""
        sha = hashlib.sha256(data).hexdigest()
        st = self.client.blob_status(sha, self.address)
        if st.published:
            return sha
        m = self.chain.market
        chunk = m.blob_chunk_bytes
        chunks = (len(data) + chunk - 1) // chunk
        have = set(st.received())
        todo = [i for i in range(chunks) if i not in have]
        t0 = time.monotonic()
        in_flight: List[int] = []  # nonces
        while todo or in_flight:
            while (
                todo
                and len(in_flight) < IN_FLIGHT_TXS_MAX
                and (not in_flight or (len(in_flight) + 1) * chunk <= IN_FLIGHT_BYTES_MAX)
            ):
                p = TxPayload.publish_chunk(
                    from_=self.address,
                    object=data,
                    index=todo[0],
                    chunk_bytes=chunk,
                    blob_fee_per_kib_micro=m.blob_fee_per_kib_micro,
                    fee_selector=fee_selector,
                )
                nonce = self._nonce
                try:
                    self.send(p)
                except TxRejected as e:
                    if e.reason in ("pool_full", "sender_full"):
                        break
                    raise
                in_flight.append(nonce)
                todo.pop(0)
            if time.monotonic() - t0 > timeout:
                raise WaitTimeout(f"publishing {sha}: not done after {timeout:.0f} s")
            time.sleep(POLL_SECONDS)
            confirmed = self.client.balance(self.address).nonce
            in_flight = [n for n in in_flight if n >= confirmed]
        while True:
            if self.client.blob_status(sha, self.address).published:
                return sha
            if time.monotonic() - t0 > timeout:
                raise WaitTimeout(
                    f"every chunk of {sha} was included, but the object is not available"
                )
            time.sleep(POLL_SECONDS)

    def submit_job(
        self,
        job: Job,
        *,
        max_price: int,
        redundancy: int = 1,
        deadline_blocks: int = 200,
        lane: int = 0,
        publish_timeout: float = 300.0,
    ) -> Submitted:
        """Publishes the job's model (a job by reference) and blob, then submits it at
        ``max_price`` micro-tokens per replica; the fee pays the model's rent until the
        deadline. Returns once the node admitted the ``SubmitJob``."""
        model_sha: Optional[str] = None
        if job.is_by_reference:
            model_sha = self.publish(job.model_bytes(), timeout=publish_timeout)
        blob = job.encode()
        blob_sha = hashlib.sha256(blob).hexdigest()
        if len(blob) <= UPLOAD_BYTES_MAX and not self.client.has_blob(blob_sha).stored:
            self.client.upload_blob(blob)
        self.publish(blob, timeout=publish_timeout)
        deadline = self.client.head().height + deadline_blocks
        fee = 0
        if model_sha is not None:
            expires = self.client.has_blob(model_sha).expires
            if expires is None:
                raise JobFailed(f"the model {model_sha} is no longer published on chain")
            m = self.chain.market
            fee = _native.model_rent_micro(
                len(job.model_bytes()),
                expires,
                deadline,
                m.blob_fee_per_kib_micro,
                m.blob_retention_blocks,
            )
        p = TxPayload.submit_job(
            from_=self.address,
            blob=blob,
            job=job,
            max_price=max_price,
            redundancy=redundancy,
            deadline=deadline,
            lane=lane,
            fee=fee,
        )
        tx_id = self.send(p, via="compute.submitJob")
        return Submitted(tx_id, blob_sha, model_sha, deadline, fee)

    def wait_result(
        self, task: Union[str, Submitted], *, timeout: float = 120.0, final: bool = True
    ) -> VerifiedResult:
        """Waits for a job's result (``final``: until its challenge window closed
        unrefuted; else the first accepted receipt's), fetches it and checks it here:
        each output's digest recomputed, their output digest the receipt's, the
        object's SHA-256 the one on chain. A failed job raises ``JobFailed``."""
        task_id = task.tx_id if isinstance(task, Submitted) else task
        t0 = time.monotonic()
        while True:
            r = self.client.get_result(task_id)
            if r is not None:
                if r.status == "failed":
                    raise JobFailed(f"job {r.task_id} failed: {r.failure}", r.failure)
                if r.status == "final" or (not final and r.status == "provisional"):
                    return verify_result(self.client, r)
            if time.monotonic() - t0 > timeout:
                status = r.status if r is not None else "not on chain"
                raise WaitTimeout(
                    f"job {task_id}: no {'final' if final else 'provisional'} result after "
                    f"{timeout:.0f} s (status {status})"
                )
            time.sleep(POLL_SECONDS)


def verify_result(client: Client, r: JobResult) -> VerifiedResult:
    """The result object of ``r``, fetched and checked against its receipt."""
    if not r.result_sha256 or r.result_bytes is None or not r.output_digest:
        raise JobFailed(f"job {r.task_id} has no result yet (status {r.status})")
    data = bytes.fromhex(r.hex) if r.hex else client.fetch_object(r.result_sha256, r.result_bytes)
    obj = _native.decode_result(data)
    if obj.sha256 != r.result_sha256:
        raise JobFailed(f"job {r.task_id}: the result's SHA-256 is not the one on chain")
    if obj.output_digest != r.output_digest:
        raise JobFailed(
            f"job {r.task_id}: the result's outputs digest to {obj.output_digest}, "
            f"the receipt commits to {r.output_digest}"
        )
    return VerifiedResult(
        task_id=r.task_id,
        status=r.status,
        final=r.final,
        provider=r.provider,
        output_digest=obj.output_digest,
        result_sha256=obj.sha256,
        outputs=dict(obj.outputs),
    )


def replay(client: Client, task: str, *, threads: Optional[int] = None) -> List[ReceiptCheck]:
    """Replays a job here and checks every receipt's published trace against it: the
    first op where a provider's trace differs, or agreement."""
    j = client.get_job(task)
    if j is None:
        raise NotFound("compute.getJob", -32011, f"no job {task}")
    blob = client.get_blob(j.blob_sha256)
    if blob is None:
        raise NotFound("compute.getBlob", -32011, f"the job's blob {j.blob_sha256} is gone")
    model = (
        client.fetch_object(j.model_sha256, j.model_bytes or 0) if j.model_sha256 else None
    )
    ours = Job.decode(blob, model).run(threads)
    leaves = ours.leaves
    out: List[ReceiptCheck] = []
    for r in client.get_receipts(j.task_id):
        trace_bytes = client.get_blob(r.trace_sha256)
        if trace_bytes is None:
            out.append(ReceiptCheck(r.provider, False, unchecked="its trace is not available"))
            continue
        try:
            t = _native.decode_trace(trace_bytes)
        except TheBlockError as e:
            out.append(ReceiptCheck(r.provider, False, unchecked=f"its trace is malformed: {e}"))
            continue
        if t.root != r.trace_root or t.task_id != j.task_id:
            out.append(
                ReceiptCheck(r.provider, False, unchecked="its trace is not this receipt's")
            )
            continue
        d = t.first_divergence(leaves)
        out.append(ReceiptCheck(r.provider, d is None, diverges_at=d))
    return out
