//! The node's configuration: a TOML file, `TB_*` environment variables and command-line
//! flags, in rising precedence (a flag beats the environment, which beats the file,
//! which beats the defaults). The flags and variables are [`RunArgs`] (clap); every
//! value is checked here, at the boundary: a bad file or value is a typed
//! [`ConfigError`] naming it (clap refuses a malformed flag or variable with exit
//! status 2), never a panic. `etc/node.example.toml` shows every key of the file.

use clap::builder::BoolishValueParser;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
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
/// Default share of one address (IPv4, or IPv6 /64) in the RPC connections.
pub const RPC_CONNECTIONS_PER_IP_DEFAULT: u32 = 32;
/// Default seconds an RPC connection without subscriptions may go without a request.
pub const RPC_IDLE_SECS_DEFAULT: u64 = 120;
/// Longest `rpc_idle_secs`.
pub const RPC_IDLE_SECS_MAX: u64 = 86_400;
/// Default bound on the bytes of RPC requests in flight, MiB.
pub const RPC_REQUEST_MEMORY_MB_DEFAULT: u64 = 128;
/// Largest `rpc_request_memory_mb` (16 GiB).
pub const RPC_REQUEST_MEMORY_MB_MAX: u64 = 16 * 1024;
/// Shortest block interval the miner may be configured to.
pub const BLOCK_INTERVAL_MS_MIN: u64 = 50;
/// Longest block interval the miner may be configured to.
pub const BLOCK_INTERVAL_MS_MAX: u64 = 600_000;
/// Default bound on the state cache (entries and trie nodes read from the store),
/// MiB: `tb_store::CACHE_BYTES_DEFAULT`.
pub const STATE_CACHE_MB_DEFAULT: u64 = tb_store::CACHE_BYTES_DEFAULT / (1024 * 1024);
/// Largest state cache, MiB (64 GiB).
pub const STATE_CACHE_MB_MAX: u64 = 64 * 1024;
/// Default bound on the prepared models the provider and verifier keep (each model's
/// constants uploaded to its fabric once for all its jobs, `tb_job::ModelCache`), MiB.
pub const MODEL_CACHE_MB_DEFAULT: u64 = 1024;
/// Largest model cache, MiB (64 GiB).
pub const MODEL_CACHE_MB_MAX: u64 = 64 * 1024;
/// Default peer-to-peer listen address of `run`.
pub const P2P_LISTEN_DEFAULT: &str = "/ip4/0.0.0.0/tcp/7171";
/// Listen addresses and bootnodes accepted (each).
pub const P2P_ADDRS_MAX: usize = 64;
/// Default ban of a misbehaving peer, seconds.
pub const P2P_BAN_SECS_DEFAULT: u64 = 600;
/// Longest ban.
pub const P2P_BAN_SECS_MAX: u64 = 7 * 24 * 3600;

/// Default time a mempool entry may wait, seconds.
pub const MEMPOOL_TTL_SECS_DEFAULT: u64 = tb_chain::mempool::TTL_MS_DEFAULT / 1000;
/// Longest mempool time to live, seconds (a week).
pub const MEMPOOL_TTL_SECS_MAX: u64 = 7 * 24 * 3600;
/// Largest mempool capacity, transactions.
pub const MEMPOOL_CAPACITY_MAX: usize = 1_000_000;
/// Largest mempool size, bytes (1 GiB).
pub const MEMPOOL_BYTES_MAX: usize = 1 << 30;
/// Default interval of the mempool's purge loop, seconds.
pub const MEMPOOL_PURGE_SECS_DEFAULT: u64 = 30;
/// Longest purge interval, seconds.
pub const MEMPOOL_PURGE_SECS_MAX: u64 = 3600;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("{field}: {msg}")]
    Invalid { field: &'static str, msg: String },
    #[error("key file {path}: {msg}")]
    Key { path: PathBuf, msg: String },
}

/// Which network's parameters the node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ValueEnum)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FabricKind {
    Cpu,
    Cuda,
    Wgpu,
}

impl FabricKind {
    pub fn name(self) -> &'static str {
        match self {
            FabricKind::Cpu => "cpu",
            FabricKind::Cuda => "cuda",
            FabricKind::Wgpu => "wgpu",
        }
    }
}

/// The whole configuration (the TOML file's shape; every key optional).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Where the redb store, the blob store and worker state live.
    pub data_dir: PathBuf,
    pub network: Network,
    /// JSON-RPC over HTTP and WebSocket (one port).
    pub rpc_addr: SocketAddr,
    /// Prometheus `/metrics`, `/wrappers`, `/health` and `/ready`; off when absent.
    pub metrics_addr: Option<SocketAddr>,
    /// The node's key: a file holding the 32-byte Ed25519 seed in hex. Needed by the
    /// miner (its beneficiary), the provider and the verifier.
    pub key_file: Option<PathBuf>,
    /// The token the admin RPC methods need (`<data dir>/admin.token` when absent;
    /// made at first start).
    pub admin_token_file: Option<PathBuf>,
    pub rpc_max_request_bytes: u32,
    pub rpc_max_connections: u32,
    /// Open RPC connections from one address (IPv4, or IPv6 /64).
    pub rpc_connections_per_ip: u32,
    /// An RPC connection with no subscription and no request for this long is closed.
    pub rpc_idle_secs: u64,
    /// Bound on the bytes of RPC requests in flight at once, MiB (HTTP requests wait
    /// for their share, WebSocket calls over it are refused as busy).
    pub rpc_request_memory_mb: u64,
    /// Serve the block explorer on the RPC port, under `/explorer/`.
    pub explorer: bool,
    /// Bound on the memory the state cache holds, MiB (the state itself lives on
    /// disk and may be far larger).
    pub state_cache_mb: u64,
    /// Bound on the models the provider and verifier keep uploaded to their fabrics
    /// (one cache, both together), MiB; 0 uploads every job's constants afresh.
    pub model_cache_mb: u64,
    pub mempool: MempoolSettings,
    pub miner: MinerConfig,
    pub provider: ProviderConfig,
    pub verifier: VerifierConfig,
    pub p2p: P2pConfig,
}

/// The mempool: its limits, fee floor, time to live and purge loop.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolSettings {
    /// Pending transactions held, all senders together.
    pub capacity: usize,
    /// Encoded bytes of the pending transactions, summed.
    pub bytes_max: usize,
    /// Pending transactions of one sender.
    pub per_sender_max: usize,
    /// Minimum fee per encoded byte, micro-tokens.
    pub fee_floor_per_byte: u64,
    /// Seconds an entry may wait from admission.
    pub ttl_secs: u64,
    /// Seconds between two runs of the purge loop (expired entries dropped even
    /// without new blocks).
    pub purge_interval_secs: u64,
}

impl Default for MempoolSettings {
    fn default() -> Self {
        let d = tb_chain::mempool::MempoolConfig::default();
        MempoolSettings {
            capacity: d.capacity_max,
            bytes_max: d.bytes_max,
            per_sender_max: d.per_sender_max,
            fee_floor_per_byte: d.fee_floor_per_byte,
            ttl_secs: MEMPOOL_TTL_SECS_DEFAULT,
            purge_interval_secs: MEMPOOL_PURGE_SECS_DEFAULT,
        }
    }
}

impl MempoolSettings {
    /// The chain's mempool configuration.
    pub fn pool(&self) -> tb_chain::mempool::MempoolConfig {
        tb_chain::mempool::MempoolConfig {
            capacity_max: self.capacity,
            bytes_max: self.bytes_max,
            fee_floor_per_byte: self.fee_floor_per_byte,
            ttl_ms: self.ttl_secs * 1000,
            per_sender_max: self.per_sender_max,
        }
    }
}

/// The peer-to-peer network (libp2p).
#[derive(Clone, Debug, Deserialize, Serialize)]
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
    /// Established inbound connections from one address (IPv4, or IPv6 /64).
    pub inbound_per_ip: u32,
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            enabled: true,
            listen: vec![P2P_LISTEN_DEFAULT.into()],
            bootnodes: Vec::new(),
            key_file: None,
            ban_secs: P2P_BAN_SECS_DEFAULT,
            inbound_per_ip: tb_net::limits::INBOUND_PER_IP_DEFAULT,
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

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    pub enabled: bool,
    /// Milliseconds between blocks (the miner waits; the PoW sets no pace on a devnet).
    pub block_interval_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
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
    /// Test only: milliseconds added to every job's execution (a slow fabric, to show
    /// that heartbeats do not wait for execution).
    pub test_exec_delay_ms: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
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
            rpc_connections_per_ip: RPC_CONNECTIONS_PER_IP_DEFAULT,
            rpc_idle_secs: RPC_IDLE_SECS_DEFAULT,
            rpc_request_memory_mb: RPC_REQUEST_MEMORY_MB_DEFAULT,
            explorer: true,
            state_cache_mb: STATE_CACHE_MB_DEFAULT,
            model_cache_mb: MODEL_CACHE_MB_DEFAULT,
            mempool: MempoolSettings::default(),
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
            test_exec_delay_ms: None,
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

/// The flags of `run` and `devnet`. Each has a `TB_*` variable; a flag beats its
/// variable, which beats the config file, which beats the defaults. A switch takes an
/// optional value (`--mine`, `--mine=false`; variables 1/0/true/false/yes/no/on/off).
#[derive(Args, Clone, Debug, Default)]
pub struct RunArgs {
    /// TOML config file (every key: etc/node.example.toml)
    #[arg(long, env = "TB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit
    #[arg(long)]
    pub print_config: bool,
    /// Data directory: chain store, blob store, keys, worker state [default: tb-data; devnet: tb-devnet]
    #[arg(long, env = "TB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Chain parameters [default: devnet]
    #[arg(long, env = "TB_NETWORK", value_enum)]
    pub network: Option<Network>,
    /// JSON-RPC over HTTP and WebSocket [default: 127.0.0.1:3030]
    #[arg(long, env = "TB_RPC_ADDR", value_name = "HOST:PORT")]
    pub rpc_addr: Option<SocketAddr>,
    /// Prometheus /metrics, /health, /ready [default: off; devnet: 127.0.0.1:9898]
    #[arg(long, env = "TB_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<SocketAddr>,
    /// The node's key (32-byte Ed25519 seed in hex): the miner's beneficiary, the provider, the verifier
    #[arg(long, env = "TB_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The admin RPC token [default: DATA/admin.token, made at first start]
    #[arg(long, env = "TB_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Memory bound of the state cache, MiB (1..=65536) [default: 256]
    #[arg(long, env = "TB_STATE_CACHE_MB", value_name = "MIB")]
    pub state_cache_mb: Option<u64>,
    /// Memory bound of the models kept uploaded for the provider and verifier, MiB (0..=65536; 0: none) [default: 1024]
    #[arg(long, env = "TB_MODEL_CACHE_MB", value_name = "MIB")]
    pub model_cache_mb: Option<u64>,
    /// Serve the block explorer at http://RPC_ADDR/explorer/ [default: true]
    #[arg(long, env = "TB_EXPLORER", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub explorer: Option<bool>,
    /// Role: mine blocks (needs --key-file)
    #[arg(long, env = "TB_MINE", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub mine: Option<bool>,
    /// Milliseconds between mined blocks (50..=600000) [default: 1000]
    #[arg(long, env = "TB_BLOCK_INTERVAL_MS", value_name = "MS")]
    pub block_interval_ms: Option<u64>,
    /// Role: lease and run compute jobs as a provider (needs --key-file)
    #[arg(long, env = "TB_PROVIDER", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub provider: Option<bool>,
    /// The provider's compute fabric [default: cpu]
    #[arg(long, env = "TB_FABRIC", value_enum)]
    pub fabric: Option<FabricKind>,
    /// Stake the provider bonds at registration, tokens [default: 100]
    #[arg(long, env = "TB_STAKE", value_name = "TOKENS")]
    pub stake: Option<u64>,
    /// Role: replay receipts and challenge wrong ones (needs --key-file)
    #[arg(long, env = "TB_VERIFIER", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub verifier: Option<bool>,
    /// Share of receipts the verifier replays, basis points [default: 10000]
    #[arg(long, env = "TB_VERIFY_SHARE_BPS", value_name = "BPS")]
    pub verify_share_bps: Option<u32>,
    /// Test only: the provider reports a wrong digest for this op of every job
    #[arg(
        long,
        env = "TB_TEST_CORRUPT_OP",
        value_name = "I",
        hide_short_help = true
    )]
    pub test_corrupt_op: Option<u32>,
    /// Test only: milliseconds the provider adds to every job's execution
    #[arg(
        long,
        env = "TB_TEST_EXEC_DELAY_MS",
        value_name = "MS",
        hide_short_help = true
    )]
    pub test_exec_delay_ms: Option<u64>,
    /// Peer-to-peer listen addresses, /ip4|ip6/HOST/tcp/PORT [default: /ip4/0.0.0.0/tcp/7171; devnet: /ip4/127.0.0.1/tcp/7171]
    #[arg(
        long,
        env = "TB_P2P_LISTEN",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    pub p2p_listen: Option<Vec<String>>,
    /// Peers to dial and keep, /ip4|ip6/HOST/tcp/PORT/p2p/PEER_ID (repeatable; replaces the variable's and the file's list)
    #[arg(
        long = "bootnode",
        env = "TB_BOOTNODES",
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    pub bootnodes: Option<Vec<String>>,
    /// The peer-to-peer identity key [default: DATA/net.key, made at first start]
    #[arg(long, env = "TB_NET_KEY_PATH", value_name = "FILE")]
    pub net_key_file: Option<PathBuf>,
    /// Run without the peer-to-peer network
    #[arg(long, env = "TB_NO_P2P", num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new(), value_name = "BOOL")]
    pub no_p2p: Option<bool>,
    /// Seconds a mempool entry may wait [default: 3600]
    #[arg(long, env = "TB_MEMPOOL_TTL_SECS", value_name = "SECS")]
    pub mempool_ttl_secs: Option<u64>,
    /// Pending transactions the mempool holds [default: 10000]
    #[arg(long, env = "TB_MEMPOOL_CAPACITY", value_name = "N")]
    pub mempool_capacity: Option<usize>,
    /// The mempool's minimum fee per encoded byte, micro-tokens [default: 1]
    #[arg(long, env = "TB_FEE_FLOOR_PER_BYTE", value_name = "MICRO")]
    pub fee_floor_per_byte: Option<u64>,
    /// Seconds between runs of the mempool purge loop [default: 30]
    #[arg(long, env = "TB_MEMPOOL_PURGE_SECS", value_name = "SECS")]
    pub mempool_purge_secs: Option<u64>,
}

impl RunArgs {
    /// Applies every flag or variable given over `c`.
    pub fn apply(&self, c: &mut NodeConfig) {
        fn put<T: Clone>(slot: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *slot = v.clone();
            }
        }
        put(&mut c.data_dir, &self.data_dir);
        put(&mut c.network, &self.network);
        put(&mut c.rpc_addr, &self.rpc_addr);
        if self.metrics_addr.is_some() {
            c.metrics_addr = self.metrics_addr;
        }
        if self.key_file.is_some() {
            c.key_file.clone_from(&self.key_file);
        }
        if self.admin_token_file.is_some() {
            c.admin_token_file.clone_from(&self.admin_token_file);
        }
        put(&mut c.state_cache_mb, &self.state_cache_mb);
        put(&mut c.model_cache_mb, &self.model_cache_mb);
        put(&mut c.explorer, &self.explorer);
        put(&mut c.miner.enabled, &self.mine);
        put(&mut c.miner.block_interval_ms, &self.block_interval_ms);
        put(&mut c.provider.enabled, &self.provider);
        put(&mut c.provider.fabric, &self.fabric);
        put(&mut c.provider.stake_tokens, &self.stake);
        if self.test_corrupt_op.is_some() {
            c.provider.test_corrupt_op = self.test_corrupt_op;
        }
        if self.test_exec_delay_ms.is_some() {
            c.provider.test_exec_delay_ms = self.test_exec_delay_ms;
        }
        put(&mut c.verifier.enabled, &self.verifier);
        put(&mut c.verifier.share_bps, &self.verify_share_bps);
        let nonempty = |v: &Vec<String>| -> Vec<String> {
            v.iter()
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        };
        if let Some(l) = &self.p2p_listen {
            c.p2p.listen = nonempty(l);
        }
        if let Some(b) = &self.bootnodes {
            c.p2p.bootnodes = nonempty(b);
        }
        if self.net_key_file.is_some() {
            c.p2p.key_file.clone_from(&self.net_key_file);
        }
        if let Some(off) = self.no_p2p {
            c.p2p.enabled = !off;
        }
        put(&mut c.mempool.ttl_secs, &self.mempool_ttl_secs);
        put(&mut c.mempool.capacity, &self.mempool_capacity);
        put(&mut c.mempool.fee_floor_per_byte, &self.fee_floor_per_byte);
        put(&mut c.mempool.purge_interval_secs, &self.mempool_purge_secs);
    }
}

/// The configuration of `args` over the defaults, checked.
pub fn load(args: &RunArgs) -> Result<NodeConfig, ConfigError> {
    let c = load_over(args, NodeConfig::default())?;
    c.check()?;
    Ok(c)
}

/// [`load`] over `base` instead of the defaults (the devnet's presets), without the
/// final [`NodeConfig::check`]. A config file replaces `base` wholesale.
pub fn load_over(args: &RunArgs, base: NodeConfig) -> Result<NodeConfig, ConfigError> {
    let mut c = match &args.config {
        Some(p) => from_file(p)?,
        None => base,
    };
    args.apply(&mut c);
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

/// The configuration as a TOML file would give it.
pub fn to_toml(c: &NodeConfig) -> String {
    toml::to_string(c).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
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

impl NodeConfig {
    /// The store's settings.
    pub fn store(&self) -> tb_store::StoreConfig {
        tb_store::StoreConfig {
            cache_bytes: self.state_cache_mb * 1024 * 1024,
        }
    }

    /// The cache of prepared models the provider and verifier share.
    pub fn model_cache(&self) -> tb_job::ModelCache {
        tb_job::ModelCache::new(self.model_cache_mb.saturating_mul(1024 * 1024))
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
        if !(1..=self.rpc_max_connections).contains(&self.rpc_connections_per_ip) {
            return bad(
                "rpc_connections_per_ip",
                "must be 1..=rpc_max_connections".into(),
            );
        }
        if !(1..=RPC_IDLE_SECS_MAX).contains(&self.rpc_idle_secs) {
            return bad("rpc_idle_secs", format!("must be 1..={RPC_IDLE_SECS_MAX}"));
        }
        let least = u64::from(self.rpc_max_request_bytes).div_ceil(1024 * 1024);
        if !(least..=RPC_REQUEST_MEMORY_MB_MAX).contains(&self.rpc_request_memory_mb) {
            return bad(
                "rpc_request_memory_mb",
                format!(
                    "must be {least}..={RPC_REQUEST_MEMORY_MB_MAX} (at least one request of rpc_max_request_bytes)"
                ),
            );
        }
        if !(1..=STATE_CACHE_MB_MAX).contains(&self.state_cache_mb) {
            return bad(
                "state_cache_mb",
                format!("must be 1..={STATE_CACHE_MB_MAX}"),
            );
        }
        if self.model_cache_mb > MODEL_CACHE_MB_MAX {
            return bad(
                "model_cache_mb",
                format!("must be 0..={MODEL_CACHE_MB_MAX}"),
            );
        }
        let m = &self.mempool;
        if !(1..=MEMPOOL_TTL_SECS_MAX).contains(&m.ttl_secs) {
            return bad(
                "mempool.ttl_secs",
                format!("must be 1..={MEMPOOL_TTL_SECS_MAX}"),
            );
        }
        if !(1..=MEMPOOL_CAPACITY_MAX).contains(&m.capacity) {
            return bad(
                "mempool.capacity",
                format!("must be 1..={MEMPOOL_CAPACITY_MAX}"),
            );
        }
        if !(1024..=MEMPOOL_BYTES_MAX).contains(&m.bytes_max) {
            return bad(
                "mempool.bytes_max",
                format!("must be 1024..={MEMPOOL_BYTES_MAX}"),
            );
        }
        if !(1..=m.capacity).contains(&m.per_sender_max) {
            return bad(
                "mempool.per_sender_max",
                "must be 1..=mempool.capacity".into(),
            );
        }
        if !(1..=MEMPOOL_PURGE_SECS_MAX).contains(&m.purge_interval_secs) {
            return bad(
                "mempool.purge_interval_secs",
                format!("must be 1..={MEMPOOL_PURGE_SECS_MAX}"),
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
        let inbound_max = tb_net::limits::PEERS_INCOMING_MAX;
        if self.p2p.inbound_per_ip == 0 || self.p2p.inbound_per_ip > inbound_max {
            return bad("p2p.inbound_per_ip", format!("must be 1..={inbound_max}"));
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
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: RunArgs,
    }

    /// The flags of `s` (variables are the process's; the test harness sets none).
    fn parse(s: &str) -> Result<RunArgs, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(s.split_whitespace())).map(|t| t.a)
    }

    fn load_str(s: &str) -> Result<NodeConfig, ConfigError> {
        load(&parse(s).unwrap())
    }

    #[test]
    fn precedence_flag_over_file_over_default() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("node.toml");
        std::fs::write(
            &f,
            "data_dir = \"/from/file\"\nrpc_addr = \"127.0.0.1:4000\"\n[miner]\nblock_interval_ms = 300\n",
        )
        .unwrap();
        let fp = f.display().to_string();
        let c = load_str(&format!("--config {fp} --block-interval-ms 500")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.rpc_addr.port(), 4000);
        assert_eq!(c.miner.block_interval_ms, 500);
        let c = load_str(&format!("--config {fp}")).unwrap();
        assert_eq!(c.miner.block_interval_ms, 300);
        assert_eq!(load_str("").unwrap().miner.block_interval_ms, 1000);
        // The printed configuration reads back as the same file.
        let again: NodeConfig = toml::from_str(&to_toml(&c)).unwrap();
        assert_eq!(to_toml(&again), to_toml(&c));
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, "no_such_key = 1\n").unwrap();
        let e = load_str(&format!("--config {}", f.display())).unwrap_err();
        assert!(matches!(e, ConfigError::File { .. }), "{e}");
        assert!(e.to_string().contains("no_such_key"), "{e}");
        std::fs::write(&f, "rpc_addr = 7\n").unwrap();
        assert!(matches!(
            load_str(&format!("--config {}", f.display())),
            Err(ConfigError::File { .. })
        ));
        // Malformed flags are clap's to refuse.
        for bad in [
            "--rpc-addr nope",
            "--bogus",
            "--fabric",
            "--fabric gpu",
            "--mine=maybe",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // Workers need a key.
        assert!(matches!(
            load_str("--mine"),
            Err(ConfigError::Invalid {
                field: "key_file",
                ..
            })
        ));
        assert!(load_str("--mine=false").is_ok());
        assert!(matches!(
            load_str("--block-interval-ms 1"),
            Err(ConfigError::Invalid { .. })
        ));
        for bad in ["0", "65537"] {
            assert!(matches!(
                load_str(&format!("--state-cache-mb {bad}")),
                Err(ConfigError::Invalid {
                    field: "state_cache_mb",
                    ..
                })
            ));
        }
        // The connection and memory limits, each named when out of range.
        for (text, field) in [
            ("rpc_connections_per_ip = 0\n", "rpc_connections_per_ip"),
            (
                "rpc_max_connections = 4\nrpc_connections_per_ip = 5\n",
                "rpc_connections_per_ip",
            ),
            ("rpc_idle_secs = 0\n", "rpc_idle_secs"),
            ("rpc_idle_secs = 86401\n", "rpc_idle_secs"),
            ("rpc_request_memory_mb = 7\n", "rpc_request_memory_mb"),
            ("rpc_request_memory_mb = 16385\n", "rpc_request_memory_mb"),
            ("[p2p]\ninbound_per_ip = 0\n", "p2p.inbound_per_ip"),
            ("[p2p]\ninbound_per_ip = 49\n", "p2p.inbound_per_ip"),
            ("model_cache_mb = 65537\n", "model_cache_mb"),
        ] {
            std::fs::write(&f, text).unwrap();
            let r = load_str(&format!("--config {}", f.display()));
            assert!(
                matches!(&r, Err(ConfigError::Invalid { field: g, .. }) if *g == field),
                "{text}: {r:?}"
            );
        }
        for (flag, field) in [
            ("--mempool-ttl-secs 0", "mempool.ttl_secs"),
            ("--mempool-capacity 0", "mempool.capacity"),
            ("--mempool-purge-secs 0", "mempool.purge_interval_secs"),
        ] {
            assert!(
                matches!(load_str(flag), Err(ConfigError::Invalid { field: f, .. }) if f == field),
                "{flag}"
            );
        }
    }

    #[test]
    fn state_cache_and_mempool_from_flags_and_file() {
        assert_eq!(
            load_str("").unwrap().store().cache_bytes,
            tb_store::CACHE_BYTES_DEFAULT
        );
        let c = load_str("--state-cache-mb 3").unwrap();
        assert_eq!(c.store().cache_bytes, 3 << 20);
        assert_eq!(c.model_cache().budget(), MODEL_CACHE_MB_DEFAULT << 20);
        let c = load_str("--model-cache-mb 0").unwrap();
        assert_eq!(c.model_cache().budget(), 0, "0 turns the model cache off");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("node.toml");
        std::fs::write(
            &f,
            "state_cache_mb = 9\n[mempool]\nttl_secs = 60\nfee_floor_per_byte = 5\n",
        )
        .unwrap();
        let c = load_str(&format!("--config {} --mempool-capacity 77", f.display())).unwrap();
        assert_eq!(c.state_cache_mb, 9);
        let pool = c.mempool.pool();
        assert_eq!(
            (pool.ttl_ms, pool.fee_floor_per_byte, pool.capacity_max),
            (60_000, 5, 77)
        );
    }

    #[test]
    fn p2p_addresses_lists_and_switch() {
        const ID: &str = "12D3KooWKoazrSLKxP19ptyFKRbBruQTLEU5M955r5U61UaFFSbS";
        let b1 = format!("/ip4/10.0.0.1/tcp/7171/p2p/{ID}");
        let b2 = format!("/ip6/::1/tcp/7172/p2p/{ID}");
        let c = load_str("").unwrap();
        assert!(c.p2p.enabled);
        assert_eq!(c.p2p.listen, vec![P2P_LISTEN_DEFAULT.to_string()]);
        assert_eq!(c.p2p.key_path(Path::new("d")), PathBuf::from("d/net.key"));
        // Repeated flags and comma lists add up.
        let c = load_str(&format!("--bootnode {b1} --bootnode {b2},{b2}")).unwrap();
        assert_eq!(c.p2p.bootnodes, vec![b1.clone(), b2.clone(), b2.clone()]);
        let (_, boots) = c.p2p.addrs().unwrap();
        assert_eq!(boots.len(), 3);
        let c = load_str("--no-p2p --p2p-listen /ip4/127.0.0.1/tcp/0 --net-key-file k").unwrap();
        assert!(!c.p2p.enabled);
        assert_eq!(c.p2p.key_path(Path::new("d")), PathBuf::from("k"));
        assert!(load_str("--no-p2p=false").unwrap().p2p.enabled);
        // Addresses the TCP transport cannot use are refused at the boundary.
        for bad in [
            "--p2p-listen nonsense".to_string(),
            "--p2p-listen /dns4/example.org/tcp/1".to_string(),
            "--p2p-listen /ip4/1.2.3.4/udp/1".to_string(),
            format!("--p2p-listen /ip4/1.2.3.4/tcp/1/p2p/{ID}"),
            "--bootnode /ip4/1.2.3.4/tcp/1".to_string(),
            format!("--bootnode /dns4/x/tcp/1/p2p/{ID}"),
        ] {
            let e = load_str(&bad).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { .. }), "{bad}: {e}");
        }
        // An empty listen list is refused unless the network is off.
        assert!(matches!(
            load_str("--p2p-listen ,"),
            Err(ConfigError::Invalid {
                field: "p2p.listen",
                ..
            })
        ));
        assert!(load_str("--p2p-listen , --no-p2p").is_ok());
    }

    proptest::proptest! {
        /// Any config text, flag list or key text is a config or a typed error, never a
        /// panic.
        #[test]
        fn arbitrary_input_never_panics(
            text in ".{0,200}",
            flags in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(
                        [
                            "--data-dir", "--rpc-addr", "--mine", "--mine=0", "--fabric",
                            "--bootnode", "--p2p-listen", "--no-p2p", "--state-cache-mb",
                            "--mempool-ttl-secs", "--stake", "--config",
                        ]
                        .map(String::from)
                        .to_vec()
                    ),
                    ".{0,20}",
                ],
                0..8,
            ),
        ) {
            if let Ok(c) = toml::from_str::<NodeConfig>(&text) {
                let _ = c.check();
                let _ = to_toml(&c);
            }
            if let Ok(t) = T::try_parse_from(std::iter::once("t".to_string()).chain(flags)) {
                let _ = load(&t.a);
            }
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
