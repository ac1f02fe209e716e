//! Primitives of The Block: BLAKE3 ids, SHA-256 digests, Ed25519 keys with
//! domain-separated signing, addresses, token amounts and the one canonical
//! encoding every consensus value uses.
//!
//! This crate does no IO, keeps no global state and never panics on input from
//! outside: every decoder returns a typed error.
//!
//! Vocabulary (kept across the project): a **digest** is SHA-256, an **id** or
//! **hash** is BLAKE3-256.
#![forbid(unsafe_code)]

pub mod amount;
pub mod codec;
pub mod hash;
pub mod keys;
pub mod merkle;
#[cfg(feature = "proptest")]
pub mod mutation;
#[cfg(feature = "proptest")]
pub mod seeds;

pub use amount::{Amount, Token, MICRO_PER_TOKEN};
pub use codec::{decode, encode, Canonical, DecodeError};
pub use hash::{blake3_id, sha256_digest, Digest, Id};
pub use keys::{
    fuzz_key_text, fuzz_signature, signing_bytes, verify_batch, verify_strict_parallel, Address,
    AddressParseError, Domain, KeyFormatError, PublicKeyError, SecretKey, Signature,
    SignatureError, FUZZ_SIGNATURE_HEADER_BYTES, PEM_BYTES_MAX,
};
pub use merkle::{merkle_proof, merkle_root, merkle_verify, MerkleProof};
