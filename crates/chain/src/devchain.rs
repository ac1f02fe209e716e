//! A tiny in-memory chain for tests, benchmarks and demos: funded genesis accounts,
//! blocks built with [`build_block`], sealed with [`mine`] at devnet difficulty and
//! executed with [`execute_block`], one second apart; minted supply tracked so
//! conservation can be checked after any block. Pure like the rest of the crate: the
//! timestamps are the parent's plus one second.

use crate::block::{genesis_header, BlockHeader};
use crate::execute::{build_block, execute_block, mine};
use crate::state::{account_key, Account, State, StateRead};
use crate::{ChainParams, SignedTx, TxPayload};
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
        let ancestors: Vec<crate::consensus::TimedHeader> = self
            .headers
            .iter()
            .rev()
            .take(self.params.retarget_window as usize + 1)
            .rev()
            .map(|h| crate::consensus::TimedHeader {
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

/// `p` signed by `k` for `chain`'s network.
pub fn sign(p: TxPayload, k: &SecretKey, chain: &Chain) -> SignedTx {
    SignedTx::sign(p, k, chain.params.chain_id)
}

/// `p` with nonce `n`.
pub fn with_nonce(mut p: TxPayload, n: u64) -> TxPayload {
    *p.nonce_mut() = n;
    p
}

impl Chain {
    /// `payloads` signed by `key` with consecutive nonces from its account's.
    pub fn signed(&self, key: &SecretKey, payloads: Vec<TxPayload>) -> Vec<SignedTx> {
        let n0 = self.state.account(&key.address()).nonce;
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| sign(with_nonce(p, n0 + i as u64), key, self))
            .collect()
    }
}

/// A provider's registration (CPU fabric, model class 0, any kernel, `max_leases`) and
/// stake of `stake` micro-tokens, as payloads (nonces 0: `Chain::signed` sets them).
pub fn provider_payloads(from: Address, max_leases: u32, stake: u64) -> Vec<TxPayload> {
    use crate::builders as b;
    use crate::tx::FeeSelector::Industrial;
    vec![
        b::register_provider(from, b::cpu_caps(max_leases), Industrial),
        b::stake(from, stake, Industrial),
    ]
}

/// The `PublishBlob` payloads that publish `bytes` from `from`, unless the object is
/// already available (nonces 0: `Chain::signed` sets them).
pub fn publish(chain: &Chain, from: Address, bytes: &[u8]) -> Vec<TxPayload> {
    publish_on(&chain.state, &chain.params, from, bytes)
}

/// [`publish`] against any state (a store's, a simulated node's).
pub fn publish_on<S: StateRead + ?Sized>(
    state: &S,
    params: &ChainParams,
    from: Address,
    bytes: &[u8],
) -> Vec<TxPayload> {
    let id = tb_primitives::sha256_digest(bytes).0;
    if crate::market::records::object(state, &id).is_some() {
        return vec![];
    }
    crate::market::objects::publish_payloads(&params.market, from, bytes)
        .into_iter()
        .map(TxPayload::PublishBlob)
        .collect()
}

/// `from`'s bonded challenge `c` of task `t` as payloads: the job blob and the evidence
/// bundle published first unless available (or, for the bundle, `withhold`), then the
/// `Challenge` naming them with the minimum bond.
pub fn challenge_payloads(
    chain: &Chain,
    from: Address,
    job_blob: &[u8],
    t: tb_primitives::Id,
    c: &tb_job::Challenge,
    withhold: bool,
) -> Vec<TxPayload> {
    challenge_payloads_on(&chain.state, &chain.params, from, job_blob, t, c, withhold)
}

/// [`challenge_payloads`] against any state (a store's, a simulated node's).
pub fn challenge_payloads_on<S: StateRead + ?Sized>(
    state: &S,
    params: &ChainParams,
    from: Address,
    job_blob: &[u8],
    t: tb_primitives::Id,
    c: &tb_job::Challenge,
    withhold: bool,
) -> Vec<TxPayload> {
    let bundle = c
        .bundle
        .encode()
        .expect("a bundle built by build_challenge encodes");
    let mut out = publish_on(state, params, from, job_blob);
    if !withhold {
        out.extend(publish_on(state, params, from, &bundle));
    }
    let mut tx = crate::market::dispute::challenge_tx(
        from,
        t,
        c,
        &bundle,
        params.market.challenge_bond_micro,
        crate::tx::FeeSelector::Industrial,
    );
    tx.fee = 10;
    out.push(TxPayload::Challenge(Box::new(tx)));
    out
}
