//! The reactor: one thread, one [`mio::Poll`], every socket in one [`Slab`].
//!
//! Each loop iteration reads what is ready, feeds complete lines through the
//! connection's dialect into the [`Chat`] core, queues the resulting events on
//! the recipients' write queues, and at the end flushes every queue it
//! touched, so many lines leave in one `writev`. It knows nothing of the
//! protocol's rules: those live in `dialect` and `core`.
//!
//! The slab key is the mio token; the core sees a [`ConnId`] that carries an
//! ever-increasing sequence number in its high half and the slab key in its
//! low half, so lookups cost nothing and a reused slot never gets events meant
//! for the connection that held it before.

mod accept;
mod conn;
mod input;
mod output;
mod queue;
mod rate;
mod stats;
mod timers;

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use queue::Spares;
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::auth::{AuthError, AuthPool};
use crate::config::{MAX_HISTORY_REQUEST, ServerConfig};
use crate::core::{Action, Chat, ConnId, Event, Record, Timestamp};
use crate::dialect::{Dialect, Input, Session, irc};
use crate::store::{self, Committer, Store, StoreError};
use conn::Connection;
use queue::Flushed;
use stats::Stats;
use timers::{Timer, Timers};

/// Token of the waker a [`ServerHandle`] uses.
const WAKER: Token = Token(usize::MAX);
/// Token of the signal source.
const SIGNALS: Token = Token(usize::MAX - 1);
/// One read into the shared buffer takes at most this much.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per connection per iteration before others get their turn.
const READS_PER_TURN: usize = 8;
/// Connections accepted per listener per iteration before others get a turn.
const ACCEPTS_PER_TURN: usize = 256;
/// Records that may pile up while a commit is under way; past this, input
/// waits for the database (a slow or failing disk must not grow memory).
const MAX_RECORDS_WAITING: usize = 16 * 1024;
/// How long to stop accepting after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    /// The chat, in a dialect.
    Chat(Dialect),
    /// RFC 862 echo: every byte comes back. The reactor's raw cost with no
    /// chat logic, the floor benchmarks compare fan-out to.
    Echo,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Chat(dialect) => dialect.name(),
            Service::Echo => "echo",
        }
    }
}

/// What sits in a slab slot. Nearly every slot holds a connection, so it is
/// stored inline: boxing it would add an allocation and a pointer chase per
/// connection to save space only in the few listener slots.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Entry {
    Listener(TcpListener, Service),
    Conn(Connection),
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// A socket or the poll could not be set up.
    Io(io::Error),
    /// The database could not be opened or loaded.
    Store(StoreError),
    /// The password workers could not start.
    Auth(AuthError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Io(e) => e.fmt(f),
            StartError::Store(e) => e.fmt(f),
            StartError::Auth(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Io(e)
    }
}

/// The SIGINT/SIGTERM source (a wrapper only to give it `Debug`).
struct SignalSource(Signals);

impl std::fmt::Debug for SignalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalSource")
    }
}

/// Asks a running server to shut down, from any thread.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl ServerHandle {
    /// Starts a clean shutdown: every client gets `BYE`, queues are flushed
    /// (bounded in time), then [`Server::run`] returns.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            warn!("cannot wake the reactor: {e}");
        }
    }
}

/// The chat server: listeners, connections and the core, driven by one poll loop.
#[derive(Debug)]
pub struct Server {
    poll: Poll,
    slab: Slab<Entry>,
    chat: Chat,
    config: ServerConfig,
    local_addrs: Vec<(SocketAddr, Service)>,
    /// Connections ever accepted: the high half of every [`ConnId`].
    seq: u64,
    /// Live connections (the slab also holds listeners).
    conns: usize,
    /// One read buffer for every connection: an idle connection holds none.
    scratch: Box<[u8]>,
    /// Actions from the core not applied yet (reused between iterations).
    actions: Vec<Action>,
    /// Emptied write buffers, reused by every queue.
    spares: Spares,
    /// Where a fanned-out event is rendered before it is shared.
    render_buf: Vec<u8>,
    /// Slab keys whose queues need a flush this iteration.
    dirty: Vec<usize>,
    /// Slab keys with input still unread after their turn.
    read_again: Vec<usize>,
    /// Connections over their sendq, to drop once the current batch is applied.
    overflow: Vec<ConnId>,
    timers: Timers,
    accept_paused: bool,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    signals: Option<SignalSource>,
    /// Set once shutdown began: when to give up flushing.
    shutdown_deadline: Option<Instant>,
    /// The database, on its own thread.
    committer: Option<Committer>,
    /// Records not handed to the database yet (the batch being filled).
    records: Vec<Record>,
    /// Number of the batch being filled; batches are committed in order.
    filling: u64,
    /// The batch being committed, if any (at most one at a time).
    committing: Option<u64>,
    /// Every batch up to this one is durable.
    durable: u64,
    /// Slab keys whose queues hold bytes back until a commit.
    held: Vec<usize>,
    /// Password workers.
    auth: AuthPool,
    /// Connections whose input waits for the database to catch up.
    paused: Vec<usize>,
    /// Live connections by address, for `--max-per-ip`.
    per_ip: HashMap<IpAddr, usize>,
    /// Counters for `/stats` and the stats log line.
    stats: Stats,
    /// What every IRC session shares (server name, MOTD).
    irc: Arc<irc::Settings>,
}

impl Server {
    /// Binds every listen address of `config`. Nothing is accepted until
    /// [`Server::run`].
    pub fn bind(config: ServerConfig) -> Result<Server, StartError> {
        let off = config.db == store::OFF;
        let path = if off { store::MEMORY } else { &config.db };
        let mut store = Store::open(path, config.sync).map_err(StartError::Store)?;
        // The in-memory ring is the durable history's recent part, and serves
        // every /history request (at most MAX_HISTORY_REQUEST).
        let history = config.core.history_len.max(MAX_HISTORY_REQUEST);
        let snapshot = store.load(history).map_err(StartError::Store)?;
        info!(
            "database {}: {} accounts, {} rooms, {} waiting direct messages",
            config.db,
            snapshot.accounts.len(),
            snapshot.rooms.len(),
            snapshot.pending_dms.len()
        );
        let mut core_config = config.core.clone();
        core_config.history_len = history;
        let (chat, startup) = Chat::restore(core_config, snapshot);
        let records: Vec<Record> = startup
            .into_iter()
            .filter_map(|a| match a {
                Action::Store(r) => Some(r),
                _ => None,
            })
            .collect();
        store.commit(&records).map_err(StartError::Store)?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let committer = if off {
            None
        } else {
            Some(Committer::spawn(store, waker.clone())?)
        };
        let auth = AuthPool::new(
            config.auth_threads,
            config.argon2_memory_kib,
            config.argon2_iterations,
            waker.clone(),
        )
        .map_err(StartError::Auth)?;
        let mut slab = Slab::new();
        let mut local_addrs = Vec::new();
        let services = (config
            .listen
            .iter()
            .map(|a| (*a, Service::Chat(Dialect::Line))))
        .chain(
            config
                .irc_listen
                .iter()
                .map(|a| (*a, Service::Chat(Dialect::Irc))),
        )
        .chain(config.echo_listen.iter().map(|a| (*a, Service::Echo)));
        for (addr, service) in services {
            let mut listener = TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            let entry = slab.vacant_entry();
            poll.registry()
                .register(&mut listener, Token(entry.key()), Interest::READABLE)?;
            local_addrs.push((listener.local_addr()?, service));
            entry.insert(Entry::Listener(listener, service));
        }
        let irc = Arc::new(irc::Settings {
            server: config.core.server_name.as_str().into(),
            network: "chatd".into(),
            created: wall_now().to_string(),
            motd: config.motd.clone(),
            chanlimit: config.core.max_rooms_per_user,
        });
        Ok(Server {
            irc,
            poll,
            slab,
            chat,
            config,
            local_addrs,
            seq: 0,
            conns: 0,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            actions: Vec::new(),
            spares: Spares::default(),
            render_buf: Vec::new(),
            dirty: Vec::new(),
            read_again: Vec::new(),
            overflow: Vec::new(),
            timers: Timers::default(),
            accept_paused: false,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            signals: None,
            shutdown_deadline: None,
            committer,
            records: Vec::new(),
            filling: 1,
            committing: None,
            durable: 0,
            held: Vec::new(),
            auth,
            paused: Vec::new(),
            per_ip: HashMap::new(),
            stats: Stats::new(Instant::now()),
        })
    }

    /// The addresses actually bound (port 0 resolved), with what each
    /// serves (a dialect's name, or `echo`).
    pub fn local_addrs(&self) -> Vec<(SocketAddr, &'static str)> {
        self.local_addrs
            .iter()
            .map(|(a, service)| (*a, service.name()))
            .collect()
    }

    /// A handle that stops this server from another thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            waker: self.waker.clone(),
            stop: self.stop.clone(),
        }
    }

    /// Also shut down cleanly on SIGINT and SIGTERM (the daemon does; tests
    /// use a [`ServerHandle`]).
    pub fn watch_signals(&mut self) -> io::Result<()> {
        let mut signals =
            Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(SignalSource(signals));
        Ok(())
    }

    /// Runs until shut down, then returns once every queue is flushed or the
    /// shutdown grace period is over.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        if let Some(every) = self.config.stats_interval {
            self.timers.add(Instant::now() + every, Timer::StatsLog);
        }
        loop {
            let timeout = if self.read_again.is_empty() {
                self.timers.next_in(Instant::now())
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {
                        self.commits_finished();
                        self.auth_finished();
                        if self.stop.load(Ordering::SeqCst) {
                            self.begin_shutdown("asked to stop");
                        }
                    }
                    SIGNALS => {
                        let caught: Vec<i32> = self
                            .signals
                            .as_mut()
                            .map(|s| s.0.pending().collect())
                            .unwrap_or_default();
                        if let Some(sig) = caught.last() {
                            self.begin_shutdown(&format!("signal {sig}"));
                        }
                    }
                    Token(key) => self.ready(key, event),
                }
            }
            let mut again = std::mem::take(&mut self.read_again);
            for &key in &again {
                self.read_conn(key, false);
            }
            give_back(&mut self.read_again, std::mem::take(&mut again));
            self.fire_timers();
            self.apply_actions();
            self.flush_dirty();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns == 0 {
                    self.finish_store();
                    info!("stopped");
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    self.finish_store();
                    info!(
                        "stopped; {} connections had not flushed in time",
                        self.conns
                    );
                    return Ok(());
                }
            }
        }
    }

    /// Handles readiness of slab slot `key`.
    fn ready(&mut self, key: usize, event: &mio::event::Event) {
        match self.slab.get_mut(key) {
            Some(Entry::Listener(..)) => self.accept(key),
            Some(Entry::Conn(c)) => {
                if event.is_writable() {
                    mark_dirty(&mut self.dirty, key, c);
                }
                // Readable, read-closed and error events all end in a read,
                // which tells which it was; a spurious one reads WouldBlock.
                let fresh_edge =
                    event.is_readable() && !event.is_read_closed() && !event.is_error();
                self.read_conn(key, fresh_edge);
            }
            None => {}
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::CloseDeadline(id) => {
                    if let Some((key, _)) = conn_mut(&mut self.slab, id) {
                        self.remove_conn(key, "did not read its last lines in time");
                    }
                }
                Timer::Resume(id) => self.resume(id),
                Timer::LoginDeadline(id) => {
                    if let Some((_, c)) = conn_mut(&mut self.slab, id) {
                        c.close_reason = "login timeout";
                        self.chat
                            .login_deadline_into(id, wall_now(), &mut self.actions);
                        self.apply_actions();
                    }
                }
                Timer::StatsLog => {
                    info!("stats: {}", stats::log_line(&self.stats_report()));
                    if let Some(every) = self.config.stats_interval {
                        self.timers.add(now + every, Timer::StatsLog);
                    }
                }
                Timer::Ping(id) => self.check_idle(id, now),
                Timer::ResumeAccept => {
                    self.accept_paused = false;
                    for key in self.listener_keys() {
                        self.accept(key);
                    }
                }
            }
        }
    }

    /// The slab keys of the listening sockets.
    fn listener_keys(&self) -> Vec<usize> {
        self.slab
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Listener(..)))
            .map(|(k, _)| k)
            .collect()
    }

    /// Stops accepting, says `BYE` to everyone and starts the flush deadline.
    fn begin_shutdown(&mut self, why: &str) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        info!("shutting down ({why}): {} connections to close", self.conns);
        for key in self.listener_keys() {
            if let Entry::Listener(mut l, _) = self.slab.remove(key) {
                let _ = self.poll.registry().deregister(&mut l);
            }
        }
        for (_, entry) in self.slab.iter_mut() {
            if let Entry::Conn(c) = entry {
                c.close_reason = "server shutdown";
            }
        }
        self.shutdown_deadline = Some(Instant::now() + self.config.shutdown_grace);
        self.chat.shutdown_into(wall_now(), &mut self.actions);
        self.apply_actions();
    }
}

/// Finds a live connection by the id the core knows.
impl Server {
    /// A connection whose dialect pings idle clients: ping it if it has been
    /// silent for the interval, drop it if it stayed silent after the ping.
    fn check_idle(&mut self, id: ConnId, now: Instant) {
        let Some(every) = self.config.ping_interval else {
            return;
        };
        let Some((key, c)) = conn_mut(&mut self.slab, id) else {
            return;
        };
        if c.closing {
            return;
        }
        let idle = now.saturating_duration_since(c.last_input);
        if idle < every {
            self.timers.add(c.last_input + every, Timer::Ping(id));
            return;
        }
        if c.ping_sent {
            info!("conn {} dropped: ping timeout", id.0 >> 32);
            let reason = format!("Ping timeout: {} seconds", idle.as_secs());
            self.chat
                .disconnect_into(id, &reason, wall_now(), &mut self.actions);
            self.actions.push(Action::Send {
                to: id,
                event: Event::Bye {
                    reason: reason.into(),
                },
            });
            self.actions.push(Action::Close { conn: id });
            self.apply_actions();
            return;
        }
        if let Some(ping) = c.session.keepalive() {
            c.ping_sent = true;
            self.actions.push(Action::Raw {
                to: id,
                bytes: ping,
            });
            self.apply_actions();
        }
        self.timers.add(now + every, Timer::Ping(id));
        let _ = key;
    }
}

/// Puts a list taken out of the server for a loop back in its field, with
/// whatever was added to the field meanwhile: the lists the loop walks every
/// iteration keep their allocation.
fn give_back<T>(field: &mut Vec<T>, mut taken: Vec<T>) {
    taken.clear();
    taken.append(field);
    *field = taken;
}

fn conn_mut(slab: &mut Slab<Entry>, id: ConnId) -> Option<(usize, &mut Connection)> {
    let key = (id.0 & u64::from(u32::MAX)) as usize;
    match slab.get_mut(key) {
        Some(Entry::Conn(c)) if c.id == id => Some((key, c)),
        _ => None,
    }
}

/// Lists a connection for this iteration's flush (once).
fn mark_dirty(dirty: &mut Vec<usize>, key: usize, c: &mut Connection) {
    if !c.dirty {
        c.dirty = true;
        dirty.push(key);
    }
}

/// Out of file descriptors or memory: accepting again at once would spin.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A short reason for a connection error, for logs, stats and `OFFLINE`
/// (the details go to the debug log where the error happened).
fn describe(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "connection reset",
        io::ErrorKind::BrokenPipe => "broken pipe",
        io::ErrorKind::TimedOut => "connection timed out",
        _ => "connection error",
    }
}

/// The wall clock for message timestamps (the core never reads a clock).
fn wall_now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    Timestamp::from_millis(ms)
}
