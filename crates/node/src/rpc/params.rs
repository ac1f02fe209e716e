//! The typed parameters of the JSON-RPC methods. Each deserialises from the JSON the
//! method documents (`docs/spec/rpc.md`) and refuses anything else with a message naming
//! what was expected; jsonrpsee answers that with -32602 and the message in `data`.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use tb_primitives::Id;

fn hex_digits(s: &str) -> &str {
    s.strip_prefix("0x").unwrap_or(s)
}

/// 32 bytes as 64 hex digits (an id, a hash, a digest); `0x` allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HexId(pub Id);

impl<'de> Deserialize<'de> for HexId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HexId, D::Error> {
        let s = String::deserialize(d)?;
        Id::from_hex(hex_digits(&s))
            .map(HexId)
            .ok_or_else(|| de::Error::custom(format!("{s:?} is not 64 hex digits")))
    }
}

/// Bytes as hex (`0x` allowed): a signed transaction, a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HexBytes, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(hex_digits(&s))
            .map(HexBytes)
            .map_err(|e| de::Error::custom(format!("not hex: {e}")))
    }
}

/// A block by height or by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockRef {
    Height(u64),
    Id(Id),
}

impl<'de> Deserialize<'de> for BlockRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BlockRef, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => n.as_u64().map(BlockRef::Height).ok_or_else(|| {
                de::Error::custom(format!("height {n} is not a non-negative integer"))
            }),
            serde_json::Value::String(s) => Id::from_hex(hex_digits(&s))
                .map(BlockRef::Id)
                .ok_or_else(|| de::Error::custom(format!("block id {s:?} is not 64 hex digits"))),
            other => Err(de::Error::custom(format!(
                "expected a height or a block id, got {other}"
            ))),
        }
    }
}

/// `compute.estimate`'s job: what submitting it would meet.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateJob {
    /// Declared FLOPs.
    pub flops: u64,
    /// Most it pays per unit, micro-tokens.
    pub max_price: u64,
    #[serde(default = "one")]
    pub redundancy: u32,
    #[serde(default)]
    pub model: u16,
    #[serde(default)]
    pub lane: u8,
    #[serde(default)]
    pub region: Option<u16>,
    #[serde(default)]
    pub kernel_digest: Option<HexId>,
    #[serde(default)]
    pub blob_bytes: u64,
}

fn one() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parameters_parse_or_say_what_is_wrong() {
        let id = "ab".repeat(32);
        assert_eq!(
            serde_json::from_value::<HexId>(json!(format!("0x{id}"))).unwrap(),
            HexId(Id::from_hex(&id).unwrap())
        );
        let e = serde_json::from_value::<HexId>(json!("abc")).unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
        let e = serde_json::from_value::<HexId>(json!(5)).unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
        assert_eq!(
            serde_json::from_value::<HexBytes>(json!("0x0aff")).unwrap(),
            HexBytes(vec![10, 255])
        );
        assert!(serde_json::from_value::<HexBytes>(json!("xyz")).is_err());
        assert_eq!(
            serde_json::from_value::<BlockRef>(json!(7)).unwrap(),
            BlockRef::Height(7)
        );
        assert!(matches!(
            serde_json::from_value::<BlockRef>(json!(id)).unwrap(),
            BlockRef::Id(_)
        ));
        for bad in [json!(-1), json!(true), json!("zz"), json!(1.5)] {
            assert!(serde_json::from_value::<BlockRef>(bad).is_err());
        }
        let j: EstimateJob = serde_json::from_value(json!({"flops": 5, "max_price": 2})).unwrap();
        assert_eq!((j.redundancy, j.lane, j.region), (1, 0, None));
        let e = serde_json::from_value::<EstimateJob>(json!({"flops": 5, "max_price": 2, "x": 1}))
            .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = serde_json::from_value::<EstimateJob>(json!({"flops": 5})).unwrap_err();
        assert!(e.to_string().contains("max_price"), "{e}");
    }
}
