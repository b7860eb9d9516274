//! One client connection: its socket, read framing and write queue.

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;

use super::queue::{Gates, WriteQueue};
use super::rate::Bucket;
use crate::core::ConnId;
use crate::dialect::Session;
use crate::framing::LineBuffer;

/// A client socket and what the reactor keeps for it.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) socket: TcpStream,
    /// The id the core knows it by (never reused).
    pub(crate) id: ConnId,
    pub(crate) addr: SocketAddr,
    /// What the connection's dialect remembers (IRC registration, caps).
    pub(crate) session: Session,
    /// When input last arrived (for the keepalive `PING`).
    pub(crate) last_input: Instant,
    /// A keepalive `PING` went out and nothing has arrived since.
    pub(crate) ping_sent: bool,
    /// Splits incoming bytes into lines; holds only an unfinished line.
    pub(crate) framer: LineBuffer,
    /// Bytes waiting for the socket.
    pub(crate) queue: WriteQueue,
    /// Which of those bytes wait for a database commit.
    pub(crate) gates: Gates,
    /// Listed in the server's `held` (some bytes wait for a commit).
    pub(crate) held_listed: bool,
    /// No more input is handled; the connection closes once its queue is
    /// flushed (or its close deadline passes).
    pub(crate) closing: bool,
    /// Registered for writable events (only while the queue is not empty).
    pub(crate) wants_writable: bool,
    /// Listed for a flush at the end of this loop iteration.
    pub(crate) dirty: bool,
    /// Listed to be read once the database catches up.
    pub(crate) read_paused: bool,
    /// Bytes held while the dialect groups one command's replies.
    pub(crate) group: Option<Vec<u8>>,
    /// Flood control (`None`: `--rate off`).
    pub(crate) bucket: Option<Bucket>,
    /// Input read but not handled yet because the bucket ran dry (at most
    /// one read's worth); handled before the socket is read again.
    pub(crate) held: Option<Box<[u8]>>,
    /// Not read until its resume timer fires.
    pub(crate) lagged: bool,
    /// Why it is being closed, for the log and the stats.
    pub(crate) close_reason: &'static str,
    /// An echo connection: bytes go straight back, the core never sees it.
    pub(crate) echo: bool,
}

impl Connection {
    pub(crate) fn new(
        socket: TcpStream,
        id: ConnId,
        addr: SocketAddr,
        session: Session,
        bucket: Option<Bucket>,
        now: Instant,
    ) -> Self {
        Connection {
            socket,
            id,
            addr,
            framer: LineBuffer::new(session.max_line()).lossy(matches!(session, Session::Irc(_))),
            session,
            last_input: now,
            ping_sent: false,
            queue: WriteQueue::default(),
            gates: Gates::default(),
            held_listed: false,
            closing: false,
            wants_writable: false,
            dirty: false,
            read_paused: false,
            bucket,
            group: None,
            held: None,
            lagged: false,
            close_reason: "closed",
            echo: false,
        }
    }
}
