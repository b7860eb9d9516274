//! What a client asks for, after a dialect has parsed it.
//!
//! Names arrive as the client typed them; the core checks them, so every
//! dialect gets the same rules and the same errors.

use super::event::Extra;
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
        /// The room's key, if it has one (IRC `+k`).
        key: Option<String>,
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
    /// Describes the client before it logs in (IRC `USER`): the names WHO
    /// and WHOIS show, and whether it wants IRC's conventions at login (no
    /// user list, no lobby, LUSERS) and on join (the topic).
    Profile {
        /// The user name (ident).
        ident: String,
        /// The real name.
        realname: String,
        /// IRC conventions.
        irc: bool,
    },
    /// A message to a room (`#name`) or a user, with what IRC adds.
    Tell {
        /// A room or a user name.
        target: String,
        /// The text.
        text: String,
        /// What some dialects add (notice, client tags).
        extra: Option<Extra>,
    },
    /// Change one's name (guests only; everyone sharing a room is told).
    Nick {
        /// The new name.
        name: String,
    },
    /// Put someone out of a room (operators only).
    Kick {
        /// The room.
        room: String,
        /// Who.
        name: String,
        /// Why.
        reason: Option<String>,
    },
    /// Query (no changes) or change a room's modes.
    Mode {
        /// The room.
        room: String,
        /// The changes, in order.
        changes: Vec<ModeChange>,
    },
    /// Who is in a room, with operators marked.
    Names {
        /// The room.
        room: String,
    },
    /// Users matching a mask (a room, a name, `*` wildcards).
    Who {
        /// The mask.
        mask: String,
    },
    /// All about one online user.
    Whois {
        /// The name.
        name: String,
    },
    /// Which of these names are online.
    Ison {
        /// The names.
        names: Vec<String>,
    },
    /// Masks and away state of these users.
    Userhost {
        /// The names.
        names: Vec<String>,
    },
    /// Set (`Some`) or clear the away message.
    Away {
        /// The message.
        text: Option<String>,
    },
    /// Server-wide counts.
    Lusers,
    /// The server's clock.
    Time,
    /// Invite someone into a room (needed to enter an invite-only one).
    Invite {
        /// Who.
        name: String,
        /// The room.
        room: String,
    },
    /// The rooms one is invited to and has not entered yet.
    Invites,
    /// Become a server operator (IRC `OPER`).
    Oper {
        /// The operator login's name (`--oper NAME:...`).
        name: String,
        /// Its password.
        password: Secret,
    },
    /// Disconnect a user (server operators only).
    Kill {
        /// Who.
        name: String,
        /// Why.
        reason: Option<String>,
    },
    /// A message to every user with user mode `+w` (server operators only).
    Wallops {
        /// The text.
        text: String,
    },
    /// Query (no changes) or change one's own user modes.
    UserMode {
        /// The changes, in order.
        changes: Vec<UserModeChange>,
    },
    /// Who recently went by a name (IRC `WHOWAS`), newest first.
    Whowas {
        /// The name.
        name: String,
        /// At most this many entries (`None`: all that are kept).
        count: Option<usize>,
    },
    /// Change one's watch list of names, or ask about it (IRC `MONITOR`).
    Monitor {
        /// What to do.
        op: MonitorOp,
    },
    /// Change one's real name (IRC `SETNAME`).
    SetName {
        /// The new real name.
        realname: String,
    },
}

/// One user mode change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserModeChange {
    /// `+` (true) or `-`.
    pub add: bool,
    /// Which mode.
    pub mode: UserMode,
}

/// The user modes the core knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMode {
    /// `i`: hidden from WHO masks of those who share no room with the user.
    Invisible,
    /// `w`: receives `WALLOPS`.
    Wallops,
    /// `o`: server operator; only `OPER` grants it, `-o` drops it.
    Oper,
    /// `B`: marked as a bot (IRCv3 bot mode), shown in WHO and WHOIS.
    Bot,
}

impl UserMode {
    /// The IRC mode letter.
    pub fn letter(self) -> char {
        match self {
            UserMode::Invisible => 'i',
            UserMode::Wallops => 'w',
            UserMode::Oper => 'o',
            UserMode::Bot => 'B',
        }
    }
}

/// What a `MONITOR` command does with the watch list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorOp {
    /// `+`: watch these names (all or none, if the list would overflow);
    /// answers with who of them is online and who is not.
    Add(Vec<String>),
    /// `-`: stop watching these names.
    Remove(Vec<String>),
    /// `C`: stop watching anyone.
    Clear,
    /// `L`: the names watched.
    List,
    /// `S`: who of the names watched is online and who is not.
    Status,
}

/// One room mode change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChange {
    /// `+` (true) or `-`.
    pub add: bool,
    /// Which mode.
    pub mode: RoomMode,
}

/// The longest room key (IRC `+k`, RFC 2812's 23).
pub const MAX_KEY: usize = 23;

/// The most entries of each mask list of a room (bans, ban exceptions,
/// invite exceptions), and the most pending invitations a room keeps.
pub const MAX_LIST: usize = 100;

/// The longest mask in a mask list.
pub const MAX_MASK: usize = 128;

/// The room modes the core knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomMode {
    /// `o NAME`: room operator.
    Op(String),
    /// `v NAME`: may speak in a moderated room.
    Voice(String),
    /// `t`: only operators set the topic.
    TopicLock,
    /// `n`: only members speak.
    NoExternal,
    /// `i`: only invited users (or ones matching an invite exception) join.
    InviteOnly,
    /// `m`: only operators and voiced members speak.
    Moderated,
    /// `s`: hidden from listings and lookups of non-members.
    Secret,
    /// `k KEY`: joining needs the key. Removing ignores the text.
    Key(String),
    /// `l N`: at most N members (the text as typed, checked by the core).
    /// Removing ignores the text.
    Limit(String),
    /// `b`/`e`/`I MASK`: adds or removes a `nick!user@host` mask (with `*`
    /// and `?` wildcards).
    Mask(MaskList, String),
    /// `b`/`e`/`I` without a mask: lists the entries (the sign is ignored).
    List(MaskList),
}

/// A room's lists of `nick!user@host` masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskList {
    /// `b`: who may not join nor speak.
    Ban,
    /// `e`: exceptions to the bans.
    Except,
    /// `I`: who may join an invite-only room uninvited.
    Invite,
}

impl MaskList {
    /// The IRC mode letter.
    pub fn letter(self) -> char {
        match self {
            MaskList::Ban => 'b',
            MaskList::Except => 'e',
            MaskList::Invite => 'I',
        }
    }

    /// A short name for the line protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            MaskList::Ban => "ban",
            MaskList::Except => "except",
            MaskList::Invite => "invex",
        }
    }
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
                | Command::Profile { .. }
                | Command::Lusers
                | Command::Time
        )
    }

    /// A short name for the command, carried by its errors.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Register { .. } => "register",
            Command::Login { .. } => "login",
            Command::Logout => "logout",
            Command::Quit { .. } => "quit",
            Command::Join { .. } => "join",
            Command::Create { .. } => "create",
            Command::Leave { .. } => "leave",
            Command::Switch { .. } => "switch",
            Command::Say { .. } => "say",
            Command::Msg { .. } => "msg",
            Command::Broadcast { .. } => "broadcast",
            Command::Users => "users",
            Command::Rooms => "rooms",
            Command::History { .. } => "history",
            Command::Topic { .. } => "topic",
            Command::Whoami => "whoami",
            Command::Stats => "stats",
            Command::Ping { .. } => "ping",
            Command::Help => "help",
            Command::Profile { .. } => "profile",
            Command::Tell {
                extra: Some(Extra { notice: true, .. }),
                ..
            } => "notice",
            Command::Tell {
                extra: Some(Extra { tag_only: true, .. }),
                ..
            } => "tagmsg",
            Command::Tell { .. } => "tell",
            Command::Nick { .. } => "nick",
            Command::Kick { .. } => "kick",
            Command::Mode { .. } => "mode",
            Command::Names { .. } => "names",
            Command::Who { .. } => "who",
            Command::Whois { .. } => "whois",
            Command::Ison { .. } => "ison",
            Command::Userhost { .. } => "userhost",
            Command::Away { .. } => "away",
            Command::Lusers => "lusers",
            Command::Time => "time",
            Command::Invite { .. } => "invite",
            Command::Invites => "invites",
            Command::Oper { .. } => "oper",
            Command::Kill { .. } => "kill",
            Command::Wallops { .. } => "wallops",
            Command::UserMode { .. } => "umode",
            Command::Whowas { .. } => "whowas",
            Command::Monitor { .. } => "monitor",
            Command::SetName { .. } => "setname",
        }
    }
}
