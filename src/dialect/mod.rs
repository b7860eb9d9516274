//! Dialects: how bytes on a connection become commands, and events bytes.
//!
//! Each connection speaks one dialect; all of them drive the same
//! [`crate::core::Chat`], so users of every dialect share rooms.

pub mod irc;
pub mod line;

use crate::core::{Command, Error, Event};
use crate::framing::FrameError;

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The plain line protocol ([`mod@line`]).
    Line,
}

impl Dialect {
    /// Every dialect, for rendering one event once per dialect.
    pub const ALL: [Dialect; 1] = [Dialect::Line];

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Line => "line protocol",
        }
    }

    /// Turns one framed line (or a framing error) into a command, or the error
    /// to answer with.
    pub fn parse(self, frame: Result<&str, FrameError>) -> Result<Command, Error> {
        match self {
            Dialect::Line => line::parse(frame.map_err(line::frame_error)?),
        }
    }

    /// Appends the bytes of `event` to `out`.
    pub fn render(self, event: &Event, out: &mut Vec<u8>) {
        match self {
            Dialect::Line => line::render(event, out),
        }
    }

    /// Position in [`Dialect::ALL`], for per-dialect caches.
    pub fn index(self) -> usize {
        match self {
            Dialect::Line => 0,
        }
    }
}
