//! The client reactor: every benchmark connection is a nonblocking mio
//! socket in a slab, driven by one `Poll` on one thread, so the tool costs
//! a few hundred bytes and no thread per connection and the numbers are the
//! server's limit, not the tool's.
//!
//! [`Net`] connects clients (at most `concurrency` handshakes in flight),
//! logs them in, joins their room, answers server pings and hands every
//! other line of a ready client to the scenario, a [`Driver`]. Reads go
//! through one shared 64 KiB buffer and are split on `\n`; only an
//! unfinished line is kept per connection. Output is queued per connection
//! and written once per loop iteration; a queue past [`MAX_QUEUE`] means
//! the server stopped reading, and closes that connection.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::proto::{Incoming, Proto};

/// One read's worth: big enough that a busy receiver drains its socket in a
/// few calls, small enough to stay in cache.
const READ_CHUNK: usize = 64 * 1024;
/// The longest server line we keep an unfinished piece of; chatd's lines
/// are at most 8192 bytes and IRC's 512.
const MAX_LINE: usize = 16 * 1024;
/// Bytes queued for one connection before it counts as stuck. Scenarios
/// bound what they send by their window, so only a server that stops
/// reading gets here.
pub(crate) const MAX_QUEUE: usize = 4 * 1024 * 1024;
/// How many failure descriptions a report quotes.
const KEEP_FAILURES: usize = 5;

/// The bench's monotonic clock: nanoseconds since the run started. Sender
/// and receiver are one process, so a timestamp in a payload is comparable
/// with the receiver's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// When the run started.
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub(crate) fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// When the run started.
    pub(crate) fn start(&self) -> Instant {
        self.start
    }

    /// Nanoseconds since the start.
    pub(crate) fn ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Why one connection ended. Only that connection is affected; the
/// scenario decides what it means for the run.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// The connect failed (refused, unreachable, out of ports or files).
    Connect(io::Error),
    /// A read or write failed.
    Io(io::Error),
    /// The server closed the connection.
    Eof,
    /// The server refused something (`ERR ...`, an IRC error numeric,
    /// `ERROR`); the whole line.
    Refused(String),
    /// A server line longer than [`MAX_LINE`].
    LineTooLong,
    /// More than [`MAX_QUEUE`] bytes waited to be sent.
    QueueFull,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Connect(e) => write!(f, "connect failed: {e}"),
            ConnError::Io(e) => write!(f, "{e}"),
            ConnError::Eof => f.write_str("closed by the server"),
            ConnError::Refused(line) => write!(f, "server said {line:?}"),
            ConnError::LineTooLong => write!(f, "a server line over {MAX_LINE} bytes"),
            ConnError::QueueFull => {
                write!(
                    f,
                    "over {MAX_QUEUE} bytes unsent: the server stopped reading"
                )
            }
        }
    }
}

/// A failure of the reactor itself; it ends the run.
#[derive(Debug)]
pub(crate) enum NetError {
    /// Creating the poll failed.
    Poll(io::Error),
    /// Waiting on the poll failed.
    Wait(io::Error),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Poll(e) => write!(f, "cannot create the poll: {e}"),
            NetError::Wait(e) => write!(f, "poll failed: {e}"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The driver said it is finished.
    Finished,
    /// `--duration` ran out first; where the run was then.
    TimedOut(String),
    /// The driver gave up (a client it needed failed), with its reason.
    Aborted(String),
}

/// Where one client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not connected yet (waiting for a handshake slot).
    Waiting,
    /// TCP connect in progress.
    Connecting,
    /// Login sent, waiting for the server's welcome.
    LoggingIn,
    /// Join sent, waiting for its end.
    Joining,
    /// Logged in and in its room: the scenario's.
    Ready,
    /// Gone.
    Closed,
}

/// One client: its connection, if any, and stage.
#[derive(Debug)]
struct Client {
    /// Its slab key (its mio token) while connected.
    key: Option<usize>,
    /// Where it is.
    stage: Stage,
    /// When its connect started, for the handshake time.
    started: Instant,
}

/// One connection: the socket and its buffers.
#[derive(Debug)]
struct Conn {
    /// The socket.
    stream: TcpStream,
    /// The client index it belongs to.
    client: usize,
    /// An unfinished line from the previous read.
    partial: Vec<u8>,
    /// Bytes waiting to be written; `out[written..]` is still unsent.
    out: Vec<u8>,
    /// How much of `out` went out already.
    written: usize,
    /// Whether it is in [`Net::dirty`].
    dirty: bool,
    /// What it is registered for.
    interest: Interest,
    /// Replayed `MSG` lines (after `HISTORY ROOM N`) still to skip: they
    /// are old messages, not this run's.
    skip: u32,
}

/// Counters of client stages, for progress lines and drivers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    /// Connects started.
    pub(crate) started: usize,
    /// Handshakes finished (logged in; for echo: connected).
    pub(crate) logged_in: usize,
    /// Logged in and in their room.
    pub(crate) ready: usize,
    /// Closed, for any reason.
    pub(crate) closed: usize,
}

/// What a scenario does with its clients. Every method gets the reactor
/// to queue lines on.
pub(crate) trait Driver {
    /// Client `client` finished its handshake after `took`.
    fn logged_in(&mut self, _net: &mut Net, _client: usize, _took: Duration) {}

    /// Client `client` is logged in and in its room.
    fn ready(&mut self, _net: &mut Net, _client: usize) {}

    /// A line for a ready client, other than pings (answered here), refusals
    /// (which close it) and replayed history.
    fn line(&mut self, net: &mut Net, client: usize, msg: Incoming<'_>);

    /// Client `client`'s connection ended.
    fn closed(&mut self, net: &mut Net, client: usize, why: &ConnError);

    /// Called once every loop iteration: send what is due. Returns when it
    /// next needs a call even if nothing arrives.
    fn tick(&mut self, net: &mut Net) -> Option<Instant>;

    /// Whether the scenario is done.
    fn finished(&self, net: &Net) -> bool;

    /// The scenario's part of the progress line.
    fn progress(&self) -> String;
}

/// The reactor. See the module docs.
#[derive(Debug)]
pub(crate) struct Net {
    /// The poll every connection is registered with.
    poll: Poll,
    /// Open connections; the key is the mio token.
    conns: Slab<Conn>,
    /// Every client, by index.
    clients: Vec<Client>,
    /// The server.
    addr: SocketAddr,
    /// What the clients speak.
    proto: Proto,
    /// Client `i` is called `{prefix}{i}`.
    prefix: String,
    /// Client `i` joins `#bench{i % rooms}`; 0: no join.
    rooms: usize,
    /// Handshakes (connect + login) in flight at most.
    concurrency: usize,
    /// The next client to connect.
    next: usize,
    /// Handshakes in flight now.
    handshaking: usize,
    /// Stage counters.
    counts: Counts,
    /// Keys with output queued this iteration.
    dirty: Vec<usize>,
    /// The shared read buffer (taken out while its lines are handled).
    scratch: Vec<u8>,
    /// The run's clock.
    clock: Clock,
    /// When the data being handled was read, ns on [`Clock`]: one clock
    /// read per `read` call, not per line.
    read_ns: u64,
    /// Set by a driver that gives up.
    abort: Option<String>,
    /// The first few connection failures, for the report.
    failures: Vec<String>,
    /// Whether to print a progress line every second.
    progress: bool,
}

/// Everything [`Net::new`] needs.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    /// The server.
    pub(crate) addr: SocketAddr,
    /// What the clients speak.
    pub(crate) proto: Proto,
    /// Name prefix: client `i` is `{prefix}{i}`.
    pub(crate) prefix: String,
    /// How many clients.
    pub(crate) clients: usize,
    /// Rooms to spread them over (`#bench0..`); 0 for none.
    pub(crate) rooms: usize,
    /// Handshakes in flight at most.
    pub(crate) concurrency: usize,
    /// Print a progress line on stderr every second.
    pub(crate) progress: bool,
}

impl Net {
    /// A reactor for `setup`; nothing is connected until [`Net::run`].
    pub(crate) fn new(setup: Setup, clock: Clock) -> Result<Net, NetError> {
        let now = Instant::now();
        Ok(Net {
            poll: Poll::new().map_err(NetError::Poll)?,
            conns: Slab::with_capacity(setup.clients),
            clients: (0..setup.clients)
                .map(|_| Client {
                    key: None,
                    stage: Stage::Waiting,
                    started: now,
                })
                .collect(),
            addr: setup.addr,
            proto: setup.proto,
            prefix: setup.prefix,
            rooms: setup.rooms,
            concurrency: setup.concurrency.max(1),
            next: 0,
            handshaking: 0,
            counts: Counts::default(),
            dirty: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            clock,
            read_ns: 0,
            abort: None,
            failures: Vec::new(),
            progress: setup.progress,
        })
    }

    /// The clients' protocol.
    pub(crate) fn proto(&self) -> Proto {
        self.proto
    }

    /// The run's clock.
    pub(crate) fn clock(&self) -> Clock {
        self.clock
    }

    /// When the line being handled arrived, ns on the run's clock.
    pub(crate) fn read_ns(&self) -> u64 {
        self.read_ns
    }

    /// Stage counters.
    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    /// How many clients.
    pub(crate) fn len(&self) -> usize {
        self.clients.len()
    }

    /// The first few connection failures.
    pub(crate) fn failures(&self) -> &[String] {
        &self.failures
    }

    /// Client `i`'s name.
    pub(crate) fn name(&self, client: usize) -> String {
        format!("{}{client}", self.prefix)
    }

    /// The room client `i` joins, if rooms are in use.
    pub(crate) fn room_of(&self, client: usize) -> Option<usize> {
        (self.rooms > 0).then(|| client % self.rooms)
    }

    /// Whether `client` is ready (logged in, joined, connected).
    pub(crate) fn is_ready(&self, client: usize) -> bool {
        self.clients
            .get(client)
            .is_some_and(|c| c.stage == Stage::Ready)
    }

    /// The output queue of `client`, to append lines to; `None` if it is not
    /// connected. The bytes go out at the end of this loop iteration.
    pub(crate) fn out(&mut self, client: usize) -> Option<&mut Vec<u8>> {
        let key = self.clients.get(client)?.key?;
        let conn = self.conns.get_mut(key)?;
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(key);
        }
        Some(&mut conn.out)
    }

    /// Ends the run with `reason` (the first reason given wins).
    pub(crate) fn abort(&mut self, reason: String) {
        if self.abort.is_none() {
            self.abort = Some(reason);
        }
    }

    /// Runs `driver` until it is finished, gives up, or `deadline` passes.
    pub(crate) fn run(
        &mut self,
        driver: &mut impl Driver,
        deadline: Instant,
    ) -> Result<Outcome, NetError> {
        let mut events = Events::with_capacity(1024);
        let mut next_progress = self.clock.start() + Duration::from_secs(1);
        loop {
            self.launch(driver);
            let wake = driver.tick(self);
            self.flush(driver);
            if let Some(reason) = self.abort.take() {
                return Ok(Outcome::Aborted(reason));
            }
            if driver.finished(self) {
                return Ok(Outcome::Finished);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Outcome::TimedOut(self.status(driver)));
            }
            if now >= next_progress {
                if self.progress {
                    self.print_progress(driver);
                }
                while next_progress <= now {
                    next_progress += Duration::from_secs(1);
                }
            }
            let mut until = deadline.min(next_progress);
            if let Some(wake) = wake {
                until = until.min(wake);
            }
            match self
                .poll
                .poll(&mut events, Some(until.saturating_duration_since(now)))
            {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::Wait(e)),
            }
            for event in events.iter() {
                let key = event.token().0;
                // Readiness is a hint: a stale token (a closed connection)
                // is ignored.
                if !self.conns.contains(key) {
                    continue;
                }
                if event.is_writable() || event.is_error() || event.is_write_closed() {
                    self.writable(driver, key);
                }
                if self.conns.contains(key)
                    && (event.is_readable() || event.is_read_closed() || event.is_error())
                {
                    self.readable(driver, key);
                }
            }
        }
    }

    fn print_progress(&self, driver: &impl Driver) {
        eprintln!(
            "[{:6.1}s] {}",
            self.clock.start().elapsed().as_secs_f64(),
            self.status(driver)
        );
    }

    /// Where the run is, in one line.
    fn status(&self, driver: &impl Driver) -> String {
        let c = self.counts;
        format!(
            "clients {}/{} logged in {} ready {} closed {} | {}",
            c.started,
            self.clients.len(),
            c.logged_in,
            c.ready,
            c.closed,
            driver.progress()
        )
    }

    /// Starts connects while handshake slots are free.
    fn launch(&mut self, driver: &mut impl Driver) {
        while self.handshaking < self.concurrency && self.next < self.clients.len() {
            let client = self.next;
            self.next += 1;
            self.counts.started += 1;
            self.clients[client].started = Instant::now();
            let mut stream = match TcpStream::connect(self.addr) {
                Ok(stream) => stream,
                Err(e) => {
                    self.fail_client(driver, client, ConnError::Connect(e));
                    continue;
                }
            };
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut stream, Token(key), interest)
            {
                self.fail_client(driver, client, ConnError::Connect(e));
                continue;
            }
            entry.insert(Conn {
                stream,
                client,
                partial: Vec::new(),
                out: Vec::new(),
                written: 0,
                dirty: false,
                interest,
                skip: 0,
            });
            self.clients[client].key = Some(key);
            self.clients[client].stage = Stage::Connecting;
            self.handshaking += 1;
        }
    }

    /// A writable event: finishes a connect, or writes queued output.
    fn writable(&mut self, driver: &mut impl Driver, key: usize) {
        let client = self.conns[key].client;
        if self.clients[client].stage == Stage::Connecting {
            self.finish_connect(driver, key, client);
        } else {
            self.write_out(driver, key);
        }
    }

    /// Checks a connect in progress (mio's recipe: `take_error`, then
    /// `peer_addr`), and on success starts the login.
    fn finish_connect(&mut self, driver: &mut impl Driver, key: usize, client: usize) {
        let conn = &mut self.conns[key];
        match conn.stream.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return self.close(driver, key, ConnError::Connect(e)),
        }
        match conn.stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
            Err(e) => return self.close(driver, key, ConnError::Connect(e)),
        }
        // Latency is what is measured: no Nagle delay on our side.
        if let Err(e) = conn.stream.set_nodelay(true) {
            return self.close(driver, key, ConnError::Io(e));
        }
        if self.proto.has_login() {
            self.clients[client].stage = Stage::LoggingIn;
            let (proto, name) = (self.proto, self.name(client));
            if let Some(out) = self.out(client) {
                proto.login(out, &name);
            }
            self.write_out(driver, key);
        } else {
            self.logged_in(driver, client);
            self.set_ready(driver, client);
        }
        // Nothing to write any more: stop asking for writable.
        self.update_interest(key);
    }

    /// A handshake finished.
    fn logged_in(&mut self, driver: &mut impl Driver, client: usize) {
        self.handshaking -= 1;
        self.counts.logged_in += 1;
        let took = self.clients[client].started.elapsed();
        driver.logged_in(self, client, took);
    }

    fn set_ready(&mut self, driver: &mut impl Driver, client: usize) {
        self.clients[client].stage = Stage::Ready;
        self.counts.ready += 1;
        driver.ready(self, client);
    }

    /// Reads until the socket would block, handling every complete line.
    fn readable(&mut self, driver: &mut impl Driver, key: usize) {
        let Some(client) = self.conns.get(key).map(|c| c.client) else {
            return;
        };
        if self.clients[client].stage == Stage::Connecting {
            // A connect that failed shows up as readable too.
            self.finish_connect(driver, key, client);
            if !self.alive(key, client) || self.clients[client].stage == Stage::Connecting {
                return;
            }
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(conn) = self.conns.get_mut(key) {
            match conn.stream.read(&mut scratch) {
                Ok(0) => {
                    self.close(driver, key, ConnError::Eof);
                    break;
                }
                Ok(n) => {
                    self.read_ns = self.clock.ns();
                    self.split_lines(driver, key, client, &scratch[..n]);
                    if !self.alive(key, client) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(driver, key, ConnError::Io(e));
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// Whether `key` is still `client`'s connection.
    fn alive(&self, key: usize, client: usize) -> bool {
        self.conns.get(key).is_some_and(|c| c.client == client)
    }

    /// Handles the complete lines in `data`, joining the first with what
    /// the previous read left, and keeps the unfinished tail.
    ///
    /// The valid UTF-8 part of a read is checked once and split with
    /// `memchr` (SIMD: every delivery is a line to split); what follows an
    /// invalid byte (say, a Latin-1 MOTD line) is checked line by line.
    fn split_lines(&mut self, driver: &mut impl Driver, key: usize, client: usize, data: &[u8]) {
        let mut rest = data;
        // Finish the line the previous read left unfinished.
        if !self.conns[key].partial.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                let partial = &mut self.conns[key].partial;
                partial.extend_from_slice(rest);
                if partial.len() > MAX_LINE {
                    self.close(driver, key, ConnError::LineTooLong);
                }
                return;
            };
            let mut line = std::mem::take(&mut self.conns[key].partial);
            line.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            self.raw_line(driver, key, client, &line);
            if !self.alive(key, client) {
                return;
            }
            line.clear();
            self.conns[key].partial = line;
        }
        let valid = match std::str::from_utf8(rest) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
        };
        let mut text = valid;
        while let Some(nl) = memchr::memchr(b'\n', text.as_bytes()) {
            self.line(driver, key, client, &text[..nl]);
            if !self.alive(key, client) {
                return;
            }
            text = &text[nl + 1..];
        }
        rest = &rest[valid.len() - text.len()..];
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            self.raw_line(driver, key, client, &rest[..nl]);
            if !self.alive(key, client) {
                return;
            }
            rest = &rest[nl + 1..];
        }
        if rest.len() > MAX_LINE {
            self.close(driver, key, ConnError::LineTooLong);
        } else {
            self.conns[key].partial.extend_from_slice(rest);
        }
    }

    /// A line that may not be UTF-8; one that is not is none of ours.
    fn raw_line(&mut self, driver: &mut impl Driver, key: usize, client: usize, raw: &[u8]) {
        if let Ok(line) = std::str::from_utf8(raw) {
            self.line(driver, key, client, line);
        }
    }

    /// One server line: setup steps here, the rest to the driver.
    fn line(&mut self, driver: &mut impl Driver, key: usize, client: usize, line: &str) {
        let proto = self.proto;
        let msg = proto.parse(line);
        match msg {
            Incoming::Ping(token) => {
                if let Some(out) = self.out(client) {
                    proto.pong(out, token);
                }
                return;
            }
            Incoming::Refused(line) => {
                return self.close(driver, key, ConnError::Refused(line.to_string()));
            }
            Incoming::History(count) => {
                self.conns[key].skip = count;
                return;
            }
            Incoming::Room { .. } if self.conns[key].skip > 0 => {
                self.conns[key].skip -= 1;
                return;
            }
            _ => {}
        }
        match (self.clients[client].stage, msg) {
            (Stage::LoggingIn, Incoming::LoggedIn) => {
                self.logged_in(driver, client);
                match self.room_of(client) {
                    Some(room) => {
                        self.clients[client].stage = Stage::Joining;
                        if let Some(out) = self.out(client) {
                            proto.join(out, &format!("#bench{room}"));
                        }
                    }
                    None => self.set_ready(driver, client),
                }
            }
            (Stage::Joining, Incoming::Joined(room)) => {
                let ours = self
                    .room_of(client)
                    .is_some_and(|r| room.eq_ignore_ascii_case(&format!("#bench{r}")));
                if ours {
                    self.set_ready(driver, client);
                }
            }
            (Stage::Ready, msg) => driver.line(self, client, msg),
            _ => {}
        }
    }

    /// Writes every connection that had output queued this iteration (and
    /// any a driver queues for while that happens).
    fn flush(&mut self, driver: &mut impl Driver) {
        loop {
            let dirty = std::mem::take(&mut self.dirty);
            if dirty.is_empty() {
                return;
            }
            for key in dirty {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.dirty = false;
                    self.write_out(driver, key);
                }
            }
        }
    }

    /// Writes `key`'s queue until it is empty or the socket would block,
    /// then registers for writable exactly while something is left.
    fn write_out(&mut self, driver: &mut impl Driver, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if self.clients[conn.client].stage == Stage::Connecting {
            // Not connected yet: the queue goes out once it is.
            return;
        }
        while conn.written < conn.out.len() {
            match conn.stream.write(&conn.out[conn.written..]) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "write returned 0");
                    return self.close(driver, key, ConnError::Io(e));
                }
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(driver, key, ConnError::Io(e)),
            }
        }
        if conn.written == conn.out.len() {
            conn.out.clear();
            conn.written = 0;
        } else if conn.out.len() - conn.written > MAX_QUEUE {
            return self.close(driver, key, ConnError::QueueFull);
        }
        self.update_interest(key);
    }

    /// Registers `key` for what it waits for: readable always, writable
    /// while connecting or while output is queued.
    fn update_interest(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let connecting = self.clients[conn.client].stage == Stage::Connecting;
        let want = if connecting || conn.written < conn.out.len() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if want != conn.interest {
            match self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), want)
            {
                Ok(()) => conn.interest = want,
                // Harmless: an extra writable event is ignored, and a
                // missing one is retried at the next flush.
                Err(e) => log::debug!("reregister {key}: {e}"),
            }
        }
    }

    /// Closes connection `key` and tells the driver.
    fn close(&mut self, driver: &mut impl Driver, key: usize, why: ConnError) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.clients[conn.client].key = None;
        self.fail_client(driver, conn.client, why);
    }

    /// Marks `client` closed and tells the driver.
    fn fail_client(&mut self, driver: &mut impl Driver, client: usize, why: ConnError) {
        let stage = self.clients[client].stage;
        if matches!(stage, Stage::Connecting | Stage::LoggingIn) {
            self.handshaking = self.handshaking.saturating_sub(1);
        }
        if stage == Stage::Ready {
            self.counts.ready -= 1;
        }
        self.clients[client].stage = Stage::Closed;
        self.counts.closed += 1;
        log::debug!("client {client}: {why}");
        if self.failures.len() < KEEP_FAILURES {
            self.failures.push(format!(
                "{} ({}): {why}",
                self.name(client),
                stage_name(stage)
            ));
        }
        driver.closed(self, client, &why);
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Waiting => "not connected",
        Stage::Connecting => "connecting",
        Stage::LoggingIn => "logging in",
        Stage::Joining => "joining",
        Stage::Ready => "ready",
        Stage::Closed => "closed",
    }
}
