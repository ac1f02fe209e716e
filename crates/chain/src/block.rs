//! Blocks and headers.

use crate::params::ChainParams;
use crate::tx::SignedTx;
use borsh::{BorshDeserialize, BorshSerialize};
use tb_primitives::{blake3_id, decode, encode, merkle_root, Address, DecodeError, Id};

/// The only header version this code produces and accepts.
pub const BLOCK_VERSION: u32 = 1;

/// Merkle domain of the transaction root.
pub const TX_ROOT_DOMAIN: &[u8] = b"TB/tx-root/v1";
/// Merkle domain of the receipts root (filled by the compute market).
pub const RECEIPTS_ROOT_DOMAIN: &[u8] = b"TB/receipts-root/v1";

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockHeader {
    pub version: u32,
    pub height: u64,
    pub parent: Id,
    /// Milliseconds since the Unix epoch, as claimed by the miner.
    pub timestamp_ms: u64,
    /// Expected number of hashes to find this block; its work.
    pub difficulty: u64,
    pub nonce: u64,
    pub tx_root: Id,
    /// Root of the state after this block.
    pub state_root: Id,
    pub receipts_root: Id,
    /// Newly minted consumer micro-units (the emission of this height).
    pub coinbase_consumer: u64,
    /// Newly minted industrial micro-units.
    pub coinbase_industrial: u64,
    /// Who receives the coinbase and the unburned fees.
    pub beneficiary: Address,
}

impl BlockHeader {
    /// The block id: BLAKE3 of the canonical header. Also the PoW hash.
    pub fn id(&self) -> Id {
        blake3_id(b"TB/header/v1", &encode(self))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<SignedTx>,
}

/// Fixed upper bound on a header's encoded size.
pub const HEADER_BYTES_MAX: usize = 512;

impl Block {
    pub fn id(&self) -> Id {
        self.header.id()
    }

    /// Decodes a block, refusing anything larger than the limits allow.
    pub fn decode(bytes: &[u8], params: &ChainParams) -> Result<Block, DecodeError> {
        decode(bytes, block_encoded_bytes_max(params))
    }
}

/// The largest encoded block: header, length prefix and the body limit.
pub fn block_encoded_bytes_max(params: &ChainParams) -> usize {
    HEADER_BYTES_MAX + 4 + params.block_bytes_max
}

/// Merkle root of the transaction ids, in block order.
pub fn tx_root(txs: &[SignedTx]) -> Id {
    let ids: Vec<[u8; 32]> = txs.iter().map(|t| t.id().0).collect();
    merkle_root(TX_ROOT_DOMAIN, &ids)
}

/// Receipts root of a block with no compute receipts.
pub fn empty_receipts_root() -> Id {
    merkle_root(RECEIPTS_ROOT_DOMAIN, &[])
}

/// The genesis header of a network: fixed by its parameters, no premine.
pub fn genesis_header(params: &ChainParams) -> BlockHeader {
    BlockHeader {
        version: BLOCK_VERSION,
        height: 0,
        parent: Id::ZERO,
        timestamp_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
        difficulty: params.difficulty_initial,
        nonce: params.chain_id,
        tx_root: tx_root(&[]),
        state_root: Id::ZERO,
        receipts_root: empty_receipts_root(),
        coinbase_consumer: 0,
        coinbase_industrial: 0,
        beneficiary: Address::default(),
    }
}

pub fn genesis_block(params: &ChainParams) -> Block {
    Block {
        header: genesis_header(params),
        txs: Vec::new(),
    }
}
