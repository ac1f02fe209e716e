//! Transaction and block execution, header validation, block templates and
//! mining. Pure functions: time and thread counts come in as arguments.

use crate::block::{empty_receipts_root, tx_root, Block, BlockHeader, BLOCK_VERSION};
use crate::consensus::{block_reward, median_time_ms, next_difficulty, pow_ok, TimedHeader};
pub use crate::context::TxCtx;
pub use crate::error::{BlockError, TxError};
use crate::params::ChainParams;
use crate::sigcache::SigCache;
use crate::state::{
    handle_key, reverse_handle_key, totals_key, Changes, Overlay, State, StateRead,
};
use crate::tx::{handle_is_valid, SignedTx, TxPayload};
use tb_primitives::{encode, signing_bytes, verify_strict_parallel, Address, Domain, Id, Token};

/// Checks that need no state: selector, memo, size and handle syntax.
pub fn check_stateless(tx: &SignedTx, params: &ChainParams) -> Result<(), TxError> {
    if tx.payload.selector().is_none() {
        return Err(TxError::InvalidSelector(tx.payload.fee_selector()));
    }
    match &tx.payload {
        TxPayload::Transfer(t) => {
            if t.memo.len() > params.memo_bytes_max {
                return Err(TxError::MemoTooLarge {
                    len: t.memo.len(),
                    max: params.memo_bytes_max,
                });
            }
        }
        TxPayload::RegisterHandle(h) => {
            if !handle_is_valid(&h.handle) {
                return Err(TxError::InvalidHandle(h.handle.clone()));
            }
        }
        TxPayload::Propose(p) => crate::governance::check_body(&p.body)?,
        TxPayload::Vote(_) => {}
        other => crate::market::exec::check_stateless(&params.market, other)?,
    }
    let len = tx.encoded_len();
    // A published chunk may be larger than other transactions.
    let max = match tx.payload {
        TxPayload::PublishBlob(_) => params.tx_decode_bytes_max(),
        _ => params.tx_bytes_max,
    };
    if len > max {
        return Err(TxError::TxTooLarge { len, max });
    }
    Ok(())
}

/// Fees collected by a block, per token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fees {
    pub consumer: u64,
    pub industrial: u64,
}

/// Applies one transaction to the overlay. On error the overlay is unchanged.
/// The signature is not checked here (it is checked in bulk).
pub fn apply_tx(
    ov: &mut Overlay<'_>,
    tx: &SignedTx,
    fees: &mut Fees,
    ctx: &TxCtx<'_>,
) -> Result<(), TxError> {
    let p = &tx.payload;
    let from = p.from();
    let mut acc = ov.account(&from);
    if p.nonce() != acc.nonce {
        return Err(TxError::BadNonce {
            expected: acc.nonce,
            got: p.nonce(),
        });
    }
    let sel = p
        .selector()
        .ok_or(TxError::InvalidSelector(p.fee_selector()))?;
    let (need_c, need_i) = p.spend().ok_or(TxError::BalanceOverflow)?;
    if acc.consumer < need_c {
        return Err(TxError::InsufficientBalance {
            token: Token::Consumer,
            need: need_c,
            have: acc.consumer,
        });
    }
    if acc.industrial < need_i {
        return Err(TxError::InsufficientBalance {
            token: Token::Industrial,
            need: need_i,
            have: acc.industrial,
        });
    }
    let (fee_c, fee_i) = sel.split(p.fee());
    let new_fees = Fees {
        consumer: fees
            .consumer
            .checked_add(fee_c)
            .ok_or(TxError::BalanceOverflow)?,
        industrial: fees
            .industrial
            .checked_add(fee_i)
            .ok_or(TxError::BalanceOverflow)?,
    };
    acc.consumer -= need_c;
    acc.industrial -= need_i;
    acc.nonce += 1;
    match p {
        TxPayload::Transfer(t) => {
            let credit = |mut a: crate::state::Account| -> Result<_, TxError> {
                a.consumer = a
                    .consumer
                    .checked_add(t.amount_consumer)
                    .ok_or(TxError::BalanceOverflow)?;
                a.industrial = a
                    .industrial
                    .checked_add(t.amount_industrial)
                    .ok_or(TxError::BalanceOverflow)?;
                Ok(a)
            };
            if t.to == from {
                let acc = credit(acc)?;
                ov.set_account(&from, &acc);
            } else {
                let to = credit(ov.account(&t.to))?;
                ov.set_account(&from, &acc);
                ov.set_account(&t.to, &to);
            }
        }
        TxPayload::RegisterHandle(h) => {
            if !handle_is_valid(&h.handle) {
                return Err(TxError::InvalidHandle(h.handle.clone()));
            }
            if ov.handle_owner(&h.handle).is_some() {
                return Err(TxError::HandleTaken(h.handle.clone()));
            }
            if ov.handle_of(&from).is_some() {
                return Err(TxError::AddressHasHandle);
            }
            ov.put(handle_key(&h.handle), &from);
            ov.put(reverse_handle_key(&from), &h.handle);
            ov.set_account(&from, &acc);
        }
        TxPayload::Propose(_) | TxPayload::Vote(_) => {
            crate::governance::apply_tx(ov, ctx.params, ctx.height, tx, acc)?
        }
        _ => crate::market::exec::apply_tx(ov, ctx, tx, acc)?,
    }
    *fees = new_fees;
    Ok(())
}

/// Credits the coinbase and the unburned fees to the beneficiary and adds the
/// burned part to the running totals.
fn settle_block(
    ov: &mut Overlay<'_>,
    params: &ChainParams,
    header: &BlockHeader,
    fees: Fees,
) -> Result<(), BlockError> {
    let burn_c = (fees.consumer as u128 * params.fee_burn_bps as u128 / 10_000) as u64;
    let burn_i = (fees.industrial as u128 * params.fee_burn_bps as u128 / 10_000) as u64;
    // The AI Compute Fund's treasury shares of the issuance and the fees.
    let (fund_c, fund_i) =
        crate::market::exec::treasury_shares(params, header, (fees.consumer, fees.industrial));
    // The beneficiary's balance of one token: + coinbase + fees − burn − the fund's share.
    let credit = |have: u64, coinbase: u64, fees: u64, burn: u64, fund: u64| {
        have.checked_add(coinbase)
            .and_then(|v| v.checked_add(fees - burn))
            .and_then(|v| v.checked_sub(fund))
            .ok_or(BlockError::CoinbaseOverflow)
    };
    let mut b = ov.account(&header.beneficiary);
    b.consumer = credit(
        b.consumer,
        header.coinbase_consumer,
        fees.consumer,
        burn_c,
        fund_c,
    )?;
    b.industrial = credit(
        b.industrial,
        header.coinbase_industrial,
        fees.industrial,
        burn_i,
        fund_i,
    )?;
    ov.set_account(&header.beneficiary, &b);
    crate::market::exec::pay_treasury(ov, (fund_c, fund_i));
    if burn_c > 0 || burn_i > 0 {
        let mut t = ov.totals();
        t.burned_consumer = t
            .burned_consumer
            .checked_add(burn_c)
            .ok_or(BlockError::CoinbaseOverflow)?;
        t.burned_industrial = t
            .burned_industrial
            .checked_add(burn_i)
            .ok_or(BlockError::CoinbaseOverflow)?;
        ov.put(totals_key(), &t);
    }
    crate::governance::end_block(ov, params, header.height);
    crate::market::exec::end_block(ov, params, header);
    Ok(())
}

/// Checks a header against its parent and ancestors (`ancestors` ends at the
/// parent and holds up to `retarget_window + 1` entries) and the local clock.
pub fn validate_header(
    params: &ChainParams,
    header: &BlockHeader,
    parent: &BlockHeader,
    ancestors: &[TimedHeader],
    now_ms: u64,
) -> Result<(), BlockError> {
    if header.version != BLOCK_VERSION {
        return Err(BlockError::BadVersion(header.version));
    }
    if header.parent != parent.id() {
        return Err(BlockError::UnknownParent(header.parent));
    }
    if header.height != parent.height + 1 {
        return Err(BlockError::BadHeight {
            parent: parent.height,
            got: header.height,
        });
    }
    let recent: Vec<u64> = ancestors
        .iter()
        .rev()
        .take(params.median_time_window)
        .map(|h| h.timestamp_ms)
        .collect();
    let median = median_time_ms(&recent);
    if header.timestamp_ms <= median {
        return Err(BlockError::TimestampTooOld {
            median,
            got: header.timestamp_ms,
        });
    }
    if header.timestamp_ms > now_ms.saturating_add(params.future_drift_ms_max) {
        return Err(BlockError::TimestampInFuture {
            now: now_ms,
            got: header.timestamp_ms,
        });
    }
    let expected = next_difficulty(params, ancestors);
    if header.difficulty != expected {
        return Err(BlockError::BadDifficulty {
            expected,
            got: header.difficulty,
        });
    }
    if !pow_ok(&header.id(), header.difficulty) {
        return Err(BlockError::InsufficientWork);
    }
    for (token, expected, got) in [
        (
            Token::Consumer,
            block_reward(&params.emission_consumer, header.height),
            header.coinbase_consumer,
        ),
        (
            Token::Industrial,
            block_reward(&params.emission_industrial, header.height),
            header.coinbase_industrial,
        ),
    ] {
        if expected != got {
            return Err(BlockError::BadCoinbase {
                token,
                expected,
                got,
            });
        }
    }
    Ok(())
}

/// What executing a block does to the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEffects {
    /// Writes, sorted by key.
    pub changes: Changes,
    /// The writes that restore the parent state.
    pub undo: Changes,
    pub fees: Fees,
}

/// Validates a block's body against `state` (the parent's state) and, if it is
/// valid, **applies it**: on `Ok` the state is the block's post-state, on `Err`
/// it is exactly as it was. Checks limits, roots, every signature (strict, on
/// up to `verify_threads` threads, overlapped with execution), every
/// transaction in order, and the state root.
///
/// When several things are wrong the error is deterministic: the lowest
/// transaction index wins, and a bad signature wins over an execution error at
/// the same index.
///
/// `params` are the genesis parameters; the whole block runs under
/// `governance::effective_params` of the parent state (the market parameters
/// governance has made active).
pub fn execute_block(
    params: &ChainParams,
    state: &mut State,
    block: &Block,
    verify_threads: usize,
) -> Result<BlockEffects, BlockError> {
    execute_block_with(params, state, block, verify_threads, None)
}

/// [`execute_block`], skipping the signature check of each transaction whose id
/// `cache` holds (checked strictly before, by the mempool or an earlier block): the
/// same answer, once. The rest are checked as always.
pub fn execute_block_with(
    params: &ChainParams,
    state: &mut State,
    block: &Block,
    verify_threads: usize,
    cache: Option<&SigCache>,
) -> Result<BlockEffects, BlockError> {
    let effective = crate::governance::effective_params(state, params);
    let params = &effective;
    let h = &block.header;
    if block.txs.len() > params.block_tx_count_max {
        return Err(BlockError::TooManyTxs {
            got: block.txs.len(),
            max: params.block_tx_count_max,
        });
    }
    let mut bytes = 0usize;
    let mut payloads = Vec::with_capacity(block.txs.len());
    for (index, tx) in block.txs.iter().enumerate() {
        check_stateless(tx, params).map_err(|error| BlockError::Tx { index, error })?;
        let enc = encode(&tx.payload);
        bytes += enc.len() + 64;
        payloads.push(signing_bytes(Domain::Transaction, params.chain_id, &enc));
    }
    if bytes > params.block_bytes_max {
        return Err(BlockError::TooLarge {
            got: bytes,
            max: params.block_bytes_max,
        });
    }
    if tx_root(&block.txs) != h.tx_root {
        return Err(BlockError::BadTxRoot);
    }
    if empty_receipts_root() != h.receipts_root {
        return Err(BlockError::BadReceiptsRoot);
    }
    // The transactions whose signatures are checked here (by index), and theirs.
    let unchecked: Vec<usize> = match cache {
        None => (0..block.txs.len()).collect(),
        Some(c) => (0..block.txs.len())
            .filter(|&i| !c.contains(params.chain_id, &block.txs[i].id()))
            .collect(),
    };
    let items: Vec<(Address, &[u8], tb_primitives::Signature)> = unchecked
        .iter()
        .map(|&i| {
            let tx = &block.txs[i];
            (tx.payload.from(), payloads[i].as_slice(), tx.signature)
        })
        .collect();

    // Signatures on their own threads while this thread executes.
    let base: &State = state;
    let execute = || -> Result<(Changes, Changes, Fees), BlockError> {
        let mut ov = Overlay::new(base);
        let mut fees = Fees::default();
        for (index, tx) in block.txs.iter().enumerate() {
            let ctx = TxCtx {
                params,
                height: h.height,
                timestamp_ms: h.timestamp_ms,
            };
            apply_tx(&mut ov, tx, &mut fees, &ctx)
                .map_err(|error| BlockError::Tx { index, error })?;
        }
        settle_block(&mut ov, params, h, fees)?;
        let (changes, undo) = ov.finish();
        Ok((changes, undo, fees))
    };
    let (sigs, exec) = if items.len() >= 64 {
        std::thread::scope(|sc| {
            let v = sc.spawn(|| verify_strict_parallel(&items, verify_threads));
            let exec = execute();
            (v.join().expect("signature thread does not panic"), exec)
        })
    } else {
        (verify_strict_parallel(&items, 1), execute())
    };
    // The failing signature's index in the block.
    let sigs = sigs.map_err(|k| unchecked[k]);
    let (changes, undo, fees) = match (sigs, exec) {
        (Ok(()), Ok(x)) => x,
        (Err(i), Err(BlockError::Tx { index, error })) if index < i => {
            return Err(BlockError::Tx { index, error })
        }
        (Err(index), _) => {
            return Err(BlockError::Tx {
                index,
                error: TxError::BadSignature,
            })
        }
        (Ok(()), Err(e)) => return Err(e),
    };
    state.apply(&changes);
    let root = state.root();
    if root != h.state_root {
        state.apply(&undo);
        return Err(BlockError::BadStateRoot {
            expected: h.state_root,
            got: root,
        });
    }
    Ok(BlockEffects {
        changes,
        undo,
        fees,
    })
}

/// A block template: the first transactions of `candidates` (in the order
/// given) that apply cleanly and fit the limits, on top of `parent`.
/// The header's nonce is 0: call [`mine`] to seal it. Like [`execute_block`], it
/// runs under `governance::effective_params` of `state`.
#[allow(clippy::too_many_arguments)]
pub fn build_block<'a>(
    params: &ChainParams,
    state: &mut State,
    parent: &BlockHeader,
    ancestors: &[TimedHeader],
    candidates: impl IntoIterator<Item = &'a SignedTx>,
    now_ms: u64,
    beneficiary: Address,
) -> Block {
    build_block_with(
        params,
        state,
        parent,
        ancestors,
        candidates,
        now_ms,
        beneficiary,
        None,
    )
}

/// [`build_block`], skipping the signature check of candidates whose id `cache`
/// holds (see [`execute_block_with`]).
#[allow(clippy::too_many_arguments)]
pub fn build_block_with<'a>(
    params: &ChainParams,
    state: &mut State,
    parent: &BlockHeader,
    ancestors: &[TimedHeader],
    candidates: impl IntoIterator<Item = &'a SignedTx>,
    now_ms: u64,
    beneficiary: Address,
    cache: Option<&SigCache>,
) -> Block {
    let effective = crate::governance::effective_params(state, params);
    let params = &effective;
    let recent: Vec<u64> = ancestors
        .iter()
        .rev()
        .take(params.median_time_window)
        .map(|h| h.timestamp_ms)
        .collect();
    let timestamp_ms = now_ms.max(median_time_ms(&recent) + 1);
    let height = parent.height + 1;
    let mut header = BlockHeader {
        version: BLOCK_VERSION,
        height,
        parent: parent.id(),
        timestamp_ms,
        difficulty: next_difficulty(params, ancestors),
        nonce: 0,
        tx_root: Id::ZERO,
        state_root: Id::ZERO,
        receipts_root: empty_receipts_root(),
        coinbase_consumer: block_reward(&params.emission_consumer, height),
        coinbase_industrial: block_reward(&params.emission_industrial, height),
        beneficiary,
    };
    let mut ov = Overlay::new(state);
    let mut fees = Fees::default();
    let mut txs = Vec::new();
    let mut bytes = 0usize;
    for tx in candidates {
        if txs.len() == params.block_tx_count_max {
            break;
        }
        let len = tx.encoded_len();
        if bytes + len > params.block_bytes_max {
            continue;
        }
        if check_stateless(tx, params).is_err() {
            continue;
        }
        let known = cache.is_some_and(|c| c.contains(params.chain_id, &tx.id()));
        if !known && !tx.verify_signature(params.chain_id) {
            continue;
        }
        let ctx = TxCtx {
            params,
            height,
            timestamp_ms,
        };
        if apply_tx(&mut ov, tx, &mut fees, &ctx).is_ok() {
            bytes += len;
            txs.push(tx.clone());
        }
    }
    if settle_block(&mut ov, params, &header, fees).is_err() {
        // Only a beneficiary at u64::MAX gets here: mine an empty block.
        return build_block(params, state, parent, ancestors, [], now_ms, beneficiary);
    }
    let (changes, undo) = ov.finish();
    state.apply(&changes);
    header.state_root = state.root();
    state.apply(&undo);
    header.tx_root = tx_root(&txs);
    Block { header, txs }
}

/// Searches nonces from `start` for at most `tries` attempts; returns the
/// sealed header if one meets the difficulty.
pub fn mine(header: &BlockHeader, start: u64, tries: u64) -> Option<BlockHeader> {
    let mut h = header.clone();
    for i in 0..tries {
        h.nonce = start.wrapping_add(i);
        if pow_ok(&h.id(), h.difficulty) {
            return Some(h);
        }
    }
    None
}
