"""Errors: the native module's hierarchy, the RPC's, and one exception class per
mempool refusal code (``docs/spec/errors.md``).

Every refusal the node gives a transaction (JSON-RPC error -32010 with ``data`` =
``{code, reason}``) is raised as the class of its code, a subclass of
:class:`TxRejected`, with ``.code`` and ``.reason``; the same codes are the
``ERR_*`` constants. The table below is checked against the node's own
(``tests/test_errors.py``): a refusal added to the chain without a class here fails
the suite.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type

from ._native import DecodeError, JobError, KeyFormatError, ModelError, TheBlockError

__all__ = [
    "TheBlockError",
    "DecodeError",
    "KeyFormatError",
    "JobError",
    "ModelError",
    "RpcError",
    "RpcTransportError",
    "NotFound",
    "Unauthorized",
    "Unavailable",
    "InvalidParams",
    "TxRejected",
    "JobFailed",
    "WaitTimeout",
    "REFUSALS",
    "refusal_class",
    "ErrBadSignature",
    "ErrInvalidSelector",
    "ErrMemoTooLarge",
    "ErrTxTooLarge",
    "ErrInvalidHandle",
    "ErrFeeBelowFloor",
    "ErrNonceReused",
    "ErrNonceGap",
    "ErrDuplicateNonce",
    "ErrDuplicateTx",
    "ErrInsufficientBalance",
    "ErrBalanceOverflow",
    "ErrHandleTaken",
    "ErrAddressHasHandle",
    "ErrSenderFull",
    "ErrPoolFull",
    "ErrExpired",
    "ErrInvalidMarketTx",
    "ErrNotAProvider",
    "ErrStakeRefused",
    "ErrJobRefused",
    "ErrModelUnavailable",
    "ErrUnknownTask",
    "ErrReceiptMismatch",
    "ErrNoLease",
    "ErrWrongStage",
    "ErrDuplicate",
    "ErrObjectUnpublished",
    "ErrTraceMismatch",
    "ErrChunkRefused",
    "ErrChallengeRefused",
    "ErrDisputeRefused",
    "ErrReportRefused",
    "ErrInvalidProposal",
    "ErrNotEligible",
    "ErrProposalSlotsFull",
    "ErrUnknownProposal",
    "ErrProposalState",
    "ERR_BAD_SIGNATURE",
    "ERR_INVALID_SELECTOR",
    "ERR_MEMO_TOO_LARGE",
    "ERR_TX_TOO_LARGE",
    "ERR_INVALID_HANDLE",
    "ERR_FEE_BELOW_FLOOR",
    "ERR_NONCE_REUSED",
    "ERR_NONCE_GAP",
    "ERR_DUPLICATE_NONCE",
    "ERR_DUPLICATE_TX",
    "ERR_INSUFFICIENT_BALANCE",
    "ERR_BALANCE_OVERFLOW",
    "ERR_HANDLE_TAKEN",
    "ERR_ADDRESS_HAS_HANDLE",
    "ERR_SENDER_FULL",
    "ERR_POOL_FULL",
    "ERR_EXPIRED",
    "ERR_INVALID_MARKET_TX",
    "ERR_NOT_A_PROVIDER",
    "ERR_STAKE_REFUSED",
    "ERR_JOB_REFUSED",
    "ERR_MODEL_UNAVAILABLE",
    "ERR_UNKNOWN_TASK",
    "ERR_RECEIPT_MISMATCH",
    "ERR_NO_LEASE",
    "ERR_WRONG_STAGE",
    "ERR_DUPLICATE",
    "ERR_OBJECT_UNPUBLISHED",
    "ERR_TRACE_MISMATCH",
    "ERR_CHUNK_REFUSED",
    "ERR_CHALLENGE_REFUSED",
    "ERR_DISPUTE_REFUSED",
    "ERR_REPORT_REFUSED",
    "ERR_INVALID_PROPOSAL",
    "ERR_NOT_ELIGIBLE",
    "ERR_PROPOSAL_SLOTS_FULL",
    "ERR_UNKNOWN_PROPOSAL",
    "ERR_PROPOSAL_STATE",
]


class RpcError(TheBlockError):
    """A JSON-RPC error answer: ``.code`` (the JSON-RPC code), ``.message`` and
    ``.data`` as the node sent them, and ``.method``."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (JSON-RPC {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class RpcTransportError(TheBlockError):
    """The node could not be reached, or answered with something that is not
    JSON-RPC (an HTTP error status, a body that is not JSON, a reply to another id)."""


class NotFound(RpcError):
    """-32011: no such block, transaction, job or blob."""


class Unauthorized(RpcError):
    """-32013: an admin method without the node's admin token."""


class Unavailable(RpcError):
    """-32012: the node cannot answer now (syncing, shutting down)."""


class InvalidParams(RpcError):
    """-32602: the parameters were refused (a malformed hash, an unknown field)."""


class TxRejected(RpcError):
    """-32010: the mempool refused the transaction. ``.code`` is the refusal's stable
    code (1 to 38, ``docs/spec/errors.md``), ``.reason`` its snake_case name; the
    subclass is the code's (``ErrNonceGap`` for 8, …)."""

    refusal_code: int = 0
    refusal_reason: str = ""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(method, code, message, data)
        self.rpc_code = code
        self.code = self.refusal_code
        self.reason = self.refusal_reason


class JobFailed(TheBlockError):
    """A job the chain failed (``.failure``: its reason, description and height), or a
    result that does not match its receipt."""

    def __init__(self, message: str, failure: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.failure = failure


class WaitTimeout(TheBlockError):
    """A wait (a transaction's inclusion, a job's result) ran past its timeout."""

class ErrBadSignature(TxRejected):
    """Refusal 1: ``bad_signature``."""

    refusal_code = 1
    refusal_reason = "bad_signature"

class ErrInvalidSelector(TxRejected):
    """Refusal 2: ``invalid_selector``."""

    refusal_code = 2
    refusal_reason = "invalid_selector"

class ErrMemoTooLarge(TxRejected):
    """Refusal 3: ``memo_too_large``."""

    refusal_code = 3
    refusal_reason = "memo_too_large"

class ErrTxTooLarge(TxRejected):
    """Refusal 4: ``tx_too_large``."""

    refusal_code = 4
    refusal_reason = "tx_too_large"

class ErrInvalidHandle(TxRejected):
    """Refusal 5: ``invalid_handle``."""

    refusal_code = 5
    refusal_reason = "invalid_handle"

class ErrFeeBelowFloor(TxRejected):
    """Refusal 6: ``fee_below_floor``."""

    refusal_code = 6
    refusal_reason = "fee_below_floor"

class ErrNonceReused(TxRejected):
    """Refusal 7: ``nonce_reused``."""

    refusal_code = 7
    refusal_reason = "nonce_reused"

class ErrNonceGap(TxRejected):
    """Refusal 8: ``nonce_gap``."""

    refusal_code = 8
    refusal_reason = "nonce_gap"

class ErrDuplicateNonce(TxRejected):
    """Refusal 9: ``duplicate_nonce``."""

    refusal_code = 9
    refusal_reason = "duplicate_nonce"

class ErrDuplicateTx(TxRejected):
    """Refusal 10: ``duplicate_tx``."""

    refusal_code = 10
    refusal_reason = "duplicate_tx"

class ErrInsufficientBalance(TxRejected):
    """Refusal 11: ``insufficient_balance``."""

    refusal_code = 11
    refusal_reason = "insufficient_balance"

class ErrBalanceOverflow(TxRejected):
    """Refusal 12: ``balance_overflow``."""

    refusal_code = 12
    refusal_reason = "balance_overflow"

class ErrHandleTaken(TxRejected):
    """Refusal 13: ``handle_taken``."""

    refusal_code = 13
    refusal_reason = "handle_taken"

class ErrAddressHasHandle(TxRejected):
    """Refusal 14: ``address_has_handle``."""

    refusal_code = 14
    refusal_reason = "address_has_handle"

class ErrSenderFull(TxRejected):
    """Refusal 15: ``sender_full``."""

    refusal_code = 15
    refusal_reason = "sender_full"

class ErrPoolFull(TxRejected):
    """Refusal 16: ``pool_full``."""

    refusal_code = 16
    refusal_reason = "pool_full"

class ErrExpired(TxRejected):
    """Refusal 17: ``expired``."""

    refusal_code = 17
    refusal_reason = "expired"

class ErrInvalidMarketTx(TxRejected):
    """Refusal 18: ``invalid_market_tx``."""

    refusal_code = 18
    refusal_reason = "invalid_market_tx"

class ErrNotAProvider(TxRejected):
    """Refusal 19: ``not_a_provider``."""

    refusal_code = 19
    refusal_reason = "not_a_provider"

class ErrStakeRefused(TxRejected):
    """Refusal 20: ``stake_refused``."""

    refusal_code = 20
    refusal_reason = "stake_refused"

class ErrJobRefused(TxRejected):
    """Refusal 21: ``job_refused``."""

    refusal_code = 21
    refusal_reason = "job_refused"

class ErrModelUnavailable(TxRejected):
    """Refusal 22: ``model_unavailable``."""

    refusal_code = 22
    refusal_reason = "model_unavailable"

class ErrUnknownTask(TxRejected):
    """Refusal 23: ``unknown_task``."""

    refusal_code = 23
    refusal_reason = "unknown_task"

class ErrReceiptMismatch(TxRejected):
    """Refusal 24: ``receipt_mismatch``."""

    refusal_code = 24
    refusal_reason = "receipt_mismatch"

class ErrNoLease(TxRejected):
    """Refusal 25: ``no_lease``."""

    refusal_code = 25
    refusal_reason = "no_lease"

class ErrWrongStage(TxRejected):
    """Refusal 26: ``wrong_stage``."""

    refusal_code = 26
    refusal_reason = "wrong_stage"

class ErrDuplicate(TxRejected):
    """Refusal 27: ``duplicate``."""

    refusal_code = 27
    refusal_reason = "duplicate"

class ErrObjectUnpublished(TxRejected):
    """Refusal 28: ``object_unpublished``."""

    refusal_code = 28
    refusal_reason = "object_unpublished"

class ErrTraceMismatch(TxRejected):
    """Refusal 29: ``trace_mismatch``."""

    refusal_code = 29
    refusal_reason = "trace_mismatch"

class ErrChunkRefused(TxRejected):
    """Refusal 30: ``chunk_refused``."""

    refusal_code = 30
    refusal_reason = "chunk_refused"

class ErrChallengeRefused(TxRejected):
    """Refusal 31: ``challenge_refused``."""

    refusal_code = 31
    refusal_reason = "challenge_refused"

class ErrDisputeRefused(TxRejected):
    """Refusal 32: ``dispute_refused``."""

    refusal_code = 32
    refusal_reason = "dispute_refused"

class ErrReportRefused(TxRejected):
    """Refusal 33: ``report_refused``."""

    refusal_code = 33
    refusal_reason = "report_refused"

class ErrInvalidProposal(TxRejected):
    """Refusal 34: ``invalid_proposal``."""

    refusal_code = 34
    refusal_reason = "invalid_proposal"

class ErrNotEligible(TxRejected):
    """Refusal 35: ``not_eligible``."""

    refusal_code = 35
    refusal_reason = "not_eligible"

class ErrProposalSlotsFull(TxRejected):
    """Refusal 36: ``proposal_slots_full``."""

    refusal_code = 36
    refusal_reason = "proposal_slots_full"

class ErrUnknownProposal(TxRejected):
    """Refusal 37: ``unknown_proposal``."""

    refusal_code = 37
    refusal_reason = "unknown_proposal"

class ErrProposalState(TxRejected):
    """Refusal 38: ``proposal_state``."""

    refusal_code = 38
    refusal_reason = "proposal_state"


ERR_BAD_SIGNATURE = 1
ERR_INVALID_SELECTOR = 2
ERR_MEMO_TOO_LARGE = 3
ERR_TX_TOO_LARGE = 4
ERR_INVALID_HANDLE = 5
ERR_FEE_BELOW_FLOOR = 6
ERR_NONCE_REUSED = 7
ERR_NONCE_GAP = 8
ERR_DUPLICATE_NONCE = 9
ERR_DUPLICATE_TX = 10
ERR_INSUFFICIENT_BALANCE = 11
ERR_BALANCE_OVERFLOW = 12
ERR_HANDLE_TAKEN = 13
ERR_ADDRESS_HAS_HANDLE = 14
ERR_SENDER_FULL = 15
ERR_POOL_FULL = 16
ERR_EXPIRED = 17
ERR_INVALID_MARKET_TX = 18
ERR_NOT_A_PROVIDER = 19
ERR_STAKE_REFUSED = 20
ERR_JOB_REFUSED = 21
ERR_MODEL_UNAVAILABLE = 22
ERR_UNKNOWN_TASK = 23
ERR_RECEIPT_MISMATCH = 24
ERR_NO_LEASE = 25
ERR_WRONG_STAGE = 26
ERR_DUPLICATE = 27
ERR_OBJECT_UNPUBLISHED = 28
ERR_TRACE_MISMATCH = 29
ERR_CHUNK_REFUSED = 30
ERR_CHALLENGE_REFUSED = 31
ERR_DISPUTE_REFUSED = 32
ERR_REPORT_REFUSED = 33
ERR_INVALID_PROPOSAL = 34
ERR_NOT_ELIGIBLE = 35
ERR_PROPOSAL_SLOTS_FULL = 36
ERR_UNKNOWN_PROPOSAL = 37
ERR_PROPOSAL_STATE = 38

#: Every refusal class by its code.
REFUSALS: Dict[int, Type[TxRejected]] = {
    1: ErrBadSignature,
    2: ErrInvalidSelector,
    3: ErrMemoTooLarge,
    4: ErrTxTooLarge,
    5: ErrInvalidHandle,
    6: ErrFeeBelowFloor,
    7: ErrNonceReused,
    8: ErrNonceGap,
    9: ErrDuplicateNonce,
    10: ErrDuplicateTx,
    11: ErrInsufficientBalance,
    12: ErrBalanceOverflow,
    13: ErrHandleTaken,
    14: ErrAddressHasHandle,
    15: ErrSenderFull,
    16: ErrPoolFull,
    17: ErrExpired,
    18: ErrInvalidMarketTx,
    19: ErrNotAProvider,
    20: ErrStakeRefused,
    21: ErrJobRefused,
    22: ErrModelUnavailable,
    23: ErrUnknownTask,
    24: ErrReceiptMismatch,
    25: ErrNoLease,
    26: ErrWrongStage,
    27: ErrDuplicate,
    28: ErrObjectUnpublished,
    29: ErrTraceMismatch,
    30: ErrChunkRefused,
    31: ErrChallengeRefused,
    32: ErrDisputeRefused,
    33: ErrReportRefused,
    34: ErrInvalidProposal,
    35: ErrNotEligible,
    36: ErrProposalSlotsFull,
    37: ErrUnknownProposal,
    38: ErrProposalState,
}


def refusal_class(code: int) -> Type[TxRejected]:
    """The exception class of refusal ``code`` (:class:`TxRejected` for a code this
    package does not know: a newer node)."""
    return REFUSALS.get(code, TxRejected)
