//! `chat-bench`: the load generator for chatd, and for IRC servers such as
//! ngircd so the two can be compared with the same tool.
//!
//! One process, one thread, one mio reactor for every connection, so what
//! it measures is the server's limit, not its own.
//!
//! # Layout
//! | file | owns |
//! |---|---|
//! | `main.rs` | flags, scenario dispatch, output and exit status |
//! | `net.rs` | the client reactor: connects, logins, joins, buffers, the loop |
//! | `proto.rs` | the line protocol, IRC and echo: lines built and parsed; the payload |
//! | `stats.rs` | latency histogram, order checks, the report (table and JSON) |
//! | `connect.rs`, `fanout.rs`, `pairs.rs`, `echo.rs` | one scenario each |
//!
//! Exit status: 0 for a complete, clean run; 1 for a run that was cut short
//! or saw lost, duplicated, reordered or unexpected messages (or could not
//! start); 2 for bad flags.

mod connect;
mod echo;
mod fanout;
mod net;
mod pairs;
mod proto;
mod roundtrip;
mod stats;

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};

use net::{Clock, Driver, Net, NetError, Outcome, Setup};
use proto::Proto;
use stats::Report;

/// What `--help` says about preparing the server.
const SERVER_HELP: &str = "\
Run chatd for a benchmark without its flood control and per-address limit,
which would otherwise throttle every client coming from 127.0.0.1:

  chatd --listen 127.0.0.1:7070 --db :memory: --rate off --max-per-ip 0 --log-level warn

IRC servers: see the peers' configs (flood penalties and clone limits off).
ngircd's listen backlog is 10: use --concurrency 10. ngircd also drops a
client with over 32 KiB queued: in fanout keep senders-per-room x --window
x (--size + 60) below that (10 senders: --window 16 at most).

Clients are named PREFIX0, PREFIX1, ... (default prefix b<pid%1000>x) and,
for fanout, join #bench0 .. #bench<R-1>. Every run stops by itself after
--duration seconds and then reports what it got, marked incomplete.";

/// Load generator for chatd (line protocol) and IRC servers.
#[derive(Parser, Debug)]
#[command(name = "chat-bench", version, after_help = SERVER_HELP)]
struct Cli {
    /// Flags every scenario takes.
    #[command(flatten)]
    common: Common,
    /// What to measure.
    #[command(subcommand)]
    scenario: Scenario,
}

/// Flags every scenario takes (before or after the scenario's name).
#[derive(clap::Args, Debug)]
struct Common {
    /// Server address, HOST:PORT.
    #[arg(long, global = true, default_value = "127.0.0.1:7070")]
    server: String,
    /// Protocol: chatd's line protocol, or IRC (RFC 2812). Ignored by `echo`.
    #[arg(long, global = true, value_enum, default_value_t = DialectArg::Line)]
    dialect: DialectArg,
    /// Hard cap on the whole run, seconds; a run that hits it reports what it
    /// got, marked incomplete, and exits with status 1.
    #[arg(long, global = true, default_value_t = 60.0, value_parser = parse_secs)]
    duration: f64,
    /// Print one JSON object on stdout (the table goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Connection handshakes (connect and login) in flight at most.
    #[arg(long, global = true, default_value_t = 100, value_parser = parse_positive)]
    concurrency: usize,
    /// Name prefix: clients are PREFIX0, PREFIX1, ... (default b<pid%1000>x).
    #[arg(long, global = true, value_parser = parse_prefix)]
    prefix: Option<String>,
    /// No progress line on stderr.
    #[arg(long, global = true)]
    quiet: bool,
    /// Log level on stderr (connection failures are logged at debug).
    #[arg(long, global = true, default_value = "warn")]
    log_level: log::LevelFilter,
}

/// `--dialect`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum DialectArg {
    /// chatd's line protocol (`/login NAME`, `MSG ...`).
    Line,
    /// RFC 2812 IRC (`NICK`/`USER`, `JOIN`, `PRIVMSG`).
    Irc,
}

/// The scenarios.
#[derive(Subcommand, Debug)]
enum Scenario {
    /// Open and log in N connections: logins/s, time until all are in, and
    /// with --server-pid the server's memory per idle connection.
    #[command(after_help = SERVER_HELP)]
    Connect(connect::Args),
    /// Room fan-out: S senders send K messages each to rooms every client
    /// reads; deliveries/s, latency, and lost/duplicated/reordered counts.
    #[command(after_help = SERVER_HELP)]
    Fanout(fanout::Args),
    /// N/2 pairs ping-pong direct messages: round trips/s and latency.
    #[command(after_help = SERVER_HELP)]
    Pairs(pairs::Args),
    /// Load an RFC 862 echo server (chatd's --echo-listen, or any other):
    /// round trips/s and latency, the floor fan-out is compared to.
    #[command(after_help = SERVER_HELP)]
    Echo(echo::Args),
}

/// Why a run could not start.
#[derive(Debug)]
enum Error {
    /// A flag combination that makes no sense.
    Usage(String),
    /// `--server` did not resolve.
    Resolve(String, io::Error),
    /// `--server` resolved to nothing.
    NoAddress(String),
    /// `--server-pid`'s memory could not be read.
    ServerPid(u32, io::Error),
    /// The reactor failed.
    Net(NetError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => f.write_str(msg),
            Error::Resolve(server, e) => write!(f, "cannot resolve {server}: {e}"),
            Error::NoAddress(server) => write!(f, "{server} resolves to no address"),
            Error::ServerPid(pid, e) => write!(f, "cannot read /proc/{pid}/status: {e}"),
            Error::Net(e) => write!(f, "{e}"),
        }
    }
}

impl From<NetError> for Error {
    fn from(e: NetError) -> Self {
        Error::Net(e)
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err("seconds, more than 0 and at most 86400".into()),
    }
}

fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err("a whole number above 0".into()),
    }
}

/// A prefix the line protocol and IRC both accept as the start of a name.
fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = s.len() <= 20
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err("1-20 of A-Z a-z 0-9 _ -, starting with a letter".into())
    }
}

/// Everything a scenario needs from the common flags, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    /// The server's address.
    pub(crate) addr: SocketAddr,
    /// `--server` as given, for the report.
    pub(crate) server: String,
    /// The dialect chosen.
    pub(crate) proto: Proto,
    /// Client name prefix.
    pub(crate) prefix: String,
    /// Tag that marks this run's payloads.
    pub(crate) tag: String,
    /// The run's clock; started before anything connects.
    pub(crate) clock: Clock,
    /// When the run must stop.
    pub(crate) deadline: Instant,
    /// `--duration`, for messages.
    pub(crate) duration: f64,
    /// `--concurrency`.
    pub(crate) concurrency: usize,
    /// Whether to print progress lines.
    pub(crate) progress: bool,
}

impl Run {
    /// A [`Setup`] for `clients` clients in `rooms` rooms speaking `proto`.
    pub(crate) fn setup(&self, proto: Proto, clients: usize, rooms: usize) -> Setup {
        Setup {
            addr: self.addr,
            proto,
            prefix: self.prefix.clone(),
            clients,
            rooms,
            concurrency: self.concurrency,
            progress: self.progress,
        }
    }

    /// Runs `driver` on a new reactor; returns the outcome and the reactor
    /// (for its counters).
    pub(crate) fn execute(
        &self,
        setup: Setup,
        driver: &mut impl Driver,
    ) -> Result<(Outcome, Net), Error> {
        let mut net = Net::new(setup, self.clock)?;
        let outcome = net.run(driver, self.deadline)?;
        Ok((outcome, net))
    }

    /// The parts of a report every scenario has, from the outcome.
    pub(crate) fn report(&self, scenario: &'static str, proto: Proto, outcome: &Outcome) -> Report {
        let reason = match outcome {
            Outcome::Finished => None,
            Outcome::TimedOut(status) => Some(format!(
                "stopped by --duration {} s before it was done ({status})",
                self.duration
            )),
            Outcome::Aborted(why) => Some(why.clone()),
        };
        Report {
            scenario,
            dialect: proto.name(),
            server: self.server.clone(),
            complete: reason.is_none(),
            reason,
            elapsed_s: self.clock.start().elapsed().as_secs_f64(),
            figures: Vec::new(),
            clean: true,
        }
    }
}

/// Seconds from `started` to `last_ns` on the run's clock; 0 if nothing
/// arrived after the start.
pub(crate) fn span_s(run: &Run, started: Option<Instant>, last_ns: u64) -> f64 {
    let Some(started) = started else {
        return 0.0;
    };
    let start_ns = (started - run.clock.start()).as_secs_f64() * 1e9;
    ((last_ns as f64 - start_ns) / 1e9).max(0.0)
}

/// Raises the soft open-file limit to the hard one: every client is a file.
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        log::warn!(
            "cannot read the open-file limit: {}",
            io::Error::last_os_error()
        );
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            log::warn!(
                "cannot raise the open-file limit: {}",
                io::Error::last_os_error()
            );
        }
    }
}

fn resolve(server: &str) -> Result<SocketAddr, Error> {
    server
        .to_socket_addrs()
        .map_err(|e| Error::Resolve(server.to_string(), e))?
        .next()
        .ok_or_else(|| Error::NoAddress(server.to_string()))
}

/// A tag unlikely to repeat between runs: the pid and the wall clock mixed.
fn run_tag() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    format!("r{:08x}", nanos ^ std::process::id().rotate_left(16))
}

fn run(cli: Cli) -> Result<Report, Error> {
    let common = cli.common;
    let proto = match common.dialect {
        DialectArg::Line => Proto::Line,
        DialectArg::Irc => Proto::Irc,
    };
    let clock = Clock::new();
    let run = Run {
        addr: resolve(&common.server)?,
        server: common.server.clone(),
        proto,
        prefix: common
            .prefix
            .unwrap_or_else(|| format!("b{}x", std::process::id() % 1000)),
        tag: run_tag(),
        clock,
        deadline: clock.start() + Duration::from_secs_f64(common.duration),
        duration: common.duration,
        concurrency: common.concurrency,
        progress: !common.quiet,
    };
    match cli.scenario {
        Scenario::Connect(args) => connect::run(&run, &args),
        Scenario::Fanout(args) => fanout::run(&run, &args),
        Scenario::Pairs(args) => pairs::run(&run, &args),
        Scenario::Echo(args) => echo::run(&run, &args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.common.json;
    if let Err(e) = simple_logger::SimpleLogger::new()
        .with_level(cli.common.log_level)
        .with_utc_timestamps()
        .init()
    {
        eprintln!("chat-bench: cannot start logging: {e}");
    }
    raise_open_files();
    let report = match run(cli) {
        Ok(report) => report,
        Err(Error::Usage(msg)) => {
            eprintln!("chat-bench: {msg}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("chat-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", report.json());
        eprint!("{}", report.table());
    } else {
        print!("{}", report.table());
    }
    if !report.complete {
        eprintln!(
            "chat-bench: RUN INCOMPLETE: {}",
            report.reason.as_deref().unwrap_or("unknown reason")
        );
    }
    if !report.clean {
        eprintln!("chat-bench: MESSAGES LOST, DUPLICATED, REORDERED OR UNEXPECTED (see above)");
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
