//! The node commands that are not about compute jobs: `balance`, `tx`, `handle`,
//! `mine`, `provider` and `governor`. Each reads the node over JSON-RPC or builds a
//! transaction, signs it here ([`Signer`]) and sends it; `--json` prints the node's
//! reply (or the sent transaction's id) as one JSON object.

use crate::args::{Args, Spec};
use crate::job::{fields, table};
use crate::rpc_client::{
    hid, AccountClient, AdminClient, AicfClient, ChainClient, GovernorClient, Reply as _,
};
use crate::wallet::Via;
use crate::wallet::{load_key, resolve_account, tokens, tokens_arg, Signer};
use crate::{CliError, Global, Outcome};
use serde_json::{json, Value};
use tb_chain::governance::{check_body, GovernanceParams};
use tb_chain::market::MarketParams;
use tb_chain::tx::FeeSelector;
use tb_chain::tx::{
    ParamChange, ProposalBody, ProposalMode, Propose, ProviderCaps, RegisterHandle,
    RegisterProvider, StakeChange, Transfer, Vote, PROPOSAL_CHANGES_MAX,
};
use tb_chain::{ChainParams, TxPayload};

/// Default `--max-leases` of `provider register` (the node's provider default).
pub const MAX_LEASES_DEFAULT: u32 = 4;

/// Runs `tb-cli CMD ARGS...` for the commands of this module.
pub fn dispatch(g: &Global, cmd: &str, args: &[String]) -> Result<Outcome, CliError> {
    let sub = args.first().map(String::as_str);
    let rest = args.get(1..).unwrap_or(&[]);
    let help = |usage: &str| Ok(Outcome::ok(format!("{usage}\n")));
    match (cmd, sub) {
        ("balance", _) => crate::with_spec(g, &BALANCE, args, balance),
        ("tx", Some("send")) => crate::with_spec(g, &TX_SEND, rest, tx_send),
        ("tx", Some("status")) => crate::with_spec(g, &TX_STATUS, rest, tx_status),
        ("tx", None | Some("-h" | "--help" | "help")) => help(TX_USAGE),
        ("handle", Some("register")) => {
            crate::with_spec(g, &HANDLE_REGISTER, rest, handle_register)
        }
        ("handle", Some("resolve")) => crate::with_spec(g, &HANDLE_RESOLVE, rest, handle_resolve),
        ("handle", None | Some("-h" | "--help" | "help")) => help(HANDLE_USAGE),
        ("mine", _) => crate::with_spec(g, &MINE, args, mine),
        ("provider", Some("register")) => {
            crate::with_spec(g, &PROVIDER_REGISTER, rest, provider_register)
        }
        ("provider", Some("stake")) => crate::with_spec(g, &PROVIDER_STAKE, rest, provider_stake),
        ("provider", Some("unstake")) => {
            crate::with_spec(g, &PROVIDER_UNSTAKE, rest, provider_stake)
        }
        ("provider", Some("status")) => {
            crate::with_spec(g, &PROVIDER_STATUS, rest, provider_status)
        }
        ("provider", None | Some("-h" | "--help" | "help")) => help(PROVIDER_USAGE),
        ("governor", Some("status")) => {
            crate::with_spec(g, &GOVERNOR_STATUS, rest, governor_status)
        }
        ("governor", Some("intents")) => {
            crate::with_spec(g, &GOVERNOR_INTENTS, rest, governor_status)
        }
        ("governor", Some("propose")) => {
            crate::with_spec(g, &GOVERNOR_PROPOSE, rest, governor_propose)
        }
        ("governor", Some("vote")) => crate::with_spec(g, &GOVERNOR_VOTE, rest, governor_vote),
        ("governor", None | Some("-h" | "--help" | "help")) => help(GOVERNOR_USAGE),
        (_, Some(other)) => Err(CliError::usage(format!(
            "unknown {cmd} command {other:?} (try `tb-cli {cmd} --help`)"
        ))),
        (_, None) => Err(CliError::usage(format!("try `tb-cli {cmd} --help`"))),
    }
}

/// One JSON object per line, or the text.
/// A typed reply as the JSON `--json` prints.
pub fn to_json(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub fn emit(g: &Global, a: &Args, v: &Value, text: impl FnOnce() -> String) -> Outcome {
    if g.json(a) {
        Outcome::ok(format!("{v}\n"))
    } else {
        Outcome::ok(text())
    }
}

/// One field of what a transaction command prints: its text, and its JSON value.
type Field<'a> = (&'a str, String, Value);

/// Sends `p` through `s` `via` a node method and prints what a transaction command
/// prints: the id, the kind, the sender, and `extra`.
fn send(
    g: &Global,
    a: &Args,
    s: &mut Signer<'_>,
    via: Via,
    p: TxPayload,
    extra: Vec<Field<'_>>,
) -> Result<Outcome, CliError> {
    let kind = p.kind();
    let id = s.send(via, p)?;
    let from = s.address().to_string();
    let mut v = json!({"tx_id": id, "kind": kind, "from": from});
    for (k, _, x) in &extra {
        v[*k] = x.clone();
    }
    Ok(emit(g, a, &v, || {
        let mut rows = vec![("sent", format!("{kind} {id}")), ("from", from.clone())];
        rows.extend(extra.iter().map(|(k, x, _)| (*k, x.clone())));
        let mut out = fields(&rows, "");
        out += "admitted to the node's mempool; `tb-cli tx status ID` shows when it is included\n";
        out
    }))
}

fn fee_selector(a: &Args, name: &str, default: FeeSelector) -> Result<FeeSelector, CliError> {
    match a.value(name) {
        None => Ok(default),
        Some("consumer") => Ok(FeeSelector::Consumer),
        Some("industrial") => Ok(FeeSelector::Industrial),
        Some(other) => Err(CliError::usage(format!(
            "{name} {other:?}: expected consumer or industrial"
        ))),
    }
}

fn signer<'c>(
    g: &Global,
    a: &Args,
    client: &'c crate::rpc_client::Client,
) -> Result<Signer<'c>, CliError> {
    let key = load_key(g, a, a.required("--key")?)?;
    Signer::new(client, key)
}

// ---- balance ----------------------------------------------------------------------

/// Every node command, for the completion tree.
pub(crate) const SPECS: &[&Spec] = &[
    &BALANCE,
    &TX_SEND,
    &TX_STATUS,
    &HANDLE_REGISTER,
    &HANDLE_RESOLVE,
    &MINE,
    &PROVIDER_REGISTER,
    &PROVIDER_STAKE,
    &PROVIDER_UNSTAKE,
    &PROVIDER_STATUS,
    &GOVERNOR_STATUS,
    &GOVERNOR_INTENTS,
    &GOVERNOR_PROPOSE,
    &GOVERNOR_VOTE,
];

const BALANCE: Spec = Spec {
    command: "balance",
    usage: "\
usage: tb-cli balance ADDRESS|@handle|KEY [--json]

Prints an account's consumer and industrial balances, its handle, its provider stake
and its nonces (the last included, and the next a new transaction takes).",
    flags: &["--json"],
    options: &[],
    positionals: &["ADDRESS"],
};

fn balance(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let client = g.client()?;
    let addr = resolve_account(g, a, &client, &a.positionals[0])?;
    let b = client.get("balance", |c| AccountClient::balance(c, addr.to_string()))?;
    let text = || {
        fields(
            &[
                ("address", b.address.clone()),
                ("handle", b.handle.clone().unwrap_or_else(|| "-".into())),
                ("consumer", tokens(b.consumer)),
                ("industrial", tokens(b.industrial)),
                ("stake", b.stake.map_or("-".into(), tokens)),
                ("nonce", format!("{} (next {})", b.nonce, b.next_nonce)),
            ],
            "",
        )
    };
    Ok(emit(g, a, &to_json(&b), text))
}

// ---- tx -----------------------------------------------------------------------------

const TX_USAGE: &str = "\
usage: tb-cli tx COMMAND ...

commands:
  send     transfer tokens
  status   where a transaction is (pending, included, unknown)";

const TX_SEND: Spec = Spec {
    command: "tx send",
    usage: "\
usage: tb-cli tx send --key K --to ADDRESS|@handle --amount TOKENS
                      [--token consumer|industrial] [--memo S] [--json]

Transfers TOKENS (up to six decimals) of one token (default consumer) from key K's
account. The fee is paid in the same token, at the node's floor per byte.",
    flags: &["--json"],
    options: &[
        ("--key", None),
        ("--to", None),
        ("--amount", None),
        ("--token", None),
        ("--memo", None),
        ("--keys-dir", None),
    ],
    positionals: &[],
};

fn tx_send(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let amount = tokens_arg(a, "--amount")?
        .ok_or_else(|| CliError::usage("`tx send` needs --amount (try `tb-cli tx send --help`)"))?;
    if amount == 0 {
        return Err(CliError::usage("--amount must be more than 0"));
    }
    let selector = fee_selector(a, "--token", FeeSelector::Consumer)?;
    let memo = a.value("--memo").unwrap_or("").as_bytes().to_vec();
    let memo_max = ChainParams::mainnet().memo_bytes_max;
    if memo.len() > memo_max {
        return Err(CliError::usage(format!(
            "--memo is {} bytes, above the limit of {memo_max}",
            memo.len()
        )));
    }
    let to_arg = a.required("--to")?;
    let client = g.client()?;
    let to = resolve_account(g, a, &client, to_arg)?;
    let mut s = signer(g, a, &client)?;
    let (amount_consumer, amount_industrial) = if selector == FeeSelector::Consumer {
        (amount, 0)
    } else {
        (0, amount)
    };
    let p = TxPayload::Transfer(Transfer {
        from: s.address(),
        to,
        amount_consumer,
        amount_industrial,
        fee: 0,
        fee_selector: selector.into(),
        nonce: 0,
        memo,
    });
    let token = if selector == FeeSelector::Consumer {
        "consumer"
    } else {
        "industrial"
    };
    send(
        g,
        a,
        &mut s,
        Via::SubmitTx,
        p,
        vec![
            ("to", to.to_string(), json!(to.to_string())),
            (
                "amount",
                format!("{} {token}", tokens(amount)),
                json!(amount),
            ),
            ("token", token.into(), json!(token)),
        ],
    )
}

const TX_STATUS: Spec = Spec {
    command: "tx status",
    usage: "\
usage: tb-cli tx status TXID [--json]

Prints where a transaction is: pending in the node's mempool, or included (block,
height, index); a SubmitJob's task id once included.",
    flags: &["--json"],
    options: &[],
    positionals: &["TXID"],
};

fn tx_status(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let id = hex_id(&a.positionals[0], "TXID")?;
    let tx = hid(&id)?;
    let client = g.client()?;
    let Some(r) = client.find("chain.getTx", |c| ChainClient::get_tx(c, tx))? else {
        return Err(CliError::fail(format!(
            "transaction {id} is neither pending on the node nor included"
        )));
    };
    let tx = r.field("tx")?;
    let text = || {
        let mut rows = vec![
            ("status", r.text_at("status")),
            ("kind", tx.text_at("kind")),
            ("from", tx.text_at("from")),
            ("nonce", tx.text_at("nonce")),
            (
                "fee",
                tx.get("fee")
                    .and_then(Value::as_u64)
                    .map_or("-".into(), tokens),
            ),
        ];
        if r.get("height").is_some() {
            rows.push(("height", r.text_at("height")));
            rows.push(("block", r.text_at("block")));
        }
        if r.get("task_id").is_some() {
            rows.push(("task id", r.text_at("task_id")));
        }
        fields(&rows, "")
    };
    Ok(emit(g, a, &r, text))
}

/// A 64-hex-digit id, lower-cased.
pub fn hex_id(s: &str, what: &str) -> Result<String, CliError> {
    if s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(CliError::usage(format!(
            "{what} {s:?}: expected 64 hex digits"
        )))
    }
}

// ---- handle -------------------------------------------------------------------------

const HANDLE_USAGE: &str = "\
usage: tb-cli handle COMMAND ...

commands:
  register @NAME --key K   claim a handle for key K's account
  resolve @NAME            the address that holds a handle";

const HANDLE_REGISTER: Spec = Spec {
    command: "handle register",
    usage: "\
usage: tb-cli handle register @NAME --key K [--fee-token consumer|industrial] [--json]

Claims @NAME (@ then 3 to 31 of a-z 0-9 _, starting with a letter) for key K's
account; an account holds at most one handle. The fee is paid in consumer tokens
unless --fee-token says otherwise.",
    flags: &["--json"],
    options: &[("--key", None), ("--fee-token", None), ("--keys-dir", None)],
    positionals: &["@NAME"],
};

fn handle_register(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let h = &a.positionals[0];
    if !tb_chain::tx::handle_is_valid(h) {
        return Err(CliError::usage(format!(
            "{h:?} is not a handle: @ then 3 to 31 of a-z 0-9 _, starting with a letter"
        )));
    }
    let selector = fee_selector(a, "--fee-token", FeeSelector::Consumer)?;
    let client = g.client()?;
    let mut s = signer(g, a, &client)?;
    let p = TxPayload::RegisterHandle(RegisterHandle {
        from: s.address(),
        handle: h.clone(),
        fee: 0,
        fee_selector: selector.into(),
        nonce: 0,
    });
    send(
        g,
        a,
        &mut s,
        Via::RegisterHandle,
        p,
        vec![("handle", h.clone(), json!(h))],
    )
}

const HANDLE_RESOLVE: Spec = Spec {
    command: "handle resolve",
    usage: "\
usage: tb-cli handle resolve @NAME [--json]

Prints the address that holds @NAME; fails when no account holds it.",
    flags: &["--json"],
    options: &[],
    positionals: &["@NAME"],
};

fn handle_resolve(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let h = &a.positionals[0];
    let client = g.client()?;
    let addr = crate::wallet::resolve_handle(&client, h)?;
    let v = json!({"handle": h, "address": addr.to_string()});
    Ok(emit(g, a, &v, || format!("{addr}\n")))
}

// ---- mine ---------------------------------------------------------------------------

const MINE: Spec = Spec {
    command: "mine",
    usage: "\
usage: tb-cli mine start|stop [--json]

Starts or stops the node's miner (a node started with a key).",
    flags: &["--json"],
    options: &[],
    positionals: &["start|stop"],
};

fn mine(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let client = g.client()?;
    let r = match a.positionals[0].as_str() {
        "start" => client.get("start_mining", |c| AdminClient::start_mining(c, None))?,
        "stop" => client.get("stop_mining", AdminClient::stop_mining)?,
        other => {
            return Err(CliError::usage(format!(
                "mine {other:?}: expected start or stop"
            )))
        }
    };
    Ok(emit(g, a, &to_json(&r), || {
        format!(
            "the node is {}\n",
            if r.mining { "mining" } else { "not mining" }
        )
    }))
}

// ---- provider -----------------------------------------------------------------------

const PROVIDER_USAGE: &str = "\
usage: tb-cli provider COMMAND ...

commands:
  register --key K [--fabric cpu|cuda|wgpu] [--max-leases N]   register as a provider
  stake --key K --amount TOKENS                           bond industrial tokens
  unstake --key K --amount TOKENS                         start unbonding them
  status ADDRESS|KEY                                      a provider's record";

const PROVIDER_REGISTER: Spec = Spec {
    command: "provider register",
    usage: "\
usage: tb-cli provider register --key K [--fabric cpu|cuda|wgpu] [--max-leases N] [--json]

Registers key K's account as a compute provider (or updates its capabilities): the
fabric (default cpu), model class 0, region 0, and the leases it holds at once
(default 4). Bond a stake with `provider stake` before it is leased jobs. The node
that executes the jobs must run with this key (`the-block run --provider`).",
    flags: &["--json"],
    options: &[
        ("--key", None),
        ("--fabric", None),
        ("--max-leases", None),
        ("--keys-dir", None),
    ],
    positionals: &[],
};

fn provider_register(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let fabric = a.value("--fabric").unwrap_or("cpu");
    if !["cpu", "cuda", "wgpu"].contains(&fabric) {
        return Err(CliError::usage(format!(
            "--fabric {fabric:?}: expected cpu, cuda or wgpu"
        )));
    }
    let max_leases = a
        .parsed::<u32>("--max-leases", "a positive integer")?
        .unwrap_or(MAX_LEASES_DEFAULT);
    if max_leases == 0 {
        return Err(CliError::usage("--max-leases must be at least 1"));
    }
    let client = g.client()?;
    let mut s = signer(g, a, &client)?;
    let p = TxPayload::RegisterProvider(RegisterProvider {
        from: s.address(),
        caps: ProviderCaps {
            fabrics: vec![fabric.to_string()],
            kernel_digests: vec![],
            models: vec![0],
            region: 0,
            max_leases,
        },
        fee: 0,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    });
    send(
        g,
        a,
        &mut s,
        Via::SubmitTx,
        p,
        vec![
            ("fabric", fabric.into(), json!(fabric)),
            ("max_leases", max_leases.to_string(), json!(max_leases)),
        ],
    )
}

const PROVIDER_STAKE: Spec = Spec {
    command: "provider stake",
    usage: "\
usage: tb-cli provider stake --key K --amount TOKENS [--json]

Bonds TOKENS industrial tokens as key K's provider stake (the fee is paid in
industrial tokens too).",
    flags: &["--json"],
    options: &[("--key", None), ("--amount", None), ("--keys-dir", None)],
    positionals: &[],
};

const PROVIDER_UNSTAKE: Spec = Spec {
    command: "provider unstake",
    usage: "\
usage: tb-cli provider unstake --key K --amount TOKENS [--json]

Starts unbonding TOKENS of key K's provider stake; they return after the unbonding
period.",
    flags: &["--json"],
    options: &[("--key", None), ("--amount", None), ("--keys-dir", None)],
    positionals: &[],
};

fn provider_stake(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let unstake = a.command_name() == PROVIDER_UNSTAKE.command;
    let amount = tokens_arg(a, "--amount")?.ok_or_else(|| {
        CliError::usage(format!(
            "`{}` needs --amount (try `tb-cli {} --help`)",
            a.command_name(),
            a.command_name()
        ))
    })?;
    if amount == 0 {
        return Err(CliError::usage("--amount must be more than 0"));
    }
    let client = g.client()?;
    let mut s = signer(g, a, &client)?;
    let change = StakeChange {
        from: s.address(),
        amount,
        fee: 0,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    };
    let p = if unstake {
        TxPayload::Unstake(change)
    } else {
        TxPayload::Stake(change)
    };
    send(
        g,
        a,
        &mut s,
        Via::SubmitTx,
        p,
        vec![(
            "amount",
            format!("{} industrial", tokens(amount)),
            json!(amount),
        )],
    )
}

const PROVIDER_STATUS: Spec = Spec {
    command: "provider status",
    usage: "\
usage: tb-cli provider status ADDRESS|KEY [--json]

Prints a provider's record (aicf.getProvider): capabilities, stake, leases, receipts,
heartbeats, jail, balances and slashes.",
    flags: &["--json"],
    options: &[("--keys-dir", None)],
    positionals: &["ADDRESS"],
};

fn provider_status(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let client = g.client()?;
    let addr = resolve_account(g, a, &client, &a.positionals[0])?;
    let Some(p) = client.find("aicf.getProvider", |c| {
        AicfClient::get_provider(c, addr.to_string())
    })?
    else {
        return Err(CliError::fail(format!(
            "{addr} is not a registered provider"
        )));
    };
    let amount = |k: &str| p.get(k).and_then(Value::as_u64).map_or("-".into(), tokens);
    let list = |k: &str| {
        let items: Vec<String> = p
            .arr_at(k)
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        if items.is_empty() {
            "-".into()
        } else {
            items.join(", ")
        }
    };
    let text = || {
        let bal = p.get("balance").cloned().unwrap_or(Value::Null);
        let bal_of = |k: &str| {
            bal.get(k)
                .and_then(Value::as_u64)
                .map_or("-".into(), tokens)
        };
        let mut out = fields(
            &[
                ("address", p.text_at("address")),
                ("fabrics", list("fabrics")),
                ("models", list("models")),
                ("region", p.text_at("region")),
                ("max leases", p.text_at("max_leases")),
                ("stake", amount("stake")),
                ("unbonding", amount("unbonding")),
                ("registered at", p.text_at("registered_at")),
                ("last heartbeat", p.text_at("last_heartbeat")),
                ("jailed until", p.text_at("jailed_until")),
                ("active leases", p.text_at("active_leases")),
                ("missed leases", p.text_at("missed_leases")),
                ("receipts", p.text_at("receipts")),
                ("slashed", amount("slashed")),
                (
                    "balance",
                    format!(
                        "{} consumer, {} industrial",
                        bal_of("consumer"),
                        bal_of("industrial")
                    ),
                ),
            ],
            "",
        );
        let slashes = p.arr_at("slashes");
        if !slashes.is_empty() {
            out += &format!("slashes ({}):\n", slashes.len());
            let rows: Vec<Vec<String>> = slashes
                .iter()
                .map(|s| {
                    vec![
                        format!("height {}", s.text_at("height")),
                        s.text_at("reason"),
                        s.get("amount")
                            .and_then(Value::as_u64)
                            .map_or("-".into(), tokens),
                        format!("task {}", s.text_at("task_id")),
                    ]
                })
                .collect();
            out += &table(&rows, &[false, false, true], "  ");
        }
        out
    };
    Ok(emit(g, a, &p, text))
}

// ---- governor -----------------------------------------------------------------------

const GOVERNOR_USAGE: &str = "\
usage: tb-cli governor COMMAND ...

commands:
  status    the market parameters changed from genesis, and every proposal by state
  intents   the proposals in voting, scheduled and shadowing
  propose   propose a change of the governable market parameters
  vote      vote on a proposal in its voting period";

const GOVERNOR_STATUS: Spec = Spec {
    command: "governor status",
    usage: "\
usage: tb-cli governor status [--json]

Prints the market parameters that differ from genesis and the proposals: in voting
(with the current tally), scheduled, shadowing (with the shadow report), active, and
the recent history.",
    flags: &["--json"],
    options: &[],
    positionals: &[],
};

const GOVERNOR_INTENTS: Spec = Spec {
    command: "governor intents",
    usage: "\
usage: tb-cli governor intents [--json]

Prints the open proposals: in voting, scheduled and shadowing.",
    flags: &["--json"],
    options: &[],
    positionals: &[],
};

fn governor_status(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let intents = a.command_name() == GOVERNOR_INTENTS.command;
    let client = g.client()?;
    let r = if intents {
        client.get("governor.intents", GovernorClient::intents)?
    } else {
        client.get("governor.status", GovernorClient::status)?
    };
    let text = || {
        let mut out = String::new();
        if !intents {
            let changed = r.arr_at("changed");
            if changed.is_empty() {
                out += "market parameters: as at genesis\n";
            } else {
                out += "market parameters changed from genesis:\n";
                let rows: Vec<Vec<String>> = changed
                    .iter()
                    .map(|c| {
                        vec![
                            c.text_at("name"),
                            format!("{} (genesis {})", c.text_at("active"), c.text_at("genesis")),
                        ]
                    })
                    .collect();
                out += &table(&rows, &[], "  ");
            }
        }
        let sections: &[(&str, &str)] = if intents {
            &[
                ("voting", "voting"),
                ("scheduled", "scheduled"),
                ("shadowing", "shadowing"),
            ]
        } else {
            &[
                ("voting", "voting"),
                ("scheduled", "scheduled"),
                ("shadowing", "shadowing"),
                ("active", "active"),
                ("history", "history"),
            ]
        };
        for (key, title) in sections {
            let ps = r.arr_at(key);
            out += &format!(
                "{title}: {}\n",
                if ps.is_empty() {
                    "none".to_string()
                } else {
                    ps.len().to_string()
                }
            );
            for p in ps {
                out += &proposal_text(p);
            }
        }
        out
    };
    Ok(emit(g, a, &r, text))
}

fn tally_text(t: &Value) -> String {
    let n = |k: &str| t.get(k).and_then(Value::as_u64).unwrap_or(0);
    format!(
        "yes {} no {} of {} staked, {} voters",
        tokens(n("yes")),
        tokens(n("no")),
        tokens(n("total")),
        n("voters")
    )
}

fn proposal_text(p: &Value) -> String {
    let mut rows = vec![
        ("proposer", p.text_at("proposer")),
        ("body", p.text_at("body")),
        ("status", p.text_at("status")),
        ("created", p.text_at("created")),
        ("voting end", p.text_at("voting_end")),
    ];
    if let Some(t) = p.get("current_tally").filter(|t| t.is_object()) {
        rows.push(("tally now", tally_text(t)));
    }
    if let Some(t) = p.get("tally").filter(|t| t.is_object()) {
        rows.push(("tally", tally_text(t)));
    }
    if let Some(rep) = p.get("report").filter(|t| t.is_object()) {
        rows.push((
            "shadow report",
            format!(
                "{} receipts seen, {} would violate, {} would pass",
                rep.text_at("receipts_seen"),
                rep.text_at("would_violate"),
                rep.text_at("would_pass")
            ),
        ));
    }
    format!("  proposal {}\n{}", p.text_at("id"), fields(&rows, "    "))
}

const GOVERNOR_PROPOSE: Spec = Spec {
    command: "governor propose",
    usage: "\
usage: tb-cli governor propose --key K --apply NAME=VALUE[,NAME=VALUE...]
                               (--activation-delay N | --activate-at HEIGHT) [--json]
       tb-cli governor propose --key K --shadow NAME=VALUE[,NAME=VALUE...] [--json]
       tb-cli governor propose --key K --rollback PROPOSAL
                               (--activation-delay N | --activate-at HEIGHT) [--json]

Proposes a change of governable market parameters (MarketParams::GOVERNABLE; values
are integers in the parameter's unit, e.g. micro-tokens for *_micro; `_` separators
are allowed). Key K must be a staked provider with at least the minimum stake.
  --apply       applied at the end of the activation block if the vote passes
  --shadow      recorded and reported against live receipts, never applied
  --rollback    restores what an active or scheduled proposal replaced
The activation height is --activate-at, or --activation-delay blocks after the voting
period's end, counted as if the proposal lands in the next block (a proposal that
lands later activates sooner after its vote; allow a margin over the minimum delay).",
    flags: &["--json"],
    options: &[
        ("--key", None),
        ("--apply", None),
        ("--shadow", None),
        ("--rollback", None),
        ("--activation-delay", None),
        ("--activate-at", None),
        ("--keys-dir", None),
    ],
    positionals: &[],
};

/// Parses `NAME=VALUE[,NAME=VALUE...]`.
pub fn parse_changes(s: &str) -> Result<Vec<ParamChange>, String> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let Some((name, value)) = item.split_once('=') else {
            return Err(format!("{item:?}: expected NAME=VALUE"));
        };
        let name = name.trim();
        if !MarketParams::GOVERNABLE.contains(&name) {
            return Err(format!(
                "{name:?} is not a governable parameter (one of: {})",
                MarketParams::GOVERNABLE.join(", ")
            ));
        }
        let digits: String = value.trim().chars().filter(|c| *c != '_').collect();
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("{name}={value}: expected a non-negative integer"));
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| format!("{name}={value}: too large"))?;
        out.push(ParamChange {
            name: name.to_string(),
            value,
        });
    }
    if out.len() > PROPOSAL_CHANGES_MAX {
        return Err(format!(
            "{} changes; a proposal makes at most {PROPOSAL_CHANGES_MAX}",
            out.len()
        ));
    }
    Ok(out)
}

/// The governance rules of the network with `chain_id` (not governable, so the
/// genesis ones), when this build knows that network.
fn governance_of(chain_id: u64) -> Option<GovernanceParams> {
    [ChainParams::devnet(), ChainParams::mainnet()]
        .into_iter()
        .find(|p| p.chain_id == chain_id)
        .map(|p| p.governance)
}

fn governor_propose(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let modes = ["--apply", "--shadow", "--rollback"]
        .iter()
        .filter(|m| a.value(m).is_some())
        .count();
    if modes != 1 {
        return Err(CliError::usage(
            "`governor propose` needs exactly one of --apply, --shadow, --rollback (try `tb-cli governor propose --help`)",
        ));
    }
    let delay = a.parsed::<u64>("--activation-delay", "a number of blocks")?;
    let at = a.parsed::<u64>("--activate-at", "a height")?;
    let shadow = a.value("--shadow").is_some();
    match (shadow, delay.is_some(), at.is_some()) {
        (true, false, false) | (false, true, false) | (false, false, true) => {}
        (true, _, _) => {
            return Err(CliError::usage(
                "--shadow takes no activation: a shadow proposal is never applied",
            ))
        }
        (false, true, true) => {
            return Err(CliError::usage(
                "give --activation-delay or --activate-at, not both",
            ))
        }
        (false, false, false) => {
            return Err(CliError::usage(
                "--apply and --rollback need --activation-delay N or --activate-at HEIGHT",
            ))
        }
    }
    let changes = match a.value("--apply").or(a.value("--shadow")) {
        Some(s) => {
            parse_changes(s).map_err(|e| CliError::usage(format!("proposal changes: {e}")))?
        }
        None => vec![],
    };
    let rollback = a.parsed::<u64>("--rollback", "a proposal id")?;
    let client = g.client()?;
    let mut s = signer(g, a, &client)?;
    let activate_at = match (at, delay) {
        (Some(h), _) => Some(h),
        (None, Some(d)) => {
            let gp = governance_of(s.chain.chain_id).ok_or_else(|| {
                CliError::fail(format!(
                    "chain {} is not a network this tb-cli knows the voting period of; give --activate-at HEIGHT",
                    s.chain.chain_id
                ))
            })?;
            if d < gp.activation_delay_blocks_min || d > gp.activation_delay_blocks_max {
                return Err(CliError::usage(format!(
                    "--activation-delay {d}: this network takes {}..={} blocks after the voting end",
                    gp.activation_delay_blocks_min, gp.activation_delay_blocks_max
                )));
            }
            Some(
                s.chain
                    .height
                    .saturating_add(1)
                    .saturating_add(gp.voting_blocks)
                    .saturating_add(d),
            )
        }
        (None, None) => None,
    };
    let mode = match (rollback, activate_at) {
        (Some(proposal), Some(activate_at)) => ProposalMode::Rollback {
            proposal,
            activate_at,
        },
        (None, Some(activate_at)) => ProposalMode::Apply { activate_at },
        _ => ProposalMode::Shadow,
    };
    let body = ProposalBody { changes, mode };
    check_body(&body).map_err(|e| CliError::usage(format!("the proposal: {e}")))?;
    let summary = format!("{body:?}");
    let p = TxPayload::Propose(Propose {
        from: s.address(),
        body,
        fee: 0,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    });
    send(
        g,
        a,
        &mut s,
        Via::SubmitTx,
        p,
        vec![("proposal", summary.clone(), json!(summary))],
    )
}

const GOVERNOR_VOTE: Spec = Spec {
    command: "governor vote",
    usage: "\
usage: tb-cli governor vote --key K --proposal ID (--approve | --reject) [--json]

Votes with key K's provider stake on proposal ID in its voting period; a later vote
replaces an earlier one. Only providers registered before the proposal may vote.",
    flags: &["--json", "--approve", "--reject"],
    options: &[("--key", None), ("--proposal", None), ("--keys-dir", None)],
    positionals: &[],
};

fn governor_vote(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let approve = match (a.flag("--approve"), a.flag("--reject")) {
        (true, false) => true,
        (false, true) => false,
        _ => {
            return Err(CliError::usage(
                "`governor vote` needs exactly one of --approve and --reject",
            ))
        }
    };
    let proposal = a
        .parsed::<u64>("--proposal", "a proposal id")?
        .ok_or_else(|| CliError::usage("`governor vote` needs --proposal ID"))?;
    let client = g.client()?;
    let mut s = signer(g, a, &client)?;
    let p = TxPayload::Vote(Vote {
        from: s.address(),
        proposal,
        approve,
        fee: 0,
        fee_selector: FeeSelector::Industrial.into(),
        nonce: 0,
    });
    let verdict = if approve { "approve" } else { "reject" };
    send(
        g,
        a,
        &mut s,
        Via::SubmitTx,
        p,
        vec![
            ("proposal", proposal.to_string(), json!(proposal)),
            ("vote", verdict.into(), json!(verdict)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes() {
        let c = parse_changes("epoch_blocks=100,min_stake_micro=1_000_000").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].value, 1_000_000);
        for (bad, fragment) in [
            ("epoch_blocks", "NAME=VALUE"),
            ("nope=1", "not a governable"),
            ("epoch_blocks=-1", "non-negative"),
            ("epoch_blocks=", "non-negative"),
            ("epoch_blocks=99999999999999999999", "too large"),
        ] {
            let e = parse_changes(bad).unwrap_err();
            assert!(e.contains(fragment), "{bad}: {e}");
        }
        let many: Vec<String> = MarketParams::GOVERNABLE
            .iter()
            .take(PROPOSAL_CHANGES_MAX + 1)
            .map(|n| format!("{n}=1"))
            .collect();
        assert!(parse_changes(&many.join(","))
            .unwrap_err()
            .contains("at most"));
    }

    #[test]
    fn known_networks() {
        assert!(governance_of(ChainParams::devnet().chain_id).is_some());
        assert!(governance_of(ChainParams::mainnet().chain_id).is_some());
        assert!(governance_of(987_654).is_none());
    }
}
