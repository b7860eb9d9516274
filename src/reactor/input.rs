//! The read path: socket bytes → framed lines → the dialect → the core, flood
//! control on the way, and how a connection's input ends (peer close, errors,
//! drops).

use super::*;

/// Why [`Server::take_lines`] stopped before the end of its bytes.
enum Stop {
    /// The rate bucket is empty: the connection waits for its resume timer.
    Lagged,
    /// The core closed the connection (`/quit`, login timeout).
    Closed,
}

impl Server {
    /// Reads connection `key` until it would block (or its turn is over),
    /// handing each complete line to the core.
    ///
    /// `fresh_edge`: called for an edge-triggered readable event that did
    /// not report the peer's close or an error. Then a read that does not
    /// fill the buffer has drained the socket (new bytes, or a FIN, would
    /// raise a new edge), so the read that would only say `WouldBlock` is
    /// skipped: one system call less per message in a ping-pong (as tokio
    /// does on epoll). Every other caller reads until `WouldBlock`.
    pub(super) fn read_conn(&mut self, key: usize, fresh_edge: bool) {
        if matches!(self.slab.get(key), Some(Entry::Listener(..))) {
            return self.accept(key);
        }
        let behind = self.store_behind();
        let Some(Entry::Conn(c)) = self.slab.get_mut(key) else {
            return;
        };
        if behind {
            // The database is slow or failing: take no new input until it
            // catches up.
            if !c.read_paused {
                c.read_paused = true;
                self.paused.push(key);
            }
            return;
        }
        if c.lagged {
            return;
        }
        if let Some(held) = c.held.take()
            && !self.take_lines(key, &held)
        {
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
                Ok(n) if c.echo => {
                    self.stats.bytes_in += n as u64;
                    let bytes = &self.scratch[..n];
                    c.queue
                        .render_with(&mut self.spares, |buf| buf.extend_from_slice(bytes));
                    self.queued(key);
                    self.apply_actions();
                    if fresh_edge && n < self.scratch.len() {
                        return;
                    }
                }
                Ok(n) => {
                    self.stats.bytes_in += n as u64;
                    let scratch = std::mem::take(&mut self.scratch);
                    let go_on = self.take_lines(key, &scratch[..n]);
                    let drained = fresh_edge && n < scratch.len();
                    self.scratch = scratch;
                    if !go_on || drained {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("conn {}: read: {e}", key);
                    return self.drop_conn(key, describe(&e));
                }
            }
        }
        self.read_again.push(key);
    }

    /// Frames `bytes`, parses each line with the connection's dialect and
    /// hands it to the core, as long as the rate bucket allows. Returns false
    /// when reading must stop: the connection is slowed down (the rest of
    /// `bytes` is kept, to be handled first when it resumes), or it closed.
    fn take_lines(&mut self, key: usize, bytes: &[u8]) -> bool {
        let Some(Entry::Conn(c)) = self.slab.get_mut(key) else {
            return false;
        };
        let id = c.id;
        let (chat, actions, stats) = (&mut self.chat, &mut self.actions, &mut self.stats);
        let (now, wall) = (Instant::now(), wall_now());
        c.last_input = now;
        c.ping_sent = false;
        let (bucket, session) = (&mut c.bucket, &mut c.session);
        let mut stop = None;
        let used = c.framer.feed(bytes, |frame| {
            stats.lines_in += 1;
            let mut closed = false;
            session.input(frame, &mut |input| match input {
                Input::Command(cmd) if !closed => {
                    let before = actions.len();
                    chat.handle_into(id, cmd, wall, actions);
                    closed = actions[before..]
                        .iter()
                        .any(|a| matches!(a, Action::Close { conn } if *conn == id));
                }
                Input::Command(_) => {}
                Input::Event(event) => actions.push(Action::Send { to: id, event }),
                Input::Raw(bytes) => actions.push(Action::Raw { to: id, bytes }),
                Input::Group(start) => actions.push(Action::Group { to: id, start }),
            });
            if closed {
                stop = Some(Stop::Closed);
                return ControlFlow::Break(());
            }
            if let Some(bucket) = bucket.as_mut() {
                bucket.take(now);
                if !bucket.has_token(now) {
                    stop = Some(Stop::Lagged);
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        if let Some(Stop::Lagged) = stop {
            // Both callers take what was held before handing in more bytes.
            debug_assert!(c.held.is_none());
            c.held = Some(bytes[used..].into());
            c.lagged = true;
            let wait = c
                .bucket
                .as_mut()
                .map_or(Duration::ZERO, |b| b.next_token_in(now));
            self.timers.add(now + wait, Timer::Resume(id));
            self.stats.lagged += 1;
        }
        self.apply_actions();
        stop.is_none()
    }

    /// A connection slowed down by flood control may go on.
    pub(super) fn resume(&mut self, id: ConnId) {
        if let Some((key, c)) = conn_mut(&mut self.slab, id) {
            c.lagged = false;
            self.read_conn(key, false);
        }
    }

    /// The peer closed its side: its user goes offline at once, and what is
    /// still queued for it is flushed before the socket closes (so
    /// `printf '...' | nc -N` gets every reply).
    pub(super) fn peer_closed(&mut self, key: usize) {
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
        c.close_reason = "closed by peer";
        if c.echo {
            // Nobody else to tell: send back what is left, then close.
            c.closing = true;
            mark_dirty(&mut self.dirty, key, c);
            let grace = self.config.close_grace;
            self.timers
                .add(Instant::now() + grace, Timer::CloseDeadline(id));
            return;
        }
        // The core answers with a close now, or once a password check and
        // the lines held behind it are done.
        self.chat
            .input_ended_into(id, "connection closed", wall_now(), &mut self.actions);
        self.apply_actions();
    }

    /// Drops a connection now, without flushing, and tells the core.
    pub(super) fn drop_conn(&mut self, key: usize, reason: &'static str) {
        if let Some(Entry::Conn(c)) = self.slab.get(key) {
            let id = c.id;
            self.chat
                .disconnect_into(id, reason, wall_now(), &mut self.actions);
            self.remove_conn(key, reason);
        }
    }

    /// Takes a connection out of the slab and the poll. The core must already
    /// know (or never have known) it is gone.
    pub(super) fn remove_conn(&mut self, key: usize, reason: &'static str) {
        if !matches!(self.slab.get(key), Some(Entry::Conn(_))) {
            return;
        }
        if let Entry::Conn(mut c) = self.slab.remove(key) {
            if let Err(e) = self.poll.registry().deregister(&mut c.socket) {
                debug!("deregister: {e}");
            }
            self.conns -= 1;
            let ip = c.addr.ip();
            match self.per_ip.get_mut(&ip) {
                Some(n) if *n > 1 => *n -= 1,
                _ => {
                    self.per_ip.remove(&ip);
                }
            }
            self.stats.disconnected(reason);
            info!(
                "conn {} from {} disconnected: {reason}",
                c.id.0 >> 32,
                c.addr
            );
        }
    }
}

/// Reads and discards until the socket would block (bounded).
pub(super) fn drain_input(socket: &mut TcpStream, scratch: &mut [u8]) -> io::Result<()> {
    for _ in 0..READS_PER_TURN {
        if socket.read(scratch)? == 0 {
            break;
        }
    }
    Ok(())
}
