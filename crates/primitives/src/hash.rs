//! BLAKE3-256 ids and SHA-256 digests.

use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A BLAKE3-256 identifier (block ids, transaction ids, state-trie nodes).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Id(pub [u8; 32]);

/// A SHA-256 digest (tensor outputs and other externally checkable digests).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Digest(pub [u8; 32]);

impl Id {
    /// The all-zero id: the parent of genesis and the root of an empty trie.
    pub const ZERO: Id = Id([0u8; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Id> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Id(out))
    }
}

impl Digest {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// BLAKE3-256 of `domain ‖ data`, where `domain` is a short ASCII tag such as
/// `b"TB/header/v1"`. The tag is prefixed by its length (one byte) so that no
/// two (domain, data) pairs share an input.
pub fn blake3_id(domain: &[u8], data: &[u8]) -> Id {
    debug_assert!(domain.len() < 256, "domain tags are short constants");
    let mut h = blake3::Hasher::new();
    h.update(&[domain.len() as u8]);
    h.update(domain);
    h.update(data);
    Id(*h.finalize().as_bytes())
}

/// SHA-256 of `data`.
pub fn sha256_digest(data: &[u8]) -> Digest {
    Digest(Sha256::digest(data).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate() {
        assert_ne!(blake3_id(b"A", b"Bc"), blake3_id(b"AB", b"c"));
        assert_eq!(blake3_id(b"A", b"x"), blake3_id(b"A", b"x"));
    }

    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2 test vector "abc".
        assert_eq!(
            sha256_digest(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trip() {
        let id = blake3_id(b"t", b"1");
        assert_eq!(Id::from_hex(&id.to_hex()), Some(id));
        assert_eq!(Id::from_hex("zz"), None);
    }
}
