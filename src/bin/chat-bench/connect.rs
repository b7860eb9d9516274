//! `connect`: open and log in N connections, at most `--concurrency`
//! handshakes at a time. Reports logins per second, the time until all are
//! logged in, handshake latency and, with `--server-pid`, the server's
//! resident memory per idle logged-in connection.
//!
//! "Idle" is made exact with a barrier rather than a sleep: once every
//! client is logged in, each pings the server and waits for its pong. The
//! server handles a connection's input in order, so a pong comes after
//! everything the logins caused for that client (in chatd, the `JOIN
//! #lobby` of every later login) has been written; then VmRSS is read.

use std::fs;
use std::io;
use std::time::{Duration, Instant};

use crate::net::{ConnError, Driver, Net};
use crate::proto::Incoming;
use crate::stats::{Histogram, Json, Report};
use crate::{Error, Run};

/// Flags of `connect`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How many connections to open and log in.
    #[arg(long, default_value_t = 1000, value_parser = crate::parse_positive)]
    clients: usize,
    /// The server's pid: report its VmRSS (from /proc/PID/status) per idle
    /// logged-in connection.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// The token of the idle barrier's pings.
const BARRIER: &str = "chat-bench-idle";

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting and logging in.
    Login,
    /// Every live client pinged; waiting for the pongs.
    Barrier,
    /// Done.
    Done,
}

/// The `connect` driver.
#[derive(Debug)]
struct Connect {
    /// How many clients.
    clients: usize,
    /// Whose memory to read.
    server_pid: Option<u32>,
    /// Per client: logged in (so a later close is not a failed login).
    logged: Vec<bool>,
    /// Logins so far.
    logins: usize,
    /// Clients that closed before logging in.
    failed: usize,
    /// Logged-in clients that closed afterwards.
    dropped: usize,
    /// Connect-to-login times, µs.
    handshake: Histogram,
    /// When the last login arrived.
    last_login: Option<Instant>,
    /// When every client had logged in or failed.
    all_in: Option<Instant>,
    /// Where the run is.
    phase: Phase,
    /// Barrier pings sent and pongs (or closes) seen.
    pings: usize,
    /// Pongs seen (or barrier clients lost).
    pongs: usize,
    /// VmRSS after the barrier, KiB.
    rss_after: Option<u64>,
}

impl Driver for Connect {
    fn logged_in(&mut self, _net: &mut Net, client: usize, took: Duration) {
        self.logged[client] = true;
        self.logins += 1;
        self.last_login = Some(Instant::now());
        self.handshake
            .record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    fn line(&mut self, _net: &mut Net, _client: usize, msg: Incoming<'_>) {
        if self.phase == Phase::Barrier && msg == Incoming::Pong(BARRIER) {
            self.pongs += 1;
        }
    }

    fn closed(&mut self, _net: &mut Net, client: usize, _why: &ConnError) {
        if self.logged[client] {
            self.dropped += 1;
            if self.phase == Phase::Barrier {
                // Its pong will not come.
                self.pongs += 1;
            }
        } else {
            self.failed += 1;
        }
    }

    fn tick(&mut self, net: &mut Net) -> Option<Instant> {
        if self.phase == Phase::Login && self.logins + self.failed == self.clients {
            self.all_in = Some(Instant::now());
            if self.server_pid.is_none() {
                self.phase = Phase::Done;
                return None;
            }
            self.phase = Phase::Barrier;
            let proto = net.proto();
            for client in 0..self.clients {
                if net.is_ready(client)
                    && let Some(out) = net.out(client)
                {
                    proto.ping(out, BARRIER);
                    self.pings += 1;
                }
            }
        }
        if self.phase == Phase::Barrier && self.pongs >= self.pings {
            self.rss_after = self.server_pid.and_then(|pid| vm_rss_kib(pid).ok());
            self.phase = Phase::Done;
        }
        None
    }

    fn finished(&self, _net: &Net) -> bool {
        self.phase == Phase::Done
    }

    fn progress(&self) -> String {
        format!(
            "logins {} failed {} handshake p50 {} us",
            self.logins,
            self.failed,
            self.handshake.quantile(0.5)
        )
    }
}

/// The `VmRSS` of process `pid`, in KiB.
fn vm_rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS line"))
}

/// Runs `connect`.
pub(crate) fn run(run: &Run, args: &Args) -> Result<Report, Error> {
    let rss_before = match args.server_pid {
        Some(pid) => Some(vm_rss_kib(pid).map_err(|e| Error::ServerPid(pid, e))?),
        None => None,
    };
    let mut driver = Connect {
        clients: args.clients,
        server_pid: args.server_pid,
        logged: vec![false; args.clients],
        logins: 0,
        failed: 0,
        dropped: 0,
        handshake: Histogram::default(),
        last_login: None,
        all_in: None,
        phase: Phase::Login,
        pings: 0,
        pongs: 0,
        rss_after: None,
    };
    let setup = run.setup(run.proto, args.clients, 0);
    let (outcome, net) = run.execute(setup, &mut driver)?;
    let mut report = run.report("connect", run.proto, &outcome);
    let start = run.clock.start();
    let login_span = driver.last_login.map(|t| (t - start).as_secs_f64());
    let per_s = match login_span {
        Some(span) if span > 0.0 => driver.logins as f64 / span,
        _ => 0.0,
    };
    let all_in = match (driver.all_in, driver.failed) {
        (Some(t), 0) => Json::Float((t - start).as_secs_f64()),
        _ => Json::Null,
    };
    let rss_per_conn = match (rss_before, driver.rss_after) {
        (Some(before), Some(after)) if driver.logins > 0 => {
            Json::Float((after as f64 - before as f64) * 1024.0 / driver.logins as f64)
        }
        _ => Json::Null,
    };
    let kib = |v: Option<u64>| v.map_or(Json::Null, Json::Int);
    report.figures = vec![
        ("clients", Json::from(args.clients)),
        ("concurrency", Json::from(run.concurrency)),
        ("logged_in", Json::from(driver.logins)),
        ("failed", Json::from(driver.failed)),
        ("dropped", Json::from(driver.dropped)),
        ("logins_per_s", Json::Float(per_s)),
        ("time_to_all_logged_in_s", all_in),
        ("handshake_us", driver.handshake.summary()),
        ("server_pid", args.server_pid.map_or(Json::Null, Json::from)),
        ("rss_before_kib", kib(rss_before)),
        ("rss_after_kib", kib(driver.rss_after)),
        ("rss_per_conn_bytes", rss_per_conn),
        (
            "failures",
            Json::Arr(
                net.failures()
                    .iter()
                    .map(|f| Json::from(f.as_str()))
                    .collect(),
            ),
        ),
    ];
    if report.complete && (driver.failed > 0 || driver.dropped > 0) {
        report.complete = false;
        report.reason = Some(format!(
            "{} of {} connections failed to log in, {} dropped after",
            driver.failed, args.clients, driver.dropped
        ));
    }
    if report.complete && args.server_pid.is_some() && driver.rss_after.is_none() {
        report.complete = false;
        report.reason = Some("could not read the server's memory after the logins".into());
    }
    Ok(report)
}
