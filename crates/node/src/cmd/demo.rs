//! The `demo` command: two nodes' stores on one devnet, real signatures, real
//! redb, a mempool, a fork and a reorg, and a supply audit from headers alone.

use std::path::PathBuf;
use tb_chain::mempool::{Mempool, MempoolConfig};
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{RegisterHandle, SignedTx, Transfer, TxPayload};
use tb_chain::{mine, Block, ChainParams, StateRead};
use tb_primitives::{Address, Amount, SecretKey};
use tb_store::{ChainDb, ImportOutcome};

type R<T> = Result<T, String>;

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

struct Node {
    name: &'static str,
    db: ChainDb,
    pool: Mempool,
    clock_ms: u64,
}

impl Node {
    fn open(name: &'static str, dir: &std::path::Path, params: &ChainParams) -> R<Node> {
        let db = ChainDb::open(dir.join(format!("{name}.redb")), params.clone()).map_err(s)?;
        let clock_ms = db.tip().timestamp_ms;
        Ok(Node {
            name,
            db,
            pool: Mempool::new(MempoolConfig::default(), params.clone()),
            clock_ms,
        })
    }

    /// Mines one block from the mempool on this node's tip.
    fn mine(&mut self, beneficiary: Address) -> R<Block> {
        self.clock_ms += 1_000;
        let params = self.db.params().clone();
        let picked = self
            .pool
            .select(params.block_tx_count_max, params.block_bytes_max);
        let mut b = self
            .db
            .build_template(picked.iter(), self.clock_ms, beneficiary)
            .map_err(s)?;
        b.header = mine(&b.header, 0, u64::MAX).ok_or("no nonce found")?;
        self.db.import_block(&b, self.clock_ms).map_err(s)?;
        self.pool.remove_included(&b.txs, self.db.state());
        Ok(b)
    }

    fn submit(&mut self, tx: SignedTx) -> R<()> {
        self.pool
            .admit(tx, self.db.state(), self.clock_ms)
            .map(|_| ())
            .map_err(|e| format!("{} (code {})", e, e.code()))
    }
}

fn transfer(
    params: &ChainParams,
    from: &SecretKey,
    to: Address,
    consumer: u64,
    industrial: u64,
    fee_selector: u8,
    nonce: u64,
) -> SignedTx {
    SignedTx::sign(
        TxPayload::Transfer(Transfer {
            from: from.address(),
            to,
            amount_consumer: consumer,
            amount_industrial: industrial,
            fee: 2_000,
            fee_selector,
            nonce,
            memo: b"demo".to_vec(),
        }),
        from,
        params.chain_id,
    )
}

fn balances(node: &Node, who: &[(&str, &SecretKey)]) {
    for (name, k) in who {
        let a = node.db.state().account(&k.address());
        println!(
            "    {name:<6} consumer {:>12}  industrial {:>12}  nonce {}",
            Amount(a.consumer).to_string(),
            Amount(a.industrial).to_string(),
            a.nonce
        );
    }
}

/// The demo; its data in `keep` when given, else in a temporary directory.
pub fn run(keep: Option<PathBuf>) -> R<()> {
    let tmp = tempfile::tempdir().map_err(s)?;
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).map_err(s)?;
    let params = ChainParams::devnet();
    let (alice, bob, carol) = (
        SecretKey::dev("alice"),
        SecretKey::dev("bob"),
        SecretKey::dev("carol"),
    );
    let who = [("alice", &alice), ("bob", &bob), ("carol", &carol)];

    println!(
        "The Block — chain kernel demo (devnet, chain id {})",
        params.chain_id
    );
    println!("  stores in {}", dir.display());
    println!("  alice = {}", alice.address());
    let mut a = Node::open("node-a", &dir, &params)?;
    let mut b = Node::open("node-b", &dir, &params)?;
    println!("  genesis {} (no premine)", a.db.tip_id());

    println!("\n1. Node A mines 3 blocks to alice; node B imports them.");
    for _ in 0..3 {
        let blk = a.mine(alice.address())?;
        b.clock_ms = blk.header.timestamp_ms;
        b.db.import_block(&blk, b.clock_ms).map_err(s)?;
        println!(
            "    height {} id {}… coinbase {} + {}",
            blk.header.height,
            &blk.id().to_hex()[..16],
            Amount(blk.header.coinbase_consumer),
            Amount(blk.header.coinbase_industrial)
        );
    }
    balances(&a, &who);

    println!("\n2. Alice pays bob with each fee selector; bob claims @bob.");
    a.submit(transfer(
        &params,
        &alice,
        bob.address(),
        10_000_000,
        0,
        0,
        0,
    ))?;
    a.submit(transfer(&params, &alice, bob.address(), 0, 5_000_000, 1, 1))?;
    a.submit(transfer(
        &params,
        &alice,
        carol.address(),
        1_000_000,
        1_000_000,
        2,
        2,
    ))?;
    println!("    mempool holds {} transactions", a.pool.len());
    println!("\n   Admission refuses bad transactions with stable codes:");
    for (what, tx) in [
        (
            "nonce gap",
            transfer(&params, &alice, bob.address(), 1, 0, 0, 9),
        ),
        (
            "already pending",
            transfer(&params, &alice, bob.address(), 0, 5_000_000, 1, 1),
        ),
        (
            "invalid selector",
            transfer(&params, &alice, bob.address(), 1, 0, 7, 3),
        ),
        (
            "overspend",
            transfer(&params, &alice, bob.address(), u64::MAX / 2, 0, 0, 3),
        ),
    ] {
        match a.submit(tx) {
            Err(e) => println!("    {what:<17} → rejected: {e}"),
            Ok(()) => return Err(format!("{what} was admitted")),
        }
    }
    let blk = a.mine(alice.address())?;
    println!(
        "    block {} includes {} transfers",
        blk.header.height,
        blk.txs.len()
    );
    b.db.import_block(&blk, blk.header.timestamp_ms)
        .map_err(s)?;
    b.clock_ms = blk.header.timestamp_ms;
    let reg = SignedTx::sign(
        TxPayload::RegisterHandle(RegisterHandle {
            from: bob.address(),
            handle: "@bob".into(),
            fee: 1_000,
            fee_selector: FeeSelector::Consumer.into(),
            nonce: 0,
        }),
        &bob,
        params.chain_id,
    );
    a.submit(reg)?;
    let blk = a.mine(alice.address())?;
    b.db.import_block(&blk, blk.header.timestamp_ms)
        .map_err(s)?;
    b.clock_ms = blk.header.timestamp_ms;
    let owner =
        a.db.state()
            .handle_owner("@bob")
            .ok_or("@bob not registered")?;
    println!("    @bob resolves to {}", owner);
    if owner != bob.address() {
        return Err("@bob resolves to the wrong address".into());
    }
    balances(&a, &who);

    println!("\n3. A fork: A mines 1 block paying carol, B mines 2 empty blocks to bob.");
    a.submit(transfer(
        &params,
        &alice,
        carol.address(),
        3_000_000,
        0,
        0,
        3,
    ))?;
    let a6 = a.mine(alice.address())?;
    let b6 = b.mine(bob.address())?;
    let b7 = b.mine(bob.address())?;
    println!(
        "    A tip {} height {}",
        &a.db.tip_id().to_hex()[..16],
        a.db.tip().height
    );
    println!(
        "    B tip {} height {}",
        &b.db.tip_id().to_hex()[..16],
        b.db.tip().height
    );
    for blk in [&b6, &b7] {
        let o = a.db.import_block(blk, blk.header.timestamp_ms).map_err(s)?;
        let what = match &o {
            ImportOutcome::Extended { height } => format!("Extended to height {height}"),
            ImportOutcome::Reorged {
                ancestor,
                undone,
                applied,
            } => format!(
                "Reorged onto B's chain (common ancestor {}…, {undone} block undone, {applied} applied)",
                &ancestor.to_hex()[..16]
            ),
            ImportOutcome::SideChain => "SideChain: stored, no more work than A's tip".into(),
            ImportOutcome::AlreadyKnown => "already known".into(),
        };
        println!("    A imports B's block {}: {what}", blk.header.height);
        if let ImportOutcome::Reorged { .. } = o {
            // Transactions of the abandoned block go back to the pool.
            a.pool.reinsert(&a6.txs, a.db.state(), a.clock_ms);
        }
    }
    if a.db.tip_id() != b.db.tip_id() {
        return Err("nodes did not converge".into());
    }
    println!(
        "    both nodes on {} (height {}), carol's payment is back in A's mempool ({} tx)",
        &a.db.tip_id().to_hex()[..16],
        a.db.tip().height,
        a.pool.len()
    );
    a.clock_ms = a.clock_ms.max(b.clock_ms);
    let blk = a.mine(alice.address())?;
    println!(
        "    A re-mines it in block {} ({} tx)",
        blk.header.height,
        blk.txs.len()
    );
    balances(&a, &who);

    println!("\n4. Audit: supply from headers alone, conservation, restart.");
    let (mut minted_c, mut minted_i) = (0u128, 0u128);
    for h in 0..=a.db.tip().height {
        let hd = a.db.block_at(h).map_err(s)?.ok_or("missing block")?.header;
        minted_c += hd.coinbase_consumer as u128;
        minted_i += hd.coinbase_industrial as u128;
    }
    let supply = tb_chain::market::audit::supply(a.db.state());
    let (bal_c, bal_i) = supply.balances;
    println!(
        "    minted   consumer {}  industrial {}",
        Amount(minted_c as u64),
        Amount(minted_i as u64)
    );
    println!(
        "    held     consumer {}  industrial {}",
        Amount(bal_c as u64),
        Amount(bal_i as u64)
    );
    println!(
        "    fund     consumer {}  industrial {}   (AI Compute Fund: 1.5 % of issuance, 2 % of fees)",
        Amount(supply.fund.0 as u64),
        Amount(supply.fund.1 as u64)
    );
    println!(
        "    burned   consumer {}  industrial {}",
        Amount(supply.burned.0 as u64),
        Amount(supply.burned.1 as u64)
    );
    if (minted_c, minted_i) != supply.total() {
        return Err("conservation does not hold".into());
    }
    println!("    conservation holds: minted = held + stakes + escrow + fund + burned");
    let tip = a.db.tip_id();
    let root = a.db.tip().state_root;
    drop(a);
    let a = Node::open("node-a", &dir, &params)?;
    if a.db.tip_id() != tip {
        return Err("tip changed across restart".into());
    }
    println!(
        "    reopened node A: tip {}…, state root {}… verified",
        &tip.to_hex()[..16],
        &root.to_hex()[..16]
    );
    println!(
        "\n5. The compute loop on a fresh devnet: Publish → Submit → Execute → Receipt → Result → Verify → Settle/Slash."
    );
    super::compute_demo::run()?;
    println!(
        "\nDemo finished: node A at {} blocks, {} state entries; the compute loop verified.",
        a.db.tip().height,
        a.db.state().len()
    );
    let _ = a.name;
    Ok(())
}
