//! Dialects: how bytes on a connection become commands, and events bytes.
//!
//! Each connection speaks one dialect; all of them drive the same
//! [`crate::core::Chat`], so users of every dialect share rooms. A
//! connection's [`Session`] holds what its dialect needs to remember (IRC's
//! registration and capabilities; the line protocol needs nothing).

pub mod irc;
pub mod line;

use std::net::IpAddr;
use std::sync::Arc;

use crate::core::{Command, Error, Event};
use crate::framing::FrameError;

/// The protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The plain line protocol ([`mod@line`]).
    Line,
    /// IRC ([`mod@irc`]).
    Irc,
}

impl Dialect {
    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Line => "line protocol",
            Dialect::Irc => "IRC",
        }
    }

    /// Turns one framed line (or a framing error) into a command, or the error
    /// to answer with (the line protocol, which keeps no state).
    pub fn parse(self, frame: Result<&str, FrameError>) -> Result<Command, Error> {
        line::parse(frame.map_err(line::frame_error)?)
    }

    /// Appends the line-protocol bytes of `event` to `out`.
    pub fn render(self, event: &Event, out: &mut Vec<u8>) {
        line::render(event, out)
    }
}

/// What one client line turns into, in order.
#[derive(Debug)]
pub enum Input {
    /// A command for the core.
    Command(Command),
    /// An event the dialect answers with itself (through the usual renderer).
    Event(Event),
    /// Bytes the dialect answers with itself.
    Raw(Vec<u8>),
    /// Start (`true`) or end a group: what the connection is sent in
    /// between is handed to [`Session::finish_group`] (IRC labeled-response).
    Group(bool),
}

/// How many render profiles there are: the line protocol's one and IRC's
/// capability combinations. A fan-out renders once per profile in use.
pub const PROFILES: usize = 1 + irc::PROFILES;

/// One connection's dialect state.
#[derive(Debug)]
pub enum Session {
    /// The line protocol.
    Line,
    /// IRC, with its registration and capabilities.
    Irc(Box<irc::Session>),
}

impl Session {
    /// A new connection's session.
    pub fn new(dialect: Dialect, irc: &Arc<irc::Settings>, ip: IpAddr) -> Self {
        match dialect {
            Dialect::Line => Session::Line,
            Dialect::Irc => Session::Irc(Box::new(irc::Session::new(irc.clone(), ip))),
        }
    }

    /// The longest line the framer should accept.
    pub fn max_line(&self) -> usize {
        match self {
            Session::Line => crate::config::MAX_LINE,
            Session::Irc(_) => irc::MAX_LINE,
        }
    }

    /// One framed line from the client, turned into inputs in order.
    pub fn input(&mut self, frame: Result<&str, FrameError>, emit: &mut dyn FnMut(Input)) {
        match self {
            Session::Line => emit(match Dialect::Line.parse(frame) {
                Ok(cmd) => Input::Command(cmd),
                Err(e) => Input::Event(Event::Error(e)),
            }),
            Session::Irc(s) => s.input(frame, emit),
        }
    }

    /// Appends the bytes of an event addressed to this connection alone.
    pub fn render(&mut self, event: &Event, out: &mut Vec<u8>) {
        match self {
            Session::Line => line::render(event, out),
            Session::Irc(s) => s.render(event, out),
        }
    }

    /// Which render profile this connection uses for shared events.
    pub fn profile(&self) -> usize {
        match self {
            Session::Line => 0,
            Session::Irc(s) => 1 + s.profile(),
        }
    }

    /// Whether this connection gets a fanned-out event (IRC leaves out a
    /// client's own messages unless it asked for `echo-message`).
    pub fn wants(&mut self, event: &Event) -> bool {
        match self {
            // A tag-only message (IRC `TAGMSG`: typing notices, reactions)
            // carries no text a line user could read.
            Session::Line => !matches!(
                event,
                Event::Msg { extra: Some(e), .. } | Event::Dm { extra: Some(e), .. } if e.tag_only
            ),
            Session::Irc(s) => s.wants(event),
        }
    }

    /// Appends the shared bytes of a fanned-out event, as every connection
    /// of this one's profile gets them.
    pub fn render_shared(&self, event: &Event, out: &mut Vec<u8>) {
        match self {
            Session::Line => line::render(event, out),
            Session::Irc(s) => s.render_shared(event, out),
        }
    }

    /// Wraps the bytes a group captured (see [`Input::Group`]).
    pub fn finish_group(&mut self, captured: &[u8], out: &mut Vec<u8>) {
        match self {
            Session::Line => out.extend_from_slice(captured),
            Session::Irc(s) => s.finish_group(captured, out),
        }
    }

    /// The line to send a connection that has been idle too long, if its
    /// dialect has one (IRC `PING`; the line protocol relies on TCP
    /// keepalive).
    pub fn keepalive(&self) -> Option<Vec<u8>> {
        match self {
            Session::Line => None,
            Session::Irc(s) => Some(s.ping()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::{Extra, Message, MsgId, RoomId, Timestamp, UserId};

    fn msg(extra: Option<Extra>) -> Event {
        Event::Msg {
            room: "#a".into(),
            msg: Arc::new(Message {
                id: MsgId(1),
                sender: UserId(1),
                sender_name: "bob".into(),
                sender_mask: "bob!bob@host".into(),
                room: RoomId(1),
                at: Timestamp(0),
                text: "".into(),
            }),
            extra: extra.map(Arc::new),
        }
    }

    #[test]
    fn line_users_get_no_tag_only_messages() {
        let tag_only = Extra {
            tag_only: true,
            ..Extra::default()
        };
        let mut line = Session::Line;
        assert!(!line.wants(&msg(Some(tag_only))));
        assert!(line.wants(&msg(None)));
    }
}
