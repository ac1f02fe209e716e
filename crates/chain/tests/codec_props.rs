//! Property tests for the consensus codecs.
//!
//! * every consensus type survives `encode → decode` unchanged, and every byte
//!   string a decoder accepts is the canonical encoding of what it decoded
//!   (`encode(decode(b)?) == b`);
//! * no decoder panics on random bytes or on mutated valid encodings (flipped,
//!   overwritten, inserted, removed, truncated, appended bytes);
//! * `Block::decode` and `SignedTx::decode` refuse oversize input with
//!   `DecodeError::TooLarge` before reading it.
//!
//! `fuzz_decode_tx` and `fuzz_decode_block` are `tb_chain::fuzzing`'s bodies
//! of the cargo-fuzz targets in `fuzz/fuzz_targets/`, so the targets' logic
//! also runs on stable in `cargo test`.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use std::fmt::Debug;
use tb_chain::block::{block_encoded_bytes_max, tx_root, HEADER_BYTES_MAX};
use tb_chain::state::{Account, Totals, STATE_VALUE_BYTES_MAX};
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{
    Heartbeat, JobSpec, ParamChange, ProposalBody, ProposalMode, Propose, ProviderCaps,
    RegisterProvider, StakeChange, SubmitJob, Vote,
};
use tb_chain::{Block, BlockHeader, ChainParams, RegisterHandle, SignedTx, Transfer, TxPayload};
use tb_primitives::mutation::{arb_mutation, mutate};
use tb_primitives::{
    decode, encode, merkle_proof, merkle_root, merkle_verify, Address, DecodeError, Id,
    MerkleProof, SecretKey, Signature,
};

/// Limit used for the small standalone records (accounts, totals, proofs).
const RECORD_BYTES_MAX: usize = 64 * 1024;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// The fuzz target bodies live in `tb_chain::fuzzing`; these tests run them on stable.
use tb_chain::fuzzing::{
    decode_block as fuzz_decode_block, decode_trie_node as fuzz_decode_trie_node,
    decode_tx as fuzz_decode_tx,
};

// ---------------------------------------------------------------------------
// Strategies.

fn arb_id() -> impl Strategy<Value = Id> {
    any::<[u8; 32]>().prop_map(Id)
}

fn arb_address() -> impl Strategy<Value = Address> {
    any::<[u8; 32]>().prop_map(Address)
}

fn arb_signature() -> impl Strategy<Value = Signature> {
    any::<[u8; 64]>().prop_map(Signature)
}

/// Mostly small numbers, sometimes anything (boundaries matter for varints,
/// and borsh has none: this checks that too).
fn arb_u64() -> impl Strategy<Value = u64> {
    prop_oneof![0..1_000u64, any::<u64>(), Just(u64::MAX)]
}

/// Valid handles, arbitrary Unicode, and empty strings.
fn arb_handle() -> impl Strategy<Value = String> {
    prop_oneof!["@[a-z][a-z0-9_]{2,30}", "\\PC{0,40}", Just(String::new()),]
}

fn arb_transfer() -> impl Strategy<Value = Transfer> {
    (
        arb_address(),
        arb_address(),
        arb_u64(),
        arb_u64(),
        arb_u64(),
        any::<u8>(),
        arb_u64(),
        vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |(from, to, amount_consumer, amount_industrial, fee, fee_selector, nonce, memo)| {
                Transfer {
                    from,
                    to,
                    amount_consumer,
                    amount_industrial,
                    fee,
                    fee_selector,
                    nonce,
                    memo,
                }
            },
        )
}

fn arb_register_handle() -> impl Strategy<Value = RegisterHandle> {
    (
        arb_address(),
        arb_handle(),
        arb_u64(),
        any::<u8>(),
        arb_u64(),
    )
        .prop_map(|(from, handle, fee, fee_selector, nonce)| RegisterHandle {
            from,
            handle,
            fee,
            fee_selector,
            nonce,
        })
}

fn arb_stake() -> impl Strategy<Value = StakeChange> {
    (
        arb_address(),
        any::<u64>(),
        any::<u64>(),
        0..4u8,
        any::<u64>(),
    )
        .prop_map(|(from, amount, fee, fee_selector, nonce)| StakeChange {
            from,
            amount,
            fee,
            fee_selector,
            nonce,
        })
}

fn arb_job_spec() -> impl Strategy<Value = JobSpec> {
    (
        (
            any::<u32>(),
            proptest::collection::vec(any::<u32>(), 0..4),
            proptest::option::of((any::<[u8; 32]>(), any::<u64>())),
        ),
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<u16>(),
        any::<u8>(),
        proptest::option::of(any::<u16>()),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(
            |(
                (n_ops, outputs, model_object),
                blob_sha256,
                blob_bytes,
                flops,
                kernel_digest,
                model,
                lane,
                region,
                max_price,
                redundancy,
                deadline,
            )| JobSpec {
                blob_sha256,
                blob_bytes,
                flops,
                kernel_digest,
                model,
                lane,
                region,
                max_price,
                redundancy,
                deadline,
                n_ops,
                outputs,
                model_object: model_object
                    .map(|(sha256, bytes)| tb_chain::tx::ModelSpec { sha256, bytes }),
            },
        )
}

fn arb_market_payload() -> impl Strategy<Value = TxPayload> {
    prop_oneof![
        arb_stake().prop_map(TxPayload::Stake),
        arb_stake().prop_map(TxPayload::Unstake),
        (arb_address(), any::<u64>(), 0..4u8, any::<u64>()).prop_map(
            |(from, fee, fee_selector, nonce)| {
                TxPayload::Heartbeat(Heartbeat {
                    from,
                    fee,
                    fee_selector,
                    nonce,
                })
            }
        ),
        (
            arb_address(),
            arb_job_spec(),
            any::<u64>(),
            0..4u8,
            any::<u64>()
        )
            .prop_map(
                |(from, spec, fee, fee_selector, nonce)| TxPayload::SubmitJob(SubmitJob {
                    from,
                    spec,
                    fee,
                    fee_selector,
                    nonce
                })
            ),
        (
            arb_address(),
            proptest::collection::vec("[a-z]{1,8}", 0..3),
            proptest::collection::vec(any::<[u8; 32]>(), 0..3),
            proptest::collection::vec(any::<u16>(), 0..4),
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
        )
            .prop_map(
                |(from, fabrics, kernel_digests, models, region, max_leases, fee)| {
                    TxPayload::RegisterProvider(RegisterProvider {
                        from,
                        caps: ProviderCaps {
                            fabrics,
                            kernel_digests,
                            models,
                            region,
                            max_leases,
                        },
                        fee,
                        fee_selector: FeeSelector::Industrial.into(),
                        nonce: 0,
                    })
                }
            ),
        (
            arb_address(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<u64>(),
        )
            .prop_map(|(from, object, total_bytes, index, bytes, fee)| {
                TxPayload::PublishBlob(tb_chain::tx::PublishBlob {
                    from,
                    object,
                    total_bytes,
                    index,
                    bytes,
                    fee,
                    fee_selector: FeeSelector::Industrial.into(),
                    nonce: 0,
                })
            }),
        (
            arb_address(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<u64>()
        )
            .prop_map(|(from, t, seal, fee)| {
                TxPayload::SealReceipt(tb_chain::tx::SealReceipt {
                    from,
                    task_id: tb_primitives::Id(t),
                    seal,
                    result_bytes: fee / 3,
                    fee,
                    fee_selector: FeeSelector::Industrial.into(),
                    nonce: 0,
                })
            }),
        (
            arb_address(),
            any::<[u8; 32]>(),
            any::<u32>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..5),
            any::<u64>(),
        )
            .prop_map(|(from, t, op, sib, bond)| {
                TxPayload::Challenge(Box::new(tb_chain::tx::Challenge {
                    from,
                    task_id: tb_primitives::Id(t),
                    op,
                    leaf: t,
                    proof: tb_primitives::MerkleProof {
                        index: op as u64,
                        leaf_count: op as u64 + 1,
                        siblings: sib.into_iter().map(tb_primitives::Id).collect(),
                    },
                    bundle: t,
                    bundle_bytes: op as u64,
                    bond,
                    fee: 1,
                    fee_selector: FeeSelector::Industrial.into(),
                    nonce: 0,
                }))
            }),
        (arb_address(), any::<[u8; 32]>()).prop_map(|(from, t)| {
            TxPayload::ReportMalformed(tb_chain::tx::ReportMalformed {
                from,
                task_id: tb_primitives::Id(t),
                fee: 1,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })
        }),
        (arb_address(), any::<[u8; 32]>(), any::<u32>()).prop_map(|(from, t, dispute)| {
            TxPayload::SupplyEvidence(tb_chain::tx::SupplyEvidence {
                from,
                task_id: tb_primitives::Id(t),
                dispute,
                bundle: t,
                bundle_bytes: dispute as u64,
                fee: 1,
                fee_selector: FeeSelector::Industrial.into(),
                nonce: 0,
            })
        }),
    ]
}

fn arb_proposal_body() -> impl Strategy<Value = ProposalBody> {
    (
        proptest::collection::vec(
            (
                prop_oneof![
                    proptest::sample::select(tb_chain::market::MarketParams::GOVERNABLE)
                        .prop_map(String::from),
                    "[a-z_.]{0,60}",
                ],
                any::<u64>(),
            )
                .prop_map(|(name, value)| ParamChange { name, value }),
            0..10,
        ),
        prop_oneof![
            Just(ProposalMode::Shadow),
            any::<u64>().prop_map(|activate_at| ProposalMode::Apply { activate_at }),
            (any::<u64>(), any::<u64>()).prop_map(|(proposal, activate_at)| {
                ProposalMode::Rollback {
                    proposal,
                    activate_at,
                }
            }),
        ],
    )
        .prop_map(|(changes, mode)| ProposalBody { changes, mode })
}

fn arb_governance_payload() -> impl Strategy<Value = TxPayload> {
    prop_oneof![
        (
            arb_address(),
            arb_proposal_body(),
            any::<u64>(),
            0..4u8,
            any::<u64>()
        )
            .prop_map(|(from, body, fee, fee_selector, nonce)| TxPayload::Propose(
                Propose {
                    from,
                    body,
                    fee,
                    fee_selector,
                    nonce,
                }
            )),
        (
            arb_address(),
            any::<u64>(),
            any::<bool>(),
            any::<u64>(),
            0..4u8,
            any::<u64>()
        )
            .prop_map(|(from, proposal, approve, fee, fee_selector, nonce)| {
                TxPayload::Vote(Vote {
                    from,
                    proposal,
                    approve,
                    fee,
                    fee_selector,
                    nonce,
                })
            }),
    ]
}

fn arb_payload() -> impl Strategy<Value = TxPayload> {
    prop_oneof![
        arb_transfer().prop_map(TxPayload::Transfer),
        arb_register_handle().prop_map(TxPayload::RegisterHandle),
        arb_market_payload(),
        arb_governance_payload(),
    ]
}

/// Random payloads with either a random signature or a real one by a dev key
/// (the codec does not care, but the fuzz bodies verify signatures).
fn arb_signed_tx() -> impl Strategy<Value = SignedTx> {
    prop_oneof![
        (arb_payload(), arb_signature())
            .prop_map(|(payload, signature)| SignedTx { payload, signature }),
        (arb_payload(), 0..3u8).prop_map(|(mut payload, k)| {
            let key = SecretKey::dev(&format!("k{k}"));
            *payload.from_mut() = key.address();
            SignedTx::sign(payload, &key, ChainParams::mainnet().chain_id)
        }),
    ]
}

fn arb_header() -> impl Strategy<Value = BlockHeader> {
    (
        (
            any::<u32>(),
            arb_u64(),
            arb_id(),
            arb_u64(),
            arb_u64(),
            arb_u64(),
        ),
        (
            arb_id(),
            arb_id(),
            arb_id(),
            arb_u64(),
            arb_u64(),
            arb_address(),
        ),
    )
        .prop_map(
            |(
                (version, height, parent, timestamp_ms, difficulty, nonce),
                (
                    tx_root,
                    state_root,
                    receipts_root,
                    coinbase_consumer,
                    coinbase_industrial,
                    beneficiary,
                ),
            )| BlockHeader {
                version,
                height,
                parent,
                timestamp_ms,
                difficulty,
                nonce,
                tx_root,
                state_root,
                receipts_root,
                coinbase_consumer,
                coinbase_industrial,
                beneficiary,
            },
        )
}

fn arb_block() -> impl Strategy<Value = Block> {
    (arb_header(), vec(arb_signed_tx(), 0..6)).prop_map(|(header, txs)| Block { header, txs })
}

fn arb_account() -> impl Strategy<Value = Account> {
    (arb_u64(), arb_u64(), arb_u64()).prop_map(|(nonce, consumer, industrial)| Account {
        nonce,
        consumer,
        industrial,
    })
}

fn arb_totals() -> impl Strategy<Value = Totals> {
    (arb_u64(), arb_u64()).prop_map(|(burned_consumer, burned_industrial)| Totals {
        burned_consumer,
        burned_industrial,
    })
}

fn arb_merkle_proof() -> impl Strategy<Value = MerkleProof> {
    prop_oneof![
        // Arbitrary (mostly invalid) proofs.
        (arb_u64(), arb_u64(), vec(arb_id(), 0..40)).prop_map(|(index, leaf_count, siblings)| {
            MerkleProof {
                index,
                leaf_count,
                siblings,
            }
        }),
        // Real proofs of random trees.
        (vec(any::<[u8; 32]>(), 1..40), any::<Index>()).prop_map(|(leaves, i)| {
            merkle_proof(b"TB/test/v1", &leaves, i.index(leaves.len())).expect("index is in range")
        }),
    ]
}

// ---------------------------------------------------------------------------
// Checks.

/// `decode(encode(v)) == v` and the bytes come back unchanged.
fn check_round_trip<T>(v: &T, max: usize)
where
    T: borsh::BorshSerialize + borsh::BorshDeserialize + PartialEq + Debug,
{
    let bytes = encode(v);
    let back: T = decode(&bytes, max).expect("a value's own encoding decodes");
    assert_eq!(&back, v);
    assert_eq!(encode(&back), bytes);
}

/// Decodes `bytes` as `T`; if it is accepted, it must be canonical.
fn check_canonical<T>(bytes: &[u8], max: usize) -> Option<T>
where
    T: borsh::BorshSerialize + borsh::BorshDeserialize + PartialEq + Debug,
{
    let v: T = decode(bytes, max).ok()?;
    assert_eq!(
        encode(&v),
        bytes,
        "accepted a non-canonical spelling of {v:?}"
    );
    Some(v)
}

/// Every decoder over the same bytes: none may panic, each accepted value
/// must be canonical.
fn decode_everything(bytes: &[u8]) {
    let params = ChainParams::mainnet();
    fuzz_decode_tx(bytes);
    fuzz_decode_block(bytes);
    fuzz_decode_trie_node(bytes);
    check_canonical::<BlockHeader>(bytes, HEADER_BYTES_MAX);
    check_canonical::<TxPayload>(bytes, params.tx_bytes_max);
    check_canonical::<Account>(bytes, STATE_VALUE_BYTES_MAX);
    check_canonical::<Totals>(bytes, STATE_VALUE_BYTES_MAX);
    check_canonical::<MerkleProof>(bytes, RECORD_BYTES_MAX);
    check_canonical::<Address>(bytes, STATE_VALUE_BYTES_MAX);
    check_canonical::<String>(bytes, STATE_VALUE_BYTES_MAX);
}

// ---------------------------------------------------------------------------
// Round trips.

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn signed_tx_round_trips(tx in arb_signed_tx()) {
        let params = ChainParams::mainnet();
        let bytes = encode(&tx);
        prop_assert_eq!(bytes.len(), tx.encoded_len());
        if bytes.len() <= params.tx_bytes_max {
            let back = SignedTx::decode(&bytes, &params).expect("own encoding decodes");
            prop_assert_eq!(&back, &tx);
            prop_assert_eq!(encode(&back), bytes);
            prop_assert_eq!(back.id(), tx.id());
        } else {
            prop_assert!(
                matches!(
                    SignedTx::decode(&bytes, &params),
                    Err(DecodeError::TooLarge { .. })
                ),
                "TooLarge expected"
            );
        }
    }

    #[test]
    fn transfer_and_register_handle_round_trip(t in arb_transfer(), h in arb_register_handle(), sig in arb_signature()) {
        let params = ChainParams::mainnet();
        for payload in [TxPayload::Transfer(t.clone()), TxPayload::RegisterHandle(h.clone())] {
            check_round_trip(&payload, params.tx_bytes_max);
            check_round_trip(&SignedTx { payload, signature: sig }, params.tx_bytes_max);
        }
    }

    #[test]
    fn header_round_trips_at_a_fixed_size(h in arb_header()) {
        let bytes = encode(&h);
        // Every field is fixed-width, so every header has one size.
        prop_assert_eq!(bytes.len(), 212);
        prop_assert!(bytes.len() <= HEADER_BYTES_MAX);
        check_round_trip(&h, HEADER_BYTES_MAX);
    }

    #[test]
    fn block_round_trips(b in arb_block()) {
        let params = ChainParams::mainnet();
        let bytes = encode(&b);
        let back = Block::decode(&bytes, &params).expect("own encoding decodes");
        prop_assert_eq!(&back, &b);
        prop_assert_eq!(encode(&back), bytes);
        prop_assert_eq!(back.id(), b.id());
        prop_assert_eq!(tx_root(&back.txs), tx_root(&b.txs));
    }

    #[test]
    fn state_records_round_trip(a in arb_account(), t in arb_totals(), addr in arb_address(), handle in arb_handle()) {
        check_round_trip(&a, STATE_VALUE_BYTES_MAX);
        check_round_trip(&t, STATE_VALUE_BYTES_MAX);
        check_round_trip(&addr, STATE_VALUE_BYTES_MAX);
        check_round_trip(&handle, STATE_VALUE_BYTES_MAX);
    }

    #[test]
    fn merkle_proof_round_trips(p in arb_merkle_proof()) {
        check_round_trip(&p, RECORD_BYTES_MAX);
    }

    #[test]
    fn decoded_merkle_proof_still_verifies(leaves in vec(any::<[u8; 32]>(), 1..64), i in any::<Index>()) {
        let i = i.index(leaves.len());
        let root = merkle_root(b"TB/test/v1", &leaves);
        let p = merkle_proof(b"TB/test/v1", &leaves, i).expect("in range");
        let back: MerkleProof = decode(&encode(&p), RECORD_BYTES_MAX).expect("decodes");
        prop_assert!(merkle_verify(b"TB/test/v1", &root, &leaves[i], &back));
    }
}

// ---------------------------------------------------------------------------
// Garbage in: no panics, only canonical acceptances.

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..600)) {
        decode_everything(&bytes);
    }

    /// Random bytes behind a valid header prefix, so the block decoder gets
    /// past the header and into the transaction list.
    #[test]
    fn random_bodies_never_panic(h in arb_header(), body in vec(any::<u8>(), 0..400)) {
        let mut bytes = encode(&h);
        bytes.extend_from_slice(&body);
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_txs_never_panic(tx in arb_signed_tx(), ms in vec(arb_mutation(), 1..4)) {
        let mut bytes = encode(&tx);
        for m in &ms {
            mutate(&mut bytes, m);
        }
        fuzz_decode_tx(&bytes);
        check_canonical::<TxPayload>(&bytes, ChainParams::mainnet().tx_bytes_max);
    }

    #[test]
    fn mutated_blocks_never_panic(b in arb_block(), ms in vec(arb_mutation(), 1..4)) {
        let mut bytes = encode(&b);
        for m in &ms {
            mutate(&mut bytes, m);
        }
        fuzz_decode_block(&bytes);
        check_canonical::<BlockHeader>(&bytes, HEADER_BYTES_MAX);
    }

    #[test]
    fn mutated_records_never_panic(
        a in arb_account(),
        t in arb_totals(),
        p in arb_merkle_proof(),
        ms in vec(arb_mutation(), 1..4),
    ) {
        for mut bytes in [encode(&a), encode(&t), encode(&p)] {
            for m in &ms {
                mutate(&mut bytes, m);
            }
            check_canonical::<Account>(&bytes, STATE_VALUE_BYTES_MAX);
            check_canonical::<Totals>(&bytes, STATE_VALUE_BYTES_MAX);
            check_canonical::<MerkleProof>(&bytes, RECORD_BYTES_MAX);
        }
    }
}

// ---------------------------------------------------------------------------
// Size limits.

proptest! {
    #![proptest_config(config(256))]

    /// With a small body limit, a block decodes exactly when its encoding is
    /// within `block_encoded_bytes_max`, and is refused with `TooLarge`
    /// otherwise. A body within `block_bytes_max` always fits.
    #[test]
    fn block_decode_obeys_its_limit(b in arb_block(), body_max in 0..1_500usize) {
        let mut params = ChainParams::mainnet();
        params.block_bytes_max = body_max;
        let max = block_encoded_bytes_max(&params);
        let bytes = encode(&b);
        let body: usize = b.txs.iter().map(SignedTx::encoded_len).sum();
        match Block::decode(&bytes, &params) {
            Ok(back) => {
                prop_assert!(bytes.len() <= max);
                prop_assert_eq!(back, b);
            }
            Err(e) => {
                prop_assert!(bytes.len() > max, "refused a block within the limit: {e}");
                prop_assert_eq!(e, DecodeError::TooLarge { len: bytes.len(), max });
            }
        }
        if body <= params.block_bytes_max {
            prop_assert!(bytes.len() <= max);
        }
    }
}

#[test]
fn block_decode_refuses_one_byte_over_the_limit() {
    for params in [ChainParams::mainnet(), ChainParams::devnet()] {
        let max = block_encoded_bytes_max(&params);
        // Zeros would otherwise decode as a header and an empty tx list with
        // trailing bytes, so the length check must come first.
        let over = vec![0u8; max + 1];
        assert_eq!(
            Block::decode(&over, &params),
            Err(DecodeError::TooLarge { len: max + 1, max })
        );
        let at = vec![0u8; max];
        assert!(!matches!(
            Block::decode(&at, &params),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}

#[test]
fn valid_block_padded_past_the_limit_is_too_large() {
    let mut params = ChainParams::devnet();
    params.block_bytes_max = 1_000;
    let max = block_encoded_bytes_max(&params);
    let block = tb_chain::genesis_block(&params);
    let mut bytes = encode(&block);
    assert_eq!(Block::decode(&bytes, &params), Ok(block));
    bytes.resize(max + 1, 0);
    assert_eq!(
        Block::decode(&bytes, &params),
        Err(DecodeError::TooLarge { len: max + 1, max })
    );
}

#[test]
fn tx_decode_refuses_over_the_decode_limit_and_stateless_checks_over_tx_bytes_max() {
    let params = ChainParams::mainnet();
    let key = SecretKey::dev("k0");
    let transfer = |memo: usize| {
        SignedTx::sign(
            TxPayload::Transfer(Transfer {
                from: key.address(),
                to: SecretKey::dev("k1").address(),
                amount_consumer: 1,
                amount_industrial: 0,
                fee: 0,
                fee_selector: FeeSelector::Consumer.into(),
                nonce: 0,
                memo: vec![7; memo],
            }),
            &key,
            params.chain_id,
        )
    };
    // Above the decoder's limit (room for one published chunk): refused by decoding.
    let bytes = encode(&transfer(params.tx_decode_bytes_max()));
    assert_eq!(
        SignedTx::decode(&bytes, &params),
        Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: params.tx_decode_bytes_max()
        })
    );
    // Above tx_bytes_max but decodable: any kind but a published chunk is refused by
    // the stateless checks.
    let tx = transfer(params.tx_bytes_max);
    let bytes = encode(&tx);
    assert!(SignedTx::decode(&bytes, &params).is_ok());
    assert!(matches!(
        tb_chain::execute::check_stateless(&tx, &params),
        Err(tb_chain::TxError::TxTooLarge { .. }) | Err(tb_chain::TxError::MemoTooLarge { .. })
    ));
}

/// A length prefix far beyond the input must fail cleanly, not allocate.
#[test]
fn huge_length_prefixes_fail_cleanly() {
    let params = ChainParams::mainnet();
    let header = tb_chain::genesis_header(&params);
    let mut bytes = encode(&header);
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Block::decode(&bytes, &params),
        Err(DecodeError::Malformed(_))
    ));

    // A transfer whose memo claims u32::MAX bytes.
    let key = SecretKey::dev("k0");
    let tx = SignedTx::sign(
        TxPayload::Transfer(Transfer {
            from: key.address(),
            to: key.address(),
            amount_consumer: 0,
            amount_industrial: 0,
            fee: 0,
            fee_selector: FeeSelector::Consumer.into(),
            nonce: 0,
            memo: Vec::new(),
        }),
        &key,
        params.chain_id,
    );
    let mut bytes = encode(&tx);
    // variant tag (1) + from (32) + to (32) + 4 u64s + selector (1) + nonce (8)
    let memo_len_at = 1 + 32 + 32 + 8 * 3 + 1 + 8;
    assert_eq!(&bytes[memo_len_at..memo_len_at + 4], &[0, 0, 0, 0]);
    bytes[memo_len_at..memo_len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        SignedTx::decode(&bytes, &params),
        Err(DecodeError::Malformed(_))
    ));
}

/// Handcrafted non-canonical spellings are refused.
#[test]
fn non_canonical_spellings_are_refused() {
    let params = ChainParams::mainnet();
    let key = SecretKey::dev("k0");
    let tx = SignedTx::sign(
        TxPayload::RegisterHandle(RegisterHandle {
            from: key.address(),
            handle: "@alice".to_string(),
            fee: 1,
            fee_selector: FeeSelector::Consumer.into(),
            nonce: 0,
        }),
        &key,
        params.chain_id,
    );
    let good = encode(&tx);
    assert_eq!(SignedTx::decode(&good, &params), Ok(tx));

    // Unknown payload variant.
    let mut bad = good.clone();
    bad[0] = 2;
    assert!(matches!(
        SignedTx::decode(&bad, &params),
        Err(DecodeError::Malformed(_))
    ));

    // Invalid UTF-8 in the handle (0xff is never valid UTF-8).
    let mut bad = good.clone();
    let handle_at = 1 + 32 + 4;
    assert_eq!(bad[handle_at], b'@');
    bad[handle_at + 1] = 0xff;
    assert!(matches!(
        SignedTx::decode(&bad, &params),
        Err(DecodeError::Malformed(_))
    ));

    // Trailing byte.
    let mut bad = good.clone();
    bad.push(0);
    assert_eq!(
        SignedTx::decode(&bad, &params),
        Err(DecodeError::TrailingBytes(1))
    );
}

// ---------------------------------------------------------------------------
// Stored trie records (the store's `trie` table and `meta.trie_root`).

fn arb_child() -> impl Strategy<Value = tb_chain::trie::Child> {
    use tb_chain::trie::Child;
    prop_oneof![
        (any::<[u8; 32]>(), arb_id()).prop_map(|(key, hash)| Child::Leaf { key, hash }),
        (any::<[u8; 32]>(), any::<u16>(), arb_id()).prop_map(|(p, bit, hash)| {
            let mut pos = [0u8; 34];
            pos[..32].copy_from_slice(&p);
            pos[32..].copy_from_slice(&bit.to_be_bytes());
            Child::Inner { pos, hash }
        }),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn trie_records_round_trip_and_a_flipped_byte_decodes_canonically_or_not_at_all(
        l in arb_child(),
        r in arb_child(),
        at in any::<Index>(),
        flip in 1u8..=255,
    ) {
        use tb_chain::trie::{Child, InnerNode};
        let n = InnerNode { children: [l, r] };
        let b = n.encode();
        prop_assert_eq!(InnerNode::decode(&b), Some(n));
        prop_assert_eq!(Child::decode(&l.encode()), Some(l));
        let mut bad = b.to_vec();
        let i = at.index(bad.len());
        bad[i] ^= flip;
        fuzz_decode_trie_node(&bad);
        if let Some(m) = InnerNode::decode(&bad) {
            let again = m.encode();
            prop_assert_eq!(again.as_slice(), bad.as_slice());
            prop_assert_ne!(m, n);
        }
        prop_assert_eq!(InnerNode::decode(&b[..b.len() - 1]), None);
    }
}

/// `n` values of `s`, the same on every run (proptest's deterministic runner).
fn samples<S: Strategy>(s: S, n: usize) -> Vec<S::Value> {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..n)
        .map(|_| s.new_tree(&mut runner).expect("a value").current())
        .collect()
}

/// The seed corpora of `decode_tx`, `decode_block` and `decode_trie_node`
/// (`tb_primitives::seeds`): valid encodings of each kind, signed and not.
#[test]
fn fuzz_seeds() {
    let params = ChainParams::mainnet();
    let dir = env!("CARGO_MANIFEST_DIR");
    let txs: Vec<Vec<u8>> = samples(arb_signed_tx(), 12).iter().map(encode).collect();
    tb_primitives::seeds::check_seeds(dir, "decode_tx", &txs, |b| {
        SignedTx::decode(b, &params).is_ok()
    });
    let blocks: Vec<Vec<u8>> = samples(arb_block(), 4).iter().map(encode).collect();
    tb_primitives::seeds::check_seeds(dir, "decode_block", &blocks, |b| {
        Block::decode(b, &params).is_ok()
    });
    // A leaf reference, an inner-node reference and an inner node over both.
    use tb_chain::trie::{Child, InnerNode};
    let leaf = Child::Leaf {
        key: [7; 32],
        hash: tb_chain::trie::leaf_hash(&[7; 32], &Id([1; 32])),
    };
    let mut pos = [0u8; 34];
    pos[0] = 0x80;
    pos[33] = 1;
    let inner = Child::Inner {
        pos,
        hash: Id([9; 32]),
    };
    let node = InnerNode {
        children: [leaf, inner],
    };
    let trie = vec![
        leaf.encode().to_vec(),
        inner.encode().to_vec(),
        node.encode().to_vec(),
    ];
    tb_primitives::seeds::check_seeds(dir, "decode_trie_node", &trie, |b| {
        InnerNode::decode(b).is_some() || Child::decode(b).is_some()
    });
}
