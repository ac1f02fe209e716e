//! Transactions: the seeds' transfer payload and @handle registration inside a
//! closed transaction-kind enum that later issues extend (market, governance).

use crate::params::ChainParams;
use borsh::{BorshDeserialize, BorshSerialize};
use tb_primitives::{blake3_id, decode, encode, Address, DecodeError, Domain, Id, Signature};

/// How the fee is paid: `0` consumer, `1` industrial, `2` split evenly (the
/// odd micro-unit, if any, is paid in consumer tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeSelector {
    Consumer,
    Industrial,
    Split,
}

impl FeeSelector {
    pub fn from_u8(v: u8) -> Option<FeeSelector> {
        match v {
            0 => Some(FeeSelector::Consumer),
            1 => Some(FeeSelector::Industrial),
            2 => Some(FeeSelector::Split),
            _ => None,
        }
    }

    /// `(consumer part, industrial part)` of `fee`.
    pub fn split(self, fee: u64) -> (u64, u64) {
        match self {
            FeeSelector::Consumer => (fee, 0),
            FeeSelector::Industrial => (0, fee),
            FeeSelector::Split => (fee - fee / 2, fee / 2),
        }
    }
}

/// The seeds' transfer payload.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Transfer {
    pub from: Address,
    pub to: Address,
    pub amount_consumer: u64,
    pub amount_industrial: u64,
    pub fee: u64,
    /// Kept as a raw byte so an unknown selector is a typed admission error.
    pub fee_selector: u8,
    pub nonce: u64,
    pub memo: Vec<u8>,
}

/// Claim an @handle for the sender (see `handle_is_valid` for the syntax).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RegisterHandle {
    pub from: Address,
    pub handle: String,
    pub fee: u64,
    pub fee_selector: u8,
    pub nonce: u64,
}

/// Every kind of transaction. Closed: a new kind is a new variant, and every
/// `match` over it is exhaustive.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum TxPayload {
    Transfer(Transfer),
    RegisterHandle(RegisterHandle),
}

impl TxPayload {
    pub fn from(&self) -> Address {
        match self {
            TxPayload::Transfer(t) => t.from,
            TxPayload::RegisterHandle(h) => h.from,
        }
    }

    pub fn nonce(&self) -> u64 {
        match self {
            TxPayload::Transfer(t) => t.nonce,
            TxPayload::RegisterHandle(h) => h.nonce,
        }
    }

    pub fn fee(&self) -> u64 {
        match self {
            TxPayload::Transfer(t) => t.fee,
            TxPayload::RegisterHandle(h) => h.fee,
        }
    }

    pub fn fee_selector(&self) -> u8 {
        match self {
            TxPayload::Transfer(t) => t.fee_selector,
            TxPayload::RegisterHandle(h) => h.fee_selector,
        }
    }

    /// `(consumer, industrial)` the sender must hold for this transaction:
    /// amounts plus the fee split by its selector. `None` on an unknown
    /// selector or an overflow.
    pub fn spend(&self) -> Option<(u64, u64)> {
        let sel = FeeSelector::from_u8(self.fee_selector())?;
        let (fc, fi) = sel.split(self.fee());
        let (ac, ai) = match self {
            TxPayload::Transfer(t) => (t.amount_consumer, t.amount_industrial),
            TxPayload::RegisterHandle(_) => (0, 0),
        };
        Some((ac.checked_add(fc)?, ai.checked_add(fi)?))
    }
}

/// A payload with the sender's signature over
/// `signing_bytes(Domain::Transaction, chain_id, encode(payload))`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedTx {
    pub payload: TxPayload,
    pub signature: Signature,
}

impl SignedTx {
    pub fn sign(payload: TxPayload, key: &tb_primitives::SecretKey, chain_id: u64) -> SignedTx {
        let signature = key.sign(Domain::Transaction, chain_id, &encode(&payload));
        SignedTx { payload, signature }
    }

    /// BLAKE3 of the canonical encoding (signature included).
    pub fn id(&self) -> Id {
        blake3_id(b"TB/tx-id/v1", &encode(self))
    }

    pub fn encoded_len(&self) -> usize {
        encode(self).len()
    }

    /// Strict signature check.
    pub fn verify_signature(&self, chain_id: u64) -> bool {
        self.payload
            .from()
            .verify(
                Domain::Transaction,
                chain_id,
                &encode(&self.payload),
                &self.signature,
            )
            .is_ok()
    }

    /// Decodes one signed transaction, refusing anything above `params.tx_bytes_max`.
    pub fn decode(bytes: &[u8], params: &ChainParams) -> Result<SignedTx, DecodeError> {
        decode(bytes, params.tx_bytes_max)
    }
}

/// Maximum handle length in bytes, `@` included.
pub const HANDLE_BYTES_MAX: usize = 32;
/// Minimum handle length in bytes, `@` included.
pub const HANDLE_BYTES_MIN: usize = 4;

/// Handle syntax: `@` then 3 to 31 characters from `a-z 0-9 _`, the first a
/// letter. Lower case only, so one handle has exactly one spelling.
pub fn handle_is_valid(h: &str) -> bool {
    let b = h.as_bytes();
    (HANDLE_BYTES_MIN..=HANDLE_BYTES_MAX).contains(&b.len())
        && b[0] == b'@'
        && b[1].is_ascii_lowercase()
        && b[2..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_syntax() {
        for ok in [
            "@bob",
            "@alice_01",
            "@a23",
            "@abcdefghijklmnopqrstuvwxyz01234",
        ] {
            assert!(handle_is_valid(ok), "{ok}");
        }
        for bad in [
            "bob",
            "@bo",
            "@Bob",
            "@1bob",
            "@bo b",
            "@bob!",
            "",
            "@",
            "@abcdefghijklmnopqrstuvwxyz012345",
            "@bøb",
        ] {
            assert!(!handle_is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn fee_split() {
        assert_eq!(FeeSelector::Split.split(7), (4, 3));
        assert_eq!(FeeSelector::Consumer.split(7), (7, 0));
        assert_eq!(FeeSelector::Industrial.split(7), (0, 7));
        assert_eq!(FeeSelector::from_u8(3), None);
    }
}
