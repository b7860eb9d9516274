//! Command-line flags and their defaults, in one place.
//!
//! [`Args`] is what `chatd` parses; [`ServerConfig`] is what the reactor runs
//! with, and [`CoreConfig`] the part the state machine sees. Every limit lives
//! here, so a reader finds each number once.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::core::Secret;

/// The longest client line, in bytes, not counting `\r\n` (protocol baseline).
pub const MAX_LINE: usize = 4096;
/// The longest server line, in bytes, not counting `\n` (protocol baseline).
pub const MAX_SERVER_LINE: usize = 8192;
/// The longest name (user or room, without `#`).
pub const MAX_NAME: usize = 32;
/// The largest `N` that `/history ROOM N` returns.
pub const MAX_HISTORY_REQUEST: usize = 500;
/// The longest room topic, in bytes (as IRC's common TOPICLEN).
pub const MAX_TOPIC: usize = 390;
/// The most names one user's MONITOR list holds (IRC `MONITOR=`).
pub const MAX_MONITOR: usize = 100;
/// The longest real name `SETNAME` accepts, in bytes.
pub const MAX_REALNAME: usize = 100;
/// Passwords are 8 to 256 bytes.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=256;
/// Addresses whose failed logins are tracked at once (the oldest fully
/// recovered ones are forgotten first).
pub const MAX_TRACKED_ADDRESSES: usize = 4096;

/// How hard each database commit tries to reach the disk (`--sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SyncMode {
    /// `synchronous=NORMAL`: with WAL a commit survives a crash of the
    /// server; the last ones may be lost only if the machine loses power.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit waits for an fsync, so it survives
    /// power loss too, at the price of one fsync per loop iteration.
    Full,
}

/// A per-connection command rate (`--rate 10/20`): a token bucket that
/// refills `per_sec` lines a second and holds at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Lines per second, sustained.
    pub per_sec: u32,
    /// Lines accepted at once after a quiet spell.
    pub burst: u32,
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?}: expected LINES/BURST such as 10/20, or off");
        let (per_sec, burst) = s.split_once('/').ok_or_else(bad)?;
        let rate = Rate {
            per_sec: per_sec.trim().parse().map_err(|_| bad())?,
            burst: burst.trim().parse().map_err(|_| bad())?,
        };
        if rate.per_sec == 0 || rate.burst == 0 {
            return Err(bad());
        }
        Ok(rate)
    }
}

/// `--rate`: a [`Rate`] or `off`.
fn parse_rate(s: &str) -> Result<Option<Rate>, String> {
    if s.eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

/// What the pure state machine needs to know.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The name in `HELLO`.
    pub server_name: String,
    /// The room everyone joins at login (`None`: no lobby).
    pub lobby: Option<String>,
    /// Messages remembered per room (a ring; the oldest go first).
    pub history_len: usize,
    /// Messages replayed after `/join` (and the default of `/history`).
    pub join_history: usize,
    /// Rooms the server holds at most; creating one more is refused.
    pub max_rooms: usize,
    /// Rooms one user may be in at once.
    pub max_rooms_per_user: usize,
    /// Direct messages kept for one offline account.
    pub inbox_limit: usize,
    /// Rooms bigger than this do not announce joins, leaves and offlines to
    /// every member (0: always announce).
    pub presence_limit: usize,
    /// Failed logins one address may make in a burst before it must wait.
    pub login_failures: u32,
    /// One more failed login is allowed per this many milliseconds.
    pub login_failure_refill_ms: u64,
    /// Server operator logins (IRC `OPER NAME PASSWORD`). The passwords are
    /// plain text, as given on the command line (`--oper`).
    pub opers: Vec<OperLogin>,
}

/// One server operator login (`--oper NAME:PASSWORD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperLogin {
    /// The operator name `OPER` asks for (not a nick; compared exactly).
    pub name: String,
    /// Its password, plain (compared in constant time).
    pub password: Secret,
}

/// The most `--oper` logins.
pub const MAX_OPERS: usize = 64;

impl std::str::FromStr for OperLogin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            "expected NAME:PASSWORD (a name without spaces or ':', a non-empty password without spaces)".to_string()
        };
        let (name, password) = s.split_once(':').ok_or_else(bad)?;
        let ok = |t: &str| !t.is_empty() && t.len() <= 256 && !t.contains([' ', '\r', '\n', '\0']);
        if !ok(name) || !ok(password) {
            return Err(bad());
        }
        Ok(OperLogin {
            name: name.into(),
            password: Secret::new(password),
        })
    }
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            server_name: "chat.local".into(),
            lobby: Some("#lobby".into()),
            history_len: 1000,
            join_history: 20,
            max_rooms: 10_000,
            max_rooms_per_user: 100,
            inbox_limit: 1000,
            presence_limit: 1000,
            login_failures: 5,
            login_failure_refill_ms: 12_000,
            opers: Vec::new(),
        }
    }
}

/// Everything the reactor runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Addresses for the line protocol.
    pub listen: Vec<SocketAddr>,
    /// Addresses for the RFC 862 echo service (benchmark baseline).
    pub echo_listen: Vec<SocketAddr>,
    /// Addresses for IRC.
    pub irc_listen: Vec<SocketAddr>,
    /// An IRC client idle this long gets a `PING`, and is dropped if it
    /// stays silent as long again (`None`: never).
    pub ping_interval: Option<Duration>,
    /// The IRC message of the day, line by line (empty: none).
    pub motd: Vec<String>,
    /// Bytes queued for one connection before it is dropped as too slow.
    pub sendq: usize,
    /// How long a closing connection may take to flush before it is dropped.
    pub close_grace: Duration,
    /// How long shutdown waits for every queue to flush.
    pub shutdown_grace: Duration,
    /// The database file (`:memory:` for a throwaway one, `off` for none).
    pub db: String,
    /// How hard commits try to reach the disk.
    pub sync: SyncMode,
    /// Threads hashing and checking passwords.
    pub auth_threads: usize,
    /// argon2id memory cost in KiB (OWASP's 19 MiB by default).
    pub argon2_memory_kib: u32,
    /// argon2id passes.
    pub argon2_iterations: u32,
    /// Command rate per connection (`None`: unlimited).
    pub rate: Option<Rate>,
    /// Connections at once (0: no limit).
    pub max_clients: usize,
    /// Connections at once from one address (0: no limit).
    pub max_per_ip: usize,
    /// How long a connection may stay without logging in (`None`: forever).
    pub login_timeout: Option<Duration>,
    /// TCP keepalive idle time for client sockets (`None`: off).
    pub tcp_keepalive: Option<Duration>,
    /// How often to log a stats line (`None`: never).
    pub stats_interval: Option<Duration>,
    /// The state machine's settings.
    pub core: CoreConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            echo_listen: Vec::new(),
            irc_listen: Vec::new(),
            ping_interval: Some(Duration::from_secs(120)),
            motd: default_motd(),
            sendq: 1 << 20,
            close_grace: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(3),
            db: ":memory:".into(),
            sync: SyncMode::Normal,
            auth_threads: 2,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            rate: Some(Rate {
                per_sec: 10,
                burst: 20,
            }),
            max_clients: 10_000,
            max_per_ip: 100,
            login_timeout: Some(Duration::from_secs(60)),
            tcp_keepalive: Some(Duration::from_secs(60)),
            stats_interval: None,
            core: CoreConfig::default(),
        }
    }
}

/// `chatd`'s command line.
#[derive(Debug, Parser)]
#[command(name = "chatd", version, about = "A fast, lightweight chat server")]
pub struct Args {
    /// Address to listen on for the line protocol (repeat for several).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7070")]
    pub listen: Vec<SocketAddr>,

    /// Also serve RFC 862 echo here (a benchmark baseline; repeat for several).
    #[arg(long, value_name = "ADDR")]
    pub echo_listen: Vec<SocketAddr>,

    /// Address to listen on for IRC (repeat for several), or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "0.0.0.0:6667", value_parser = parse_listen)]
    pub irc_listen: Vec<std::option::Option<SocketAddr>>,

    /// Seconds an IRC client may stay silent before it is sent a PING; one
    /// that stays silent as long again is dropped (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub ping_interval: u64,

    /// File with the IRC message of the day (default: a short built-in one).
    #[arg(long, value_name = "PATH")]
    pub motd: Option<std::path::PathBuf>,

    /// Server name shown in the HELLO line and to IRC clients.
    #[arg(long, value_name = "NAME", default_value = "chat.local")]
    pub name: String,

    /// Room everyone joins at login, or `off` for none.
    #[arg(long, value_name = "ROOM|off", default_value = "#lobby")]
    pub lobby: String,

    /// Messages kept in memory per room for /join and /history.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub history_size: usize,

    /// Rooms with more members than this do not announce JOIN, LEAVE and
    /// OFFLINE to every member (0: always announce).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub presence_limit: usize,

    /// Bytes queued for one client before it is disconnected as too slow.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub sendq: usize,

    /// Database file (SQLite); `:memory:` keeps nothing after the server stops; `off`: no database at all.
    #[arg(long, value_name = "PATH", default_value = "chatd.db")]
    pub db: String,

    /// `normal`: commits survive a crash of the daemon; `full`: also power loss (slower).
    #[arg(long, value_enum, default_value_t = SyncMode::Normal)]
    pub sync: SyncMode,

    /// Threads that hash and check passwords (off the event loop).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub auth_threads: usize,

    /// Lines per second per connection, with a burst: `10/20`, or `off`.
    /// Lines over it are not dropped: the connection is read more slowly.
    // Spelled out so clap does not treat the field as an optional flag.
    #[arg(long, value_name = "LINES/BURST|off", default_value = "10/20", value_parser = parse_rate)]
    pub rate: std::option::Option<Rate>,

    /// Connections at once (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_clients: usize,

    /// Connections at once from one IP address (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_per_ip: usize,

    /// Seconds a connection may stay without logging in (0: no limit).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub login_timeout: u64,

    /// Seconds of silence before TCP keepalive probes a client (0: off);
    /// a vanished peer is dropped about a minute after that.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub tcp_keepalive: u64,

    /// Seconds between stats lines in the log (0: none).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub stats_interval: u64,

    /// A server operator login for IRC `OPER` (repeat for several, at most
    /// 64). The password is plain text and, being on the command line, is
    /// visible to local users in the process list: use it on hosts you trust.
    #[arg(long, value_name = "NAME:PASSWORD")]
    pub oper: Vec<OperLogin>,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: log::LevelFilter,
}

/// A flag value that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `--lobby` is neither `off` nor a valid room name.
    BadLobby(String),
    /// `--motd` cannot be read.
    Motd(String),
    /// `--oper` given too often.
    TooManyOpers,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::BadLobby(name) => write!(
                f,
                "--lobby {name:?}: a room is # and 1-{MAX_NAME} of A-Z a-z 0-9 _ -, or off"
            ),
            ConfigError::Motd(why) => write!(f, "--motd: {why}"),
            ConfigError::TooManyOpers => write!(f, "--oper: at most {MAX_OPERS} logins"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Args {
    /// Turns the flags into the server's settings.
    pub fn to_config(&self) -> Result<ServerConfig, ConfigError> {
        let lobby = if self.lobby.eq_ignore_ascii_case("off") {
            None
        } else {
            let room = if self.lobby.starts_with('#') {
                self.lobby.clone()
            } else {
                format!("#{}", self.lobby)
            };
            if !is_room_name(&room) {
                return Err(ConfigError::BadLobby(self.lobby.clone()));
            }
            Some(room)
        };
        let motd = match &self.motd {
            None => default_motd(),
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Motd(format!("{}: {e}", path.display())))?
                .lines()
                .take(MAX_MOTD_LINES)
                .map(|l| l.chars().take(400).collect())
                .collect(),
        };
        if self.oper.len() > MAX_OPERS {
            return Err(ConfigError::TooManyOpers);
        }
        Ok(ServerConfig {
            listen: self.listen.clone(),
            echo_listen: self.echo_listen.clone(),
            irc_listen: self.irc_listen.iter().flatten().copied().collect(),
            ping_interval: secs(self.ping_interval),
            motd,
            sendq: self.sendq,
            db: self.db.clone(),
            sync: self.sync,
            auth_threads: self.auth_threads,
            rate: self.rate,
            max_clients: self.max_clients,
            max_per_ip: self.max_per_ip,
            login_timeout: secs(self.login_timeout),
            tcp_keepalive: secs(self.tcp_keepalive),
            stats_interval: secs(self.stats_interval),
            core: CoreConfig {
                server_name: self.name.clone(),
                lobby,
                history_len: self.history_size,
                presence_limit: self.presence_limit,
                opers: self.oper.clone(),
                ..CoreConfig::default()
            },
            ..ServerConfig::default()
        })
    }
}

/// The most lines of a message of the day.
pub const MAX_MOTD_LINES: usize = 200;

fn default_motd() -> Vec<String> {
    vec![
        "Welcome to chatd: IRC and plain-text clients share these rooms.".into(),
        "Try JOIN #lobby.".into(),
    ]
}

/// A listen address, or `off` for none.
fn parse_listen(s: &str) -> Result<std::option::Option<SocketAddr>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|e| format!("{s:?}: {e} (an address like 127.0.0.1:6667, or off)"))
}

/// Seconds as a duration, 0 meaning none.
fn secs(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

/// A user name: 1–32 of `A-Z a-z 0-9 _ -`, starting with a letter.
pub fn is_user_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(is_name_byte)
}

/// A room name: `#` and 1–32 of `A-Z a-z 0-9 _ -`.
pub fn is_room_name(name: &str) -> bool {
    name.strip_prefix('#').is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= MAX_NAME && rest.bytes().all(is_name_byte)
    })
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert!(is_user_name("alice"));
        assert!(is_user_name("A-b_9"));
        assert!(is_user_name(&"a".repeat(32)));
        assert!(!is_user_name(&"a".repeat(33)));
        assert!(!is_user_name(""));
        assert!(!is_user_name("9lives"));
        assert!(!is_user_name("_x"));
        assert!(!is_user_name("al ice"));
        assert!(!is_user_name("élise"));
    }

    #[test]
    fn room_names() {
        assert!(is_room_name("#lobby"));
        assert!(is_room_name("#9"));
        assert!(!is_room_name("#"));
        assert!(!is_room_name("lobby"));
        assert!(!is_room_name("##x"));
        assert!(!is_room_name(&format!("#{}", "r".repeat(33))));
    }

    #[test]
    fn rate_flag() {
        assert_eq!(
            Args::parse_from(["chatd"]).rate,
            Some(Rate {
                per_sec: 10,
                burst: 20
            })
        );
        assert_eq!(Args::parse_from(["chatd", "--rate", "off"]).rate, None);
        assert_eq!(
            Args::parse_from(["chatd", "--rate", "5/7"]).rate,
            Some(Rate {
                per_sec: 5,
                burst: 7
            })
        );
        for bad in ["5", "0/3", "3/0", "x/y", "5/"] {
            assert!(
                Args::try_parse_from(["chatd", "--rate", bad]).is_err(),
                "{bad}"
            );
        }
        let config = Args::parse_from(["chatd", "--login-timeout", "0", "--stats-interval", "30"])
            .to_config()
            .unwrap();
        assert_eq!(config.login_timeout, None);
        assert_eq!(config.stats_interval, Some(Duration::from_secs(30)));
    }

    #[test]
    fn oper_flag() {
        let args = Args::parse_from(["chatd", "--oper", "op:pa:ss", "--oper", "b:c"]);
        let opers = args.to_config().unwrap().core.opers;
        assert_eq!(opers.len(), 2);
        assert_eq!(opers[0].name, "op");
        assert_eq!(opers[0].password.expose(), "pa:ss");
        assert!(!format!("{opers:?}").contains("pa:ss"));
        for bad in ["op", ":pw", "op:", "o p:pw", "op:p w"] {
            assert!(
                Args::try_parse_from(["chatd", "--oper", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn lobby_flag() {
        let args = Args::parse_from(["chatd", "--lobby", "off"]);
        assert_eq!(args.to_config().unwrap().core.lobby, None);
        let args = Args::parse_from(["chatd", "--lobby", "hall"]);
        assert_eq!(
            args.to_config().unwrap().core.lobby.as_deref(),
            Some("#hall")
        );
        let args = Args::parse_from(["chatd", "--lobby", "bad room"]);
        assert!(args.to_config().is_err());
    }
}
