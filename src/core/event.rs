//! What the core asks the reactor to do: events addressed to connections.
//!
//! Events are semantic; each dialect renders them into its own bytes, once per
//! dialect however many recipients share one [`Action::Fanout`].

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use super::command::MaskList;
use super::model::{ConnId, MaskEntry, Message, MsgId, RoomId, Secret, Timestamp, UserId};
use super::record::Record;

/// One thing for the reactor to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Deliver an event to one connection.
    Send {
        /// The recipient.
        to: ConnId,
        /// What to tell it.
        event: Event,
    },
    /// Deliver the same event to many connections (rendered once, shared).
    Fanout {
        /// The recipients.
        to: Vec<ConnId>,
        /// What to tell them.
        event: Event,
    },
    /// Make a change durable. All records of one loop iteration are committed
    /// in one transaction before that iteration's bytes reach any socket.
    Store(Record),
    /// Hash or verify a password off the event loop; the answer comes back
    /// through [`crate::core::Chat::auth_done`].
    Auth {
        /// The connection waiting for it.
        conn: ConnId,
        /// What to do.
        request: AuthRequest,
    },
    /// Answer `conn` with the server's counters (the reactor adds its own to
    /// the core's [`crate::core::Counts`] and sends [`Event::Stats`]).
    Stats {
        /// Who asked.
        conn: ConnId,
    },
    /// Bytes a dialect answered with by itself (IRC `CAP`, `PONG`, numerics
    /// the core has no event for), kept in order with the core's events.
    Raw {
        /// The recipient.
        to: ConnId,
        /// The bytes, ready for the socket.
        bytes: Vec<u8>,
    },
    /// A dialect groups the replies to one command (IRC labeled-response):
    /// what is queued for `to` between `start: true` and `start: false` is
    /// held and handed to the connection's session to wrap.
    Group {
        /// The connection.
        to: ConnId,
        /// Start or end.
        start: bool,
    },
    /// Close the connection once its queue is flushed. The core has already
    /// forgotten it.
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// Slow password work the core hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// Hash a new password (argon2id, PHC string).
    Hash {
        /// The password.
        password: Secret,
    },
    /// Check a password against a stored hash. `None` hash or password: spend
    /// the same time and fail, so the answer's timing tells nothing.
    Verify {
        /// The stored PHC string.
        hash: Option<Arc<str>>,
        /// The password given.
        password: Option<Secret>,
    },
}

/// The result of an [`AuthRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The PHC string of a new hash.
    Hashed(Arc<str>),
    /// Whether the password matched.
    Verified(bool),
    /// The work itself failed (logged where it happened).
    Failed,
}

/// A successful command's confirmation (`OK ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OkReply {
    /// Registered and logged in.
    Register {
        /// The account name.
        name: Arc<str>,
        /// Its user id.
        id: UserId,
    },
    /// Logged in.
    Login {
        /// The name.
        name: Arc<str>,
        /// The user id.
        id: UserId,
    },
    /// Logged out.
    Logout,
    /// Joined a room.
    Join {
        /// The room.
        room: Arc<str>,
    },
    /// Created a room.
    Create {
        /// The room.
        room: Arc<str>,
        /// Its id.
        id: RoomId,
    },
    /// Left a room.
    Leave {
        /// The room.
        room: Arc<str>,
    },
    /// Switched the current room.
    Switch {
        /// The room.
        room: Arc<str>,
    },
    /// End of a `/users` listing.
    Users {
        /// Users online.
        count: usize,
    },
    /// End of a `/rooms` listing.
    Rooms {
        /// Rooms listed.
        count: usize,
    },
    /// End of `/help`.
    Help,
    /// End of `/stats`.
    Stats,
    /// Marked away (`true`) or back.
    Away {
        /// Whether the user is now away.
        away: bool,
    },
    /// Invited someone into a room.
    Invite {
        /// Who.
        name: Arc<str>,
        /// The room.
        room: Arc<str>,
    },
    /// Now a server operator.
    Oper,
}

/// What some dialects add to a message: IRC's `NOTICE` kind and client tags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extra {
    /// A notice: never answered automatically, never stored.
    pub notice: bool,
    /// Tags only, no text (IRC `TAGMSG`): only clients that enabled
    /// message tags get it; never stored.
    pub tag_only: bool,
    /// Client-only message tags (`+key=value;...`, escaped), relayed as sent.
    pub tags: Option<Arc<str>>,
    /// The sender is a bot (IRC's `bot` tag); set by the core, never by a client.
    pub bot: bool,
}

/// One online user, as WHOIS and USERHOST show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The name.
    pub name: Arc<str>,
    /// The user name the client gave.
    pub ident: Arc<str>,
    /// The address.
    pub host: Arc<str>,
    /// The real name the client gave.
    pub realname: Arc<str>,
    /// The away message, if away.
    pub away: Option<Arc<str>>,
    /// Logged in to a registered account.
    pub registered: bool,
    /// A server operator.
    pub oper: bool,
    /// Marked as a bot.
    pub bot: bool,
    /// Rooms, each with whether the user is an operator there.
    pub rooms: Vec<(Arc<str>, bool)>,
    /// When the user logged in.
    pub since: Timestamp,
}

/// One line of a WHO answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoRow {
    /// A room they share with the mask, if the mask was a room.
    pub room: Option<Arc<str>>,
    /// The name.
    pub name: Arc<str>,
    /// The user name the client gave.
    pub ident: Arc<str>,
    /// The address.
    pub host: Arc<str>,
    /// The real name the client gave.
    pub realname: Arc<str>,
    /// Away or not.
    pub away: bool,
    /// Operator in `room`.
    pub op: bool,
    /// Logged in to a registered account (the account is the name).
    pub registered: bool,
    /// Voiced in `room`.
    pub voice: bool,
    /// A server operator.
    pub oper: bool,
    /// Marked as a bot.
    pub bot: bool,
}

/// Someone who went by a name: one entry of a WHOWAS answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhowasRow {
    /// The name, as they spelled it.
    pub name: Arc<str>,
    /// The user name the client gave.
    pub ident: Arc<str>,
    /// The address.
    pub host: Arc<str>,
    /// The real name the client gave.
    pub realname: Arc<str>,
    /// When they left the name (quit or renamed).
    pub at: Timestamp,
}

/// Something the server tells a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The greeting on connect.
    Hello {
        /// The server's name.
        server: Arc<str>,
    },
    /// A command succeeded.
    Ok(OkReply),
    /// Who is in a room (the dialect splits long lists).
    Members {
        /// The room.
        room: Arc<str>,
        /// Member names.
        names: Vec<Arc<str>>,
        /// Whether each member (same order) is a room operator.
        ops: Vec<bool>,
        /// Whether each member (same order) is voiced.
        voices: Vec<bool>,
        /// Each member's `name!ident@host` (same order; IRC
        /// `userhost-in-names`).
        masks: Vec<Arc<str>>,
        /// The room is secret (IRC `+s`).
        secret: bool,
    },
    /// Who is online (the dialect splits long lists).
    Users {
        /// The names, separated by single spaces, in login order.
        names: Arc<str>,
    },
    /// One room of a `/rooms` listing.
    Room {
        /// Its name.
        name: Arc<str>,
        /// Its id.
        id: RoomId,
        /// How many are in it.
        members: usize,
        /// Its topic.
        topic: Arc<str>,
    },
    /// A room's topic was set.
    Topic {
        /// The room.
        room: Arc<str>,
        /// Who set it.
        name: Arc<str>,
        /// Their `name!ident@host`.
        mask: Arc<str>,
        /// The new topic.
        topic: Arc<str>,
    },
    /// Announces `count` replayed messages that follow.
    History {
        /// The room.
        room: Arc<str>,
        /// How many `Msg` events follow.
        count: usize,
    },
    /// A message in a room.
    Msg {
        /// The room's name.
        room: Arc<str>,
        /// The message.
        msg: Arc<Message>,
        /// Extras only some clients see (IRC `NOTICE`, client tags).
        extra: Option<Arc<Extra>>,
    },
    /// A direct message.
    Dm {
        /// The sender's name.
        from: Arc<str>,
        /// The sender's `name!ident@host`.
        mask: Arc<str>,
        /// Extras only some clients see (IRC `NOTICE`, client tags).
        extra: Option<Arc<Extra>>,
        /// The recipient's name.
        to: Arc<str>,
        /// Its id.
        id: MsgId,
        /// When it was sent.
        at: Timestamp,
        /// What it says.
        text: Arc<str>,
    },
    /// A message to everyone.
    Broadcast {
        /// The sender's name.
        from: Arc<str>,
        /// The sender's `name!ident@host`.
        mask: Arc<str>,
        /// Its id.
        id: MsgId,
        /// When it was sent.
        at: Timestamp,
        /// What it says.
        text: Arc<str>,
    },
    /// Someone joined a room the recipient is in.
    Join {
        /// The room.
        room: Arc<str>,
        /// Who.
        name: Arc<str>,
        /// Their `name!ident@host`.
        mask: Arc<str>,
    },
    /// Someone left a room the recipient is in.
    Leave {
        /// The room.
        room: Arc<str>,
        /// Who.
        name: Arc<str>,
        /// Their `name!ident@host`.
        mask: Arc<str>,
        /// Why, if they said.
        reason: Option<Arc<str>>,
    },
    /// Someone who shared a room with the recipient went offline.
    Offline {
        /// Who.
        name: Arc<str>,
        /// Their `name!ident@host`.
        mask: Arc<str>,
        /// Why.
        reason: Option<Arc<str>>,
    },
    /// The answer to `/whoami`.
    You {
        /// The name.
        name: Arc<str>,
        /// The user id.
        id: UserId,
        /// Where the connection comes from.
        ip: IpAddr,
        /// Joined rooms, in join order.
        rooms: Vec<Arc<str>>,
    },
    /// The answer to `/ping`.
    Pong {
        /// The client's token.
        token: Option<Arc<str>>,
    },
    /// One line of `/help`.
    Help {
        /// The text.
        line: &'static str,
    },
    /// Named counters, in order (the answer to `/stats`).
    Stats {
        /// Name and value of each counter.
        counters: Vec<(String, u64)>,
    },
    /// Someone the recipient can see (or the recipient) changed name.
    Nick {
        /// The old name.
        old: Arc<str>,
        /// The old `name!ident@host`.
        mask: Arc<str>,
        /// The new name.
        new: Arc<str>,
    },
    /// A room operator put someone out of a room.
    Kick {
        /// The room.
        room: Arc<str>,
        /// The operator.
        by: Arc<str>,
        /// The operator's `name!ident@host`.
        mask: Arc<str>,
        /// Who was put out.
        name: Arc<str>,
        /// Why.
        reason: Arc<str>,
    },
    /// A room's modes changed (`+o name`, `-t`).
    Mode {
        /// The room.
        room: Arc<str>,
        /// Who changed them.
        by: Arc<str>,
        /// Their `name!ident@host`.
        mask: Arc<str>,
        /// The change, IRC style: `+o bob`, `-t`.
        change: Arc<str>,
    },
    /// A room's current modes (the answer to a mode query).
    RoomModes {
        /// The room.
        room: Arc<str>,
        /// The modes, IRC style: `+nt`.
        modes: Arc<str>,
        /// When the room was created (or loaded at start).
        created: Timestamp,
    },
    /// A room's topic (the answer to a topic query).
    TopicIs {
        /// The room.
        room: Arc<str>,
        /// Its id.
        id: RoomId,
        /// How many are in it.
        members: usize,
        /// The topic (empty: none).
        topic: Arc<str>,
        /// Who set it.
        by: Arc<str>,
        /// When.
        at: Timestamp,
    },
    /// What is known of one online user (the answer to WHOIS).
    Whois(Box<UserInfo>),
    /// Users matching a WHO mask, then the end of the list.
    Who {
        /// The mask asked for.
        mask: Arc<str>,
        /// One row per match.
        rows: Vec<WhoRow>,
    },
    /// Which of the names asked for are online (IRC ISON).
    Ison {
        /// The names, as the users spell them.
        names: Vec<Arc<str>>,
    },
    /// Users' masks and away state (IRC USERHOST).
    Userhost {
        /// The users found.
        rows: Vec<UserInfo>,
    },
    /// The recipient of a direct message is away.
    AwayIs {
        /// Who.
        name: Arc<str>,
        /// Their away message.
        text: Arc<str>,
    },
    /// Server-wide counts (IRC LUSERS).
    Lusers {
        /// Users logged in.
        users: usize,
        /// Of those, how many are invisible (user mode `+i`).
        invisible: usize,
        /// Of those, how many are server operators.
        opers: usize,
        /// Connections not logged in.
        unknown: usize,
        /// Rooms.
        rooms: usize,
        /// The most users logged in at once since start.
        max_users: usize,
    },
    /// The server's clock (IRC TIME).
    Time {
        /// Now.
        now: Timestamp,
    },
    /// Someone invited the recipient into a room.
    Invited {
        /// The room.
        room: Arc<str>,
        /// Who invited.
        by: Arc<str>,
        /// Their `name!ident@host`.
        mask: Arc<str>,
        /// The recipient's name.
        name: Arc<str>,
    },
    /// The rooms the recipient is invited to.
    Invites {
        /// Their names.
        rooms: Vec<Arc<str>>,
    },
    /// One of a room's mask lists (the answer to `MODE #room +b`).
    MaskList {
        /// The room.
        room: Arc<str>,
        /// Which list.
        list: MaskList,
        /// Its entries, oldest first.
        entries: Vec<MaskEntry>,
    },
    /// The recipient's own user modes changed (`+o` after OPER, `-i`).
    UserMode {
        /// The recipient's name.
        name: Arc<str>,
        /// The changes, IRC style: `+i`, `-w+i`.
        change: Arc<str>,
    },
    /// The recipient's user modes (the answer to a query), IRC style: `+iw`.
    UserModes {
        /// The modes.
        modes: Arc<str>,
    },
    /// A server operator's message to users with `+w`.
    Wallops {
        /// The sender's name.
        from: Arc<str>,
        /// The sender's `name!ident@host`.
        mask: Arc<str>,
        /// What it says.
        text: Arc<str>,
    },
    /// Who went by a name, newest first (the answer to WHOWAS).
    Whowas {
        /// The name asked for.
        name: Arc<str>,
        /// One row per departure (never empty: none is an error).
        rows: Vec<WhowasRow>,
    },
    /// Someone set, changed or cleared their away message (IRC
    /// `away-notify`): told to those sharing a room, and to those watching
    /// the name (`monitor`).
    AwayChanged {
        /// Who.
        name: Arc<str>,
        /// Their `name!ident@host`.
        mask: Arc<str>,
        /// The away message; `None`: back.
        text: Option<Arc<str>>,
        /// The recipients share no room with them and only watch the name
        /// (IRC `extended-monitor`).
        monitor: bool,
    },
    /// Someone (or the recipient) changed their real name (IRC `setname`).
    RealName {
        /// Who.
        name: Arc<str>,
        /// Their `name!ident@host`.
        mask: Arc<str>,
        /// The new real name.
        realname: Arc<str>,
        /// The recipients share no room with them and only watch the name
        /// (IRC `extended-monitor`).
        monitor: bool,
    },
    /// Watched names that are online, as `name!ident@host` (IRC 730).
    MonOnline {
        /// Their masks.
        masks: Vec<Arc<str>>,
    },
    /// Watched names that are offline (IRC 731).
    MonOffline {
        /// The names.
        names: Vec<Arc<str>>,
    },
    /// The recipient's watch list, lower-cased (IRC 732 and 733).
    MonList {
        /// The names.
        names: Vec<Arc<str>>,
    },
    /// Goodbye; the connection closes next.
    Bye {
        /// Why.
        reason: Arc<str>,
    },
    /// A command failed and changed nothing.
    Error(Error),
}

/// A failed command: a code, an optional argument (the name or room it is
/// about) and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub code: ErrorCode,
    /// What it was about, if anything.
    pub arg: Option<Arc<str>>,
    /// A sentence for a person.
    pub text: Arc<str>,
    /// The command that failed ([`crate::core::Command::name`]), so a dialect
    /// can pick its own reply (IRC numerics differ by command).
    pub command: Option<&'static str>,
}

impl Error {
    /// An error with the code's standard text.
    pub fn new(code: ErrorCode) -> Self {
        Error {
            code,
            arg: None,
            text: code.default_text().into(),
            command: None,
        }
    }

    /// The same error about `arg`.
    pub fn about(mut self, arg: impl Into<Arc<str>>) -> Self {
        self.arg = Some(arg.into());
        self
    }

    /// The same error with another text.
    pub fn text(mut self, text: impl Into<Arc<str>>) -> Self {
        self.text = text.into();
        self
    }
}

impl From<Error> for Event {
    fn from(e: Error) -> Self {
        Event::Error(e)
    }
}

/// Every error code of the line protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No such command.
    UnknownCommand,
    /// Missing or malformed arguments.
    BadArgs,
    /// The command needs a login.
    NotLoggedIn,
    /// Already logged in.
    AlreadyLoggedIn,
    /// A user or room name that breaks the rules.
    BadName,
    /// The name is online already.
    NameTaken,
    /// The password breaks the rules.
    BadPassword,
    /// Wrong or missing password.
    AuthFailed,
    /// Nobody of that name is online.
    NoSuchUser,
    /// No such room.
    NoSuchRoom,
    /// The user is not in that room (or has no current room).
    NotInRoom,
    /// The room exists already.
    RoomExists,
    /// A line over the length limit.
    LineTooLong,
    /// A line that is not UTF-8.
    BadUtf8,
    /// Too many commands too fast.
    RateLimited,
    /// Too many connections.
    TooManyConnections,
    /// A room limit (server-wide or per user) was reached.
    TooManyRooms,
    /// The feature is not available on this server.
    NotAvailable,
    /// The recipient's stored messages are at their limit.
    MailboxFull,
    /// Only a room operator may do that.
    NotOperator,
    /// The name cannot be changed (a registered account's).
    CannotRename,
    /// Banned from the room (IRC `+b`).
    Banned,
    /// The room is invite-only and nobody invited the user (IRC `+i`).
    InviteOnly,
    /// The room's key is missing or wrong (IRC `+k`).
    BadKey,
    /// The room is at its member limit (IRC `+l`).
    RoomFull,
    /// Only operators and voiced members speak in the room (IRC `+m`).
    Moderated,
    /// The user is in the room already.
    AlreadyInRoom,
    /// The parameter of a mode change (its letter) breaks the rules.
    BadModeParam(char),
    /// A room's mask list (its letter) is full.
    ListFull(char),
    /// Only a server operator may do that.
    NoPrivileges,
    /// The MONITOR watch list would grow past its limit.
    WatchListFull,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownCommand => "unknown-command",
            ErrorCode::BadArgs => "bad-args",
            ErrorCode::NotLoggedIn => "not-logged-in",
            ErrorCode::AlreadyLoggedIn => "already-logged-in",
            ErrorCode::BadName => "bad-name",
            ErrorCode::NameTaken => "name-taken",
            ErrorCode::BadPassword => "bad-password",
            ErrorCode::AuthFailed => "auth-failed",
            ErrorCode::NoSuchUser => "no-such-user",
            ErrorCode::NoSuchRoom => "no-such-room",
            ErrorCode::NotInRoom => "not-in-room",
            ErrorCode::RoomExists => "room-exists",
            ErrorCode::LineTooLong => "line-too-long",
            ErrorCode::BadUtf8 => "bad-utf8",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::TooManyConnections => "too-many-connections",
            ErrorCode::TooManyRooms => "too-many-rooms",
            ErrorCode::NotAvailable => "not-available",
            ErrorCode::MailboxFull => "mailbox-full",
            ErrorCode::NotOperator => "not-operator",
            ErrorCode::CannotRename => "cannot-rename",
            ErrorCode::Banned => "banned",
            ErrorCode::InviteOnly => "invite-only",
            ErrorCode::BadKey => "bad-key",
            ErrorCode::RoomFull => "room-full",
            ErrorCode::Moderated => "moderated",
            ErrorCode::AlreadyInRoom => "already-in-room",
            ErrorCode::BadModeParam(_) => "bad-mode-param",
            ErrorCode::ListFull(_) => "list-full",
            ErrorCode::NoPrivileges => "no-privileges",
            ErrorCode::WatchListFull => "list-full",
        }
    }

    /// A sentence for a person.
    pub fn default_text(self) -> &'static str {
        match self {
            ErrorCode::UnknownCommand => "unknown command, type /help",
            ErrorCode::BadArgs => "wrong arguments, type /help",
            ErrorCode::NotLoggedIn => "log in first: /login NAME",
            ErrorCode::AlreadyLoggedIn => "already logged in",
            ErrorCode::BadName => {
                "a name is 1-32 of A-Z a-z 0-9 _ - starting with a letter; a room is # and 1-32 of them"
            }
            ErrorCode::NameTaken => "that name is online already",
            ErrorCode::BadPassword => "a password is 8-256 bytes",
            ErrorCode::AuthFailed => "wrong name or password",
            ErrorCode::NoSuchUser => "no such user online",
            ErrorCode::NoSuchRoom => "no such room",
            ErrorCode::NotInRoom => "you are not in that room",
            ErrorCode::RoomExists => "that room exists already",
            ErrorCode::LineTooLong => "line too long (at most 4096 bytes)",
            ErrorCode::BadUtf8 => "line is not valid UTF-8",
            ErrorCode::RateLimited => "too fast, slow down",
            ErrorCode::TooManyConnections => "too many connections",
            ErrorCode::TooManyRooms => "room limit reached",
            ErrorCode::NotAvailable => "not available on this server",
            ErrorCode::MailboxFull => "that user has too many unread messages",
            ErrorCode::NotOperator => "you are not a room operator",
            ErrorCode::CannotRename => "a registered account keeps its name",
            ErrorCode::Banned => "you are banned from that room",
            ErrorCode::InviteOnly => "that room is invite-only: ask a member to /invite you",
            ErrorCode::BadKey => "that room needs the right key: /join ROOM KEY",
            ErrorCode::RoomFull => "that room is full",
            ErrorCode::Moderated => "only operators and voiced members speak in that room",
            ErrorCode::AlreadyInRoom => "that user is in the room already",
            ErrorCode::BadModeParam(_) => "invalid mode parameter",
            ErrorCode::ListFull(_) => "that list of the room is full",
            ErrorCode::NoPrivileges => "you are not a server operator",
            ErrorCode::WatchListFull => "that watch list is full",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
