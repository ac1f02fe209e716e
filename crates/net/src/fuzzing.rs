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
    use proptest::prelude::*;

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
