//! The write path: the core's actions onto write queues (rendered once per
//! dialect, shared), the group commit, and flushing at the end of each
//! iteration.

use super::*;
use crate::core::OkReply;
use crate::dialect::PROFILES;

/// How far past its sendq a queue may grow within one loop iteration, before
/// the flush has had its chance to write it out.
const SENDQ_HARD_FACTOR: usize = 8;

impl Server {
    /// Puts the core's actions onto write queues. Connections that go over
    /// their sendq are dropped afterwards, which may cause more actions.
    pub(super) fn apply_actions(&mut self) {
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
                    None => c.queue.render_with(|buf| session.render(&event, buf)),
                }
                queued(&mut self.dirty, &mut self.overflow, key, c, sendq);
            }
            Action::Raw { to, bytes } => {
                let Some((key, c)) = conn_mut(&mut self.slab, to) else {
                    return;
                };
                match &mut c.group {
                    Some(group) => group.extend_from_slice(&bytes),
                    None => c.queue.render_with(|buf| buf.extend_from_slice(&bytes)),
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
                    c.queue.render_with(|buf| session.finish_group(&group, buf));
                    queued(&mut self.dirty, &mut self.overflow, key, c, sendq);
                }
            }
            Action::Fanout { to, event } => {
                // Rendered once per profile (dialect and capabilities) in use.
                let mut rendered: [Option<Arc<[u8]>>; PROFILES] = Default::default();
                for id in to {
                    let Some((key, c)) = conn_mut(&mut self.slab, id) else {
                        continue;
                    };
                    if !c.session.wants(&event) {
                        continue;
                    }
                    let session = &c.session;
                    let bytes = rendered[session.profile()].get_or_insert_with(|| {
                        let mut buf = Vec::new();
                        session.render_shared(&event, &mut buf);
                        buf.into()
                    });
                    match &mut c.group {
                        Some(group) => group.extend_from_slice(bytes),
                        None => c.queue.push_shared(bytes.clone()),
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

    /// Writes every queue touched this iteration; registers for writable
    /// only those that could not be emptied.
    pub(super) fn flush_dirty(&mut self) {
        // Durable first: nothing a client receives can be lost by a crash.
        if !self.commit() {
            return;
        }
        for key in std::mem::take(&mut self.dirty) {
            let Some(Entry::Conn(c)) = self.slab.get_mut(key) else {
                continue;
            };
            c.dirty = false;
            let before = c.queue.len();
            let written = c.queue.write_to(&mut c.socket);
            self.stats.bytes_out += (before - c.queue.len()) as u64;
            match written {
                Ok(true) if c.closing => {
                    // Drain what the peer sent, so closing sends FIN, not RST.
                    let _ = input::drain_input(&mut c.socket, &mut self.scratch);
                    let reason = c.close_reason;
                    self.remove_conn(key, reason);
                }
                Ok(false) if c.queue.len() > self.config.sendq && !c.closing => {
                    // Judged after writing: a client that reads keeps up even
                    // when one iteration queued more than its sendq.
                    warn!("conn {} dropped: sendq exceeded", c.id.0 >> 32);
                    self.drop_conn(key, "sendq exceeded");
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
    pub(super) fn commit(&mut self) -> bool {
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
