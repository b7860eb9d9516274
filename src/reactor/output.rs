//! The write path: the core's actions onto write queues (rendered once per
//! dialect, shared), the group commit, and flushing at the end of each
//! iteration.

use super::*;
use crate::core::OkReply;
use crate::dialect::PROFILES;

/// A fanned-out event's bytes for one profile.
#[derive(Default)]
enum Rendered {
    /// Not rendered yet.
    #[default]
    No,
    /// Rendered into the reactor's render buffer and copied to one queue.
    Copied(std::ops::Range<usize>),
    /// Shared by the queues of the second recipient on.
    Shared(Arc<[u8]>),
}

/// How far past its sendq a queue may grow within one loop iteration, before
/// the flush has had its chance to write it out.
const SENDQ_HARD_FACTOR: usize = 8;

/// Writes with `send`/`sendmsg` rather than `write`/`writev`: the same
/// bytes, without the file layer (position lock, `vfs_writev`) that a
/// socket does not need.
struct Send<'a>(socket2::SockRef<'a>);

impl std::io::Write for Send<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.send_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Server {
    /// Puts the core's actions onto write queues. Connections that go over
    /// their sendq are dropped afterwards, which may cause more actions.
    pub(super) fn apply_actions(&mut self) {
        while !self.actions.is_empty() {
            let mut actions = std::mem::take(&mut self.actions);
            for action in actions.drain(..) {
                self.apply(action);
            }
            give_back(&mut self.actions, actions);
            let overflow = std::mem::take(&mut self.overflow);
            for &id in &overflow {
                if let Some((key, _)) = conn_mut(&mut self.slab, id) {
                    warn!("conn {} dropped: sendq exceeded", id.0 >> 32);
                    self.drop_conn(key, "sendq exceeded");
                }
            }
            give_back(&mut self.overflow, overflow);
        }
    }

    pub(super) fn apply(&mut self, action: Action) {
        let sendq = self.config.sendq;
        match action {
            Action::Send { to, event } => {
                let Some((key, c)) = conn_mut(&mut self.slab, to) else {
                    return;
                };
                if let Event::Error(e) = &event {
                    debug!("conn {}: ERR {} {}", to.0 >> 32, e.code, e.text);
                }
                let session = &mut c.session;
                match &mut c.group {
                    Some(group) => session.render(&event, group),
                    None => c
                        .queue
                        .render_with(&mut self.spares, |buf| session.render(&event, buf)),
                }
                queued(&mut self.dirty, &mut self.overflow, key, c, sendq);
            }
            Action::Raw { to, bytes } => {
                let Some((key, c)) = conn_mut(&mut self.slab, to) else {
                    return;
                };
                match &mut c.group {
                    Some(group) => group.extend_from_slice(&bytes),
                    None => c
                        .queue
                        .render_with(&mut self.spares, |buf| buf.extend_from_slice(&bytes)),
                }
                queued(&mut self.dirty, &mut self.overflow, key, c, sendq);
            }
            Action::Group { to, start } => {
                let Some((key, c)) = conn_mut(&mut self.slab, to) else {
                    return;
                };
                if start {
                    c.group.get_or_insert_with(Vec::new);
                } else if let Some(group) = c.group.take() {
                    let session = &mut c.session;
                    c.queue
                        .render_with(&mut self.spares, |buf| session.finish_group(&group, buf));
                    queued(&mut self.dirty, &mut self.overflow, key, c, sendq);
                }
            }
            Action::Fanout { to, event } => {
                // Rendered once per profile (dialect and capabilities) in
                // use. The first recipient of a profile gets a copy of the
                // rendering; a second one makes it shared, so an event for
                // one recipient (a direct message) allocates nothing.
                let mut rendered: [Rendered; PROFILES] = Default::default();
                let buf = &mut self.render_buf;
                buf.clear();
                for id in to {
                    let Some((key, c)) = conn_mut(&mut self.slab, id) else {
                        continue;
                    };
                    if !c.session.wants(&event) {
                        continue;
                    }
                    let session = &c.session;
                    let slot = &mut rendered[session.profile()];
                    if let Rendered::Copied(range) = slot {
                        // A second recipient: from now on the bytes are shared.
                        *slot = Rendered::Shared(buf[range.clone()].into());
                    }
                    match (&*slot, &mut c.group) {
                        (Rendered::Shared(shared), Some(group)) => group.extend_from_slice(shared),
                        (Rendered::Shared(shared), None) => {
                            c.queue.push_shared(&mut self.spares, shared.clone())
                        }
                        (_, group) => {
                            let start = buf.len();
                            session.render_shared(&event, buf);
                            let bytes = &buf[start..];
                            match group {
                                Some(group) => group.extend_from_slice(bytes),
                                None => c
                                    .queue
                                    .render_with(&mut self.spares, |b| b.extend_from_slice(bytes)),
                            }
                            *slot = Rendered::Copied(start..buf.len());
                        }
                    }
                    queued(&mut self.dirty, &mut self.overflow, key, c, sendq);
                }
            }
            Action::Stats { conn } => {
                let counters = self.stats_report();
                self.actions.push(Action::Send {
                    to: conn,
                    event: Event::Stats { counters },
                });
                self.actions.push(Action::Send {
                    to: conn,
                    event: Event::Ok(OkReply::Stats),
                });
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
    pub(super) fn queued(&mut self, key: usize) {
        if let Some(Entry::Conn(c)) = self.slab.get_mut(key) {
            queued(
                &mut self.dirty,
                &mut self.overflow,
                key,
                c,
                self.config.sendq,
            );
        }
    }

    /// Hands this iteration's records to the database, then writes every
    /// listed queue as far as the commits allow.
    pub(super) fn flush_dirty(&mut self) {
        self.start_commit();
        let need = self.needed_batch();
        let dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            let Some(Entry::Conn(c)) = self.slab.get_mut(key) else {
                continue;
            };
            c.dirty = false;
            // Durable first: nothing a client receives can be lost by a
            // crash. Bytes queued since the last flush wait for the newest
            // batch with records in it.
            if need > self.durable {
                c.gates.hold(c.queue.end(), need);
            }
            let limit = c.gates.limit(self.durable);
            if c.gates.holding() && !c.held_listed {
                c.held_listed = true;
                self.held.push(key);
            }
            let before = c.queue.len();
            let mut socket = Send(socket2::SockRef::from(&c.socket));
            let written = c.queue.write_up_to(&mut socket, limit, &mut self.spares);
            self.stats.bytes_out += (before - c.queue.len()) as u64;
            match written {
                Ok(Flushed::All) if c.closing => {
                    // Drain what the peer sent, so closing sends FIN, not RST.
                    let _ = input::drain_input(&mut c.socket, &mut self.scratch);
                    let reason = c.close_reason;
                    self.remove_conn(key, reason);
                }
                // Waiting for the database is not the client's fault.
                Ok(Flushed::Held) => {}
                Ok(Flushed::SocketFull) if c.queue.len() > self.config.sendq && !c.closing => {
                    // Judged after writing: a client that reads keeps up even
                    // when one iteration queued more than its sendq.
                    warn!("conn {} dropped: sendq exceeded", c.id.0 >> 32);
                    self.drop_conn(key, "sendq exceeded");
                }
                Ok(flushed) => {
                    let drained = flushed == Flushed::All;
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
                            debug!("conn {key}: reregister: {e}");
                            self.drop_conn(key, describe(&e));
                        }
                    }
                }
                Err(e) => {
                    debug!("conn {key}: write: {e}");
                    self.drop_conn(key, describe(&e));
                }
            }
        }
        give_back(&mut self.dirty, dirty);
        // Dropping connections may have produced events for others.
        if !self.actions.is_empty() {
            self.apply_actions();
            self.flush_dirty();
        }
    }

    /// The batch that bytes queued now must wait for: the newest one with
    /// records in it (none: `durable`, nothing to wait for).
    fn needed_batch(&self) -> u64 {
        if !self.records.is_empty() {
            self.filling
        } else {
            self.committing.unwrap_or(self.durable)
        }
    }

    /// Sends the batch being filled to the database thread, unless one is
    /// still being committed (then it goes as soon as that one is durable).
    fn start_commit(&mut self) {
        if self.committing.is_some() || self.records.is_empty() {
            return;
        }
        let Some(committer) = &self.committer else {
            // No database (`--db off`): the batch is "durable" at once.
            self.records.clear();
            self.durable = self.filling;
            self.filling += 1;
            return;
        };
        let seq = self.filling;
        // The next batch is likely about as big: room for it in one go.
        let next = Vec::with_capacity(self.records.len());
        committer.send(seq, std::mem::replace(&mut self.records, next));
        self.committing = Some(seq);
        self.filling += 1;
    }

    /// The database thread reported durable batches: queues held back for
    /// them are written, the next batch goes, and input held while records
    /// piled up is read again.
    pub(super) fn commits_finished(&mut self) {
        let Some(seq) = self.committer.as_ref().and_then(Committer::durable) else {
            return;
        };
        self.durable = self.durable.max(seq);
        if self.committing.is_some_and(|c| c <= seq) {
            self.committing = None;
        }
        for &key in &self.held {
            if let Some(Entry::Conn(c)) = self.slab.get_mut(key) {
                c.held_listed = false;
                mark_dirty(&mut self.dirty, key, c);
            }
        }
        self.held.clear();
        for key in std::mem::take(&mut self.paused) {
            if let Some(Entry::Conn(c)) = self.slab.get_mut(key) {
                c.read_paused = false;
                self.read_again.push(key);
            }
        }
        self.flush_dirty();
    }

    /// Whether input should wait: records pile up behind a slow commit.
    pub(super) fn store_behind(&self) -> bool {
        self.committing.is_some() && self.records.len() >= MAX_RECORDS_WAITING
    }

    /// At shutdown: the records not sent yet are committed and the database
    /// thread stops (after the shutdown grace period if commits fail).
    pub(super) fn finish_store(&mut self) {
        if let Some(committer) = self.committer.take() {
            committer.finish(std::mem::take(&mut self.records));
        }
    }

    /// Every counter, the core's and the reactor's, for `/stats` and the log.
    pub(super) fn stats_report(&self) -> Vec<(String, u64)> {
        let queued = self
            .slab
            .iter()
            .map(|(_, e)| match e {
                Entry::Conn(c) => c.queue.len() as u64,
                Entry::Listener(..) => 0,
            })
            .sum();
        self.stats
            .report(Instant::now(), self.chat.counts(), queued)
    }

    /// Hands finished password jobs back to the core.
    pub(super) fn auth_finished(&mut self) {
        for done in self.auth.finished() {
            self.chat
                .auth_done_into(done.conn, done.outcome, wall_now(), &mut self.actions);
        }
        self.apply_actions();
    }
}

/// Bytes were queued on `c`: list it for this iteration's flush. Whether it
/// is over its sendq is judged after that flush has written what the socket
/// takes; only a queue that grows past [`SENDQ_HARD_FACTOR`] times the sendq
/// within one iteration is dropped at once, to bound memory.
fn queued(
    dirty: &mut Vec<usize>,
    overflow: &mut Vec<ConnId>,
    key: usize,
    c: &mut Connection,
    sendq: usize,
) {
    mark_dirty(dirty, key, c);
    let held = c.group.as_ref().map_or(0, Vec::len);
    if c.queue.len() + held > sendq.saturating_mul(SENDQ_HARD_FACTOR) && !overflow.contains(&c.id) {
        overflow.push(c.id);
    }
}
