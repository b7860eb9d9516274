//! Shared helpers for the integration tests: an in-process server on a thread,
//! a line-protocol client over a plain std [`TcpStream`], and the real `chatd`
//! binary as a child process.
//!
//! Everything here is bounded in time: a read never waits longer than
//! [`TIMEOUT`], a server or daemon that does not stop is reported, and a test
//! that fails says what it saw.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

pub mod irc;

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chatd::config::ServerConfig;
use chatd::dialect::line::split_server_line;
use chatd::reactor::{Server, ServerHandle};

/// The longest a test waits for one expected thing (an upper bound only:
/// every wait ends as soon as what it waits for arrives).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Client::expect_silence`] listens by default.
pub const SILENCE: Duration = Duration::from_millis(200);
/// How long a server (in-process or daemon) may take to stop.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many received lines a failure message shows.
const SHOW_LINES: usize = 40;

// ---------------------------------------------------------------------------
// In-process server
// ---------------------------------------------------------------------------

/// A server running on its own thread, bound to `127.0.0.1:0`. Dropping it
/// shuts the server down and joins its thread (bounded by [`STOP_TIMEOUT`]).
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it listens for IRC, if the tweak asked for an IRC listener.
    pub irc: Option<SocketAddr>,
    handle: ServerHandle,
    done: mpsc::Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

/// A read that timed out or was interrupted: try again (bounded by the caller).
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Starts a server on `127.0.0.1:0` with the default configuration changed by
/// `tweak`; the listen address is always forced to loopback port 0. Flood
/// control and the per-address limit start off (every test client comes from
/// 127.0.0.1 and many send fast); the tests of those limits turn them on.
pub fn start_server(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut config = ServerConfig {
        rate: None,
        max_per_ip: 0,
        ..ServerConfig::default()
    };
    tweak(&mut config);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    config.listen = vec![loopback];
    if !config.irc_listen.is_empty() {
        config.irc_listen = vec![loopback];
    }
    let server = Server::bind(config).unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
    let (addr, irc) = match server.local_addrs().as_slice() {
        [(addr, _)] => (*addr, None),
        [(addr, _), (irc, "IRC")] => (*addr, Some(*irc)),
        other => panic!("expected a line (and an IRC) listen address, got {other:?}"),
    };
    let handle = server.handle();
    let (tx, done) = mpsc::channel();
    let thread = thread::Builder::new()
        .name(format!("chatd-{}", addr.port()))
        .spawn(move || {
            let _ = tx.send(server.run());
        })
        .unwrap_or_else(|e| panic!("spawn server thread: {e}"));
    TestServer {
        addr,
        irc,
        handle,
        done,
        thread: Some(thread),
    }
}

impl TestServer {
    /// Connects a new client (and reads its `HELLO`).
    pub fn connect(&self, label: &str) -> Client {
        Client::connect(self.addr, label)
    }

    /// Connects and logs in as `name`.
    pub fn login(&self, name: &str) -> Client {
        let mut c = self.connect(name);
        c.login(name);
        c
    }

    /// Starts a clean shutdown and waits (bounded) for `run` to return Ok.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.handle.shutdown();
        let outcome = match self.done.recv_timeout(STOP_TIMEOUT) {
            Ok(Ok(())) => {
                let _ = thread.join();
                return;
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                format!("server on {} failed: {e}", self.addr)
            }
            Err(RecvTimeoutError::Disconnected) => match thread.join() {
                Err(panic) => format!(
                    "server thread on {} panicked: {}",
                    self.addr,
                    panic_text(&*panic)
                ),
                Ok(()) => format!("server thread on {} ended without a result", self.addr),
            },
            // The thread is left behind: there is no way to kill it.
            Err(RecvTimeoutError::Timeout) => format!(
                "server on {} did not stop within {STOP_TIMEOUT:?}",
                self.addr
            ),
        };
        if thread::panicking() {
            eprintln!("{outcome}");
        } else {
            panic!("{outcome}");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".into()
    }
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// What one bounded read produced.
#[derive(Debug)]
pub enum Next {
    /// A complete line, without its `\n`.
    Line(String),
    /// The server closed the connection cleanly.
    Eof,
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// Reading failed (e.g. a reset).
    Error(io::Error),
}

/// Something [`Client::expect`] waits for: a line prefix or a predicate.
pub trait Want {
    /// Whether `line` is it.
    fn matches(&self, line: &str) -> bool;
    /// For failure messages.
    fn describe(&self) -> String;
}

impl Want for &str {
    fn matches(&self, line: &str) -> bool {
        line.starts_with(*self)
    }
    fn describe(&self) -> String {
        format!("a line starting with {self:?}")
    }
}

impl Want for String {
    fn matches(&self, line: &str) -> bool {
        line.starts_with(self.as_str())
    }
    fn describe(&self) -> String {
        format!("a line starting with {self:?}")
    }
}

impl<F: Fn(&str) -> bool> Want for F {
    fn matches(&self, line: &str) -> bool {
        self(line)
    }
    fn describe(&self) -> String {
        "a line matching the predicate".into()
    }
}

/// What `/login` answered (the lines up to and including the lobby's history).
#[derive(Debug, Clone)]
pub struct Login {
    /// The user id from `OK login NAME ID`.
    pub id: u64,
    /// Everyone online, from the `USERS` lines.
    pub users: Vec<String>,
    /// The lobby's members, from the `MEMBERS` lines.
    pub members: Vec<String>,
    /// The replayed `MSG` lines.
    pub history: Vec<String>,
}

/// A line-protocol client over a blocking std socket; every read is bounded.
pub struct Client {
    stream: TcpStream,
    /// Received bytes not yet split into lines.
    buf: Vec<u8>,
    eof: bool,
    /// Every line received so far, for failure messages.
    seen: Vec<String>,
    /// Shown in failure messages.
    pub label: String,
    /// The `HELLO` line.
    pub hello: String,
    pings: u64,
}

impl Client {
    /// Connects (bounded) and reads the `HELLO` line.
    #[track_caller]
    pub fn connect(addr: SocketAddr, label: &str) -> Client {
        let mut c = Client::connect_raw(addr, label);
        let hello = c.line();
        assert!(
            hello.starts_with("HELLO "),
            "[{label}] first line is not HELLO: {hello:?}"
        );
        c.hello = hello;
        c
    }

    /// Connects (bounded) without reading anything.
    #[track_caller]
    pub fn connect_raw(addr: SocketAddr, label: &str) -> Client {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
            .unwrap_or_else(|e| panic!("[{label}] connect to {addr}: {e}"));
        stream
            .set_nodelay(true)
            .unwrap_or_else(|e| panic!("[{label}] set_nodelay: {e}"));
        stream
            .set_write_timeout(Some(TIMEOUT))
            .unwrap_or_else(|e| panic!("[{label}] set_write_timeout: {e}"));
        Client {
            stream,
            buf: Vec::new(),
            eof: false,
            seen: Vec::new(),
            label: label.to_string(),
            hello: String::new(),
            pings: 0,
        }
    }

    /// A client over a socket the test connected itself (say, from a chosen
    /// source address); reads the `HELLO` line. Set the socket's options
    /// (nodelay, write timeout) before: reads are bounded here as always.
    #[track_caller]
    pub fn from_stream(stream: TcpStream, label: &str) -> Client {
        let mut c = Client {
            stream,
            buf: Vec::new(),
            eof: false,
            seen: Vec::new(),
            label: label.to_string(),
            hello: String::new(),
            pings: 0,
        };
        let hello = c.line();
        if !hello.starts_with("HELLO ") {
            c.fail(&format!("first line is not HELLO: {hello:?}"));
        }
        c.hello = hello;
        c
    }

    /// The socket, for tests that need raw access (writes, shutdown, clones).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Every line received so far, in order (what [`Client::fail`] shows).
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Sends one line (a `\n` is added).
    #[track_caller]
    pub fn send(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.send_raw(&bytes);
    }

    /// Sends bytes as they are.
    #[track_caller]
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            self.fail(&format!("write of {} bytes failed: {e}", bytes.len()));
        }
    }

    /// Closes the write half: the server reads EOF.
    #[track_caller]
    pub fn shutdown_write(&mut self) {
        if let Err(e) = self.stream.shutdown(Shutdown::Write) {
            self.fail(&format!("shutdown(Write) failed: {e}"));
        }
    }

    /// The next line, or whatever ended the wait, before `deadline`.
    pub fn next_before(&mut self, deadline: Instant) -> Next {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = match String::from_utf8(raw[..raw.len() - 1].to_vec()) {
                    Ok(line) => line,
                    Err(e) => self.fail(&format!("server line is not UTF-8: {e}")),
                };
                if line.ends_with('\r') {
                    self.fail(&format!("server line ends with \\r\\n: {line:?}"));
                }
                self.seen.push(line.clone());
                return Next::Line(line);
            }
            if self.eof {
                if !self.buf.is_empty() {
                    let tail = String::from_utf8_lossy(&self.buf).into_owned();
                    self.fail(&format!("connection closed after a partial line {tail:?}"));
                }
                return Next::Eof;
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::Timeout;
            }
            if let Err(e) = self.stream.set_read_timeout(Some(deadline - now)) {
                return Next::Error(e);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_transient(&e) => {}
                Err(e) => return Next::Error(e),
            }
        }
    }

    /// The next line; panics on EOF, error or timeout.
    #[track_caller]
    pub fn line(&mut self) -> String {
        match self.next_before(Instant::now() + TIMEOUT) {
            Next::Line(line) => line,
            other => self.fail(&format!("wanted a line, got {other:?}")),
        }
    }

    /// The next line, which must be exactly `want`.
    #[track_caller]
    pub fn expect_next(&mut self, want: &str) -> String {
        let line = self.line();
        if line != want {
            self.fail(&format!(
                "wanted the next line to be {want:?}, got {line:?}"
            ));
        }
        line
    }

    /// The next line, which must start with `prefix`; returns it.
    #[track_caller]
    pub fn expect_next_matching(&mut self, prefix: &str) -> String {
        let line = self.line();
        if !line.starts_with(prefix) {
            self.fail(&format!(
                "wanted the next line to start with {prefix:?}, got {line:?}"
            ));
        }
        line
    }

    /// Reads lines until one matches (skipping the others); returns it.
    #[track_caller]
    pub fn expect(&mut self, want: impl Want) -> String {
        self.expect_after(want).1
    }

    /// Reads lines until one matches; returns the lines skipped and the match.
    #[track_caller]
    pub fn expect_after(&mut self, want: impl Want) -> (Vec<String>, String) {
        let deadline = Instant::now() + TIMEOUT;
        let mut skipped = Vec::new();
        loop {
            match self.next_before(deadline) {
                Next::Line(line) if want.matches(&line) => return (skipped, line),
                Next::Line(line) => skipped.push(line),
                other => self.fail(&format!(
                    "waiting for {}: got {other:?} after skipping {skipped:?}",
                    want.describe()
                )),
            }
        }
    }

    /// `/ping TOKEN` and wait for `PONG TOKEN`: a barrier. Because the server
    /// handles everything in order on one thread, anything caused by what other
    /// clients did before this call (and was already seen by them) has been
    /// queued for this client before the `PONG`. Returns the lines before it.
    #[track_caller]
    pub fn ping(&mut self) -> Vec<String> {
        self.pings += 1;
        let token = format!("sync-{}", self.pings);
        self.send(&format!("/ping {token}"));
        let pong = format!("PONG {token}");
        let (before, _) = self.expect_after(move |l: &str| l == pong);
        before
    }

    /// Asserts that nothing arrived for this client: a ping round trip
    /// returns nothing before its `PONG`.
    #[track_caller]
    pub fn assert_quiet(&mut self) {
        let before = self.ping();
        if !before.is_empty() {
            self.fail(&format!("expected nothing, got {before:?}"));
        }
    }

    /// Asserts that nothing (no byte, no close) arrives within `duration`.
    #[track_caller]
    pub fn expect_silence(&mut self, duration: Duration) {
        if !self.buf.is_empty() {
            let pending = String::from_utf8_lossy(&self.buf).into_owned();
            self.fail(&format!("expected silence, have buffered {pending:?}"));
        }
        match self.next_before(Instant::now() + duration) {
            Next::Timeout => {}
            other => self.fail(&format!("expected silence for {duration:?}, got {other:?}")),
        }
    }

    /// Reads every remaining line until the server closes the connection.
    #[track_caller]
    pub fn read_to_eof(&mut self) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut lines = Vec::new();
        loop {
            match self.next_before(deadline) {
                Next::Line(line) => lines.push(line),
                Next::Eof => return lines,
                other => self.fail(&format!("waiting for EOF after {lines:?}: got {other:?}")),
            }
        }
    }

    /// Asserts the server closes the connection next, with no more lines.
    #[track_caller]
    pub fn expect_eof(&mut self) {
        let rest = self.read_to_eof();
        if !rest.is_empty() {
            self.fail(&format!("expected EOF, got lines first: {rest:?}"));
        }
    }

    /// Sends `/login NAME` and reads its replies (see [`Client::login_replies`]).
    #[track_caller]
    pub fn login(&mut self, name: &str) -> Login {
        self.send(&format!("/login {name}"));
        self.login_replies(name)
    }

    /// Reads exactly what a successful guest login sends, no more: `OK login
    /// NAME ID`, the `USERS` lines and `OK users N`, then the lobby's `OK join
    /// #lobby`, `MEMBERS #lobby` lines and `HISTORY #lobby N` with its N `MSG`
    /// lines. Assumes the default lobby `#lobby`.
    #[track_caller]
    pub fn login_replies(&mut self, name: &str) -> Login {
        self.entry_replies("login", name)
    }

    /// Like [`Client::login_replies`] for `OK KEYWORD NAME ID` (`login` or
    /// `register`).
    #[track_caller]
    pub fn entry_replies(&mut self, keyword: &str, name: &str) -> Login {
        let ok = self.line();
        let id = match split_server_line(&ok) {
            ("OK", args) if args.len() == 3 && args[0] == keyword && args[1] == name => args[2]
                .parse::<u64>()
                .unwrap_or_else(|e| self.fail(&format!("bad user id in {ok:?}: {e}"))),
            _ => self.fail(&format!("wanted `OK {keyword} {name} ID`, got {ok:?}")),
        };
        let mut users = Vec::new();
        let count = loop {
            let line = self.line();
            match split_server_line(&line) {
                ("USERS", args) if args.len() == 1 => {
                    users.extend(args[0].split(' ').map(str::to_string))
                }
                ("OK", args) if args.len() == 2 && args[0] == "users" => {
                    break args[1]
                        .parse::<usize>()
                        .unwrap_or_else(|e| self.fail(&format!("bad count in {line:?}: {e}")));
                }
                _ => self.fail(&format!("wanted USERS or `OK users N`, got {line:?}")),
            }
        };
        if count != users.len() {
            self.fail(&format!("`OK users {count}` after {} names", users.len()));
        }
        self.expect_next("OK join #lobby");
        let (members, history) = self.join_replies_after_ok("#lobby");
        Login {
            id,
            users,
            members,
            history,
        }
    }

    /// Reads what follows `OK join ROOM`: the `MEMBERS` lines, `HISTORY ROOM N`
    /// and N `MSG` lines. Returns the members and the `MSG` lines.
    #[track_caller]
    pub fn join_replies_after_ok(&mut self, room: &str) -> (Vec<String>, Vec<String>) {
        let mut members = Vec::new();
        let count = loop {
            let line = self.line();
            match split_server_line(&line) {
                ("MEMBERS", args) if args.len() == 2 && args[0] == room => {
                    members.extend(args[1].split(' ').map(str::to_string))
                }
                ("HISTORY", args) if args.len() == 2 && args[0] == room && !members.is_empty() => {
                    break args[1]
                        .parse::<usize>()
                        .unwrap_or_else(|e| self.fail(&format!("bad count in {line:?}: {e}")));
                }
                _ => self.fail(&format!(
                    "wanted `MEMBERS {room} :...` or `HISTORY {room} N`, got {line:?}"
                )),
            }
        };
        let mut history = Vec::with_capacity(count);
        for _ in 0..count {
            let line = self.line();
            if !line.starts_with(&format!("MSG {room} ")) {
                self.fail(&format!("wanted a replayed MSG in {room}, got {line:?}"));
            }
            history.push(line);
        }
        (members, history)
    }

    /// Sends `/join ROOM` and reads its replies; returns the members and history.
    #[track_caller]
    pub fn join(&mut self, room: &str) -> (Vec<String>, Vec<String>) {
        self.send(&format!("/join {room}"));
        self.expect_next(&format!("OK join {room}"));
        self.join_replies_after_ok(room)
    }

    /// Panics with this client's label and the last lines it received.
    #[track_caller]
    pub fn fail(&self, what: &str) -> ! {
        let start = self.seen.len().saturating_sub(SHOW_LINES);
        let mut msg = format!("[{}] {what}\n  last lines received:", self.label);
        for line in &self.seen[start..] {
            let shown: String = if line.len() > 200 {
                format!(
                    "{}... ({} bytes)",
                    &line[..line.floor_char_boundary(200)],
                    line.len()
                )
            } else {
                line.clone()
            };
            let _ = write!(msg, "\n    {shown}");
        }
        panic!("{msg}");
    }
}

// ---------------------------------------------------------------------------
// Server lines
// ---------------------------------------------------------------------------

/// A parsed `MSG ROOM SENDER ID TIMESTAMP :text` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub room: String,
    pub sender: String,
    pub id: u64,
    pub at: String,
    pub text: String,
}

/// Parses a `MSG` line, checking the id and timestamp formats.
#[track_caller]
pub fn parse_msg(line: &str) -> Msg {
    match split_server_line(line) {
        ("MSG", args) if args.len() == 5 => {
            let id = args[2]
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("bad message id in {line:?}: {e}"));
            assert_rfc3339_millis(args[3]);
            Msg {
                room: args[0].into(),
                sender: args[1].into(),
                id,
                at: args[3].into(),
                text: args[4].into(),
            }
        }
        _ => panic!("not a MSG line: {line:?}"),
    }
}

/// Checks `ts` is RFC 3339 in UTC with milliseconds (`2026-11-22T10:00:00.123Z`)
/// and is within a day of now.
#[track_caller]
pub fn assert_rfc3339_millis(ts: &str) {
    let shape_ok = ts.len() == 24
        && ts.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            23 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    assert!(shape_ok, "timestamp {ts:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ");
    let at = chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap_or_else(|e| panic!("timestamp {ts:?} is not RFC 3339: {e}"));
    let skew = (chrono::Utc::now() - at.to_utc()).num_seconds().abs();
    assert!(skew < 86_400, "timestamp {ts:?} is {skew} s away from now");
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// Waits for `child` to exit, at most `timeout`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

/// Sends `signal` to a child process.
pub fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).unwrap_or_else(|e| panic!("pid {}: {e}", child.id()));
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped
    // (we hold its `Child` and have not waited for it successfully).
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        io::Error::last_os_error()
    );
}

/// The real `chatd` binary, listening on `127.0.0.1:0`; killed on drop.
pub struct Daemon {
    child: Child,
    /// Where it listens (parsed from its log).
    pub addr: SocketAddr,
    /// Its stderr so far (read by a background thread).
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

/// Starts `chatd --listen 127.0.0.1:0 ARGS...` and waits (bounded) for the
/// `listening on ADDR` line in its log. Unless ARGS say otherwise: a
/// throwaway database, no flood control, no per-address limit.
pub fn spawn_daemon(args: &[&str]) -> Daemon {
    let defaults = [
        ("--db", ":memory:"),
        ("--rate", "off"),
        ("--max-per-ip", "0"),
        ("--irc-listen", "off"),
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["--listen", "127.0.0.1:0", "--log-level", "info"])
        .args(
            defaults
                .iter()
                .filter(|(flag, _)| !args.contains(flag))
                .flat_map(|(flag, value)| [*flag, *value]),
        )
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn chatd: {e}"));
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let reader = {
        let log = log.clone();
        thread::spawn(move || {
            let mut stderr = BufReader::new(stderr);
            let mut line = String::new();
            loop {
                line.clear();
                match stderr.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if let Ok(mut log) = log.lock() {
                            log.push_str(&line);
                        }
                        if let Some(addr) = listening_addr(&line) {
                            let _ = tx.send(addr);
                        }
                    }
                }
            }
        })
    };
    let mut daemon = Daemon {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log,
        reader: Some(reader),
    };
    match rx.recv_timeout(STOP_TIMEOUT) {
        Ok(addr) => daemon.addr = addr,
        Err(_) => {
            let status = daemon.child.try_wait().ok().flatten();
            panic!(
                "chatd did not log its address in {STOP_TIMEOUT:?} (exit status {status:?}); log:\n{}",
                daemon.log()
            );
        }
    }
    daemon
}

/// The address in a `... listening on 127.0.0.1:PORT (line protocol)` log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("listening on ")?;
    if !rest.contains("(line protocol)") {
        return None;
    }
    rest.split_whitespace().next()?.parse().ok()
}

impl Daemon {
    /// Connects a client (and reads its `HELLO`).
    pub fn connect(&self, label: &str) -> Client {
        Client::connect(self.addr, label)
    }

    /// Connects and logs in as `name`.
    pub fn login(&self, name: &str) -> Client {
        let mut c = self.connect(name);
        c.login(name);
        c
    }

    /// The daemon's process id (for `/proc/PID/...`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        signal(&self.child, sig);
    }

    /// Kills the daemon at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = wait_timeout(&mut self.child, STOP_TIMEOUT);
    }

    /// Waits (bounded) for the daemon to exit; panics with its log if it does not.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        match wait_timeout(&mut self.child, timeout) {
            Some(status) => {
                // The log is complete once the pipe closes.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                status
            }
            None => panic!(
                "chatd did not exit within {timeout:?}; log:\n{}",
                self.log()
            ),
        }
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        match self.log.lock() {
            Ok(log) => log.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}
