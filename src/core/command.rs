//! What a client asks for, after a dialect has parsed it.
//!
//! Names arrive as the client typed them; the core checks them, so every
//! dialect gets the same rules and the same errors.

use super::model::Secret;

/// One parsed client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Create an account and log in.
    Register {
        /// The account name.
        name: String,
        /// Its password.
        password: Secret,
    },
    /// Log in (a registered name needs its password; a free name is a guest).
    Login {
        /// The name to use.
        name: String,
        /// The password, for a registered name.
        password: Option<Secret>,
    },
    /// Log out and keep the connection.
    Logout,
    /// Say goodbye; the connection closes after its queue is flushed.
    Quit {
        /// Shown to the others in `OFFLINE`.
        reason: Option<String>,
    },
    /// Join (creating if needed) a room and make it current.
    Join {
        /// The room.
        room: String,
    },
    /// Create a room that must not exist yet, then join it.
    Create {
        /// The room.
        room: String,
    },
    /// Leave a room.
    Leave {
        /// The room.
        room: String,
        /// Shown to the others in `LEAVE`.
        reason: Option<String>,
    },
    /// Make a joined room current.
    Switch {
        /// The room.
        room: String,
    },
    /// Say something in a room (`None`: the current room).
    Say {
        /// The room, or `None` for the current one.
        room: Option<String>,
        /// The text.
        text: String,
    },
    /// A direct message.
    Msg {
        /// The recipient's name.
        to: String,
        /// The text.
        text: String,
    },
    /// A message to everyone logged in.
    Broadcast {
        /// The text.
        text: String,
    },
    /// List who is online.
    Users,
    /// List the rooms.
    Rooms,
    /// Replay a room's recent messages.
    History {
        /// The room.
        room: String,
        /// How many (default: the join replay size; at most 500).
        count: Option<usize>,
    },
    /// Show a room's topic, or set it (`text`).
    Topic {
        /// The room.
        room: String,
        /// The new topic; `None` shows the current one.
        text: Option<String>,
    },
    /// Who am I?
    Whoami,
    /// The server's counters.
    Stats,
    /// A round trip.
    Ping {
        /// Echoed in `PONG`.
        token: Option<String>,
    },
    /// The command summary.
    Help,
}

impl Command {
    /// Whether the command may be used before logging in.
    pub fn allowed_before_login(&self) -> bool {
        matches!(
            self,
            Command::Register { .. }
                | Command::Login { .. }
                | Command::Quit { .. }
                | Command::Ping { .. }
                | Command::Help
        )
    }
}
