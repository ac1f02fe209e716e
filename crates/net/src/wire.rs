//! What goes over the wire: the gossip topics, the request-response messages of the
//! sync and blob protocols, and their length-prefixed Borsh codec. Every frame carries
//! a little-endian `u32` length that is checked against the protocol's limit before a
//! byte of the body is read, and the body is decoded with the same limit (Borsh,
//! canonical: trailing bytes are an error).

use crate::limits::*;
use borsh::{BorshDeserialize, BorshSerialize};
use futures::prelude::*;
use libp2p::StreamProtocol;
use std::io;
use std::marker::PhantomData;
use tb_chain::{Block, SignedTx, TxPayload};
use tb_primitives::Id;

/// A node's view of its best chain, exchanged in the sync protocol's handshake.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Status {
    /// The block at height 0 (nodes on another genesis are another network).
    pub genesis: Id,
    pub tip: Id,
    pub height: u64,
    /// Sum of difficulties from genesis to the tip: the fork-choice weight.
    pub total_work: u128,
}

/// A request of the sync protocol (`/tb/<chain id>/sync/1`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncRequest {
    /// "Here is my status; what is yours?"
    Status(Status),
    /// The canonical blocks after the first id of `locator` that is on the server's best
    /// chain (the requester's tip, then ids at exponentially growing distances back to
    /// genesis), at most `max_blocks` of them.
    Blocks { locator: Vec<Id>, max_blocks: u32 },
}

/// A response of the sync protocol.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum SyncResponse {
    Status(Status),
    /// In height order, each the child of the one before; empty when no locator id is
    /// known (another network) or the requester is at the tip.
    Blocks(Vec<Block>),
    /// The server is at its limit of requests being served; ask again later.
    Busy,
}

/// A request of the blob protocol (`/tb/<chain id>/blob/1`): bytes of a
/// content-addressed blob (job blob, trace, dispute bundle) by its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlobRequest {
    pub sha256: [u8; 32],
    pub offset: u64,
    /// At most [`BLOB_CHUNK_BYTES`].
    pub len: u32,
}

/// A response of the blob protocol.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum BlobResponse {
    /// `bytes` from the requested offset, of a blob of `total` bytes.
    Chunk {
        total: u64,
        bytes: Vec<u8>,
    },
    NotFound,
    Busy,
}

/// The gossip topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Transfers, registrations, stakes, jobs, governance.
    Tx,
    /// Mined blocks.
    Block,
    /// The verification game's transactions: receipts, seals, challenges, evidence,
    /// malformed-job reports, heartbeats, published blob chunks.
    Market,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Tx, Topic::Block, Topic::Market];

    /// `/tb/<chain id>/<name>/1`.
    pub fn name(self, chain_id: u64) -> String {
        let n = match self {
            Topic::Tx => "tx",
            Topic::Block => "block",
            Topic::Market => "market",
        };
        format!("/tb/{chain_id}/{n}/1")
    }

    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Topic::Tx => "tx",
            Topic::Block => "block",
            Topic::Market => "market",
        }
    }

    /// The topic a transaction is gossiped on.
    pub fn of_tx(tx: &SignedTx) -> Topic {
        match tx.payload {
            TxPayload::SubmitReceipt(_)
            | TxPayload::SealReceipt(_)
            | TxPayload::Challenge(_)
            | TxPayload::SupplyEvidence(_)
            | TxPayload::ReportMalformed(_)
            | TxPayload::Heartbeat(_)
            | TxPayload::PublishBlob(_) => Topic::Market,
            TxPayload::Transfer(_)
            | TxPayload::RegisterHandle(_)
            | TxPayload::RegisterProvider(_)
            | TxPayload::Stake(_)
            | TxPayload::Unstake(_)
            | TxPayload::SubmitJob(_)
            | TxPayload::Propose(_)
            | TxPayload::Vote(_) => Topic::Tx,
        }
    }
}

/// The sync protocol's name on a chain.
pub fn sync_protocol(chain_id: u64) -> StreamProtocol {
    StreamProtocol::try_from_owned(format!("/tb/{chain_id}/sync/1")).expect("starts with /")
}

/// The blob protocol's name on a chain.
pub fn blob_protocol(chain_id: u64) -> StreamProtocol {
    StreamProtocol::try_from_owned(format!("/tb/{chain_id}/blob/1")).expect("starts with /")
}

/// The identify protocol version nodes of one chain share.
pub fn identify_version(chain_id: u64) -> String {
    format!("/tb/{chain_id}/1")
}

/// Heights a locator names for a tip at `tip`: the tip and the ten below it one by one, then
/// doubling steps, then genesis; at most [`LOCATOR_LEN_MAX`].
pub fn locator_heights(tip: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut h = tip;
    let mut step = 1u64;
    loop {
        out.push(h);
        if h == 0 || out.len() + 1 >= LOCATOR_LEN_MAX {
            break;
        }
        if out.len() > 10 {
            step = step.saturating_mul(2);
        }
        h = h.saturating_sub(step);
    }
    if *out.last().expect("one pushed") != 0 {
        out.push(0);
    }
    out
}

/// Reads one length-prefixed Borsh frame of at most `max` bytes.
pub async fn read_frame<T, M>(io: &mut T, max: usize) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: BorshDeserialize + BorshSerialize,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let n = u32::from_le_bytes(len) as usize;
    if n > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {n} bytes is over the {max}-byte limit"),
        ));
    }
    // Grown as bytes arrive: a length prefix alone reserves at most 64 KiB.
    let mut buf = Vec::with_capacity(n.min(64 << 10));
    io.take(n as u64).read_to_end(&mut buf).await?;
    if buf.len() != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame ended after {} of {n} bytes", buf.len()),
        ));
    }
    tb_primitives::decode(&buf, max).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes one length-prefixed Borsh frame (refused over `max` bytes).
pub async fn write_frame<T, M>(io: &mut T, m: &M, max: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: BorshSerialize,
{
    let b = tb_primitives::encode(m);
    if b.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes is over the {max}-byte limit", b.len()),
        ));
    }
    io.write_all(&(b.len() as u32).to_le_bytes()).await?;
    io.write_all(&b).await?;
    io.flush().await
}

/// The request-response codec of one protocol: frames of `Req` and `Resp` under their
/// limits.
pub struct FrameCodec<Req, Resp> {
    pub request_max: usize,
    pub response_max: usize,
    _m: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> FrameCodec<Req, Resp> {
    pub fn new(request_max: usize, response_max: usize) -> Self {
        FrameCodec {
            request_max,
            response_max,
            _m: PhantomData,
        }
    }
}

impl<Req, Resp> Clone for FrameCodec<Req, Resp> {
    fn clone(&self) -> Self {
        FrameCodec::new(self.request_max, self.response_max)
    }
}

#[async_trait::async_trait]
impl<Req, Resp> libp2p::request_response::Codec for FrameCodec<Req, Resp>
where
    Req: BorshSerialize + BorshDeserialize + Send + Sync + 'static,
    Resp: BorshSerialize + BorshDeserialize + Send + Sync + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.request_max).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.response_max).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, r: Req) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &r, self.request_max).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, r: Resp) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &r, self.response_max).await
    }
}

/// Decodes a gossiped transaction (Borsh, at most `max` bytes).
pub fn decode_tx(data: &[u8], max: usize) -> Result<SignedTx, String> {
    tb_primitives::decode(data, max).map_err(|e| e.to_string())
}

/// Decodes a gossiped block (Borsh, at most `max` bytes).
pub fn decode_block(data: &[u8], max: usize) -> Result<Block, String> {
    tb_primitives::decode(data, max).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn locators_start_at_the_tip_end_at_genesis_and_stay_short() {
        assert_eq!(locator_heights(0), vec![0]);
        assert_eq!(locator_heights(3), vec![3, 2, 1, 0]);
        for tip in [1u64, 9, 10, 11, 100, 2_000, 1 << 40, u64::MAX] {
            let l = locator_heights(tip);
            assert_eq!(l[0], tip);
            assert_eq!(*l.last().unwrap(), 0);
            assert!(l.len() <= LOCATOR_LEN_MAX, "{tip}: {}", l.len());
            assert!(l.windows(2).all(|w| w[0] > w[1]), "{tip}: {l:?}");
        }
        // The ten most recent blocks are each named (a short fork is found exactly).
        assert_eq!(
            &locator_heights(100)[..11],
            &[100, 99, 98, 97, 96, 95, 94, 93, 92, 91, 90]
        );
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn frames_round_trip_and_oversized_lengths_are_refused_before_reading() {
        let req = SyncRequest::Blocks {
            locator: vec![Id([7; 32])],
            max_blocks: 5,
        };
        let mut buf = Vec::new();
        block_on(write_frame(&mut buf, &req, 1024)).unwrap();
        let back: SyncRequest = block_on(read_frame(&mut &buf[..], 1024)).unwrap();
        assert_eq!(back, req);
        // A length over the limit is refused from the prefix alone.
        let mut big = (1u32 << 30).to_le_bytes().to_vec();
        big.extend_from_slice(&[0; 8]);
        let e = block_on(read_frame::<_, SyncRequest>(&mut &big[..], 1024)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("over the 1024-byte limit"), "{e}");
        // Writing over the limit is refused too.
        let e = block_on(write_frame(&mut Vec::new(), &vec![0u8; 2000], 1024)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bytes on a stream are a typed error or a message, never a panic.
        #[test]
        fn arbitrary_frames_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut framed = (body.len() as u32).to_le_bytes().to_vec();
            framed.extend_from_slice(&body);
            let _ = block_on(read_frame::<_, SyncRequest>(&mut &framed[..], 4096));
            let _ = block_on(read_frame::<_, SyncResponse>(&mut &framed[..], 4096));
            let _ = block_on(read_frame::<_, BlobRequest>(&mut &framed[..], 4096));
            let _ = block_on(read_frame::<_, BlobResponse>(&mut &framed[..], 4096));
            let _ = block_on(read_frame::<_, SyncRequest>(&mut &body[..], 4096));
            let _ = decode_tx(&body, 4096);
            let _ = decode_block(&body, 4096);
        }

        /// Every request and response that is written reads back equal.
        #[test]
        fn messages_round_trip(ids in proptest::collection::vec(any::<[u8; 32]>(), 0..LOCATOR_LEN_MAX),
                               max in any::<u32>(), off in any::<u64>(), total in any::<u64>(),
                               bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let locator: Vec<Id> = ids.iter().map(|b| Id(*b)).collect();
            let st = Status { genesis: Id([1; 32]), tip: Id([2; 32]), height: off, total_work: total as u128 * 3 };
            for m in [SyncRequest::Blocks { locator, max_blocks: max }, SyncRequest::Status(st.clone())] {
                let mut buf = Vec::new();
                block_on(write_frame(&mut buf, &m, SYNC_REQUEST_BYTES_MAX)).unwrap();
                prop_assert_eq!(block_on(read_frame::<_, SyncRequest>(&mut &buf[..], SYNC_REQUEST_BYTES_MAX)).unwrap(), m);
            }
            for m in [BlobResponse::Chunk { total, bytes: bytes.clone() }, BlobResponse::NotFound, BlobResponse::Busy] {
                let mut buf = Vec::new();
                block_on(write_frame(&mut buf, &m, BLOB_RESPONSE_BYTES_MAX)).unwrap();
                prop_assert_eq!(block_on(read_frame::<_, BlobResponse>(&mut &buf[..], BLOB_RESPONSE_BYTES_MAX)).unwrap(), m);
            }
            let r = BlobRequest { sha256: [9; 32], offset: off, len: max };
            let mut buf = Vec::new();
            block_on(write_frame(&mut buf, &r, BLOB_REQUEST_BYTES_MAX)).unwrap();
            prop_assert_eq!(block_on(read_frame::<_, BlobRequest>(&mut &buf[..], BLOB_REQUEST_BYTES_MAX)).unwrap(), r);
        }
    }
}
