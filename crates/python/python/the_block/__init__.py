"""The Block's Python SDK.

- Keys and addresses: :class:`SecretKey` (generate, seed, PEM), :class:`Address`,
  :func:`generate_keypair`.
- Transactions: :class:`TxPayload` (and the seeds' :func:`RawTxPayload`),
  :func:`canonical_payload`, :func:`decode_payload`, :func:`sign_tx`,
  :func:`verify_signed_tx`, :class:`SignedTx`.
- Jobs: :class:`ProgramBuilder` over numpy arrays, :func:`import_onnx`,
  :func:`import_bert`, :func:`text_job`, :class:`Job` (``run()`` on the CPU reference
  fabric: outputs as numpy, the output digest, the trace root).
- The node: :class:`Client` (every JSON-RPC method, typed; WebSocket subscriptions as
  async iterators) and :class:`Wallet` (sign, send, publish, submit, wait for the
  verified result).
- Errors: ``the_block.errors`` (one class per refusal code, ``ERR_*``).

See ``docs/python.md``.
"""

from __future__ import annotations

from typing import Union

from . import errors, views
from ._native import (
    DEVNET_CHAIN_ID,
    RUNTIME_VERSION,
    Address,
    Job,
    Program,
    ProgramBuilder,
    ResultObject,
    Run,
    SecretKey,
    SignedTx,
    Trace,
    TxPayload,
    Value,
    __version__,
    blob_fee_min,
    canonical_payload,
    decode_payload,
    decode_result,
    decode_trace,
    generate_keypair,
    import_bert,
    import_onnx,
    is_valid_address,
    model_cache_usage,
    model_rent_micro,
    rejection_reasons,
    sign_tx,
    text_job,
    trace_root,
    verify_signed_tx,
)
from .client import EVENTS, Client, Submitted, Wallet, replay, verify_result
from .errors import *  # noqa: F401,F403  (ERR_* and the refusal classes)
from .errors import (
    DecodeError,
    JobError,
    JobFailed,
    KeyFormatError,
    ModelError,
    RpcError,
    TheBlockError,
    TxRejected,
    WaitTimeout,
)


def RawTxPayload(
    *,
    from_: Union[Address, str],
    to: Union[Address, str],
    amount_consumer: int = 0,
    amount_industrial: int = 0,
    fee: int = 0,
    fee_selector: int = 0,
    nonce: int = 0,
    memo: bytes = b"",
) -> TxPayload:
    """The seeds' name for a transfer's payload (:meth:`TxPayload.transfer`)."""
    return TxPayload.transfer(
        from_=from_,
        to=to,
        amount_consumer=amount_consumer,
        amount_industrial=amount_industrial,
        fee=fee,
        fee_selector=fee_selector,
        nonce=nonce,
        memo=memo,
    )


__all__ = [
    "DEVNET_CHAIN_ID",
    "RUNTIME_VERSION",
    "EVENTS",
    "Address",
    "Client",
    "DecodeError",
    "Job",
    "JobError",
    "JobFailed",
    "KeyFormatError",
    "ModelError",
    "Program",
    "ProgramBuilder",
    "RawTxPayload",
    "ResultObject",
    "RpcError",
    "Run",
    "SecretKey",
    "SignedTx",
    "Submitted",
    "TheBlockError",
    "Trace",
    "TxPayload",
    "TxRejected",
    "Value",
    "WaitTimeout",
    "Wallet",
    "__version__",
    "blob_fee_min",
    "canonical_payload",
    "decode_payload",
    "decode_result",
    "decode_trace",
    "errors",
    "generate_keypair",
    "import_bert",
    "import_onnx",
    "is_valid_address",
    "model_cache_usage",
    "model_rent_micro",
    "rejection_reasons",
    "replay",
    "sign_tx",
    "text_job",
    "trace_root",
    "views",
    "verify_result",
    "verify_signed_tx",
]
