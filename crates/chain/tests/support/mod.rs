//! A tiny chain driver for the market tests: funded genesis accounts, blocks built
//! with `build_block` and executed with `execute_block`, minted supply tracked.
#![allow(dead_code)]

use tb_chain::block::{genesis_header, BlockHeader};
use tb_chain::execute::{build_block, execute_block, mine};
use tb_chain::state::{account_key, Account, State};
use tb_chain::{ChainParams, SignedTx, TxPayload};
use tb_primitives::{encode, Address, SecretKey};

/// A tiny chain driver: the state, the headers, and blocks built and executed.
pub struct Chain {
    pub params: ChainParams,
    pub state: State,
    pub headers: Vec<BlockHeader>,
    pub minted: (u128, u128),
    pub miner: Address,
}

impl Chain {
    pub fn new(params: ChainParams, funded: &[(Address, u64)]) -> Chain {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = funded
            .iter()
            .map(|(a, v)| {
                (
                    account_key(a),
                    encode(&Account {
                        nonce: 0,
                        consumer: *v,
                        industrial: *v,
                    }),
                )
            })
            .collect();
        let minted = funded.iter().fold((0u128, 0u128), |m, (_, v)| {
            (m.0 + *v as u128, m.1 + *v as u128)
        });
        let state = State::from_entries(entries);
        let mut st = state.clone();
        let mut g = genesis_header(&params);
        g.state_root = st.root();
        Chain {
            params,
            state,
            headers: vec![g],
            minted,
            miner: SecretKey::dev("miner").address(),
        }
    }

    pub fn height(&self) -> u64 {
        self.headers.len() as u64 - 1
    }

    /// Builds a block from `txs` (skipping what does not apply), executes it.
    pub fn step(&mut self, txs: &[SignedTx]) -> Vec<SignedTx> {
        let parent = self.headers.last().cloned().expect("genesis");
        let ancestors: Vec<tb_chain::consensus::TimedHeader> = self
            .headers
            .iter()
            .rev()
            .take(self.params.retarget_window as usize + 1)
            .rev()
            .map(|h| tb_chain::consensus::TimedHeader {
                timestamp_ms: h.timestamp_ms,
                difficulty: h.difficulty,
            })
            .collect();
        let now = parent.timestamp_ms + 1_000;
        let mut block = build_block(
            &self.params,
            &mut self.state,
            &parent,
            &ancestors,
            txs,
            now,
            self.miner,
        );
        block.header = mine(&block.header, 0, 1_000_000).expect("devnet difficulty is tiny");
        execute_block(&self.params, &mut self.state, &block, 1).expect("a built block executes");
        self.minted.0 += block.header.coinbase_consumer as u128;
        self.minted.1 += block.header.coinbase_industrial as u128;
        self.headers.push(block.header.clone());
        block.txs
    }
}

pub fn sign(p: TxPayload, k: &SecretKey, chain: &Chain) -> SignedTx {
    SignedTx::sign(p, k, chain.params.chain_id)
}
