//! Bodies of the fuzz target `decode_p2p` (fuzz/), run on stable by the property test
//! below too: any bytes through every decoder of the wire protocols — a
//! length-prefixed frame of each request and response type, and a gossiped
//! transaction or block — never panic, and whatever decodes re-encodes to the same
//! bytes.

use crate::limits::*;
use crate::wire::*;
use borsh::{BorshDeserialize, BorshSerialize};

fn frame<M: BorshSerialize + BorshDeserialize>(data: &[u8], max: usize) {
    if let Ok(m) = futures::executor::block_on(read_frame::<_, M>(&mut &data[..], max)) {
        let body = tb_primitives::encode(&m);
        assert!(body.len() <= max);
        assert_eq!(
            &data[4..4 + body.len()],
            &body[..],
            "accepted frames are canonical"
        );
    }
}

/// Any bytes through every wire decoder.
pub fn decode_p2p(data: &[u8]) {
    frame::<SyncRequest>(data, SYNC_REQUEST_BYTES_MAX);
    frame::<SyncResponse>(data, 1 << 20);
    frame::<BlobRequest>(data, BLOB_REQUEST_BYTES_MAX);
    frame::<BlobResponse>(data, BLOB_RESPONSE_BYTES_MAX);
    let params = tb_chain::ChainParams::mainnet();
    if let Ok(tx) = decode_tx(data, params.tx_decode_bytes_max()) {
        assert_eq!(tb_primitives::encode(&tx), data);
        let _ = Topic::of_tx(&tx);
    }
    if let Ok(b) = decode_block(data, tb_chain::block::block_encoded_bytes_max(&params)) {
        assert_eq!(tb_primitives::encode(&b), data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed<M: BorshSerialize>(m: &M) -> Vec<u8> {
        let body = tb_primitives::encode(m);
        let mut b = (body.len() as u32).to_le_bytes().to_vec();
        b.extend_from_slice(&body);
        b
    }

    fn accepts<M: BorshSerialize + BorshDeserialize>(data: &[u8], max: usize) -> bool {
        futures::executor::block_on(read_frame::<_, M>(&mut &data[..], max)).is_ok()
    }

    /// The seed corpus of `decode_p2p` (`tb_primitives::seeds`, `docs/fuzzing.md`): one
    /// frame of each request and response kind.
    #[test]
    fn fuzz_seeds() {
        let status = Status {
            genesis: tb_primitives::Id([1; 32]),
            tip: tb_primitives::Id([2; 32]),
            height: 7,
            total_work: 1 << 40,
        };
        let seeds = vec![
            framed(&SyncRequest::Status(status.clone())),
            framed(&SyncRequest::Blocks {
                locator: vec![tb_primitives::Id([2; 32]), tb_primitives::Id([1; 32])],
                max_blocks: 16,
            }),
            framed(&SyncResponse::Status(status)),
            framed(&SyncResponse::Busy),
            framed(&BlobRequest {
                sha256: [3; 32],
                offset: 0,
                len: 4096,
            }),
            framed(&BlobResponse::Chunk {
                total: 5,
                bytes: b"chunk".to_vec(),
            }),
            framed(&BlobResponse::NotFound),
        ];
        tb_primitives::seeds::check_seeds(env!("CARGO_MANIFEST_DIR"), "decode_p2p", &seeds, |b| {
            accepts::<SyncRequest>(b, SYNC_REQUEST_BYTES_MAX)
                || accepts::<SyncResponse>(b, 1 << 20)
                || accepts::<BlobRequest>(b, BLOB_REQUEST_BYTES_MAX)
                || accepts::<BlobResponse>(b, BLOB_RESPONSE_BYTES_MAX)
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The fuzz target's body on arbitrary bytes, framed and bare: never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut framed = (body.len() as u32).to_le_bytes().to_vec();
            framed.extend_from_slice(&body);
            super::decode_p2p(&framed);
            super::decode_p2p(&body);
        }
    }
}
