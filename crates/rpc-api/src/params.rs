//! The typed parameters of the JSON-RPC methods. Each deserialises from the JSON the
//! method documents (`docs/spec/rpc.md`) and refuses anything else with a message naming
//! what was expected; jsonrpsee answers that with -32602 and the message in `data`. Each
//! serialises (for the client) to the canonical form: lowercase hex without `0x`.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
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

impl Serialize for HexId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_hex())
    }
}

impl From<Id> for HexId {
    fn from(id: Id) -> HexId {
        HexId(id)
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

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
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

impl Serialize for BlockRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BlockRef::Height(h) => s.serialize_u64(*h),
            BlockRef::Id(id) => s.serialize_str(&id.to_hex()),
        }
    }
}

/// `compute.estimate`'s job: what submitting it would meet.
#[derive(Clone, Debug, Deserialize, Serialize)]
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

    /// What the client sends, the server reads back as the same value.
    #[test]
    fn parameters_round_trip() {
        let id = Id::from_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(
            serde_json::to_value(HexId(id)).unwrap(),
            json!("cd".repeat(32))
        );
        assert_eq!(
            serde_json::from_value::<HexId>(serde_json::to_value(HexId(id)).unwrap()).unwrap(),
            HexId(id)
        );
        let b = HexBytes(vec![0, 1, 254, 255]);
        assert_eq!(serde_json::to_value(&b).unwrap(), json!("0001feff"));
        assert_eq!(
            serde_json::from_value::<HexBytes>(serde_json::to_value(&b).unwrap()).unwrap(),
            b
        );
        for r in [
            BlockRef::Height(0),
            BlockRef::Height(u64::MAX),
            BlockRef::Id(id),
        ] {
            let v = serde_json::to_value(r).unwrap();
            assert_eq!(serde_json::from_value::<BlockRef>(v).unwrap(), r);
        }
        let j = EstimateJob {
            flops: 9,
            max_price: 3,
            redundancy: 2,
            model: 1,
            lane: 1,
            region: Some(4),
            kernel_digest: Some(HexId(id)),
            blob_bytes: 100,
        };
        let v = serde_json::to_value(&j).unwrap();
        let k: EstimateJob = serde_json::from_value(v).unwrap();
        assert_eq!(
            (
                k.flops,
                k.max_price,
                k.redundancy,
                k.region,
                k.kernel_digest,
                k.blob_bytes
            ),
            (9, 3, 2, Some(4), Some(HexId(id)), 100)
        );
    }
}
