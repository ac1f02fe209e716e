//! Ed25519 keys, addresses and domain-separated signatures.
//!
//! * The consensus rule for a signature is ed25519-dalek's `verify_strict`
//!   (canonical `S`, canonical `R` encoding, no small-order `A` or `R`,
//!   cofactorless equation).
//! * Signed bytes are `domain tag ‖ chain id (u64 LE) ‖ canonical payload`, so a
//!   signature for one purpose or one network is worthless on another.
//! * An address is the 32-byte Ed25519 public key. Its text form is
//!   `tb1` ‖ 64 lowercase hex characters of the key ‖ 8 hex characters of
//!   checksum, where the checksum is the first 4 bytes of
//!   `BLAKE3(len ‖ "TB/address-checksum/v1" ‖ key)` (see `docs/spec/encoding.md`).

use crate::hash::blake3_id;
use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// What a signature is for. Each domain has its own tag in the signed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A transaction.
    Transaction,
    /// A compute receipt (used by the job and market crates).
    Receipt,
    /// A peer-to-peer message.
    Network,
}

impl Domain {
    /// The tag prefixed to the signed bytes.
    pub const fn tag(self) -> &'static [u8] {
        match self {
            Domain::Transaction => b"TB/tx/v1",
            Domain::Receipt => b"TB/receipt/v1",
            Domain::Network => b"TB/net/v1",
        }
    }
}

/// `len(tag) ‖ tag ‖ chain_id (u64 LE) ‖ payload`.
pub fn signing_bytes(domain: Domain, chain_id: u64, payload: &[u8]) -> Vec<u8> {
    let tag = domain.tag();
    let mut out = Vec::with_capacity(1 + tag.len() + 8 + payload.len());
    out.push(tag.len() as u8);
    out.extend_from_slice(tag);
    out.extend_from_slice(&chain_id.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// An account address: the 32-byte Ed25519 public key.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub [u8; 32]);

/// A 64-byte Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the address is not a valid Ed25519 public key")]
    BadPublicKey,
    #[error("signature does not verify (strict Ed25519)")]
    Invalid,
    #[error("batch verification failed")]
    BatchInvalid,
}

/// Why bytes are not a usable public key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PublicKeyError {
    #[error("not a valid Ed25519 point")]
    NotAPoint,
}

/// Why a text address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressParseError {
    #[error("address must start with \"tb1\"")]
    BadPrefix,
    #[error("address must be 75 characters (tb1 + 64 + 8 hex), got {0}")]
    BadLength(usize),
    #[error("address contains a character that is not lowercase hex")]
    BadHex,
    #[error("address checksum mismatch (a typo?)")]
    BadChecksum,
}

const ADDRESS_PREFIX: &str = "tb1";
const ADDRESS_TEXT_LEN: usize = 3 + 64 + 8;

impl Address {
    fn checksum(&self) -> [u8; 4] {
        let id = blake3_id(b"TB/address-checksum/v1", &self.0);
        [id.0[0], id.0[1], id.0[2], id.0[3]]
    }

    /// The text form `tb1<64 hex><8 hex checksum>`.
    pub fn to_text(&self) -> String {
        format!(
            "{ADDRESS_PREFIX}{}{}",
            hex::encode(self.0),
            hex::encode(self.checksum())
        )
    }

    /// The key as a dalek verifying key, if it is a valid point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, PublicKeyError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| PublicKeyError::NotAPoint)
    }

    /// Strict verification of `sig` over `signing_bytes(domain, chain_id, payload)`.
    pub fn verify(
        &self,
        domain: Domain,
        chain_id: u64,
        payload: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        let vk = self
            .verifying_key()
            .map_err(|_| SignatureError::BadPublicKey)?;
        let msg = signing_bytes(domain, chain_id, payload);
        vk.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&sig.0))
            .map_err(|_| SignatureError::Invalid)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({}…)", hex::encode(&self.0[..6]))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for Address {
    type Err = AddressParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.starts_with(ADDRESS_PREFIX) {
            return Err(AddressParseError::BadPrefix);
        }
        if s.len() != ADDRESS_TEXT_LEN {
            return Err(AddressParseError::BadLength(s.len()));
        }
        let body = &s[3..];
        if !body
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(AddressParseError::BadHex);
        }
        let mut key = [0u8; 32];
        let mut sum = [0u8; 4];
        hex::decode_to_slice(&body[..64], &mut key).map_err(|_| AddressParseError::BadHex)?;
        hex::decode_to_slice(&body[64..], &mut sum).map_err(|_| AddressParseError::BadHex)?;
        let a = Address(key);
        if a.checksum() != sum {
            return Err(AddressParseError::BadChecksum);
        }
        Ok(a)
    }
}

/// The longest PEM document [`SecretKey::from_pkcs8_pem`] reads (an Ed25519 key's is
/// about 120 bytes; v2 with its public key about 170).
pub const PEM_BYTES_MAX: usize = 4096;

/// Why a key document was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyFormatError {
    #[error("the PEM document is {len} bytes, above the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("not a PKCS#8 Ed25519 private key: {0}")]
    Pkcs8(String),
}

/// The body of the `read_key_text` fuzz target and its property test: any text through
/// [`SecretKey::from_pkcs8_pem`], [`SecretKey::from_seed_hex`] and `Address`'s parser
/// never panics, and a key that reads writes back to a document that reads as itself.
pub fn fuzz_key_text(text: &str) {
    if let Ok(k) = SecretKey::from_pkcs8_pem(text) {
        let again = SecretKey::from_pkcs8_pem(&k.to_pkcs8_pem()).expect("our PEM reads back");
        assert_eq!(again.seed(), k.seed());
    }
    if let Ok(k) = SecretKey::from_seed_hex(text) {
        assert_eq!(hex::encode(k.seed()), text.to_ascii_lowercase());
    }
    if let Ok(a) = text.parse::<Address>() {
        assert_eq!(a.to_text(), text);
    }
}

/// Bytes the `verify_signature` fuzz target reads before the payload: key (32) ‖
/// signature (64) ‖ domain selector (1) ‖ chain id (u64 LE).
pub const FUZZ_SIGNATURE_HEADER_BYTES: usize = 32 + 64 + 1 + 8;

/// The body of the `verify_signature` fuzz target and its property test. Any bytes as
/// `key ‖ signature ‖ domain selector ‖ chain id ‖ payload`
/// ([`FUZZ_SIGNATURE_HEADER_BYTES`], shorter input is padded with zeros): never a panic;
/// [`Address::verify`] and [`verify_strict_parallel`] agree; a signature that verifies
/// does not verify under another domain or chain id. Then the key whose seed is the
/// first 32 bytes signs the same payload: that signature verifies, and with any one
/// bit flipped (the bit picked by the input) it does not.
pub fn fuzz_signature(data: &[u8]) {
    let mut head = [0u8; FUZZ_SIGNATURE_HEADER_BYTES];
    let n = data.len().min(FUZZ_SIGNATURE_HEADER_BYTES);
    head[..n].copy_from_slice(&data[..n]);
    let payload = &data[n..];
    let key: [u8; 32] = head[..32].try_into().expect("32 bytes");
    let sig = Signature(head[32..96].try_into().expect("64 bytes"));
    let domains = [Domain::Transaction, Domain::Receipt, Domain::Network];
    let domain = domains[head[96] as usize % domains.len()];
    let chain_id = u64::from_le_bytes(head[97..105].try_into().expect("8 bytes"));

    let addr = Address(key);
    let one = addr.verify(domain, chain_id, payload, &sig).is_ok();
    let msg = signing_bytes(domain, chain_id, payload);
    assert_eq!(
        verify_strict_parallel(&[(addr, &msg, sig)], 1).is_ok(),
        one,
        "the two strict checks agree"
    );
    if one {
        let other = domains[(head[96] as usize + 1) % domains.len()];
        assert!(addr.verify(other, chain_id, payload, &sig).is_err());
        assert!(addr
            .verify(domain, chain_id.wrapping_add(1), payload, &sig)
            .is_err());
    }

    let k = SecretKey::from_seed(key);
    let good = k.sign(domain, chain_id, payload);
    assert!(k.address().verify(domain, chain_id, payload, &good).is_ok());
    let bit = head[32] as usize * 2 + (head[33] as usize & 1);
    let mut bad = good;
    bad.0[bit / 8] ^= 1 << (bit % 8);
    assert!(
        k.address().verify(domain, chain_id, payload, &bad).is_err(),
        "a flipped signature bit is refused"
    );
}

/// An Ed25519 signing key.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> SecretKey {
        SecretKey(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A key from 32 seed bytes (deterministic: dev keys, tests, simulations).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// A deterministic dev key derived from a name, e.g. `"alice"`.
    pub fn dev(name: &str) -> SecretKey {
        SecretKey::from_seed(blake3_id(b"TB/dev-key/v1", name.as_bytes()).0)
    }

    /// A key from its seed written as 64 hex digits (the key-file format of the node
    /// and `tb-cli key`).
    pub fn from_seed_hex(s: &str) -> Result<SecretKey, String> {
        let mut seed = [0u8; 32];
        if s.len() != 64 {
            return Err(format!(
                "expected 64 hex digits, found {} characters",
                s.len()
            ));
        }
        hex::decode_to_slice(s, &mut seed).map_err(|e| format!("not hex: {e}"))?;
        Ok(SecretKey::from_seed(seed))
    }

    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key as a PKCS#8 v1 PEM document (`-----BEGIN PRIVATE KEY-----`, RFC 8410):
    /// what `openssl genpkey -algorithm ed25519` writes and reads.
    pub fn to_pkcs8_pem(&self) -> String {
        use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey, KeypairBytes};
        // v1 (no public key): the form OpenSSL 3.0 reads; v2 it refuses.
        KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an Ed25519 key always encodes as PKCS#8")
        .to_string()
    }

    /// A key from a PKCS#8 PEM document holding an Ed25519 private key (v1, or v2 with
    /// the public key, which must then match); anything else is refused.
    pub fn from_pkcs8_pem(pem: &str) -> Result<SecretKey, KeyFormatError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        if pem.len() > PEM_BYTES_MAX {
            return Err(KeyFormatError::TooLarge {
                len: pem.len(),
                max: PEM_BYTES_MAX,
            });
        }
        SigningKey::from_pkcs8_pem(pem)
            .map(SecretKey)
            .map_err(|e| KeyFormatError::Pkcs8(e.to_string()))
    }

    pub fn address(&self) -> Address {
        Address(self.0.verifying_key().to_bytes())
    }

    /// Signs `signing_bytes(domain, chain_id, payload)`.
    pub fn sign(&self, domain: Domain, chain_id: u64, payload: &[u8]) -> Signature {
        Signature(
            self.0
                .sign(&signing_bytes(domain, chain_id, payload))
                .to_bytes(),
        )
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({:?})", self.address())
    }
}

/// Batch verification (ed25519-dalek's randomised multiscalar check) of
/// `(address, full signed message, signature)` triples.
///
/// Honest signatures verify in a batch exactly when they verify one by one.
/// For adversarially crafted signatures with torsion components the batch
/// equation and `verify_strict` can disagree, so **consensus never relies on
/// this function**: block import and mempool admission use
/// [`verify_strict_parallel`]. It is offered for screening bulk data where a
/// false accept is caught later (and it is what the benchmark measures).
pub fn verify_batch(items: &[(Address, Vec<u8>, Signature)]) -> Result<(), SignatureError> {
    let mut keys = Vec::with_capacity(items.len());
    let mut msgs: Vec<&[u8]> = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    for (a, m, s) in items {
        let vk = a
            .verifying_key()
            .map_err(|_| SignatureError::BadPublicKey)?;
        if vk.is_weak() {
            return Err(SignatureError::BatchInvalid);
        }
        keys.push(vk);
        msgs.push(m.as_slice());
        sigs.push(ed25519_dalek::Signature::from_bytes(&s.0));
    }
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).map_err(|_| SignatureError::BatchInvalid)
}

/// Strictly verifies every `(address, full signed message, signature)` triple
/// on up to `threads` scoped threads. Returns the index of the first invalid
/// one (lowest index), if any. The answer does not depend on `threads`.
pub fn verify_strict_parallel(
    items: &[(Address, &[u8], Signature)],
    threads: usize,
) -> Result<(), usize> {
    let check = |(a, m, s): &(Address, &[u8], Signature)| -> bool {
        match a.verifying_key() {
            Ok(vk) => vk
                .verify_strict(m, &ed25519_dalek::Signature::from_bytes(&s.0))
                .is_ok(),
            Err(_) => false,
        }
    };
    let threads = threads.clamp(1, 64);
    if threads == 1 || items.len() < 64 {
        return match items.iter().position(|i| !check(i)) {
            Some(i) => Err(i),
            None => Ok(()),
        };
    }
    let chunk = items.len().div_ceil(threads);
    let firsts: Vec<Option<usize>> = std::thread::scope(|sc| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(ci, part)| {
                sc.spawn(move || part.iter().position(|i| !check(i)).map(|p| ci * chunk + p))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("verifier thread does not panic"))
            .collect()
    });
    match firsts.into_iter().flatten().min() {
        Some(i) => Err(i),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_domain_separation() {
        let k = SecretKey::dev("alice");
        let a = k.address();
        let sig = k.sign(Domain::Transaction, 7, b"pay bob");
        assert_eq!(a.verify(Domain::Transaction, 7, b"pay bob", &sig), Ok(()));
        // other chain, other domain, other payload
        assert!(a.verify(Domain::Transaction, 8, b"pay bob", &sig).is_err());
        assert!(a.verify(Domain::Receipt, 7, b"pay bob", &sig).is_err());
        assert!(a.verify(Domain::Transaction, 7, b"pay bob!", &sig).is_err());
        // other key
        let b = SecretKey::dev("bob").address();
        assert!(b.verify(Domain::Transaction, 7, b"pay bob", &sig).is_err());
    }

    #[test]
    fn address_text_round_trip_and_checksum() {
        let a = SecretKey::dev("alice").address();
        let t = a.to_text();
        assert_eq!(t.len(), 75);
        assert_eq!(t.parse::<Address>(), Ok(a));
        // flip one hex digit of the key: checksum catches it
        let mut bad = t.clone().into_bytes();
        bad[10] = if bad[10] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            String::from_utf8(bad).unwrap().parse::<Address>(),
            Err(AddressParseError::BadChecksum)
        );
        assert_eq!("xx".parse::<Address>(), Err(AddressParseError::BadPrefix));
        assert_eq!(
            "tb1ab".parse::<Address>(),
            Err(AddressParseError::BadLength(5))
        );
        assert_eq!(
            t.to_uppercase().replace("TB1", "tb1").parse::<Address>(),
            Err(AddressParseError::BadHex)
        );
    }

    #[test]
    fn batch_and_parallel_agree_on_honest_and_forged() {
        let items: Vec<(Address, Vec<u8>, Signature)> = (0..100u32)
            .map(|i| {
                let k = SecretKey::dev(&format!("k{i}"));
                let m = signing_bytes(Domain::Transaction, 1, &i.to_le_bytes());
                let s = k.sign(Domain::Transaction, 1, &i.to_le_bytes());
                (k.address(), m, s)
            })
            .collect();
        assert_eq!(verify_batch(&items), Ok(()));
        let refs: Vec<(Address, &[u8], Signature)> = items
            .iter()
            .map(|(a, m, s)| (*a, m.as_slice(), *s))
            .collect();
        for t in [1, 2, 4] {
            assert_eq!(verify_strict_parallel(&refs, t), Ok(()));
        }
        let mut forged = items.clone();
        forged[70].2 .0[5] ^= 1;
        forged[90].2 .0[9] ^= 1;
        assert_eq!(verify_batch(&forged), Err(SignatureError::BatchInvalid));
        let refs: Vec<(Address, &[u8], Signature)> = forged
            .iter()
            .map(|(a, m, s)| (*a, m.as_slice(), *s))
            .collect();
        for t in [1, 2, 3, 8] {
            assert_eq!(verify_strict_parallel(&refs, t), Err(70));
        }
    }

    #[test]
    fn small_order_key_is_refused() {
        // The identity point (y = 1) is a small-order public key.
        let mut id = [0u8; 32];
        id[0] = 1;
        let a = Address(id);
        let sig = Signature([0u8; 64]);
        assert!(a.verify(Domain::Transaction, 1, b"", &sig).is_err());
    }

    #[test]
    fn pkcs8_pem_round_trips_and_refuses_what_is_not_an_ed25519_key() {
        let k = SecretKey::dev("pem");
        let pem = k.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        assert_eq!(SecretKey::from_pkcs8_pem(&pem).unwrap().seed(), k.seed());
        // RFC 8410's example key (section 10.3): its seed is the document's last 32 bytes.
        let rfc = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let seed = hex::decode("d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842")
            .unwrap();
        assert_eq!(
            SecretKey::from_pkcs8_pem(rfc).unwrap().seed().to_vec(),
            seed
        );
        for bad in [
            "",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
        ] {
            assert!(matches!(
                SecretKey::from_pkcs8_pem(bad),
                Err(KeyFormatError::Pkcs8(_))
            ));
        }
        let big = "x".repeat(PEM_BYTES_MAX + 1);
        assert_eq!(
            SecretKey::from_pkcs8_pem(&big).err(),
            Some(KeyFormatError::TooLarge {
                len: PEM_BYTES_MAX + 1,
                max: PEM_BYTES_MAX
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn any_seed_round_trips_through_pem(seed in proptest::prelude::any::<[u8; 32]>()) {
            let k = SecretKey::from_seed(seed);
            proptest::prop_assert_eq!(SecretKey::from_pkcs8_pem(&k.to_pkcs8_pem()).unwrap().seed(), seed);
        }

        #[test]
        fn any_text_is_a_typed_refusal_or_a_key(text in "(-----BEGIN PRIVATE KEY-----\n)?[A-Za-z0-9+/=\n-]{0,200}(-----END PRIVATE KEY-----\n)?") {
            fuzz_key_text(&text);
        }

        #[test]
        fn any_bytes_as_a_signature_check_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            fuzz_signature(&data);
        }

        #[test]
        fn mutated_documents_never_panic(
            seed in proptest::prelude::any::<[u8; 32]>(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in 0x20u8..0x7f,
        ) {
            let mut pem = SecretKey::from_seed(seed).to_pkcs8_pem().into_bytes();
            let i = at.index(pem.len());
            pem[i] = byte;
            fuzz_key_text(&String::from_utf8(pem).unwrap());
        }
    }
}
