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

mod conn;
mod queue;
mod timers;

use std::io::{self, Read};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{debug, error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::auth::{AuthError, AuthPool};
use crate::config::{MAX_HISTORY_REQUEST, ServerConfig};
use crate::core::{Action, Chat, ConnId, Event, Record, Timestamp};
use crate::dialect::Dialect;
use crate::store::{Store, StoreError};
use conn::Connection;
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
/// First and longest wait before retrying a failed database commit.
const COMMIT_RETRY_MIN: Duration = Duration::from_millis(10);
const COMMIT_RETRY_MAX: Duration = Duration::from_secs(1);
/// How long to stop accepting after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What sits in a slab slot.
#[derive(Debug)]
enum Entry {
    Listener(TcpListener, Dialect),
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
    local_addrs: Vec<SocketAddr>,
    /// Connections ever accepted: the high half of every [`ConnId`].
    seq: u64,
    /// Live connections (the slab also holds listeners).
    conns: usize,
    /// One read buffer for every connection: an idle connection holds none.
    scratch: Box<[u8]>,
    /// Actions from the core not applied yet (reused between iterations).
    actions: Vec<Action>,
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
    /// The database.
    store: Store,
    /// Records of this iteration, committed in one transaction before any
    /// of its bytes are written.
    records: Vec<Record>,
    /// Password workers.
    auth: AuthPool,
    /// Set while commits fail: when to try again, and the current back-off.
    /// Meanwhile no byte is written and no input is read.
    store_retry: Option<(Instant, Duration)>,
    /// Connections whose input waits for the database to work again.
    paused: Vec<usize>,
}

impl Server {
    /// Binds every listen address of `config`. Nothing is accepted until
    /// [`Server::run`].
    pub fn bind(config: ServerConfig) -> Result<Server, StartError> {
        let mut store = Store::open(&config.db, config.sync).map_err(StartError::Store)?;
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
        let auth = AuthPool::new(
            config.auth_threads,
            config.argon2_memory_kib,
            config.argon2_iterations,
            waker.clone(),
        )
        .map_err(StartError::Auth)?;
        let mut slab = Slab::new();
        let mut local_addrs = Vec::new();
        for addr in &config.listen {
            let mut listener = TcpListener::bind(*addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            let entry = slab.vacant_entry();
            poll.registry()
                .register(&mut listener, Token(entry.key()), Interest::READABLE)?;
            local_addrs.push(listener.local_addr()?);
            entry.insert(Entry::Listener(listener, Dialect::Line));
        }
        Ok(Server {
            poll,
            slab,
            chat,
            config,
            local_addrs,
            seq: 0,
            conns: 0,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            actions: Vec::new(),
            dirty: Vec::new(),
            read_again: Vec::new(),
            overflow: Vec::new(),
            timers: Timers::default(),
            accept_paused: false,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            signals: None,
            shutdown_deadline: None,
            store,
            records: Vec::new(),
            auth,
            store_retry: None,
            paused: Vec::new(),
        })
    }

    /// The addresses actually bound (port 0 resolved), with their dialect.
    pub fn local_addrs(&self) -> Vec<(SocketAddr, &'static str)> {
        self.local_addrs
            .iter()
            .map(|a| (*a, Dialect::Line.name()))
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
                    Token(key) => self.ready(key, event.is_writable()),
                }
            }
            for key in std::mem::take(&mut self.read_again) {
                self.read_conn(key);
            }
            self.fire_timers();
            self.apply_actions();
            self.flush_dirty();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns == 0 {
                    info!("stopped");
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    if !self.records.is_empty() {
                        error!(
                            "stopping with {} records the database did not take",
                            self.records.len()
                        );
                    }
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
    fn ready(&mut self, key: usize, writable: bool) {
        match self.slab.get_mut(key) {
            Some(Entry::Listener(..)) => self.accept(key),
            Some(Entry::Conn(c)) => {
                if writable {
                    mark_dirty(&mut self.dirty, key, c);
                }
                // Readable, read-closed and error events all end in a read,
                // which tells which it was; a spurious one reads WouldBlock.
                self.read_conn(key);
            }
            None => {}
        }
    }

    /// Accepts connections on listener `key` until it would block.
    fn accept(&mut self, key: usize) {
        if self.accept_paused || self.shutdown_deadline.is_some() {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(Entry::Listener(listener, dialect)) = self.slab.get(key) else {
                return;
            };
            let dialect = *dialect;
            match listener.accept() {
                Ok((socket, addr)) => self.add_conn(socket, addr, dialect),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_resource_exhaustion(&e) => {
                    warn!("accept failed: {e}; pausing accepts for {ACCEPT_BACKOFF:?}");
                    self.accept_paused = true;
                    self.timers
                        .add(Instant::now() + ACCEPT_BACKOFF, Timer::ResumeAccept);
                    return;
                }
                Err(e) => debug!("accept failed: {e}"),
            }
        }
        // More may be waiting; readiness is edge-triggered, so come back soon.
        self.read_again.push(key);
    }

    /// Registers a new connection and tells the core.
    fn add_conn(&mut self, mut socket: TcpStream, addr: SocketAddr, dialect: Dialect) {
        let entry = self.slab.vacant_entry();
        let key = entry.key();
        if key > u32::MAX as usize {
            warn!("refusing {addr}: too many connections");
            return;
        }
        if let Err(e) = socket.set_nodelay(true) {
            debug!("set_nodelay for {addr}: {e}");
        }
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut socket, Token(key), Interest::READABLE)
        {
            warn!("cannot register {addr}: {e}");
            return;
        }
        self.seq += 1;
        let id = ConnId((self.seq << 32) | key as u64);
        entry.insert(Entry::Conn(Connection::new(socket, id, addr, dialect)));
        self.conns += 1;
        info!(
            "conn {} connected from {addr} ({})",
            self.seq,
            dialect.name()
        );
        self.chat
            .connect_into(id, addr.ip(), wall_now(), &mut self.actions);
        self.apply_actions();
    }

    /// Reads connection `key` until it would block (or its turn is over),
    /// handing each complete line to the core.
    fn read_conn(&mut self, key: usize) {
        if matches!(self.slab.get(key), Some(Entry::Listener(..))) {
            return self.accept(key);
        }
        if self.store_retry.is_some() {
            // The database is failing: take no new input until it works.
            if let Some(Entry::Conn(c)) = self.slab.get_mut(key)
                && !c.read_paused
            {
                c.read_paused = true;
                self.paused.push(key);
            }
            return;
        }
        for _ in 0..READS_PER_TURN {
            let Some(Entry::Conn(c)) = self.slab.get_mut(key) else {
                return;
            };
            match c.socket.read(&mut self.scratch) {
                Ok(0) => return self.peer_closed(key),
                Ok(n) if c.closing => {
                    debug!("conn {}: {n} bytes after close ignored", c.id.0 >> 32)
                }
                Ok(n) => {
                    let (id, dialect) = (c.id, c.dialect);
                    let (chat, actions) = (&mut self.chat, &mut self.actions);
                    let now = wall_now();
                    c.framer.feed(&self.scratch[..n], |frame| {
                        match dialect.parse(frame) {
                            Ok(cmd) => {
                                let before = actions.len();
                                chat.handle_into(id, cmd, now, actions);
                                if actions[before..]
                                    .iter()
                                    .any(|a| matches!(a, Action::Close { conn } if *conn == id))
                                {
                                    return ControlFlow::Break(());
                                }
                            }
                            Err(e) => actions.push(Action::Send {
                                to: id,
                                event: Event::Error(e),
                            }),
                        }
                        ControlFlow::Continue(())
                    });
                    self.apply_actions();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.drop_conn(key, &describe(&e)),
            }
        }
        self.read_again.push(key);
    }

    /// The peer closed its side: its user goes offline at once, and what is
    /// still queued for it is flushed before the socket closes (so
    /// `printf '...' | nc -N` gets every reply).
    fn peer_closed(&mut self, key: usize) {
        let Some(Entry::Conn(c)) = self.slab.get_mut(key) else {
            return;
        };
        let id = c.id;
        if c.closing {
            if c.queue.is_empty() {
                self.remove_conn(key, "closed by peer");
            }
            return;
        }
        // The core answers with a close now, or once a password check and
        // the lines held behind it are done.
        self.chat
            .input_ended_into(id, "connection closed", wall_now(), &mut self.actions);
        self.apply_actions();
    }

    /// Drops a connection now, without flushing, and tells the core.
    fn drop_conn(&mut self, key: usize, reason: &str) {
        if let Some(Entry::Conn(c)) = self.slab.get(key) {
            let id = c.id;
            self.chat
                .disconnect_into(id, reason, wall_now(), &mut self.actions);
            self.remove_conn(key, reason);
        }
    }

    /// Takes a connection out of the slab and the poll. The core must already
    /// know (or never have known) it is gone.
    fn remove_conn(&mut self, key: usize, reason: &str) {
        if !matches!(self.slab.get(key), Some(Entry::Conn(_))) {
            return;
        }
        if let Entry::Conn(mut c) = self.slab.remove(key) {
            if let Err(e) = self.poll.registry().deregister(&mut c.socket) {
                debug!("deregister: {e}");
            }
            self.conns -= 1;
            info!(
                "conn {} from {} disconnected: {reason}",
                c.id.0 >> 32,
                c.addr
            );
        }
    }

    /// Puts the core's actions onto write queues. Connections that go over
    /// their sendq are dropped afterwards, which may cause more actions.
    fn apply_actions(&mut self) {
        while !self.actions.is_empty() {
            let mut actions = std::mem::take(&mut self.actions);
            for action in actions.drain(..) {
                self.apply(action);
            }
            // Keep the allocation for the next batch.
            if self.actions.is_empty() {
                self.actions = actions;
            }
            for id in std::mem::take(&mut self.overflow) {
                if let Some((key, _)) = conn_mut(&mut self.slab, id) {
                    warn!("conn {} dropped: sendq exceeded", id.0 >> 32);
                    self.drop_conn(key, "sendq exceeded");
                }
            }
        }
    }

    fn apply(&mut self, action: Action) {
        let sendq = self.config.sendq;
        match action {
            Action::Send { to, event } => {
                let Some((key, c)) = conn_mut(&mut self.slab, to) else {
                    return;
                };
                if let Event::Error(e) = &event {
                    debug!("conn {}: ERR {} {}", to.0 >> 32, e.code, e.text);
                }
                let dialect = c.dialect;
                c.queue.render_with(|buf| dialect.render(&event, buf));
                let over = c.queue.len() > sendq;
                self.queued(key, over);
            }
            Action::Fanout { to, event } => {
                let mut rendered: [Option<Arc<[u8]>>; Dialect::ALL.len()] = Default::default();
                for id in to {
                    let Some((key, c)) = conn_mut(&mut self.slab, id) else {
                        continue;
                    };
                    let dialect = c.dialect;
                    let bytes = rendered[dialect.index()].get_or_insert_with(|| {
                        let mut buf = Vec::new();
                        dialect.render(&event, &mut buf);
                        buf.into()
                    });
                    c.queue.push_shared(bytes.clone());
                    let over = c.queue.len() > sendq;
                    self.queued(key, over);
                }
            }
            Action::Store(record) => self.records.push(record),
            Action::Auth { conn, request } => self.auth.submit(conn, request),
            Action::Close { conn } => {
                let grace = self.config.close_grace;
                let Some((key, c)) = conn_mut(&mut self.slab, conn) else {
                    return;
                };
                c.closing = true;
                mark_dirty(&mut self.dirty, key, c);
                self.timers
                    .add(Instant::now() + grace, Timer::CloseDeadline(conn));
            }
        }
    }

    /// Bytes were queued on `key`: flush it this iteration, or drop it if
    /// it is over its sendq.
    fn queued(&mut self, key: usize, over: bool) {
        if let Some(Entry::Conn(c)) = self.slab.get_mut(key) {
            mark_dirty(&mut self.dirty, key, c);
            if over && !self.overflow.contains(&c.id) {
                self.overflow.push(c.id);
            }
        }
    }

    /// Writes every queue touched this iteration; registers for writable
    /// only those that could not be emptied.
    fn flush_dirty(&mut self) {
        // Durable first: nothing a client receives can be lost by a crash.
        if !self.commit() {
            return;
        }
        for key in std::mem::take(&mut self.dirty) {
            let Some(Entry::Conn(c)) = self.slab.get_mut(key) else {
                continue;
            };
            c.dirty = false;
            match c.queue.write_to(&mut c.socket) {
                Ok(true) if c.closing => {
                    // Drain what the peer sent, so closing sends FIN, not RST.
                    let _ = drain_input(&mut c.socket, &mut self.scratch);
                    self.remove_conn(key, "closed");
                }
                Ok(drained) => {
                    if drained == c.wants_writable {
                        let interest = if drained {
                            Interest::READABLE
                        } else {
                            Interest::READABLE | Interest::WRITABLE
                        };
                        c.wants_writable = !drained;
                        if let Err(e) =
                            self.poll
                                .registry()
                                .reregister(&mut c.socket, Token(key), interest)
                        {
                            let reason = describe(&e);
                            self.drop_conn(key, &reason);
                        }
                    }
                }
                Err(e) => {
                    let reason = describe(&e);
                    self.drop_conn(key, &reason);
                }
            }
        }
        // Dropping connections may have produced events for others.
        if !self.actions.is_empty() {
            self.apply_actions();
            self.flush_dirty();
        }
    }

    /// Commits this iteration's records in one transaction; true once
    /// everything is durable and the sockets may be written.
    ///
    /// A failed commit keeps its records and is retried with a growing
    /// back-off; until one succeeds nothing is delivered and no input is read,
    /// so no client ever sees what a crash could lose, and memory stays bounded.
    fn commit(&mut self) -> bool {
        if self.records.is_empty() {
            return true;
        }
        let now = Instant::now();
        if self.store_retry.is_some_and(|(at, _)| now < at) {
            return false;
        }
        match self.store.commit(&self.records) {
            Ok(()) => {
                let took = now.elapsed();
                if took > Duration::from_millis(50) {
                    warn!(
                        "database commit of {} records took {took:?}",
                        self.records.len()
                    );
                }
                if self.store_retry.take().is_some() {
                    info!("database commit works again: delivering and reading resume");
                    for key in std::mem::take(&mut self.paused) {
                        if let Some(Entry::Conn(c)) = self.slab.get_mut(key) {
                            c.read_paused = false;
                            self.read_again.push(key);
                        }
                    }
                }
                self.records.clear();
                true
            }
            Err(e) => {
                let backoff = self
                    .store_retry
                    .map_or(COMMIT_RETRY_MIN, |(_, b)| (b * 2).min(COMMIT_RETRY_MAX));
                if self.store_retry.is_none() {
                    error!(
                        "database commit of {} records failed: {e}; holding deliveries and input until it works",
                        self.records.len()
                    );
                } else {
                    debug!("database commit still failing: {e}");
                }
                self.store_retry = Some((now + backoff, backoff));
                self.timers.add(now + backoff, Timer::RetryCommit);
                false
            }
        }
    }

    /// Hands finished password jobs back to the core.
    fn auth_finished(&mut self) {
        for done in self.auth.finished() {
            self.chat
                .auth_done_into(done.conn, done.outcome, wall_now(), &mut self.actions);
        }
        self.apply_actions();
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
                // Only wakes the loop: the commit is retried before the flush.
                Timer::RetryCommit => {}
                Timer::ResumeAccept => {
                    self.accept_paused = false;
                    let listeners: Vec<usize> = self
                        .slab
                        .iter()
                        .filter(|(_, e)| matches!(e, Entry::Listener(..)))
                        .map(|(k, _)| k)
                        .collect();
                    for key in listeners {
                        self.accept(key);
                    }
                }
            }
        }
    }

    /// Stops accepting, says `BYE` to everyone and starts the flush deadline.
    fn begin_shutdown(&mut self, why: &str) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        info!("shutting down ({why}): {} connections to close", self.conns);
        let listeners: Vec<usize> = self
            .slab
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Listener(..)))
            .map(|(k, _)| k)
            .collect();
        for key in listeners {
            if let Entry::Listener(mut l, _) = self.slab.remove(key) {
                let _ = self.poll.registry().deregister(&mut l);
            }
        }
        self.shutdown_deadline = Some(Instant::now() + self.config.shutdown_grace);
        self.chat.shutdown_into(wall_now(), &mut self.actions);
        self.apply_actions();
    }
}

/// Finds a live connection by the id the core knows.
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

/// Reads and discards until the socket would block (bounded).
fn drain_input(socket: &mut TcpStream, scratch: &mut [u8]) -> io::Result<()> {
    for _ in 0..READS_PER_TURN {
        if socket.read(scratch)? == 0 {
            break;
        }
    }
    Ok(())
}

/// Out of file descriptors or memory: accepting again at once would spin.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A short reason for a connection error, for logs and `OFFLINE`.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::BrokenPipe => "broken pipe".into(),
        io::ErrorKind::TimedOut => "connection timed out".into(),
        _ => format!("connection error: {e}"),
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
