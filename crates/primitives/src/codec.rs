//! The canonical encoding: borsh, with a size limit and no trailing bytes.
//!
//! Borsh gives exactly one byte string per value for the types consensus uses
//! (fixed-width little-endian integers, u32-length-prefixed sequences, one-byte
//! enum and option tags, bools only 0/1, UTF-8 checked strings). `decode`
//! additionally rejects trailing bytes and inputs above a caller-given maximum,
//! so `encode(decode(b)?) == b` for every accepted `b` (property-tested).

use borsh::{BorshDeserialize, BorshSerialize};
use thiserror::Error;

/// Marker for consensus types with a canonical encoding.
pub trait Canonical: BorshSerialize + BorshDeserialize {}
impl<T: BorshSerialize + BorshDeserialize> Canonical for T {}

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("input is {len} bytes, above the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    #[error("non-canonical encoding")]
    NonCanonical,
}

/// Canonical bytes of a value.
pub fn encode<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("serialising into a Vec cannot fail")
}

/// Decodes exactly one value from `bytes`, which must be at most `max_len` long.
pub fn decode<T: BorshDeserialize + BorshSerialize>(
    bytes: &[u8],
    max_len: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let mut rest = bytes;
    let v = T::deserialize(&mut rest).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    // Belt and braces: a decoder that accepted two spellings of one value
    // would let a relayer change a transaction id.
    if encode(&v).len() != bytes.len() {
        return Err(DecodeError::NonCanonical);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(BorshSerialize, BorshDeserialize, Debug, PartialEq)]
    struct S {
        a: u32,
        b: Vec<u8>,
        c: bool,
        d: Option<u8>,
    }

    #[test]
    fn rejects_trailing_and_oversize_and_bad_tags() {
        let s = S {
            a: 7,
            b: vec![1, 2],
            c: true,
            d: None,
        };
        let mut b = encode(&s);
        assert_eq!(decode::<S>(&b, 100).unwrap(), s);
        assert!(matches!(
            decode::<S>(&b, 3),
            Err(DecodeError::TooLarge { .. })
        ));
        b.push(0);
        assert_eq!(decode::<S>(&b, 100), Err(DecodeError::TrailingBytes(1)));
        b.pop();
        // bool = 2 is not canonical
        let n = b.len();
        b[n - 2] = 2;
        assert!(matches!(
            decode::<S>(&b, 100),
            Err(DecodeError::Malformed(_))
        ));
        // truncated
        assert!(matches!(
            decode::<S>(&b[..3], 100),
            Err(DecodeError::Malformed(_))
        ));
    }
}
