//! The node's configuration: a TOML file, `TB_*` environment variables and command-line
//! flags, in rising precedence (a flag beats the environment, which beats the file,
//! which beats the defaults). Every value is checked here, at the boundary: a bad file,
//! variable or flag is a typed [`ConfigError`] naming it, never a panic.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Largest config file read.
pub const CONFIG_FILE_BYTES_MAX: u64 = 64 * 1024;
/// Default JSON-RPC listen address.
pub const RPC_ADDR_DEFAULT: &str = "127.0.0.1:3030";
/// Default cap on one JSON-RPC request body (HTTP) or message (WebSocket).
pub const RPC_REQUEST_BYTES_DEFAULT: u32 = 8 * 1024 * 1024;
/// Hard cap on `rpc_max_request_bytes` (a published chunk in hex fits well below it).
pub const RPC_REQUEST_BYTES_MAX: u32 = 64 * 1024 * 1024;
/// Default cap on simultaneous JSON-RPC connections.
pub const RPC_CONNECTIONS_DEFAULT: u32 = 128;
/// Hard cap on `rpc_max_connections`.
pub const RPC_CONNECTIONS_MAX: u32 = 10_000;
/// Shortest block interval the miner may be configured to.
pub const BLOCK_INTERVAL_MS_MIN: u64 = 50;
/// Longest block interval the miner may be configured to.
pub const BLOCK_INTERVAL_MS_MAX: u64 = 600_000;
/// Default bound on the state cache (entries and trie nodes read from the store),
/// MiB: `tb_store::CACHE_BYTES_DEFAULT`.
pub const STATE_CACHE_MB_DEFAULT: u64 = tb_store::CACHE_BYTES_DEFAULT / (1024 * 1024);
/// Largest state cache, MiB (64 GiB).
pub const STATE_CACHE_MB_MAX: u64 = 64 * 1024;
/// Default peer-to-peer listen address of `run`.
pub const P2P_LISTEN_DEFAULT: &str = "/ip4/0.0.0.0/tcp/7171";
/// Listen addresses and bootnodes accepted (each).
pub const P2P_ADDRS_MAX: usize = 64;
/// Default ban of a misbehaving peer, seconds.
pub const P2P_BAN_SECS_DEFAULT: u64 = 600;
/// Longest ban.
pub const P2P_BAN_SECS_MAX: u64 = 7 * 24 * 3600;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("environment variable {name}={value:?}: {msg}")]
    Env {
        name: &'static str,
        value: String,
        msg: String,
    },
    #[error("{flag}: {msg}")]
    Flag { flag: String, msg: String },
    #[error("{field}: {msg}")]
    Invalid { field: &'static str, msg: String },
    #[error("key file {path}: {msg}")]
    Key { path: PathBuf, msg: String },
}

/// Which network's parameters the node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Devnet,
    Mainnet,
}

impl Network {
    pub fn params(self) -> tb_chain::ChainParams {
        match self {
            Network::Devnet => tb_chain::ChainParams::devnet(),
            Network::Mainnet => tb_chain::ChainParams::mainnet(),
        }
    }
}

/// The compute fabric a provider executes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FabricKind {
    Cpu,
    Cuda,
}

impl FabricKind {
    pub fn name(self) -> &'static str {
        match self {
            FabricKind::Cpu => "cpu",
            FabricKind::Cuda => "cuda",
        }
    }
}

/// The whole configuration (the TOML file's shape; every key optional).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Where the redb store, the blob store and worker state live.
    pub data_dir: PathBuf,
    pub network: Network,
    /// JSON-RPC over HTTP and WebSocket (one port).
    pub rpc_addr: SocketAddr,
    /// Prometheus `/metrics` and `/wrappers`; off when absent.
    pub metrics_addr: Option<SocketAddr>,
    /// The node's key: a file holding the 32-byte Ed25519 seed in hex. Needed by the
    /// miner (its beneficiary), the provider and the verifier.
    pub key_file: Option<PathBuf>,
    /// The token the admin RPC methods need (`<data dir>/admin.token` when absent;
    /// made at first start).
    pub admin_token_file: Option<PathBuf>,
    pub rpc_max_request_bytes: u32,
    pub rpc_max_connections: u32,
    /// Bound on the memory the state cache holds, MiB (the state itself lives on
    /// disk and may be far larger).
    pub state_cache_mb: u64,
    pub miner: MinerConfig,
    pub provider: ProviderConfig,
    pub verifier: VerifierConfig,
    pub p2p: P2pConfig,
}

/// The peer-to-peer network (libp2p).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    pub enabled: bool,
    /// Multiaddrs to listen on (`/ip4/HOST/tcp/PORT`; port 0 picks one).
    pub listen: Vec<String>,
    /// Peers dialled at start and redialled while disconnected
    /// (`/ip4/HOST/tcp/PORT/p2p/PEER_ID`).
    pub bootnodes: Vec<String>,
    /// The network key (libp2p Ed25519 secret, hex), created on first start; default
    /// `<data dir>/net.key`.
    pub key_file: Option<PathBuf>,
    /// Seconds a misbehaving peer stays banned.
    pub ban_secs: u64,
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            enabled: true,
            listen: vec![P2P_LISTEN_DEFAULT.into()],
            bootnodes: Vec::new(),
            key_file: None,
            ban_secs: P2P_BAN_SECS_DEFAULT,
        }
    }
}

impl P2pConfig {
    /// The listen addresses and bootnodes, parsed.
    pub fn addrs(&self) -> Result<(Vec<tb_net::Multiaddr>, Vec<tb_net::Multiaddr>), ConfigError> {
        let parse = |field: &'static str, v: &[String]| {
            if v.len() > P2P_ADDRS_MAX {
                return Err(ConfigError::Invalid {
                    field,
                    msg: format!("at most {P2P_ADDRS_MAX} addresses"),
                });
            }
            v.iter()
                .map(|a| check_multiaddr(field, a))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok((
            parse("p2p.listen", &self.listen)?,
            parse("p2p.bootnodes", &self.bootnodes)?,
        ))
    }

    /// The network key file under `data_dir` unless set (`TB_NET_KEY_PATH`).
    pub fn key_path(&self, data_dir: &Path) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("net.key"))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    pub enabled: bool,
    /// Milliseconds between blocks (the miner waits; the PoW sets no pace on a devnet).
    pub block_interval_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    pub enabled: bool,
    pub fabric: FabricKind,
    /// Stake bonded at registration, whole tokens.
    pub stake_tokens: u64,
    /// Leases held at once.
    pub max_leases: u32,
    /// Test only: report a wrong digest for this op of every job (the cheating provider
    /// of the integration tests and the devnet's `--cheat`).
    pub test_corrupt_op: Option<u32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifierConfig {
    pub enabled: bool,
    /// Share of proven receipts replayed, basis points (10000: every one).
    pub share_bps: u32,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("tb-data"),
            network: Network::Devnet,
            rpc_addr: RPC_ADDR_DEFAULT.parse().expect("a valid literal"),
            metrics_addr: None,
            key_file: None,
            admin_token_file: None,
            rpc_max_request_bytes: RPC_REQUEST_BYTES_DEFAULT,
            rpc_max_connections: RPC_CONNECTIONS_DEFAULT,
            state_cache_mb: STATE_CACHE_MB_DEFAULT,
            miner: MinerConfig::default(),
            provider: ProviderConfig::default(),
            verifier: VerifierConfig::default(),
            p2p: P2pConfig::default(),
        }
    }
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            enabled: false,
            block_interval_ms: 1_000,
        }
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            enabled: false,
            fabric: FabricKind::Cpu,
            stake_tokens: 100,
            max_leases: 4,
            test_corrupt_op: None,
        }
    }
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            enabled: false,
            share_bps: 10_000,
        }
    }
}

/// The `run` command's usage (flags and variables).
pub const RUN_USAGE: &str = "\
usage: the-block run [--config FILE] [--data-dir DIR] [--network devnet|mainnet]
                     [--rpc-addr ADDR] [--metrics-addr ADDR] [--key-file FILE]
                     [--admin-token-file FILE]
                     [--state-cache-mb N]
                     [--mine] [--block-interval-ms N]
                     [--provider] [--fabric cpu|cuda] [--stake TOKENS]
                     [--verifier] [--verify-share-bps N]
                     [--test-corrupt-op I]
                     [--p2p-listen MULTIADDR[,...]] [--bootnode MULTIADDR[,...]]...
                     [--net-key-file FILE] [--no-p2p]

Every flag has a TB_* environment variable (flag > variable > config file > default):
  TB_CONFIG TB_DATA_DIR TB_NETWORK TB_RPC_ADDR TB_METRICS_ADDR TB_KEY_FILE TB_STATE_CACHE_MB
  TB_ADMIN_TOKEN_FILE
  TB_MINE TB_BLOCK_INTERVAL_MS TB_PROVIDER TB_FABRIC TB_STAKE TB_VERIFIER
  TB_VERIFY_SHARE_BPS TB_P2P_LISTEN TB_BOOTNODES TB_NET_KEY_PATH TB_NO_P2P
  (booleans: 1/0/true/false; lists: comma-separated). The peer-to-peer layer listens
  on /ip4/0.0.0.0/tcp/7171 unless told otherwise. Bootnodes are
  /ip4|ip6/HOST/tcp/PORT/p2p/PEER_ID; --bootnode may be repeated (the flags' list
  replaces the variable's, which replaces the file's).";

/// Reads the configuration: `--config FILE` (or `TB_CONFIG`), then `TB_*` variables,
/// then the flags in `args`. `env` is the process environment (a parameter so tests
/// need not touch it).
pub fn load(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<NodeConfig, ConfigError> {
    let c = load_over(args, env, NodeConfig::default())?;
    c.check()?;
    Ok(c)
}

/// [`load`] over `base` instead of the defaults (the devnet's presets), without the
/// final [`NodeConfig::check`]. A config file replaces `base` wholesale.
pub fn load_over(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    base: NodeConfig,
) -> Result<NodeConfig, ConfigError> {
    let flags = parse_flags(args)?;
    let path = flag_value(&flags, "--config")
        .map(PathBuf::from)
        .or_else(|| env("TB_CONFIG").map(PathBuf::from));
    let mut c = match path {
        Some(p) => from_file(&p)?,
        None => base,
    };
    apply_env(&mut c, env)?;
    apply_flags(&mut c, &flags)?;
    Ok(c)
}

/// Parses a TOML config file.
pub fn from_file(path: &Path) -> Result<NodeConfig, ConfigError> {
    let err = |msg: String| ConfigError::File {
        path: path.to_path_buf(),
        msg,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > CONFIG_FILE_BYTES_MAX {
        return Err(err(format!(
            "{} bytes, over the {CONFIG_FILE_BYTES_MAX}-byte limit",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().replace('\n', " ")))
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Settings that take a value, by flag and by variable.
const VALUED: &[(&str, &str)] = &[
    ("--config", "TB_CONFIG"),
    ("--data-dir", "TB_DATA_DIR"),
    ("--network", "TB_NETWORK"),
    ("--rpc-addr", "TB_RPC_ADDR"),
    ("--metrics-addr", "TB_METRICS_ADDR"),
    ("--key-file", "TB_KEY_FILE"),
    ("--admin-token-file", "TB_ADMIN_TOKEN_FILE"),
    ("--state-cache-mb", "TB_STATE_CACHE_MB"),
    ("--block-interval-ms", "TB_BLOCK_INTERVAL_MS"),
    ("--fabric", "TB_FABRIC"),
    ("--stake", "TB_STAKE"),
    ("--verify-share-bps", "TB_VERIFY_SHARE_BPS"),
    ("--test-corrupt-op", "TB_TEST_CORRUPT_OP"),
    ("--p2p-listen", "TB_P2P_LISTEN"),
    ("--bootnode", "TB_BOOTNODES"),
    ("--net-key-file", "TB_NET_KEY_PATH"),
];
/// Switches, by flag and by variable.
const SWITCHES: &[(&str, &str)] = &[
    ("--mine", "TB_MINE"),
    ("--provider", "TB_PROVIDER"),
    ("--verifier", "TB_VERIFIER"),
    ("--no-p2p", "TB_NO_P2P"),
];

fn parse_flags(args: &[String]) -> Result<Vec<(&'static str, Option<String>)>, ConfigError> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        if let Some((f, _)) = SWITCHES.iter().find(|(f, _)| *f == name) {
            if inline.is_some() {
                return Err(ConfigError::Flag {
                    flag: a.clone(),
                    msg: "takes no value".into(),
                });
            }
            out.push((*f, None));
        } else if let Some((f, _)) = VALUED.iter().find(|(f, _)| *f == name) {
            let v = match inline {
                Some(v) => v,
                None => it.next().cloned().ok_or_else(|| ConfigError::Flag {
                    flag: a.clone(),
                    msg: "needs a value".into(),
                })?,
            };
            out.push((*f, Some(v)));
        } else {
            return Err(ConfigError::Flag {
                flag: a.clone(),
                msg: "unknown option (see `the-block run --help`)".into(),
            });
        }
    }
    Ok(out)
}

fn flag_value<'a>(flags: &'a [(&'static str, Option<String>)], name: &str) -> Option<&'a str> {
    flags
        .iter()
        .rev()
        .find(|(f, _)| *f == name)
        .and_then(|(_, v)| v.as_deref())
}

/// Applies one setting (from a flag or a variable) by its flag name.
fn set(c: &mut NodeConfig, flag: &str, v: &str) -> Result<(), String> {
    fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("{v:?} is not a valid number"))
    }
    match flag {
        "--config" => {}
        "--data-dir" => c.data_dir = PathBuf::from(v),
        "--network" => {
            c.network = match v {
                "devnet" => Network::Devnet,
                "mainnet" => Network::Mainnet,
                _ => return Err("expected devnet or mainnet".into()),
            }
        }
        "--rpc-addr" => c.rpc_addr = v.parse().map_err(|_| "expected HOST:PORT".to_string())?,
        "--metrics-addr" => {
            c.metrics_addr = Some(v.parse().map_err(|_| "expected HOST:PORT".to_string())?)
        }
        "--key-file" => c.key_file = Some(PathBuf::from(v)),
        "--admin-token-file" => c.admin_token_file = Some(PathBuf::from(v)),
        "--state-cache-mb" => c.state_cache_mb = num(v)?,
        "--block-interval-ms" => c.miner.block_interval_ms = num(v)?,
        "--fabric" => {
            c.provider.fabric = match v {
                "cpu" => FabricKind::Cpu,
                "cuda" => FabricKind::Cuda,
                _ => return Err("expected cpu or cuda".into()),
            }
        }
        "--stake" => c.provider.stake_tokens = num(v)?,
        "--verify-share-bps" => c.verifier.share_bps = num(v)?,
        "--test-corrupt-op" => c.provider.test_corrupt_op = Some(num(v)?),
        "--p2p-listen" => c.p2p.listen = list(v),
        // Repeated flags add up; the variable and the file give the whole list.
        "--bootnode" => c.p2p.bootnodes.extend(list(v)),
        "--net-key-file" => c.p2p.key_file = Some(PathBuf::from(v)),
        "--no-p2p" => c.p2p.enabled = !parse_bool(v).ok_or("expected 1/0/true/false")?,
        "--mine" | "--provider" | "--verifier" => {
            let on = parse_bool(v).ok_or("expected 1/0/true/false")?;
            match flag {
                "--mine" => c.miner.enabled = on,
                "--provider" => c.provider.enabled = on,
                _ => c.verifier.enabled = on,
            }
        }
        _ => return Err("unknown setting".into()),
    }
    Ok(())
}

/// A listen address (`/ip4|ip6/HOST/tcp/PORT`) or a bootnode (the same with
/// `/p2p/PEER_ID`): the transport is TCP on IP addresses, with no DNS resolver.
fn check_multiaddr(field: &'static str, a: &str) -> Result<tb_net::Multiaddr, ConfigError> {
    use tb_net::libp2p::multiaddr::Protocol as P;
    let bad = |msg: String| ConfigError::Invalid { field, msg };
    let m: tb_net::Multiaddr = a
        .parse()
        .map_err(|e| bad(format!("{a:?} is not a multiaddr: {e}")))?;
    let mut it = m.iter();
    let ip = matches!(it.next(), Some(P::Ip4(_) | P::Ip6(_)));
    let tcp = matches!(it.next(), Some(P::Tcp(_)));
    let rest = (it.next(), it.next());
    let ok = ip
        && tcp
        && match field {
            "p2p.bootnodes" => matches!(rest, (Some(P::P2p(_)), None)),
            _ => matches!(rest, (None, None)),
        };
    if ok {
        Ok(m)
    } else if field == "p2p.bootnodes" {
        Err(bad(format!(
            "{a:?}: expected /ip4|ip6/HOST/tcp/PORT/p2p/PEER_ID"
        )))
    } else {
        Err(bad(format!("{a:?}: expected /ip4|ip6/HOST/tcp/PORT")))
    }
}

/// A comma-separated list (empty items dropped).
fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn apply_env(c: &mut NodeConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    for (flag, name) in VALUED.iter().chain(SWITCHES) {
        if let Some(v) = env(name) {
            if *name == "TB_BOOTNODES" {
                c.p2p.bootnodes.clear();
            }
            set(c, flag, &v).map_err(|msg| ConfigError::Env {
                name,
                value: v.clone(),
                msg,
            })?;
        }
    }
    Ok(())
}

fn apply_flags(
    c: &mut NodeConfig,
    flags: &[(&'static str, Option<String>)],
) -> Result<(), ConfigError> {
    if flags.iter().any(|(f, _)| *f == "--bootnode") {
        c.p2p.bootnodes.clear();
    }
    for (flag, v) in flags {
        let v = v.as_deref().unwrap_or("true");
        set(c, flag, v).map_err(|msg| ConfigError::Flag {
            flag: flag.to_string(),
            msg,
        })?;
    }
    Ok(())
}

impl NodeConfig {
    /// The store's settings.
    pub fn store(&self) -> tb_store::StoreConfig {
        tb_store::StoreConfig {
            cache_bytes: self.state_cache_mb * 1024 * 1024,
        }
    }

    /// The node's key, read from `key_file` when one is set.
    pub fn node_key(&self) -> Result<Option<tb_primitives::SecretKey>, ConfigError> {
        self.key_file.as_deref().map(read_key).transpose()
    }

    /// Checks every value's range and the settings that need a key.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |field, msg: String| Err(ConfigError::Invalid { field, msg });
        if !(BLOCK_INTERVAL_MS_MIN..=BLOCK_INTERVAL_MS_MAX).contains(&self.miner.block_interval_ms)
        {
            return bad(
                "miner.block_interval_ms",
                format!("must be {BLOCK_INTERVAL_MS_MIN}..={BLOCK_INTERVAL_MS_MAX}"),
            );
        }
        if !(1024..=RPC_REQUEST_BYTES_MAX).contains(&self.rpc_max_request_bytes) {
            return bad(
                "rpc_max_request_bytes",
                format!("must be 1024..={RPC_REQUEST_BYTES_MAX}"),
            );
        }
        if !(1..=RPC_CONNECTIONS_MAX).contains(&self.rpc_max_connections) {
            return bad(
                "rpc_max_connections",
                format!("must be 1..={RPC_CONNECTIONS_MAX}"),
            );
        }
        if !(1..=STATE_CACHE_MB_MAX).contains(&self.state_cache_mb) {
            return bad(
                "state_cache_mb",
                format!("must be 1..={STATE_CACHE_MB_MAX}"),
            );
        }
        if self.verifier.share_bps > 10_000 {
            return bad("verifier.share_bps", "must be 0..=10000".into());
        }
        if self.provider.max_leases == 0 || self.provider.max_leases > 1024 {
            return bad("provider.max_leases", "must be 1..=1024".into());
        }
        if self.p2p.ban_secs == 0 || self.p2p.ban_secs > P2P_BAN_SECS_MAX {
            return bad("p2p.ban_secs", format!("must be 1..={P2P_BAN_SECS_MAX}"));
        }
        if self.p2p.enabled {
            let (listen, _) = self.p2p.addrs()?;
            if listen.is_empty() {
                return bad(
                    "p2p.listen",
                    "needs an address (or disable the network: --no-p2p)".into(),
                );
            }
        }
        let needs_key = self.miner.enabled || self.provider.enabled || self.verifier.enabled;
        if needs_key && self.key_file.is_none() {
            return bad(
                "key_file",
                "--mine, --provider and --verifier need the node's key (--key-file)".into(),
            );
        }
        Ok(())
    }
}

/// Reads a key file: the 32-byte Ed25519 seed as 64 hex digits (surrounding whitespace
/// ignored).
pub fn read_key(path: &Path) -> Result<tb_primitives::SecretKey, ConfigError> {
    let err = |msg: String| ConfigError::Key {
        path: path.to_path_buf(),
        msg,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > 1024 {
        return Err(err("larger than a key file".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    tb_primitives::SecretKey::from_seed_hex(text.trim()).map_err(err)
}

/// Writes a key file (mode 0600 where the platform has modes), refusing to overwrite.
pub fn write_key(path: &Path, key: &tb_primitives::SecretKey) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    writeln!(f, "{}", hex::encode(key.seed()))?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn precedence_flag_over_env_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("node.toml");
        std::fs::write(
            &f,
            "data_dir = \"/from/file\"\nrpc_addr = \"127.0.0.1:4000\"\n[miner]\nblock_interval_ms = 300\n",
        )
        .unwrap();
        let fp = f.display().to_string();
        let env = |n: &str| match n {
            "TB_CONFIG" => Some(fp.clone()),
            "TB_RPC_ADDR" => Some("127.0.0.1:5000".to_string()),
            "TB_BLOCK_INTERVAL_MS" => Some("400".to_string()),
            _ => None,
        };
        let c = load(&args("--block-interval-ms 500"), &env).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.rpc_addr.port(), 5000);
        assert_eq!(c.miner.block_interval_ms, 500);
        let c = load(&[], &env).unwrap();
        assert_eq!(c.miner.block_interval_ms, 400);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let none = |_: &str| None;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, "no_such_key = 1\n").unwrap();
        let e = load(&args(&format!("--config {}", f.display())), &none).unwrap_err();
        assert!(matches!(e, ConfigError::File { .. }), "{e}");
        assert!(e.to_string().contains("no_such_key"), "{e}");
        std::fs::write(&f, "rpc_addr = 7\n").unwrap();
        assert!(matches!(
            load(&args(&format!("--config {}", f.display())), &none),
            Err(ConfigError::File { .. })
        ));
        assert!(matches!(
            load(&args("--rpc-addr nope"), &none),
            Err(ConfigError::Flag { .. })
        ));
        assert!(matches!(
            load(&args("--bogus"), &none),
            Err(ConfigError::Flag { .. })
        ));
        assert!(matches!(
            load(&args("--fabric"), &none),
            Err(ConfigError::Flag { .. })
        ));
        let env = |n: &str| (n == "TB_MINE").then(|| "maybe".to_string());
        assert!(matches!(load(&[], &env), Err(ConfigError::Env { .. })));
        // Workers need a key.
        assert!(matches!(
            load(&args("--mine"), &none),
            Err(ConfigError::Invalid {
                field: "key_file",
                ..
            })
        ));
        assert!(matches!(
            load(&args("--block-interval-ms 1"), &none),
            Err(ConfigError::Invalid { .. })
        ));
        for bad in ["0", "65537"] {
            assert!(matches!(
                load(&args(&format!("--state-cache-mb {bad}")), &none),
                Err(ConfigError::Invalid {
                    field: "state_cache_mb",
                    ..
                })
            ));
        }
    }

    #[test]
    fn state_cache_from_flag_variable_and_file() {
        let none = |_: &str| None;
        assert_eq!(
            load(&[], &none).unwrap().store().cache_bytes,
            tb_store::CACHE_BYTES_DEFAULT
        );
        let c = load(&args("--state-cache-mb 3"), &none).unwrap();
        assert_eq!(c.store().cache_bytes, 3 << 20);
        let env = |n: &str| (n == "TB_STATE_CACHE_MB").then(|| "7".to_string());
        assert_eq!(load(&[], &env).unwrap().state_cache_mb, 7);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("node.toml");
        std::fs::write(&f, "state_cache_mb = 9\n").unwrap();
        let c = load(&args(&format!("--config {}", f.display())), &none).unwrap();
        assert_eq!(c.state_cache_mb, 9);
    }

    #[test]
    fn p2p_addresses_lists_and_switch() {
        const ID: &str = "12D3KooWKoazrSLKxP19ptyFKRbBruQTLEU5M955r5U61UaFFSbS";
        let b1 = format!("/ip4/10.0.0.1/tcp/7171/p2p/{ID}");
        let b2 = format!("/ip6/::1/tcp/7172/p2p/{ID}");
        let none = |_: &str| None;
        let c = load(&[], &none).unwrap();
        assert!(c.p2p.enabled);
        assert_eq!(c.p2p.listen, vec![P2P_LISTEN_DEFAULT.to_string()]);
        assert_eq!(c.p2p.key_path(Path::new("d")), PathBuf::from("d/net.key"));
        // Repeated flags add up and replace the variable's list.
        let envb = b1.clone();
        let env = move |n: &str| (n == "TB_BOOTNODES").then(|| envb.clone());
        assert_eq!(load(&[], &env).unwrap().p2p.bootnodes, vec![b1.clone()]);
        let c = load(
            &args(&format!("--bootnode {b2} --bootnode {b2},{b2}")),
            &env,
        )
        .unwrap();
        assert_eq!(c.p2p.bootnodes, vec![b2.clone(), b2.clone(), b2.clone()]);
        let (_, boots) = c.p2p.addrs().unwrap();
        assert_eq!(boots.len(), 3);
        let c = load(
            &args("--no-p2p --p2p-listen /ip4/127.0.0.1/tcp/0 --net-key-file k"),
            &none,
        )
        .unwrap();
        assert!(!c.p2p.enabled);
        assert_eq!(c.p2p.key_path(Path::new("d")), PathBuf::from("k"));
        // Addresses the TCP transport cannot use are refused at the boundary.
        for bad in [
            "--p2p-listen nonsense".to_string(),
            "--p2p-listen /dns4/example.org/tcp/1".to_string(),
            "--p2p-listen /ip4/1.2.3.4/udp/1".to_string(),
            format!("--p2p-listen /ip4/1.2.3.4/tcp/1/p2p/{ID}"),
            "--bootnode /ip4/1.2.3.4/tcp/1".to_string(),
            format!("--bootnode /dns4/x/tcp/1/p2p/{ID}"),
        ] {
            let e = load(&args(&bad), &none).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { .. }), "{bad}: {e}");
        }
        // An empty listen list is refused unless the network is off.
        let env = |n: &str| (n == "TB_P2P_LISTEN").then(|| ",".to_string());
        assert!(matches!(
            load(&[], &env),
            Err(ConfigError::Invalid {
                field: "p2p.listen",
                ..
            })
        ));
        let env = |n: &str| match n {
            "TB_P2P_LISTEN" => Some(String::new()),
            "TB_NO_P2P" => Some("1".into()),
            _ => None,
        };
        assert!(load(&[], &env).is_ok());
        assert!(matches!(
            load(&args("--no-p2p=1"), &none),
            Err(ConfigError::Flag { .. })
        ));
    }

    proptest::proptest! {
        /// Any config text, flag list, variable value or key text is a config or a
        /// typed error, never a panic.
        #[test]
        fn arbitrary_input_never_panics(
            text in ".{0,200}",
            flags in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(
                        VALUED.iter().chain(SWITCHES).map(|(f, _)| f.to_string()).collect::<Vec<_>>()
                    ),
                    ".{0,20}",
                ],
                0..8,
            ),
            value in ".{0,30}",
        ) {
            if let Ok(c) = toml::from_str::<NodeConfig>(&text) {
                let _ = c.check();
            }
            let env = |n: &str| (n != "TB_CONFIG").then(|| value.clone());
            let _ = load(&flags, &env);
            let none = |_: &str| None;
            let _ = load(&flags, &none);
            let _ = tb_primitives::SecretKey::from_seed_hex(&text);
        }
    }

    #[test]
    fn key_files_round_trip_and_refuse_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let k = tb_primitives::SecretKey::dev("x");
        write_key(&p, &k).unwrap();
        assert_eq!(read_key(&p).unwrap().address(), k.address());
        assert!(write_key(&p, &k).is_err(), "never overwrites a key");
        std::fs::write(&p, "zz").unwrap();
        assert!(matches!(read_key(&p), Err(ConfigError::Key { .. })));
    }
}
