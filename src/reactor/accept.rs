//! Accepting connections: the accept loop, its back-off when file
//! descriptors run out, and setting up each new socket.

use std::io::Write;

use socket2::{SockRef, TcpKeepalive};

use super::*;
use crate::core::{Error, ErrorCode};
use rate::Bucket;

/// Keepalive probes are this far apart once the idle time has passed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the peer is declared gone.
const KEEPALIVE_PROBES: u32 = 6;

impl Server {
    /// Accepts connections on listener `key` until it would block.
    pub(super) fn accept(&mut self, key: usize) {
        if self.accept_paused || self.shutdown_deadline.is_some() {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(Entry::Listener(listener, service)) = self.slab.get(key) else {
                return;
            };
            let service = *service;
            match listener.accept() {
                Ok((socket, addr)) => self.add_conn(socket, addr, service),
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

    /// Sets up a new connection and tells the core, or turns it away when
    /// a connection limit is reached.
    pub(super) fn add_conn(&mut self, mut socket: TcpStream, addr: SocketAddr, service: Service) {
        let (dialect, echo) = match service {
            Service::Chat(dialect) => (dialect, false),
            Service::Echo => (Dialect::Line, true),
        };
        let session = Session::new(dialect, &self.irc, addr.ip());
        let ip = addr.ip();
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        let (max, per_ip) = (self.config.max_clients, self.config.max_per_ip);
        if max > 0 && self.conns >= max {
            return self.refuse(socket, addr, session, "the server is full");
        }
        if per_ip > 0 && from_ip >= per_ip {
            return self.refuse(
                socket,
                addr,
                session,
                "too many connections from your address",
            );
        }
        let entry = self.slab.vacant_entry();
        let key = entry.key();
        if key > u32::MAX as usize {
            return self.refuse(socket, addr, session, "the server is full");
        }
        if let Err(e) = socket.set_nodelay(true) {
            debug!("set_nodelay for {addr}: {e}");
        }
        // An IRC client is pinged when idle (`--ping-interval`), which finds
        // a vanished peer as well: TCP keepalive (five more system calls
        // per connection) is for the line protocol, which has no PING.
        let keepalive = session.keepalive().is_some();
        let pinged = keepalive && self.config.ping_interval.is_some();
        if let (false, Some(idle)) = (pinged, self.config.tcp_keepalive) {
            keep_alive(&socket, idle, addr);
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
        let now = Instant::now();
        let bucket = self
            .config
            .rate
            .filter(|_| !echo)
            .map(|rate| Bucket::new(rate, now));
        let mut conn = Connection::new(socket, id, addr, session, bucket, now);
        conn.echo = echo;
        entry.insert(Entry::Conn(conn));
        self.conns += 1;
        self.per_ip.insert(ip, from_ip + 1);
        self.stats.accepted += 1;
        info!(
            "conn {} connected from {addr} ({})",
            self.seq,
            service.name()
        );
        if echo {
            return;
        }
        if let (true, Some(every)) = (keepalive, self.config.ping_interval) {
            self.timers.add(now + every, Timer::Ping(id));
        }
        if let Some(timeout) = self.config.login_timeout {
            self.timers.add(now + timeout, Timer::LoginDeadline(id));
        }
        self.chat
            .connect_into(id, ip, wall_now(), &mut self.actions);
        self.apply_actions();
    }

    /// Sends one `too-many-connections` error (best effort: the socket is
    /// new, so its buffer has room) and closes.
    fn refuse(&mut self, mut socket: TcpStream, addr: SocketAddr, mut session: Session, why: &str) {
        self.stats.refused += 1;
        debug!("refusing {addr}: {why}");
        let mut line = Vec::new();
        let event = match session {
            Session::Line => Event::Error(Error::new(ErrorCode::TooManyConnections).text(why)),
            Session::Irc(_) => Event::Bye { reason: why.into() },
        };
        session.render(&event, &mut line);
        if let Err(e) = socket.write(&line) {
            debug!("refusing {addr}: {e}");
        }
    }
}

/// Turns on TCP keepalive, so a peer that vanished without a FIN (cable
/// pulled, machine gone) is found even if it never sends again, while a quiet
/// one is left alone; and a user timeout, so unacknowledged output to such a
/// peer does not keep the connection for TCP's default quarter hour.
fn keep_alive(socket: &TcpStream, idle: Duration, addr: SocketAddr) {
    let sock = SockRef::from(socket);
    let keepalive = TcpKeepalive::new()
        .with_time(idle)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        debug!("keepalive for {addr}: {e}");
    }
    let give_up = idle + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES;
    if let Err(e) = sock.set_tcp_user_timeout(Some(give_up)) {
        debug!("user timeout for {addr}: {e}");
    }
}
