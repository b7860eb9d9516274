//! One client connection: its socket, read framing and write queue.

use std::net::SocketAddr;

use mio::net::TcpStream;

use super::queue::WriteQueue;
use crate::config::MAX_LINE;
use crate::core::ConnId;
use crate::dialect::Dialect;
use crate::framing::LineBuffer;

/// A client socket and what the reactor keeps for it.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) socket: TcpStream,
    /// The id the core knows it by (never reused).
    pub(crate) id: ConnId,
    pub(crate) addr: SocketAddr,
    pub(crate) dialect: Dialect,
    /// Splits incoming bytes into lines; holds only an unfinished line.
    pub(crate) framer: LineBuffer,
    /// Bytes waiting for the socket.
    pub(crate) queue: WriteQueue,
    /// No more input is handled; the connection closes once its queue is
    /// flushed (or its close deadline passes).
    pub(crate) closing: bool,
    /// Registered for writable events (only while the queue is not empty).
    pub(crate) wants_writable: bool,
    /// Listed for a flush at the end of this loop iteration.
    pub(crate) dirty: bool,
    /// Listed to be read once the database works again.
    pub(crate) read_paused: bool,
}

impl Connection {
    pub(crate) fn new(socket: TcpStream, id: ConnId, addr: SocketAddr, dialect: Dialect) -> Self {
        Connection {
            socket,
            id,
            addr,
            dialect,
            framer: LineBuffer::new(MAX_LINE),
            queue: WriteQueue::default(),
            closing: false,
            wants_writable: false,
            dirty: false,
            read_paused: false,
        }
    }
}
