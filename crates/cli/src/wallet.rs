//! Keys, amounts and signing: `tb-cli key ...`, what `--key K` means, token amounts
//! as typed by people, and the [`Signer`] every transaction command sends through.
//!
//! A key file is the node's format (`the-block`'s `config::write_key`): the 32-byte
//! Ed25519 seed as 64 lowercase hex digits and a newline, mode 0600. Key files live in
//! the keys directory (`--keys-dir DIR`, else `TB_KEYS_DIR`, else
//! `$HOME/.the-block/keys`) as `NAME.key`; a key is never overwritten.

use crate::args::{Args, Spec};
use crate::job::fields;
use crate::rpc_client::{AccountClient, ChainClient, Client, ComputeClient, HexBytes, Reply as _};
use crate::{CliError, Global, Outcome};
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use tb_chain::{SignedTx, TxPayload};
use tb_primitives::{Address, SecretKey, MICRO_PER_TOKEN};
use tb_rpc_api::results::Account;

/// Largest key file read (a key file is 65 bytes).
pub const KEY_FILE_BYTES_MAX: u64 = 1024;
/// Longest key name.
pub const KEY_NAME_BYTES_MAX: usize = 64;
/// Most keys `key list` reads.
pub const KEY_LIST_MAX: usize = 10_000;
/// Decimal places of a token amount (1 token = 1 000 000 micro-tokens).
pub const TOKEN_DECIMALS: usize = 6;

const USAGE: &str = "\
usage: tb-cli [--keys-dir DIR] key COMMAND ...

commands:
  generate NAME              create a key from the system's random source
  import NAME --seed HEX64   store a key from its 32-byte seed (`--seed -`: read stdin)
  show NAME|FILE             print a key's address
  list                       list the keys in the keys directory

Keys live in the keys directory as NAME.key (the node's key file: the seed in hex,
mode 0600): --keys-dir DIR (before or after the command), else TB_KEYS_DIR, else
$HOME/.the-block/keys. An existing key is never overwritten. Wherever a command takes
`--key K`, K is a key name in the keys directory or the path of a key file.";

/// Every command of `key`, for the completion tree.
pub(crate) const SPECS: &[&Spec] = &[&GENERATE, &IMPORT, &SHOW, &LIST];

const GENERATE: Spec = Spec {
    command: "key generate",
    usage: "\
usage: tb-cli key generate NAME [--keys-dir DIR] [--json]

Creates key NAME (a fresh Ed25519 key from the operating system's random source) in
the keys directory and prints its address. Refuses a name that is taken.",
    flags: &["--json"],
    options: &[("--keys-dir", None)],
    positionals: &["NAME"],
};

const IMPORT: Spec = Spec {
    command: "key import",
    usage: "\
usage: tb-cli key import NAME --seed HEX64 [--keys-dir DIR] [--json]

Stores the key of a 32-byte seed (64 hex digits) as NAME. `--seed -` reads the seed
from the first line of standard input (other users can see command lines).",
    flags: &["--json"],
    options: &[("--keys-dir", None), ("--seed", None)],
    positionals: &["NAME"],
};

const SHOW: Spec = Spec {
    command: "key show",
    usage: "\
usage: tb-cli key show NAME|FILE [--keys-dir DIR] [--json]

Prints the address of a key: NAME in the keys directory, or a key file's path.",
    flags: &["--json"],
    options: &[("--keys-dir", None)],
    positionals: &["KEY"],
};

const LIST: Spec = Spec {
    command: "key list",
    usage: "\
usage: tb-cli key list [--keys-dir DIR] [--json]

Lists the keys (NAME.key files) of the keys directory with their addresses.",
    flags: &["--json"],
    options: &[("--keys-dir", None)],
    positionals: &[],
};

/// Runs `tb-cli key ARGS...`.
pub fn dispatch(g: &Global, args: &[String]) -> Result<Outcome, CliError> {
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => Ok(Outcome::ok(format!("{USAGE}\n"))),
        Some("generate") => crate::with_spec(g, &GENERATE, rest, generate),
        Some("import") => crate::with_spec(g, &IMPORT, rest, import),
        Some("show") => crate::with_spec(g, &SHOW, rest, show),
        Some("list") => crate::with_spec(g, &LIST, rest, list),
        Some(other) => Err(CliError::usage(format!(
            "unknown key command {other:?}: expected generate, import, show or list (try `tb-cli key --help`)"
        ))),
    }
}

/// The keys directory: `--keys-dir` (after or before the command), `TB_KEYS_DIR`,
/// `$HOME/.the-block/keys`.
pub fn keys_dir(g: &Global, a: &Args) -> Result<PathBuf, CliError> {
    if let Some(d) = a.value("--keys-dir").or(g.keys_dir.as_deref()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("TB_KEYS_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".the-block").join("keys")),
        None => Err(CliError::fail(
            "no keys directory: HOME is not set; pass --keys-dir DIR or set TB_KEYS_DIR",
        )),
    }
}

/// Whether `s` is a key name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`
/// or `-`.
pub fn is_key_name(s: &str) -> bool {
    (1..=KEY_NAME_BYTES_MAX).contains(&s.len())
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn check_name(name: &str) -> Result<(), CliError> {
    if is_key_name(name) {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "key name {name:?}: expected 1 to {KEY_NAME_BYTES_MAX} of A-Z a-z 0-9 . _ - \
             (not starting with . or -)"
        )))
    }
}

/// Reads a key file.
pub fn read_key_file(path: &Path) -> Result<SecretKey, CliError> {
    let err = |msg: String| CliError::fail(format!("key file {}: {msg}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a file".into()));
    }
    if meta.len() > KEY_FILE_BYTES_MAX {
        return Err(err("larger than a key file".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    SecretKey::from_seed_hex(text.trim()).map_err(err)
}

/// Writes a key file: mode 0600, never over an existing file; the directory is created
/// (mode 0700) when missing.
pub fn write_key_file(path: &Path, key: &SecretKey) -> Result<(), CliError> {
    let err = |msg: String| CliError::fail(format!("key file {}: {msg}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            b.mode(0o700);
        }
        b.create(dir)
            .map_err(|e| CliError::fail(format!("keys directory {}: {e}", dir.display())))?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            err("exists already; a key is never overwritten (choose another name)".into())
        } else {
            err(e.to_string())
        }
    })?;
    writeln!(f, "{}", hex::encode(key.seed()))
        .and_then(|()| f.sync_all())
        .map_err(|e| err(e.to_string()))
}

/// Where key `k` is: `k.key` in the keys directory when `k` is a name and that file
/// exists, else the file `k`.
pub fn key_path(g: &Global, a: &Args, k: &str) -> Result<PathBuf, CliError> {
    let dir = keys_dir(g, a);
    if is_key_name(k) {
        if let Ok(d) = &dir {
            let p = d.join(format!("{k}.key"));
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let p = Path::new(k);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    Err(CliError::fail(match (is_key_name(k), dir) {
        (true, Ok(d)) => format!(
            "no key {k:?}: neither {} nor a file {k} exists (see `tb-cli key list`)",
            d.join(format!("{k}.key")).display()
        ),
        (true, Err(e)) => format!("no key file {k}, and {}", e.message),
        (false, _) => format!("no key file {k}"),
    }))
}

/// The key `--key K` (or a positional) names.
pub fn load_key(g: &Global, a: &Args, k: &str) -> Result<SecretKey, CliError> {
    read_key_file(&key_path(g, a, k)?)
}

/// Parses a token amount `TOKENS[.DECIMALS]` (at most six decimals) into micro-tokens.
pub fn parse_tokens(s: &str) -> Result<u64, String> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    if !digits(whole) || (s.contains('.') && !digits(frac)) {
        return Err(format!(
            "{s:?} is not an amount: expected TOKENS or TOKENS.DECIMALS, e.g. 12 or 0.5"
        ));
    }
    if frac.len() > TOKEN_DECIMALS {
        return Err(format!(
            "{s:?} has more than {TOKEN_DECIMALS} decimals (1 token = 1000000 micro-tokens)"
        ));
    }
    let too_large = || format!("{s:?} is too large");
    let w: u64 = whole.parse().map_err(|_| too_large())?;
    let mut f: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| too_large())?
    };
    for _ in frac.len()..TOKEN_DECIMALS {
        f *= 10;
    }
    w.checked_mul(MICRO_PER_TOKEN)
        .and_then(|m| m.checked_add(f))
        .ok_or_else(too_large)
}

/// Option `name` as a token amount, in micro-tokens.
pub fn tokens_arg(a: &Args, name: &str) -> Result<Option<u64>, CliError> {
    a.value(name)
        .map(|v| parse_tokens(v).map_err(|e| CliError::usage(format!("{name}: {e}"))))
        .transpose()
}

/// Micro-tokens as tokens with six decimals (`12.000500`).
pub fn tokens(micro: u64) -> String {
    tb_primitives::Amount(micro).to_string()
}

/// Parses an address (`tb1…`).
pub fn parse_address(s: &str) -> Result<Address, CliError> {
    s.parse()
        .map_err(|e| CliError::usage(format!("{s:?} is not an address: {e}")))
}

/// Resolves `@handle` on the node; `Err` when no account holds it.
pub fn resolve_handle(client: &Client, h: &str) -> Result<Address, CliError> {
    if !tb_chain::tx::handle_is_valid(h) {
        return Err(CliError::usage(format!(
            "{h:?} is not a handle: @ then 3 to 31 of a-z 0-9 _, starting with a letter"
        )));
    }
    let r = client.get("resolve_handle", |c| {
        AccountClient::resolve_handle(c, h.to_string())
    })?;
    match r.address.as_deref() {
        Some(a) => a
            .parse()
            .map_err(|e| CliError::fail(format!("the node resolved {h} to a bad address: {e}"))),
        None => Err(CliError::fail(format!("no account holds the handle {h}"))),
    }
}

/// An address, an `@handle` or a key (name or file), as an address.
pub fn resolve_account(
    g: &Global,
    a: &Args,
    client: &Client,
    s: &str,
) -> Result<Address, CliError> {
    if s.starts_with('@') {
        return resolve_handle(client, s);
    }
    if let Ok(addr) = s.parse::<Address>() {
        return Ok(addr);
    }
    match load_key(g, a, s) {
        Ok(k) => Ok(k.address()),
        Err(_) if s.starts_with("tb1") => parse_address(s).map_err(|e| CliError::fail(e.message)),
        Err(e) => Err(CliError::fail(format!(
            "{s:?} is neither an address (tb1…), a @handle nor a key: {}",
            e.message
        ))),
    }
}

/// What `chain.info` says that signing needs.
pub struct ChainInfo {
    pub chain_id: u64,
    pub fee_floor_per_byte: u64,
    pub height: u64,
    /// The whole reply (its `market` part, for blob publishing).
    pub raw: Value,
}

impl ChainInfo {
    /// Asks the node.
    pub fn fetch(client: &Client) -> Result<ChainInfo, CliError> {
        let raw = client.get("chain.info", ChainClient::info)?;
        Ok(ChainInfo {
            chain_id: raw.u64_at("chain_id")?,
            fee_floor_per_byte: raw.u64_at("fee_floor_per_byte")?,
            height: raw.u64_at("height")?,
            raw,
        })
    }
}

/// The node's methods that admit a signed transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `submit_tx`: any transaction.
    SubmitTx,
    /// `compute.submitJob`: a `SubmitJob`, checked against the market first.
    SubmitJob,
    /// `register_handle`: a `RegisterHandle`.
    RegisterHandle,
}

impl Via {
    /// The JSON-RPC method's name.
    pub fn method(self) -> &'static str {
        match self {
            Via::SubmitTx => "submit_tx",
            Via::SubmitJob => "compute.submitJob",
            Via::RegisterHandle => "register_handle",
        }
    }
}

/// Signs payloads with one key, consecutive nonces from the account's pending next
/// nonce, fees raised to the node's floor (`SignedTx::sign_paying_floor`), and sends
/// them.
pub struct Signer<'a> {
    pub client: &'a Client,
    pub key: SecretKey,
    pub chain: ChainInfo,
    /// The account as `balance` showed it when the signer was made.
    pub account: Account,
    nonce: u64,
    /// Transactions the node admitted so far.
    pub sent: Vec<String>,
}

impl<'a> Signer<'a> {
    /// A signer for `key` on `client`'s node.
    pub fn new(client: &'a Client, key: SecretKey) -> Result<Signer<'a>, CliError> {
        let chain = ChainInfo::fetch(client)?;
        let account = client.get("balance", |c| {
            AccountClient::balance(c, key.address().to_string())
        })?;
        let nonce = account.next_nonce;
        Ok(Signer {
            client,
            key,
            chain,
            account,
            nonce,
            sent: Vec::new(),
        })
    }

    /// The signer's address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The nonce the next signed transaction takes.
    pub fn next_nonce(&self) -> u64 {
        self.nonce
    }

    /// Takes the account's pending next nonce from the node again (after transactions
    /// of this signer were dropped, or others of the account were sent elsewhere).
    pub fn refresh_nonce(&mut self) -> Result<u64, CliError> {
        let address = self.key.address().to_string();
        let account = self
            .client
            .get("balance", |c| AccountClient::balance(c, address))?;
        self.nonce = account.next_nonce;
        self.account = account;
        Ok(self.nonce)
    }

    /// Signs `p` with the next nonce.
    pub fn sign(&mut self, mut p: TxPayload) -> SignedTx {
        *p.from_mut() = self.key.address();
        *p.nonce_mut() = self.nonce;
        self.nonce = self.nonce.saturating_add(1);
        SignedTx::sign_paying_floor(
            p,
            &self.key,
            self.chain.chain_id,
            self.chain.fee_floor_per_byte,
        )
    }

    /// Signs `p` and sends it `via` one of the node's admitting methods; returns the
    /// transaction id.
    pub fn send(&mut self, via: Via, p: TxPayload) -> Result<String, CliError> {
        let tx = self.sign(p);
        let id = tx.id().to_hex();
        let bytes = HexBytes(tb_primitives::encode(&tx));
        let sent = self.client.get(via.method(), |c| async move {
            match via {
                Via::SubmitTx => AccountClient::submit_tx(c, bytes).await,
                Via::SubmitJob => ComputeClient::submit_job(c, bytes).await,
                Via::RegisterHandle => {
                    AccountClient::register_handle(c, Some(bytes), None, None).await
                }
            }
        });
        let r = sent.map_err(|e| {
            if self.sent.is_empty() {
                e
            } else {
                // The last few ids (a publication sends hundreds).
                let shown: Vec<&str> = self
                    .sent
                    .iter()
                    .rev()
                    .take(3)
                    .rev()
                    .map(String::as_str)
                    .collect();
                CliError::fail(format!(
                    "{} (after {} transaction(s) of this command were admitted{}: {})",
                    e.message,
                    self.sent.len(),
                    if self.sent.len() > shown.len() {
                        ", the last"
                    } else {
                        ""
                    },
                    shown.join(", ")
                ))
            }
        })?;
        let got = r.id.0.to_hex();
        if got != id {
            return Err(CliError::fail(format!(
                "the node admitted the transaction as {got}, not {id}"
            )));
        }
        self.sent.push(id.clone());
        Ok(id)
    }
}

fn generate(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    store(g, a, SecretKey::generate())
}

fn import(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let given = a.required("--seed")?;
    let seed = if given == "-" {
        use std::io::{BufRead as _, Read as _};
        let mut line = String::new();
        std::io::BufReader::new(std::io::stdin().lock().take(KEY_FILE_BYTES_MAX))
            .read_line(&mut line)
            .map_err(|e| CliError::fail(format!("reading the seed from stdin: {e}")))?;
        line
    } else {
        given.to_string()
    };
    let key = SecretKey::from_seed_hex(seed.trim())
        .map_err(|e| CliError::usage(format!("--seed: {e}")))?;
    store(g, a, key)
}

fn store(g: &Global, a: &Args, key: SecretKey) -> Result<Outcome, CliError> {
    let name = &a.positionals[0];
    check_name(name)?;
    let path = keys_dir(g, a)?.join(format!("{name}.key"));
    write_key_file(&path, &key)?;
    Ok(key_outcome(g, a, name, &path, &key))
}

fn key_outcome(g: &Global, a: &Args, name: &str, path: &Path, key: &SecretKey) -> Outcome {
    let address = key.address().to_string();
    if g.json(a) {
        return Outcome::ok(format!(
            "{}\n",
            json!({"name": name, "address": address, "path": path.display().to_string()})
        ));
    }
    Outcome::ok(fields(
        &[
            ("name", name.to_string()),
            ("address", address),
            ("file", path.display().to_string()),
        ],
        "",
    ))
}

fn show(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let k = &a.positionals[0];
    let path = key_path(g, a, k)?;
    let key = read_key_file(&path)?;
    Ok(key_outcome(g, a, k, &path, &key))
}

fn list(g: &Global, a: &Args) -> Result<Outcome, CliError> {
    let dir = keys_dir(g, a)?;
    let mut rows = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries.take(KEY_LIST_MAX) {
                let e = e.map_err(|e| CliError::fail(format!("{}: {e}", dir.display())))?;
                let file = e.file_name();
                let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".key")) else {
                    continue;
                };
                if !is_key_name(name) {
                    continue;
                }
                let addr = read_key_file(&e.path())
                    .map(|k| k.address().to_string())
                    .map_err(|e| e.message);
                rows.push((name.to_string(), addr));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CliError::fail(format!("{}: {e}", dir.display()))),
    }
    rows.sort();
    if g.json(a) {
        let keys: Vec<Value> = rows
            .iter()
            .map(|(n, r)| match r {
                Ok(addr) => json!({"name": n, "address": addr}),
                Err(e) => json!({"name": n, "error": e}),
            })
            .collect();
        return Ok(Outcome::ok(format!(
            "{}\n",
            json!({"keys_dir": dir.display().to_string(), "keys": keys})
        )));
    }
    if rows.is_empty() {
        return Ok(Outcome::ok(format!(
            "no keys in {} (create one with `tb-cli key generate NAME`)\n",
            dir.display()
        )));
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(n, r)| vec![n, r.unwrap_or_else(|e| format!("(unreadable: {e})"))])
        .collect();
    Ok(Outcome::ok(crate::job::table(&table, &[], "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<u64, &str>) {
        match (parse_tokens(input), expected) {
            (Ok(v), Ok(w)) => assert_eq!(v, w, "{input}"),
            (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{input}: {e}"),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn token_amounts() {
        check("0", Ok(0));
        check("2", Ok(2_000_000));
        check("1.5", Ok(1_500_000));
        check("0.000001", Ok(1));
        check("12.0005", Ok(12_000_500));
        check("007.10", Ok(7_100_000));
        check("18446744073709", Ok(18_446_744_073_709_000_000));
        check("18446744073710", Err("too large"));
        check("99999999999999999999999", Err("too large"));
        check("0.0000001", Err("more than 6 decimals"));
        for bad in [
            "", ".", "1.", ".5", "-1", "+1", "1e3", "1,5", " 1", "1.2.3", "٣",
        ] {
            check(bad, Err("not an amount"));
        }
    }

    #[test]
    fn key_names() {
        for ok in ["alice", "devnet-alice", "a.b_c-1", "A"] {
            assert!(is_key_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "../x",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!is_key_name(bad), "{bad}");
        }
    }

    #[test]
    fn seeds() {
        let k = SecretKey::dev("x");
        let s = hex::encode(k.seed());
        assert_eq!(SecretKey::from_seed_hex(&s).unwrap().address(), k.address());
        assert!(SecretKey::from_seed_hex(&s[1..]).is_err());
        assert!(SecretKey::from_seed_hex(&format!("{}zz", &s[2..])).is_err());
        // Non-ASCII of the right byte length must not panic on slicing.
        assert!(SecretKey::from_seed_hex(&"é".repeat(32)).is_err());
    }
}
