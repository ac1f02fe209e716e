//! Read-only views of a node over its JSON-RPC: `chain info|block|tx`, `jobs list`,
//! `payouts`, `slashes`, `providers` and `net info`. Amounts print as tokens with six
//! decimals; `--json` prints the node's reply as is.

use crate::args::{Args, Spec};
use crate::job::{fields, table};
use crate::node_cmds::{emit, hex_id};
use crate::rpc_client::{
    hid, AicfClient, BlockRef, ChainClient, ComputeClient, NetClient, Reply as _,
};
use crate::wallet::tokens;
use crate::{CliError, Global, Outcome};
use serde_json::Value;

/// Runs `tb-cli CMD ARGS...` for the commands of this module.
pub fn dispatch(g: &Global, cmd: &str, args: &[String]) -> Result<Outcome, CliError> {
    let sub = args.first().map(String::as_str);
    let rest = args.get(1..).unwrap_or(&[]);
    match (cmd, sub) {
        ("chain", Some("info")) => crate::with_spec(g, &CHAIN_INFO, rest, chain_info),
        ("chain", Some("block")) => crate::with_spec(g, &CHAIN_BLOCK, rest, chain_block),
        ("chain", Some("tx")) => crate::with_spec(g, &CHAIN_TX, rest, chain_tx),
        ("jobs", Some("list")) => crate::with_spec(g, &JOBS_LIST, rest, jobs_list),
        ("net", Some("info")) => crate::with_spec(g, &NET_INFO, rest, net_info),
        ("payouts", _) => crate::with_spec(g, &PAYOUTS, args, payouts),
        ("slashes", _) => crate::with_spec(g, &SLASHES, args, slashes),
        ("providers", _) => crate::with_spec(g, &PROVIDERS, args, providers),
        (_, None | Some("-h" | "--help" | "help")) => Ok(Outcome::ok(format!(
            "usage: tb-cli chain info|block|tx ..., tb-cli jobs list, tb-cli net info\n\
             (try `tb-cli {cmd} SUBCOMMAND --help`)\n"
        ))),
        (_, Some(other)) => Err(CliError::usage(format!(
            "unknown {cmd} command {other:?} (try `tb-cli --help`)"
        ))),
    }
}

/// Every command of this module, for the completion tree.
pub(crate) const SPECS: &[&Spec] = &[
    &CHAIN_INFO,
    &CHAIN_BLOCK,
    &CHAIN_TX,
    &JOBS_LIST,
    &NET_INFO,
    &PAYOUTS,
    &SLASHES,
    &PROVIDERS,
];

const CHAIN_INFO: Spec = Spec {
    command: "chain info",
    usage: "\
usage: tb-cli chain info [--json]

Prints the node's chain: chain id, height, tip, genesis, total work, the mempool's fee
floor, whether it mines, and the market parameters in force at the tip.",
    flags: &["--json"],
    options: &[],
    positionals: &[],
};

fn chain_info(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let r = g.client()?.get("chain.info", ChainClient::info)?;
    let m = r.field("market")?;
    let text = || {
        fields(
            &[
                ("chain id", r.text_at("chain_id")),
                ("height", r.text_at("height")),
                ("tip", r.text_at("tip")),
                ("genesis", r.text_at("genesis")),
                ("total work", r.text_at("total_work")),
                ("state root", r.text_at("state_root")),
                (
                    "fee floor",
                    format!("{} tokens per byte", r.tokens_at("fee_floor_per_byte")),
                ),
                (
                    "block time",
                    format!("{} ms target", r.text_at("block_time_target_ms")),
                ),
                ("mining", r.text_at("mining")),
                ("epoch", format!("{} blocks", m.text_at("epoch_blocks"))),
                (
                    "challenge window",
                    format!("{} blocks", m.text_at("challenge_window_blocks")),
                ),
                ("min stake", m.tokens_at("min_stake_micro")),
                ("challenge bond", m.tokens_at("challenge_bond_micro")),
            ],
            "",
        )
    };
    Ok(emit(g, a, &r, text))
}

const CHAIN_BLOCK: Spec = Spec {
    command: "chain block",
    usage: "\
usage: tb-cli chain block HEIGHT|ID [--json]

Prints a block by height or id: its header and one line per transaction.",
    flags: &["--json"],
    options: &[],
    positionals: &["HEIGHT|ID"],
};

fn chain_block(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let given = &a.positionals[0];
    let block = match given.parse::<u64>() {
        Ok(h) => BlockRef::Height(h),
        Err(_) => BlockRef::Id(hid(&hex_id(given, "block id")?)?.0),
    };
    let Some(b) = g
        .client()?
        .find("chain.getBlock", |c| ChainClient::get_block(c, block))?
    else {
        return Err(CliError::fail(format!(
            "no block {given} on the node's chain"
        )));
    };
    let text = || {
        let mut out = fields(
            &[
                ("height", b.text_at("height")),
                ("id", b.text_at("id")),
                ("parent", b.text_at("parent")),
                ("timestamp ms", b.text_at("timestamp_ms")),
                ("difficulty", b.text_at("difficulty")),
                ("beneficiary", b.text_at("beneficiary")),
                ("state root", b.text_at("state_root")),
                ("transactions", b.text_at("txs")),
            ],
            "",
        );
        let rows: Vec<Vec<String>> = b
            .arr_at("transactions")
            .iter()
            .map(|t| {
                vec![
                    t.text_at("id"),
                    t.text_at("kind"),
                    t.text_at("from"),
                    t.tokens_at("fee"),
                ]
            })
            .collect();
        if !rows.is_empty() {
            out += &table(&rows, &[false, false, false, true], "  ");
        }
        out
    };
    Ok(emit(g, a, &b, text))
}

const CHAIN_TX: Spec = Spec {
    command: "chain tx",
    usage: "\
usage: tb-cli chain tx TXID [--json]

Prints a transaction, pending or included (as `tb-cli tx status`, with every field of
the transaction).",
    flags: &["--json"],
    options: &[],
    positionals: &["TXID"],
};

fn chain_tx(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let id = hex_id(&a.positionals[0], "TXID")?;
    let tx = hid(&id)?;
    let Some(r) = g
        .client()?
        .find("chain.getTx", |c| ChainClient::get_tx(c, tx))?
    else {
        return Err(CliError::fail(format!(
            "transaction {id} is neither pending on the node nor included"
        )));
    };
    let text = || {
        let mut rows = vec![("status", r.text_at("status"))];
        for k in ["height", "block", "index", "task_id"] {
            if r.get(k).is_some() {
                rows.push((k, r.text_at(k)));
            }
        }
        if let Some(Value::Object(tx)) = r.get("tx") {
            for (k, v) in tx {
                let v = match (k.as_str(), v) {
                    ("fee" | "amount_consumer" | "amount_industrial", Value::Number(n)) => {
                        n.as_u64().map_or(v.to_string(), tokens)
                    }
                    (_, Value::String(s)) => s.clone(),
                    _ => v.to_string(),
                };
                rows.push((k.as_str(), v));
            }
        }
        fields(&rows, "")
    };
    Ok(emit(g, a, &r, text))
}

const JOBS_LIST: Spec = Spec {
    command: "jobs list",
    usage: "\
usage: tb-cli jobs list [--state STATE] [--limit N] [--json]

Lists the jobs on chain, newest first (at most N, default 100, at most 1000), all of
them or those in STATE (Queued, Leased, Proven, Verified, Settled, Failed, Disputed,
Revealing).",
    flags: &["--json"],
    options: &[("--state", None), ("--limit", None)],
    positionals: &[],
};

fn jobs_list(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let limit: Option<u64> = a.parsed("--limit", "a number")?;
    let state = a.value("--state").map(str::to_string);
    let r = g.client()?.get("compute.listJobs", |c| {
        ComputeClient::list_jobs(c, state, limit, None)
    })?;
    let text = || {
        let rows: Vec<Vec<String>> = r
            .arr_at("jobs")
            .iter()
            .map(|j| {
                vec![
                    j.text_at("task_id"),
                    j.text_at("state"),
                    j.text_at("submitted"),
                    j.text_at("receipts"),
                    j.text_at("requester"),
                ]
            })
            .collect();
        let mut out = format!(
            "{} jobs{}\n",
            r.text_at("total"),
            a.value("--state")
                .map_or(String::new(), |s| format!(" in {s}"))
        );
        if !rows.is_empty() {
            let mut all = vec![["task", "state", "submitted", "receipts", "requester"]
                .map(String::from)
                .to_vec()];
            all.extend(rows);
            out += &table(&all, &[false, false, true, true], "");
        }
        out
    };
    Ok(emit(g, a, &r, text))
}

const PAYOUTS: Spec = Spec {
    command: "payouts",
    usage: "\
usage: tb-cli payouts EPOCH [--json]

Prints an epoch's settlement: the receipts paid, units, price, and each payout with
the provider's, the miner's and the fund's shares (tokens).",
    flags: &["--json"],
    options: &[],
    positionals: &["EPOCH"],
};

fn payouts(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let epoch: u64 = a.positionals[0]
        .parse()
        .map_err(|_| CliError::usage(format!("EPOCH {:?}: expected a number", a.positionals[0])))?;
    let r = g
        .client()?
        .get("aicf.payouts", |c| AicfClient::payouts(c, epoch))?;
    let text = || {
        let s = r.get("summary").filter(|s| !s.is_null());
        let mut out = match s {
            None => format!("epoch {epoch}: not settled (yet)\n"),
            Some(s) => fields(
                &[
                    ("epoch", epoch.to_string()),
                    ("receipts paid", s.text_at("paid")),
                    ("units (milli)", s.text_at("units_milli")),
                    ("price per unit", s.tokens_at("price_micro")),
                    ("carried", s.text_at("carried")),
                    ("slashes", s.text_at("slashes")),
                ],
                "",
            ),
        };
        let rows: Vec<Vec<String>> = r
            .arr_at("payouts")
            .iter()
            .map(|p| {
                vec![
                    p.text_at("task_id"),
                    p.text_at("provider"),
                    p.tokens_at("provider_micro"),
                    p.tokens_at("miner_micro"),
                    p.tokens_at("fund_micro"),
                ]
            })
            .collect();
        if !rows.is_empty() {
            let mut all = vec![["task", "provider", "provider", "miner", "fund"]
                .map(String::from)
                .to_vec()];
            all.extend(rows);
            out += &table(&all, &[false, false, true, true, true], "");
        }
        out
    };
    Ok(emit(g, a, &r, text))
}

const SLASHES: Spec = Spec {
    command: "slashes",
    usage: "\
usage: tb-cli slashes [--provider ADDRESS|@handle] [--json]

Lists the slashes on chain, newest first: provider, reason, task, amount (tokens) and
height; only one provider's with --provider.",
    flags: &["--json"],
    options: &[("--provider", None)],
    positionals: &[],
};

fn slashes(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let provider = a.value("--provider").map(str::to_string);
    let r = g
        .client()?
        .get("aicf.slashes", |c| AicfClient::slashes(c, provider))?;
    let text = || {
        let list = r.as_array().map_or(&[][..], Vec::as_slice);
        if list.is_empty() {
            return "no slashes\n".to_string();
        }
        let mut all = vec![["height", "provider", "reason", "amount", "task"]
            .map(String::from)
            .to_vec()];
        all.extend(list.iter().map(|s| {
            vec![
                s.text_at("height"),
                s.text_at("provider"),
                s.text_at("reason"),
                s.tokens_at("amount"),
                s.text_at("task_id"),
            ]
        }));
        table(&all, &[true, false, false, true], "")
    };
    Ok(emit(g, a, &r, text))
}

const PROVIDERS: Spec = Spec {
    command: "providers",
    usage: "\
usage: tb-cli providers [--json]

Lists the registered providers: address, stake (tokens), fabrics, leases held, receipts
accepted, leases missed and stake slashed.",
    flags: &["--json"],
    options: &[],
    positionals: &[],
};

fn providers(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let r = g
        .client()?
        .get("aicf.listProviders", AicfClient::list_providers)?;
    let text = || {
        let list = r.as_array().map_or(&[][..], Vec::as_slice);
        if list.is_empty() {
            return "no providers\n".to_string();
        }
        let mut all = vec![[
            "address", "stake", "fabrics", "leases", "receipts", "missed", "slashed",
        ]
        .map(String::from)
        .to_vec()];
        all.extend(list.iter().map(|p| {
            vec![
                p.text_at("address"),
                p.tokens_at("stake"),
                p.text_at("fabrics"),
                p.text_at("active_leases"),
                p.text_at("receipts"),
                p.text_at("missed_leases"),
                p.tokens_at("slashed"),
            ]
        }));
        table(&all, &[false, true, false, true, true, true, true], "")
    };
    Ok(emit(g, a, &r, text))
}

const NET_INFO: Spec = Spec {
    command: "net info",
    usage: "\
usage: tb-cli net info [--json]

Prints the node's peer-to-peer network: its peer id and addresses, its peers (address,
height, penalty points, agent), the banned peers and whom it syncs from.",
    flags: &["--json"],
    options: &[],
    positionals: &[],
};

fn net_info(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let r = g.client()?.get("net.info", NetClient::info)?;
    let text = || {
        if r.get("enabled") == Some(&Value::Bool(false)) {
            return "the node runs without the peer-to-peer network\n".to_string();
        }
        let listen: Vec<String> = r
            .arr_at("listen")
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
            .collect();
        let mut out = fields(
            &[
                ("peer id", r.text_at("peer_id")),
                ("listen", listen.join(", ")),
                ("peers", r.arr_at("peers").len().to_string()),
                ("banned", r.arr_at("banned").len().to_string()),
                ("syncing from", r.text_at("syncing_from")),
            ],
            "",
        );
        let rows: Vec<Vec<String>> = r
            .arr_at("peers")
            .iter()
            .map(|p| {
                vec![
                    p.text_at("peer_id"),
                    p.text_at("addr"),
                    p.text_at("height"),
                    p.text_at("points"),
                    p.text_at("agent"),
                ]
            })
            .collect();
        if !rows.is_empty() {
            out += &table(&rows, &[false, false, true, true], "  ");
        }
        out
    };
    Ok(emit(g, a, &r, text))
}
