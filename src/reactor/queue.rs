//! A connection's write queue: bytes waiting for the socket, bounded by the
//! caller (the sendq limit).
//!
//! Lines for one recipient are rendered straight into an owned tail buffer;
//! a line for many recipients is rendered once and shared ([`Arc`]) by every
//! queue it goes to. Flushing hands the socket many chunks per `writev`.
//!
//! Bytes that follow a database record may not reach the socket before the
//! record is durable: [`Gates`] remember, per connection, up to which byte
//! each pending commit holds the queue back.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::num::NonZeroU64;
use std::sync::Arc;

/// An owned tail buffer takes more lines until it holds this many bytes.
const COALESCE: usize = 16 * 1024;
/// Chunks handed to one `writev` (Linux allows 1024; 64 is plenty per call).
const MAX_IOV: usize = 64;
/// Emptied buffers and chunk lists kept for reuse, at most this many each.
const MAX_SPARES: usize = 256;
/// Buffers larger than this go back to the allocator rather than the spares.
const MAX_SPARE_CAPACITY: usize = 2048;
/// Chunk lists that grew past this many slots go back to the allocator
/// (64 slots of 24 bytes: 1.5 KiB, less than a buffer). A member of a busy room
/// gets dozens of shared lines per iteration; a list that small would be
/// regrown from scratch every time.
const MAX_SPARE_CHUNKS: usize = 64;
/// What a fresh tail buffer starts with: a few chat lines.
const FIRST_CAPACITY: usize = 512;

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(b) => b,
        }
    }
}

/// Emptied tail buffers and chunk lists, shared by every queue of the
/// reactor: an idle connection keeps no buffers, yet a line to one
/// recipient costs no allocation (a round trip would otherwise take and
/// free both every time). Bounded by [`MAX_SPARES`] and
/// [`MAX_SPARE_CAPACITY`].
#[derive(Debug, Default)]
pub(crate) struct Spares {
    bufs: Vec<Vec<u8>>,
    lists: Vec<VecDeque<Chunk>>,
}

impl Spares {
    fn buf(&mut self) -> Vec<u8> {
        self.bufs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(FIRST_CAPACITY))
    }

    fn list(&mut self) -> VecDeque<Chunk> {
        self.lists.pop().unwrap_or_default()
    }

    fn give_buf(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= MAX_SPARE_CAPACITY && self.bufs.len() < MAX_SPARES {
            buf.clear();
            self.bufs.push(buf);
        }
    }

    fn give_list(&mut self, list: VecDeque<Chunk>) {
        if (1..=MAX_SPARE_CHUNKS).contains(&list.capacity()) && self.lists.len() < MAX_SPARES {
            debug_assert!(list.is_empty());
            self.lists.push(list);
        }
    }
}

/// Bytes queued for one socket.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    head: usize,
    /// Bytes queued and not yet written.
    len: usize,
    /// Bytes written since the queue was made.
    written: u64,
}

/// How a flush ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued was written.
    All,
    /// The socket would block.
    SocketFull,
    /// The rest waits for a database commit.
    Held,
}

impl WriteQueue {
    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Nothing waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes ever queued: the position right after the last queued byte.
    pub(crate) fn end(&self) -> u64 {
        self.written + self.len as u64
    }

    /// Lets `render` append bytes for this connection alone.
    pub(crate) fn render_with(&mut self, spares: &mut Spares, render: impl FnOnce(&mut Vec<u8>)) {
        if self.chunks.capacity() == 0 {
            self.chunks = spares.list();
        }
        if !matches!(self.chunks.back(), Some(Chunk::Owned(v)) if v.len() < COALESCE) {
            self.chunks.push_back(Chunk::Owned(spares.buf()));
        }
        if let Some(Chunk::Owned(buf)) = self.chunks.back_mut() {
            let before = buf.len();
            render(buf);
            self.len += buf.len() - before;
        }
    }

    /// Queues bytes shared with other connections.
    pub(crate) fn push_shared(&mut self, spares: &mut Spares, bytes: Arc<[u8]>) {
        if !bytes.is_empty() {
            if self.chunks.capacity() == 0 {
                self.chunks = spares.list();
            }
            self.len += bytes.len();
            self.chunks.push_back(Chunk::Shared(bytes));
        }
    }

    /// Writes until the queue is empty (`Ok(true)`) or the socket would block
    /// (`Ok(false)`).
    #[cfg(test)]
    pub(crate) fn write_to(&mut self, w: &mut impl Write) -> io::Result<bool> {
        Ok(self.write_up_to(w, None, &mut Spares::default())? == Flushed::All)
    }

    /// Writes what the queue holds before position `limit` (everything if
    /// `None`; see [`WriteQueue::end`]).
    pub(crate) fn write_up_to(
        &mut self,
        w: &mut impl Write,
        limit: Option<u64>,
        spares: &mut Spares,
    ) -> io::Result<Flushed> {
        while !self.is_empty() {
            let allowed = limit.map_or(self.len, |l| {
                usize::try_from(l.saturating_sub(self.written))
                    .map_or(self.len, |a| a.min(self.len))
            });
            if allowed == 0 {
                return Ok(Flushed::Held);
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let (mut n, mut total) = (0, 0);
            for (i, chunk) in self.chunks.iter().take(MAX_IOV).enumerate() {
                let bytes = chunk.bytes();
                let bytes = if i == 0 { &bytes[self.head..] } else { bytes };
                let bytes = &bytes[..bytes.len().min(allowed - total)];
                slices[i] = IoSlice::new(bytes);
                n += 1;
                total += bytes.len();
                if total == allowed {
                    break;
                }
            }
            match w.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.consume(written, spares),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::SocketFull),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed::All)
    }

    /// Forgets `n` written bytes, handing emptied buffers to `spares`.
    fn consume(&mut self, mut n: usize, spares: &mut Spares) {
        self.len -= n;
        self.written += n as u64;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.head;
            if n < left {
                self.head += n;
                return;
            }
            n -= left;
            self.head = 0;
            if let Some(Chunk::Owned(buf)) = self.chunks.pop_front() {
                spares.give_buf(buf);
            }
        }
        if self.chunks.is_empty() {
            // An idle connection keeps no buffers.
            spares.give_list(std::mem::take(&mut self.chunks));
        }
    }
}

/// Up to where a connection's queue waits for database commits: each gate
/// says "the bytes before position `end` need batch `seq` durable". Gates
/// only grow (positions and batch numbers), and at most two batches are
/// pending at once (one committing, one filling), so two gates suffice.
/// Batch 0 is durable from the start, so a gate's batch is never 0 (which
/// keeps an idle connection's gates 16 bytes smaller).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Gates {
    gates: [Option<(u64, NonZeroU64)>; 2],
    /// Everything before this position is free to write.
    released: u64,
}

impl Gates {
    /// The bytes before `end` need batch `seq`.
    pub(crate) fn hold(&mut self, end: u64, seq: u64) {
        let Some(seq) = NonZeroU64::new(seq) else {
            return;
        };
        match &mut self.gates {
            [_, Some(last)] | [Some(last), None] if last.1 == seq => last.0 = end,
            [slot @ None, None] | [Some(_), slot @ None] => *slot = Some((end, seq)),
            // More batches than expected: hold the whole queue for the newest.
            [_, Some(last)] => *last = (end, seq.max(last.1)),
        }
    }

    /// Whether some bytes wait for a commit.
    pub(crate) fn holding(&self) -> bool {
        self.gates[0].is_some()
    }

    /// Batches up to `durable` are committed: the position before which
    /// bytes may be written (`None`: all of them).
    pub(crate) fn limit(&mut self, durable: u64) -> Option<u64> {
        while let Some((end, seq)) = self.gates[0] {
            if seq.get() > durable {
                return Some(self.released);
            }
            self.released = end;
            self.gates = [self.gates[1], None];
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `step` bytes per call, then blocks after `budget`.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.step).min(self.budget);
            self.got.extend_from_slice(&buf[..n]);
            self.budget -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn keeps_order_across_owned_and_shared_chunks_and_partial_writes() {
        let mut q = WriteQueue::default();
        let mut spares = Spares::default();
        q.render_with(&mut spares, |b| b.extend_from_slice(b"one\n"));
        q.push_shared(&mut spares, Arc::from(&b"two\n"[..]));
        q.render_with(&mut spares, |b| b.extend_from_slice(b"three\n"));
        q.render_with(&mut spares, |b| b.extend_from_slice(b"four\n"));
        assert_eq!(q.len(), 19);
        let mut w = Trickle {
            got: Vec::new(),
            step: 3,
            budget: 7,
        };
        assert!(!q.write_to(&mut w).unwrap());
        assert_eq!(q.len(), 12);
        w.budget = 100;
        assert!(q.write_to(&mut w).unwrap());
        assert_eq!(w.got, b"one\ntwo\nthree\nfour\n");
        assert!(q.is_empty());
    }

    #[test]
    fn coalesces_small_lines_into_one_chunk() {
        let mut q = WriteQueue::default();
        let mut spares = Spares::default();
        for _ in 0..100 {
            q.render_with(&mut spares, |b| b.extend_from_slice(b"hello\n"));
        }
        assert_eq!(q.chunks.len(), 1);
    }

    #[test]
    fn gates_hold_bytes_until_their_batch_is_durable() {
        let mut q = WriteQueue::default();
        let mut spares = Spares::default();
        let mut gates = Gates::default();
        q.render_with(&mut spares, |b| b.extend_from_slice(b"free\n"));
        q.render_with(&mut spares, |b| b.extend_from_slice(b"needs 1\n"));
        gates.hold(q.end(), 1);
        q.push_shared(&mut spares, Arc::from(&b"needs 2\n"[..]));
        gates.hold(q.end(), 2);
        let mut w = Trickle {
            got: Vec::new(),
            step: 100,
            budget: 1000,
        };
        // Nothing durable: nothing at all may go (the free line was queued
        // before the first gate, which covers everything before its end).
        let limit = gates.limit(0);
        assert_eq!(limit, Some(0));
        assert_eq!(
            q.write_up_to(&mut w, limit, &mut spares).unwrap(),
            Flushed::Held
        );
        assert!(w.got.is_empty());
        // Batch 1 durable: up to its gate.
        let limit = gates.limit(1);
        assert_eq!(
            q.write_up_to(&mut w, limit, &mut spares).unwrap(),
            Flushed::Held
        );
        assert_eq!(w.got, b"free\nneeds 1\n");
        assert!(gates.holding());
        // Batch 2 durable: the rest.
        assert_eq!(gates.limit(2), None);
        assert_eq!(
            q.write_up_to(&mut w, None, &mut spares).unwrap(),
            Flushed::All
        );
        assert_eq!(w.got, b"free\nneeds 1\nneeds 2\n");
        assert!(!gates.holding());
    }

    #[test]
    fn written_buffers_are_reused_and_idle_queues_hold_none() {
        let mut spares = Spares::default();
        let mut q = WriteQueue::default();
        q.render_with(&mut spares, |b| b.extend_from_slice(b"one\n"));
        let mut w = Trickle {
            got: Vec::new(),
            step: 100,
            budget: 1000,
        };
        assert_eq!(
            q.write_up_to(&mut w, None, &mut spares).unwrap(),
            Flushed::All
        );
        assert_eq!(q.chunks.capacity(), 0, "an idle queue keeps no list");
        assert_eq!((spares.bufs.len(), spares.lists.len()), (1, 1));
        // The next line takes them back instead of allocating.
        q.render_with(&mut spares, |b| b.extend_from_slice(b"two\n"));
        assert_eq!((spares.bufs.len(), spares.lists.len()), (0, 0));
        assert_eq!(
            q.write_up_to(&mut w, None, &mut spares).unwrap(),
            Flushed::All
        );
        assert_eq!(w.got, b"one\ntwo\n");
        // Big buffers go back to the allocator; the spares stay bounded.
        spares.give_buf(Vec::with_capacity(MAX_SPARE_CAPACITY + 1));
        assert_eq!(spares.bufs.len(), 1);
        for _ in 0..MAX_SPARES + 10 {
            spares.give_buf(Vec::with_capacity(8));
        }
        assert_eq!(spares.bufs.len(), MAX_SPARES);
    }

    #[test]
    fn gates_stay_bounded() {
        let mut gates = Gates::default();
        for seq in 1..100 {
            gates.hold(seq * 10, seq);
            gates.hold(seq * 10 + 5, seq);
        }
        assert_eq!(gates.limit(50), Some(15));
        assert_eq!(gates.limit(99), None);
    }
}
