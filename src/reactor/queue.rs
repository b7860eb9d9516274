//! A connection's write queue: bytes waiting for the socket, bounded by the
//! caller (the sendq limit).
//!
//! Lines for one recipient are rendered straight into an owned tail buffer;
//! a line for many recipients is rendered once and shared ([`Arc`]) by every
//! queue it goes to. Flushing hands the socket many chunks per `writev`.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// An owned tail buffer takes more lines until it holds this many bytes.
const COALESCE: usize = 16 * 1024;
/// Chunks handed to one `writev` (Linux allows 1024; 64 is plenty per call).
const MAX_IOV: usize = 64;

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

/// Bytes queued for one socket.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    head: usize,
    /// Bytes queued and not yet written.
    len: usize,
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

    /// Lets `render` append bytes for this connection alone.
    pub(crate) fn render_with(&mut self, render: impl FnOnce(&mut Vec<u8>)) {
        if !matches!(self.chunks.back(), Some(Chunk::Owned(v)) if v.len() < COALESCE) {
            self.chunks.push_back(Chunk::Owned(Vec::new()));
        }
        if let Some(Chunk::Owned(buf)) = self.chunks.back_mut() {
            let before = buf.len();
            render(buf);
            self.len += buf.len() - before;
        }
    }

    /// Queues bytes shared with other connections.
    pub(crate) fn push_shared(&mut self, bytes: Arc<[u8]>) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.chunks.push_back(Chunk::Shared(bytes));
        }
    }

    /// Writes until the queue is empty (`Ok(true)`) or the socket would block
    /// (`Ok(false)`).
    pub(crate) fn write_to(&mut self, w: &mut impl Write) -> io::Result<bool> {
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_IOV).enumerate() {
                let bytes = chunk.bytes();
                slices[i] = IoSlice::new(if i == 0 { &bytes[self.head..] } else { bytes });
                n += 1;
            }
            match w.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.consume(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Forgets `n` written bytes.
    fn consume(&mut self, mut n: usize) {
        self.len -= n;
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
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            // An idle connection keeps no buffers.
            self.chunks = VecDeque::new();
        }
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
        q.render_with(|b| b.extend_from_slice(b"one\n"));
        q.push_shared(Arc::from(&b"two\n"[..]));
        q.render_with(|b| b.extend_from_slice(b"three\n"));
        q.render_with(|b| b.extend_from_slice(b"four\n"));
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
        for _ in 0..100 {
            q.render_with(|b| b.extend_from_slice(b"hello\n"));
        }
        assert_eq!(q.chunks.len(), 1);
    }
}
