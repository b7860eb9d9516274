//! One IRC connection's side of the dialect: registration (`CAP`, `PASS`,
//! `NICK`, `USER`), the commands, and the numerics.
//!
//! The session is pure (no socket, no clock). It turns each parsed line into
//! core commands or answers it itself ([`Input::Raw`]), and turns the core's
//! events into IRC lines. It tracks what only the IRC side needs: the
//! negotiated capabilities, the nick, the joined channels (for `JOIN 0`).
//! Replies and numerics follow <https://modern.ircdocs.horse>.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use super::{IrcParseError, Message, parse, write_message, write_message_trailing};
use crate::config::{MAX_MONITOR, MAX_NAME, MAX_TOPIC, is_user_name};
use crate::core::{
    Command, Error, ErrorCode, Event, Extra, MAX_KEY, MAX_LIST, MaskList, ModeChange, MonitorOp,
    OkReply, RoomMode, Secret, Timestamp, UserId, UserMode, UserModeChange, WhoRow, user_mask,
    wildcard,
};
use crate::dialect::Input;
use crate::framing::FrameError;

/// The most bytes of tag data a client may send (IRCv3 message-tags).
const MAX_CLIENT_TAGS: usize = 4094;

/// The capabilities chatd offers (IRCv3).
const CAPS: &[&str] = &[
    "away-notify",
    "batch",
    "echo-message",
    "extended-monitor",
    "labeled-response",
    "message-tags",
    "multi-prefix",
    "server-time",
    "setname",
    "userhost-in-names",
];

/// Away messages, kick reasons: longer ones are cut.
const AWAYLEN: usize = 390;

/// The most targets of one `PRIVMSG`, `JOIN`, `PART`, `KICK`, `WHOIS`.
const MAX_TARGETS: usize = 8;

/// The most mode changes with a parameter in one `MODE` command.
const MAX_MODES: usize = 4;

/// The most mode changes of any kind in one `MODE` command.
const MAX_MODE_CHANGES: usize = 16;
/// The most user mode changes in one `MODE nick` command.
const MAX_USER_MODES: usize = 8;

/// What every IRC session of a server shares.
#[derive(Debug)]
pub struct Settings {
    /// The server's name (`My.Little.Server`).
    pub server: Arc<str>,
    /// The network's name for `NETWORK=` and `001`.
    pub network: Arc<str>,
    /// When the server started, for `003`.
    pub created: String,
    /// The message of the day, line by line (empty: `422`).
    pub motd: Vec<String>,
    /// How many channels one user may be in (`CHANLIMIT`).
    pub chanlimit: usize,
}

/// How many render profiles (capability combinations that change shared
/// bytes) IRC has: `server-time` × `message-tags`.
pub const PROFILES: usize = 4;

/// The capabilities a client turned on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Caps {
    server_time: bool,
    message_tags: bool,
    echo_message: bool,
    labeled_response: bool,
    batch: bool,
    away_notify: bool,
    extended_monitor: bool,
    setname: bool,
    multi_prefix: bool,
    userhost_in_names: bool,
}

/// An IRC connection's state.
#[derive(Debug)]
pub struct Session {
    settings: Arc<Settings>,
    ip: IpAddr,
    caps: Caps,
    /// `CAP LS`/`REQ` before registration holds it until `CAP END`.
    cap_negotiating: bool,
    /// The nick asked for (before registration) or held.
    nick: Option<String>,
    /// `USER`'s user name.
    ident: Option<String>,
    /// A login was handed to the core and has not been answered.
    login_sent: bool,
    /// The core accepted the login.
    me: Option<UserId>,
    /// Joined channels, lower-cased.
    rooms: BTreeSet<String>,
    /// Replayed history messages still to come.
    replay: usize,
    /// `LUSERS` after the welcome is followed by the MOTD.
    motd_due: bool,
    /// What only some commands need (`None` until one does).
    rare: Option<Box<Rare>>,
    /// Batches opened so far (their ids).
    batches: u64,
}

/// The part of a session that only some commands need, boxed so that an
/// idle connection keeps a small session (RSS per connection is a target).
#[derive(Debug, Default)]
struct Rare {
    /// `USER`'s real name, until the login succeeds.
    realname: Option<String>,
    /// `PASS`, until the login succeeds.
    pass: Option<Secret>,
    /// Reason of the last `PART`, for its echo.
    part_reason: Option<String>,
    /// Channel of the last `KICK` or `MODE`, for `441`.
    kick_room: Option<String>,
    /// Channel of the last `INVITE`, for `443`.
    invite_room: Option<String>,
    /// `LIST` filter (lower-cased channels), if any.
    list_filter: Option<Vec<String>>,
    /// The WHOX fields and token of the last `WHO`, if it asked for them.
    whox: Option<(String, String)>,
    /// The label of the line whose replies are being grouped.
    label: Option<String>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        let Rare {
            realname,
            pass,
            part_reason,
            kick_room,
            invite_room,
            list_filter,
            whox,
            label,
        } = self;
        realname.is_none()
            && pass.is_none()
            && part_reason.is_none()
            && kick_room.is_none()
            && invite_room.is_none()
            && list_filter.is_none()
            && whox.is_none()
            && label.is_none()
    }
}

impl Session {
    /// A session for a client at `ip`.
    pub fn new(settings: Arc<Settings>, ip: IpAddr) -> Self {
        Session {
            settings,
            ip,
            caps: Caps::default(),
            cap_negotiating: false,
            nick: None,
            ident: None,
            login_sent: false,
            me: None,
            rooms: BTreeSet::new(),
            replay: 0,
            motd_due: false,
            rare: None,
            batches: 0,
        }
    }

    /// The render profile: which shared bytes this client gets.
    pub fn profile(&self) -> usize {
        usize::from(self.caps.server_time) | usize::from(self.caps.message_tags) << 1
    }

    /// The name numerics address: the nick once registered, else `*`.
    fn client(&self) -> &str {
        match &self.nick {
            Some(nick) if self.registered() => nick,
            _ => "*",
        }
    }

    /// Logged in, or the login is on its way to the core: the lines read
    /// in the same batch as `USER` reach the core after it, so they are
    /// passed on too (if the login fails, the core refuses them with 451).
    fn registered(&self) -> bool {
        self.me.is_some() || self.login_sent
    }

    fn my_mask(&self) -> Arc<str> {
        let nick = self.nick.as_deref().unwrap_or("*");
        let ident = self.ident.as_deref().unwrap_or(nick);
        user_mask(nick, ident, self.ip)
    }

    /// The rarely needed part, made when first needed.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Takes one field of the rarely needed part, dropping the part once
    /// nothing is left in it.
    fn take_rare<T>(&mut self, field: impl FnOnce(&mut Rare) -> Option<T>) -> Option<T> {
        let rare = self.rare.as_deref_mut()?;
        let taken = field(rare);
        if rare.is_empty() {
            self.rare = None;
        }
        taken
    }

    /// Sets one field of the rarely needed part: `None` makes no box, and
    /// drops one that is left empty.
    fn set_rare<T>(&mut self, value: Option<T>, field: impl FnOnce(&mut Rare) -> &mut Option<T>) {
        if value.is_some() {
            *field(self.rare()) = value;
        } else {
            self.take_rare(|x| field(x).take());
        }
    }

    /// A room remembered for an error reply, or `*`.
    fn rare_room(&self, field: impl FnOnce(&Rare) -> Option<&String>) -> String {
        let room = self.rare.as_deref().and_then(field);
        room.map_or("*", String::as_str).to_string()
    }

    /// The replies to a labelled line, captured by the reactor: one line
    /// gets the label, several go in a `labeled-response` batch, none is
    /// acknowledged with `ACK`.
    pub fn finish_group(&mut self, captured: &[u8], out: &mut Vec<u8>) {
        let Some(label) = self.take_rare(|x| x.label.take()) else {
            out.extend_from_slice(captured);
            return;
        };
        let text = String::from_utf8_lossy(captured);
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        let server = self.settings.server.clone();
        match lines.as_slice() {
            [] => {
                let _ = write!(out_string(out), "@label={label} :{server} ACK\r\n");
            }
            [line] => push_tagged(out, &format!("label={label}"), line),
            // A message to oneself with echo-message: the echo is the reply,
            // the delivery is not.
            [echo, delivery] if echo == delivery && self.caps.echo_message => {
                push_tagged(out, &format!("label={label}"), echo);
                out.extend_from_slice(delivery.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            _ => {
                self.batches += 1;
                let id = self.batches;
                let open = format!(":{server} BATCH +{id} labeled-response");
                push_tagged(out, &format!("label={label}"), &open);
                for line in &lines {
                    push_tagged(out, &format!("batch={id}"), line);
                }
                out.extend_from_slice(format!(":{server} BATCH -{id}\r\n").as_bytes());
            }
        }
    }

    /// The line to send an idle client.
    pub fn ping(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_message(&mut out, &[], None, "PING", &[&self.settings.server]);
        out
    }

    // ---------------------------------------------------------------- input

    /// One framed line from the client.
    pub fn input(&mut self, frame: Result<&str, FrameError>, emit: &mut dyn FnMut(Input)) {
        let line = match frame {
            Ok(line) => line,
            Err(FrameError::LineTooLong) => return self.input_too_long(emit),
            Err(FrameError::BadUtf8) => {
                return self.notice(emit, "your line was not UTF-8 and was dropped");
            }
        };
        let msg = match parse(line) {
            Ok(msg) => msg,
            Err(IrcParseError::Empty) => return,
            Err(IrcParseError::InputTooLong(_)) => return self.input_too_long(emit),
            Err(IrcParseError::BadCommand(c)) => {
                let c = c.to_string();
                let label = line
                    .strip_prefix('@')
                    .and_then(|l| l.split(' ').next())
                    .and_then(|tags| tags.split(';').find_map(|t| t.strip_prefix("label=")));
                if let Some(label) = label.filter(|_| self.caps.labeled_response) {
                    self.rare().label = Some(label.chars().take(64).collect());
                    emit(Input::Group(true));
                    self.numeric(emit, "421", &[&c, "Unknown command"]);
                    emit(Input::Group(false));
                    return;
                }
                return self.numeric(emit, "421", &[&c, "Unknown command"]);
            }
            Err(e) => return self.notice(emit, &format!("bad line: {e}")),
        };
        if msg.tags().raw().len() > MAX_CLIENT_TAGS {
            return self.input_too_long(emit);
        }
        // labeled-response: everything this line causes for this client is
        // grouped, then labelled (or batched) by `finish_group`.
        let label = msg.tags().get("label").and_then(|t| t.raw_value());
        match label {
            Some(label) if self.caps.labeled_response && !label.is_empty() => {
                self.rare().label = Some(label.chars().take(64).collect());
                emit(Input::Group(true));
                self.dispatch(&msg, emit);
                emit(Input::Group(false));
            }
            _ => self.dispatch(&msg, emit),
        }
    }

    /// One parsed line.
    fn dispatch(&mut self, msg: &Message<'_>, emit: &mut dyn FnMut(Input)) {
        let msg = *msg;
        let command = msg.command_upper();
        let p = msg.params();
        let pre = matches!(
            &*command,
            "CAP" | "PASS" | "NICK" | "USER" | "PING" | "PONG" | "QUIT"
        );
        if !self.registered() && !pre {
            return match KNOWN.contains(&&*command) {
                true => self.numeric(emit, "451", &["You have not registered"]),
                false => self.numeric(emit, "421", &[&command, "Unknown command"]),
            };
        }
        let need = |n: usize| p.len() < n || p[..n].iter().any(|s| s.is_empty());
        match &*command {
            "CAP" => self.cap(&msg, emit),
            "PASS" if self.registered() => {
                self.numeric(emit, "462", &["You may not reregister"]);
            }
            "PASS" if p.is_empty() => self.need_more(emit, "PASS"),
            "PASS" => self.rare().pass = Some(Secret::new(p[0])),
            "NICK" if p.is_empty() || p[0].is_empty() => {
                self.numeric(emit, "431", &["No nickname given"]);
            }
            "NICK" => self.nick(p[0], emit),
            "USER" if self.registered() => {
                self.numeric(emit, "462", &["You may not reregister"]);
            }
            "USER" if p.len() < 4 || p[0].is_empty() || p[3].is_empty() => {
                self.need_more(emit, "USER");
            }
            "USER" => {
                let ident: String = p[0].chars().take(MAX_NAME).collect();
                let ident = ident.replace(['!', '@'], "");
                self.ident = Some(ident);
                self.rare().realname = Some(p[3].to_string());
                self.try_register(emit);
            }
            "PING" if p.is_empty() => self.need_more(emit, "PING"),
            "PING" => {
                let server = self.settings.server.clone();
                let mut out = Vec::new();
                write_message(&mut out, &[], Some(&server), "PONG", &[&server, p[0]]);
                emit(Input::Raw(out));
            }
            "PONG" => {}
            "QUIT" => emit(Input::Command(Command::Quit {
                reason: Some(match p.first() {
                    Some(r) if !r.is_empty() => format!("Quit: {r}"),
                    _ => "Client Quit".into(),
                }),
            })),
            "JOIN" if need(1) => self.need_more(emit, "JOIN"),
            "JOIN" if p[0] == "0" => {
                for room in std::mem::take(&mut self.rooms) {
                    self.rooms.insert(room.clone());
                    emit(Input::Command(Command::Leave { room, reason: None }));
                }
            }
            "JOIN" => {
                let keys: Vec<&str> = p.get(1).map_or_else(Vec::new, |k| k.split(',').collect());
                let rooms = p[0].split(',').enumerate().filter(|(_, r)| !r.is_empty());
                for (i, room) in rooms.take(MAX_TARGETS) {
                    if !room.starts_with('#') {
                        self.numeric(emit, "403", &[room, "No such channel"]);
                    } else if !self.rooms.contains(&room.to_ascii_lowercase()) {
                        let key = keys.get(i).filter(|k| !k.is_empty()).map(|k| k.to_string());
                        emit(Input::Command(Command::Join {
                            room: room.into(),
                            key,
                        }));
                    }
                }
            }
            "INVITE" if p.is_empty() => emit(Input::Command(Command::Invites)),
            "INVITE" if need(2) => self.need_more(emit, "INVITE"),
            "INVITE" => {
                self.rare().invite_room = Some(p[1].to_string());
                emit(Input::Command(Command::Invite {
                    name: p[0].into(),
                    room: p[1].into(),
                }));
            }
            "PART" if need(1) => self.need_more(emit, "PART"),
            "PART" => {
                let reason = p.get(1).filter(|r| !r.is_empty()).map(|r| r.to_string());
                self.set_rare(reason.clone(), |x| &mut x.part_reason);
                for room in p[0].split(',').filter(|r| !r.is_empty()).take(MAX_TARGETS) {
                    emit(Input::Command(Command::Leave {
                        room: room.into(),
                        reason: reason.clone(),
                    }));
                }
            }
            "PRIVMSG" | "NOTICE" => self.privmsg(&msg, command == "NOTICE", emit),
            "TAGMSG" if self.caps.message_tags => self.tagmsg(&msg, emit),
            "TOPIC" if need(1) => self.need_more(emit, "TOPIC"),
            "TOPIC" => emit(Input::Command(Command::Topic {
                room: p[0].into(),
                text: p.get(1).map(|t| t.chars().take(MAX_TOPIC).collect()),
            })),
            "NAMES" if p.is_empty() || p[0].is_empty() => {
                self.numeric(emit, "366", &["*", "End of /NAMES list"]);
            }
            "NAMES" => {
                // NAMES takes one channel (TARGMAX NAMES:1).
                let room = p[0].split(',').next().unwrap_or("");
                emit(Input::Command(Command::Names { room: room.into() }));
            }
            "LIST" => {
                let filter = p.first().filter(|f| f.starts_with('#')).map(|f| {
                    f.split(',')
                        .map(|r| r.to_ascii_lowercase())
                        .take(MAX_TARGETS)
                        .collect()
                });
                self.set_rare(filter, |x| &mut x.list_filter);
                self.numeric(emit, "321", &["Channel", "Users  Name"]);
                emit(Input::Command(Command::Rooms));
            }
            "WHO" => {
                // WHOX: `WHO mask %fields[,token]`.
                let whox = p.get(1).and_then(|f| f.strip_prefix('%')).map(|f| {
                    let (fields, token) = f.split_once(',').unwrap_or((f, ""));
                    let token: String = token.chars().take(3).collect();
                    (fields.chars().take(16).collect(), token)
                });
                self.set_rare(whox, |x| &mut x.whox);
                emit(Input::Command(Command::Who {
                    mask: p
                        .first()
                        .filter(|m| !m.is_empty())
                        .unwrap_or(&"*")
                        .to_string(),
                }));
            }
            "WHOIS" if need(1) => self.numeric(emit, "431", &["No nickname given"]),
            "WHOIS" => {
                let names = p[p.len() - 1];
                for name in names.split(',').filter(|n| !n.is_empty()).take(MAX_TARGETS) {
                    emit(Input::Command(Command::Whois { name: name.into() }));
                }
            }
            "MODE" if need(1) => self.need_more(emit, "MODE"),
            "MODE" => self.mode(&msg, emit),
            "KICK" if need(2) => self.need_more(emit, "KICK"),
            "KICK" => {
                // One channel and several users, or as many channels as users.
                let reason = p
                    .get(2)
                    .map(|r| r.chars().take(AWAYLEN).collect::<String>());
                let rooms: Vec<&str> = p[0].split(',').take(MAX_TARGETS).collect();
                let names = p[1].split(',').filter(|n| !n.is_empty());
                for (i, name) in names.take(MAX_TARGETS).enumerate() {
                    let room = match rooms.len() {
                        1 => rooms[0],
                        _ => rooms.get(i).copied().unwrap_or(""),
                    };
                    self.rare().kick_room = Some(room.to_string());
                    emit(Input::Command(Command::Kick {
                        room: room.into(),
                        name: name.into(),
                        reason: reason.clone(),
                    }));
                }
            }
            "AWAY" => emit(Input::Command(Command::Away {
                text: p
                    .first()
                    .filter(|t| !t.is_empty())
                    .map(|t| t.chars().take(AWAYLEN).collect()),
            })),
            "MOTD" => self.motd(emit),
            "LUSERS" => emit(Input::Command(Command::Lusers)),
            "VERSION" => {
                let version = format!("chatd-{}", crate::VERSION);
                let server = self.settings.server.clone();
                self.numeric(emit, "351", &[&version, &server, "a chat server"]);
                let mut out = Vec::new();
                self.isupport(&mut out);
                emit(Input::Raw(out));
            }
            "TIME" => emit(Input::Command(Command::Time)),
            "HELP" | "HELPOP" => self.help(p.first().copied().unwrap_or(""), emit),
            "INFO" => self.info(p.first().copied(), emit),
            "OPER" if need(2) => self.need_more(emit, "OPER"),
            "OPER" => emit(Input::Command(Command::Oper {
                name: p[0].into(),
                password: Secret::new(p[1]),
            })),
            "KILL" if need(1) => self.need_more(emit, "KILL"),
            "KILL" => emit(Input::Command(Command::Kill {
                name: p[0].into(),
                reason: p.get(1).map(|r| r.chars().take(AWAYLEN).collect()),
            })),
            "WALLOPS" if need(1) => self.need_more(emit, "WALLOPS"),
            "WALLOPS" => emit(Input::Command(Command::Wallops { text: p[0].into() })),
            "WHOWAS" if need(1) => self.need_more(emit, "WHOWAS"),
            "WHOWAS" => emit(Input::Command(Command::Whowas {
                name: p[0].into(),
                // Zero, negative or not a number: everything kept.
                count: p
                    .get(1)
                    .and_then(|c| c.parse::<i64>().ok())
                    .and_then(|c| usize::try_from(c).ok())
                    .filter(|c| *c > 0),
            })),
            "USERHOST" if need(1) => self.need_more(emit, "USERHOST"),
            "USERHOST" => emit(Input::Command(Command::Userhost {
                names: p.iter().map(|n| n.to_string()).collect(),
            })),
            "ISON" if need(1) => self.need_more(emit, "ISON"),
            "ISON" => emit(Input::Command(Command::Ison {
                names: p
                    .iter()
                    .flat_map(|n| n.split(' '))
                    .filter(|n| !n.is_empty())
                    .take(64)
                    .map(String::from)
                    .collect(),
            })),
            "MONITOR" if need(1) => self.need_more(emit, "MONITOR"),
            "MONITOR" => self.monitor(p, emit),
            "SETNAME" if p.is_empty() => self.need_more(emit, "SETNAME"),
            "SETNAME" => emit(Input::Command(Command::SetName {
                realname: p[0].into(),
            })),
            _ => self.numeric(emit, "421", &[&command, "Unknown command"]),
        }
    }

    /// `MONITOR + a,b`, `- a,b`, `C`, `L`, `S`.
    fn monitor(&mut self, p: &[&str], emit: &mut dyn FnMut(Input)) {
        let names = |p: &[&str]| -> Vec<String> {
            p.get(1)
                .map(|n| n.split(',').filter(|n| !n.is_empty()).map(String::from))
                .into_iter()
                .flatten()
                .collect()
        };
        let op = match &*p[0].to_ascii_uppercase() {
            "+" | "-" if names(p).is_empty() => return self.need_more(emit, "MONITOR"),
            "+" => MonitorOp::Add(names(p)),
            "-" => MonitorOp::Remove(names(p)),
            "C" => MonitorOp::Clear,
            "L" => MonitorOp::List,
            "S" => MonitorOp::Status,
            _ => {
                return self.numeric(emit, "400", &["MONITOR", "Unknown MONITOR subcommand"]);
            }
        };
        emit(Input::Command(Command::Monitor { op }));
    }

    fn input_too_long(&self, emit: &mut dyn FnMut(Input)) {
        self.numeric(emit, "417", &["Input line was too long"]);
    }

    fn need_more(&self, emit: &mut dyn FnMut(Input), command: &str) {
        self.numeric(emit, "461", &[command, "Not enough parameters"]);
    }

    fn cap(&mut self, msg: &Message<'_>, emit: &mut dyn FnMut(Input)) {
        let p = msg.params();
        let sub = p
            .first()
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        let client = self.client().to_string();
        let mut out = Vec::new();
        let server = self.settings.server.clone();
        match &*sub {
            "LS" => {
                if !self.registered() {
                    self.cap_negotiating = true;
                }
                let caps = CAPS.join(" ");
                write_message_trailing(
                    &mut out,
                    &[],
                    Some(&server),
                    "CAP",
                    &[&client, "LS", &caps],
                );
            }
            "LIST" => {
                let on: Vec<&str> = CAPS.iter().copied().filter(|c| self.has(c)).collect();
                let on = on.join(" ");
                write_message_trailing(
                    &mut out,
                    &[],
                    Some(&server),
                    "CAP",
                    &[&client, "LIST", &on],
                );
            }
            "REQ" => {
                if !self.registered() {
                    self.cap_negotiating = true;
                }
                let asked = p.get(1).copied().unwrap_or("");
                let known = asked
                    .split(' ')
                    .filter(|c| !c.is_empty())
                    .all(|c| CAPS.contains(&c.trim_start_matches('-')));
                let verdict = if known && !asked.trim().is_empty() {
                    for c in asked.split(' ').filter(|c| !c.is_empty()) {
                        let on = !c.starts_with('-');
                        self.set_cap(c.trim_start_matches('-'), on);
                    }
                    "ACK"
                } else {
                    "NAK"
                };
                write_message_trailing(
                    &mut out,
                    &[],
                    Some(&server),
                    "CAP",
                    &[&client, verdict, asked],
                );
            }
            "END" => {
                if !self.registered() {
                    self.cap_negotiating = false;
                    self.try_register(emit);
                }
                return;
            }
            _ => {
                let sub = p.first().copied().unwrap_or("");
                return self.numeric(emit, "410", &[sub, "Invalid CAP command"]);
            }
        }
        emit(Input::Raw(out));
    }

    fn has(&self, cap: &str) -> bool {
        match cap {
            "server-time" => self.caps.server_time,
            "message-tags" => self.caps.message_tags,
            "echo-message" => self.caps.echo_message,
            "labeled-response" => self.caps.labeled_response,
            "batch" => self.caps.batch,
            "away-notify" => self.caps.away_notify,
            "extended-monitor" => self.caps.extended_monitor,
            "setname" => self.caps.setname,
            "multi-prefix" => self.caps.multi_prefix,
            "userhost-in-names" => self.caps.userhost_in_names,
            _ => false,
        }
    }

    fn set_cap(&mut self, cap: &str, on: bool) {
        match cap {
            "server-time" => self.caps.server_time = on,
            "message-tags" => self.caps.message_tags = on,
            "echo-message" => self.caps.echo_message = on,
            "labeled-response" => self.caps.labeled_response = on,
            "batch" => self.caps.batch = on,
            "away-notify" => self.caps.away_notify = on,
            "extended-monitor" => self.caps.extended_monitor = on,
            "setname" => self.caps.setname = on,
            "multi-prefix" => self.caps.multi_prefix = on,
            "userhost-in-names" => self.caps.userhost_in_names = on,
            _ => {}
        }
    }

    fn nick(&mut self, nick: &str, emit: &mut dyn FnMut(Input)) {
        if !is_user_name(nick) {
            let client = self.client().to_string();
            return self.numeric_to(emit, &client, "432", &[nick, "Erroneous nickname"]);
        }
        if self.registered() {
            emit(Input::Command(Command::Nick { name: nick.into() }));
        } else {
            self.nick = Some(nick.into());
            self.try_register(emit);
        }
    }

    /// Logs in once `NICK` and `USER` are in and capability negotiation is
    /// over.
    fn try_register(&mut self, emit: &mut dyn FnMut(Input)) {
        if self.login_sent || self.cap_negotiating || self.registered() {
            return;
        }
        let rare = self.rare.as_deref();
        let realname = rare.and_then(|x| x.realname.as_ref());
        let (Some(nick), Some(ident), Some(realname)) = (&self.nick, &self.ident, realname) else {
            return;
        };
        emit(Input::Command(Command::Profile {
            ident: ident.clone(),
            realname: realname.clone(),
            irc: true,
        }));
        emit(Input::Command(Command::Login {
            name: nick.clone(),
            password: rare.and_then(|x| x.pass.clone()),
        }));
        self.login_sent = true;
    }

    fn privmsg(&mut self, msg: &Message<'_>, notice: bool, emit: &mut dyn FnMut(Input)) {
        let p = msg.params();
        let command = if notice { "NOTICE" } else { "PRIVMSG" };
        if p.is_empty() || p[0].is_empty() {
            if !notice {
                self.numeric(emit, "411", &[&format!("No recipient given ({command})")]);
            }
            return;
        }
        let text = p.get(1).copied().unwrap_or("");
        if text.is_empty() {
            if !notice {
                self.numeric(emit, "412", &["No text to send"]);
            }
            return;
        }
        let tags = client_tags(msg).filter(|_| self.caps.message_tags);
        let extra = (notice || tags.is_some()).then_some(Extra {
            notice,
            tag_only: false,
            tags,
            bot: false,
        });
        for target in p[0].split(',').filter(|t| !t.is_empty()).take(MAX_TARGETS) {
            emit(Input::Command(Command::Tell {
                target: target.into(),
                text: text.into(),
                extra: extra.clone(),
            }));
        }
    }

    /// `TAGMSG target`: client tags and no text, relayed to clients that
    /// enabled message tags.
    fn tagmsg(&mut self, msg: &Message<'_>, emit: &mut dyn FnMut(Input)) {
        let p = msg.params();
        if p.is_empty() || p[0].is_empty() {
            return self.numeric(emit, "411", &["No recipient given (TAGMSG)"]);
        }
        let extra = Extra {
            notice: false,
            tag_only: true,
            tags: client_tags(msg),
            bot: false,
        };
        for target in p[0].split(',').filter(|t| !t.is_empty()).take(MAX_TARGETS) {
            emit(Input::Command(Command::Tell {
                target: target.into(),
                text: String::new(),
                extra: Some(extra.clone()),
            }));
        }
    }

    fn mode(&mut self, msg: &Message<'_>, emit: &mut dyn FnMut(Input)) {
        let p = msg.params();
        let target = p[0];
        if !target.starts_with('#') {
            return self.user_mode(target, p.get(1).copied(), emit);
        }
        let Some(modes) = p.get(1) else {
            return emit(Input::Command(Command::Mode {
                room: target.into(),
                changes: Vec::new(),
            }));
        };
        self.rare().kick_room = Some(target.to_string());
        let mut args = p[2..].iter().map(|a| a.to_string());
        let (mut add, mut changes, mut with_param) = (true, Vec::new(), 0);
        for c in modes.chars() {
            let list = |c| match c {
                'b' => MaskList::Ban,
                'e' => MaskList::Except,
                _ => MaskList::Invite,
            };
            let mode = match c {
                '+' | '-' => {
                    add = c == '+';
                    continue;
                }
                'o' | 'v' => match args.next() {
                    Some(name) if c == 'o' => RoomMode::Op(name),
                    Some(name) => RoomMode::Voice(name),
                    None => continue,
                },
                't' => RoomMode::TopicLock,
                'n' => RoomMode::NoExternal,
                'i' => RoomMode::InviteOnly,
                'm' => RoomMode::Moderated,
                's' => RoomMode::Secret,
                'k' if add => match args.next() {
                    Some(key) => RoomMode::Key(key),
                    None => continue,
                },
                'k' => RoomMode::Key(args.next().unwrap_or_default()),
                'l' if add => match args.next() {
                    Some(limit) => RoomMode::Limit(limit),
                    None => continue,
                },
                'l' => RoomMode::Limit(String::new()),
                'b' | 'e' | 'I' => match args.next() {
                    Some(mask) => RoomMode::Mask(list(c), mask),
                    None => RoomMode::List(list(c)),
                },
                c => {
                    self.numeric(emit, "472", &[&c.to_string(), "is unknown mode char to me"]);
                    continue;
                }
            };
            let param = matches!(
                mode,
                RoomMode::Op(_) | RoomMode::Voice(_) | RoomMode::Mask(..)
            ) || add && matches!(mode, RoomMode::Key(_) | RoomMode::Limit(_));
            if param {
                with_param += 1;
            }
            if changes.len() < MAX_MODE_CHANGES && (!param || with_param <= MAX_MODES) {
                changes.push(ModeChange { add, mode });
            }
        }
        if !changes.is_empty() {
            emit(Input::Command(Command::Mode {
                room: target.into(),
                changes,
            }));
        }
    }

    /// `MODE nick [changes]`: one's own user modes, kept by the core.
    fn user_mode(&mut self, target: &str, modes: Option<&str>, emit: &mut dyn FnMut(Input)) {
        let me = self.client().to_string();
        if !target.eq_ignore_ascii_case(&me) {
            return self.numeric(emit, "502", &["Cant change mode for other users"]);
        }
        let (mut add, mut changes, mut unknown) = (true, Vec::new(), false);
        for c in modes.unwrap_or("").chars() {
            let mode = match c {
                '+' | '-' => {
                    add = c == '+';
                    continue;
                }
                'i' => UserMode::Invisible,
                'w' => UserMode::Wallops,
                'o' => UserMode::Oper,
                'B' => UserMode::Bot,
                _ => {
                    unknown = true;
                    continue;
                }
            };
            if changes.len() < MAX_USER_MODES {
                changes.push(UserModeChange { add, mode });
            }
        }
        if unknown {
            self.numeric(emit, "501", &["Unknown MODE flag"]);
        }
        if !changes.is_empty() || modes.is_none_or(str::is_empty) {
            emit(Input::Command(Command::UserMode { changes }));
        }
    }

    /// `INFO [server]`: a few lines about chatd.
    fn info(&self, target: Option<&str>, emit: &mut dyn FnMut(Input)) {
        let server = self.settings.server.clone();
        if let Some(t) = target.filter(|t| !t.is_empty())
            && !wildcard(&t.to_ascii_lowercase(), &server.to_ascii_lowercase())
        {
            return self.numeric(emit, "402", &[t, "No such server"]);
        }
        let mut out = Vec::new();
        let lines = [
            format!("chatd {}: a fast, lightweight chat server", crate::VERSION),
            "IRC and line-protocol clients share the same rooms.".into(),
            "One event loop drives a pure state machine; messages are kept in SQLite.".into(),
            format!("On-line since {}", self.settings.created),
        ];
        for line in &lines {
            self.write_numeric(&mut out, "371", &[line]);
        }
        self.write_numeric(&mut out, "374", &["End of INFO list"]);
        emit(Input::Raw(out));
    }

    /// `HELP [subject]`: 704, 705..., 706; 524 for an unknown subject.
    fn help(&self, subject: &str, emit: &mut dyn FnMut(Input)) {
        let Some(lines) = super::help::topic(subject) else {
            return self.numeric(emit, "524", &[subject, "No help available on this topic"]);
        };
        let shown = if subject.is_empty() { "index" } else { subject };
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let code = if i == 0 { "704" } else { "705" };
            self.write_numeric(&mut out, code, &[shown, line]);
        }
        self.write_numeric(&mut out, "706", &[shown, "End of /HELP"]);
        emit(Input::Raw(out));
    }

    fn motd(&self, emit: &mut dyn FnMut(Input)) {
        let mut out = Vec::new();
        self.write_motd(&mut out);
        emit(Input::Raw(out));
    }

    fn write_motd(&self, out: &mut Vec<u8>) {
        if self.settings.motd.is_empty() {
            return self.write_numeric(out, "422", &["MOTD File is missing"]);
        }
        let head = format!("- {} Message of the day - ", self.settings.server);
        self.write_numeric(out, "375", &[&head]);
        for line in &self.settings.motd {
            self.write_numeric(out, "372", &[&format!("- {line}")]);
        }
        self.write_numeric(out, "376", &["End of /MOTD command."]);
    }

    fn isupport(&self, out: &mut Vec<u8>) {
        let tokens = [
            format!("AWAYLEN={AWAYLEN}"),
            "BOT=B".into(),
            "CASEMAPPING=ascii".into(),
            format!("CHANLIMIT=#:{}", self.settings.chanlimit),
            "CHANMODES=beI,k,l,imnst".into(),
            format!("CHANNELLEN={}", MAX_NAME + 1),
            "CHANTYPES=#".into(),
            "EXCEPTS=e".into(),
            "INVEX=I".into(),
            format!("KEYLEN={MAX_KEY}"),
            format!("KICKLEN={AWAYLEN}"),
            format!("MAXLIST=beI:{MAX_LIST}"),
            format!("MODES={MAX_MODES}"),
            format!("MONITOR={MAX_MONITOR}"),
            format!("NETWORK={}", self.settings.network),
            format!("NICKLEN={MAX_NAME}"),
            "PREFIX=(ov)@+".into(),
            format!(
                "TARGMAX=JOIN:{0},PART:{0},PRIVMSG:{0},NOTICE:{0},TAGMSG:{0},KICK:{0},WHOIS:{0},NAMES:1",
                MAX_TARGETS
            ),
            format!("TOPICLEN={MAX_TOPIC}"),
            "WHOX".into(),
        ];
        for chunk in tokens.chunks(12) {
            let mut params: Vec<&str> = chunk.iter().map(String::as_str).collect();
            params.push("are supported by this server");
            self.write_numeric(out, "005", &params);
        }
    }

    fn notice(&self, emit: &mut dyn FnMut(Input), text: &str) {
        let mut out = Vec::new();
        self.write_notice(&mut out, text);
        emit(Input::Raw(out));
    }

    fn write_notice(&self, out: &mut Vec<u8>, text: &str) {
        let server = self.settings.server.clone();
        write_message_trailing(out, &[], Some(&server), "NOTICE", &[self.client(), text]);
    }

    fn numeric(&self, emit: &mut dyn FnMut(Input), code: &str, params: &[&str]) {
        let mut out = Vec::new();
        self.write_numeric(&mut out, code, params);
        emit(Input::Raw(out));
    }

    fn numeric_to(&self, emit: &mut dyn FnMut(Input), client: &str, code: &str, params: &[&str]) {
        let mut out = Vec::new();
        let mut all = vec![client];
        all.extend_from_slice(params);
        write_message_trailing(&mut out, &[], Some(&self.settings.server), code, &all);
        emit(Input::Raw(out));
    }

    /// `:server CODE client params... :last`.
    fn write_numeric(&self, out: &mut Vec<u8>, code: &str, params: &[&str]) {
        let mut all = vec![self.client()];
        all.extend_from_slice(params);
        write_message_trailing(out, &[], Some(&self.settings.server), code, &all);
    }

    /// `:server CODE client :a,b,c`, as many lines as the items need.
    /// A member's prefix in NAMES and WHO: the highest one, or all of them
    /// with `multi-prefix`.
    fn prefixes(&self, op: bool, voice: bool) -> &'static str {
        match (op, voice) {
            (true, true) if self.caps.multi_prefix => "@+",
            (true, _) => "@",
            (false, true) => "+",
            (false, false) => "",
        }
    }

    /// The flags of a WHO row: here or gone, server operator, channel
    /// prefixes, bot.
    fn who_flags(&self, row: &WhoRow) -> String {
        format!(
            "{}{}{}{}",
            if row.away { 'G' } else { 'H' },
            if row.oper { "*" } else { "" },
            self.prefixes(row.op, row.voice),
            if row.bot { "B" } else { "" },
        )
    }

    fn write_comma_list(&self, out: &mut Vec<u8>, code: &str, items: &[Arc<str>]) {
        let used = self.settings.server.len() + self.client().len() + 10;
        let room = 510usize.saturating_sub(used).max(64);
        let mut line = String::new();
        for item in items {
            if !line.is_empty() && line.len() + 1 + item.len() > room {
                self.write_numeric(out, code, &[&line]);
                line.clear();
            }
            if !line.is_empty() {
                line.push(',');
            }
            line.push_str(item);
        }
        if !line.is_empty() {
            self.write_numeric(out, code, &[&line]);
        }
    }

    /// Like [`Session::write_numeric`] without forcing `:` on the last one.
    fn write_numeric_plain(&self, out: &mut Vec<u8>, code: &str, params: &[&str]) {
        let mut all = vec![self.client()];
        all.extend_from_slice(params);
        write_message(out, &[], Some(&self.settings.server), code, &all);
    }

    // --------------------------------------------------------------- output

    /// Whether a fanned-out event goes to this client, noting what it says
    /// about this session (a nick change, a kick).
    pub fn wants(&mut self, event: &Event) -> bool {
        match event {
            Event::Msg { msg, .. } => Some(msg.sender) != self.me || self.caps.echo_message,
            Event::AwayChanged { monitor, .. } => {
                self.caps.away_notify && (!monitor || self.caps.extended_monitor)
            }
            Event::RealName { monitor, .. } => {
                self.caps.setname && (!monitor || self.caps.extended_monitor)
            }
            Event::Dm { from, to, .. } => {
                let me = self.nick.as_deref().unwrap_or("");
                !from.eq_ignore_ascii_case(me)
                    || to.eq_ignore_ascii_case(me)
                    || self.caps.echo_message
            }
            Event::Nick { old, new, .. } => {
                if self
                    .nick
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(old))
                {
                    self.nick = Some(new.to_string());
                }
                true
            }
            Event::Kick { room, name, .. } => {
                if self
                    .nick
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
                {
                    self.rooms.remove(&room.to_ascii_lowercase());
                }
                true
            }
            _ => true,
        }
    }

    /// The bytes of an event many clients share (same for every session of
    /// the same [`Session::profile`]).
    pub fn render_shared(&self, event: &Event, out: &mut Vec<u8>) {
        let server = &*self.settings.server;
        match event {
            Event::Msg { room, msg, extra } => {
                if extra.as_ref().is_some_and(|e| e.tag_only) && !self.caps.message_tags {
                    return;
                }
                self.tags(out, msg.at, msg.id.0, extra.as_deref());
                let command = privmsg_or_notice(extra.as_deref());
                if command == "TAGMSG" {
                    write_message(out, &[], Some(&msg.sender_mask), command, &[room]);
                } else {
                    let params = [&**room, &msg.text];
                    write_message_trailing(out, &[], Some(&msg.sender_mask), command, &params);
                }
            }
            Event::Dm {
                from,
                mask,
                to,
                id,
                at,
                text,
                extra,
            } => {
                if extra.as_ref().is_some_and(|e| e.tag_only) && !self.caps.message_tags {
                    return;
                }
                let start = out.len();
                self.tags(out, *at, id.0, extra.as_deref());
                let command = privmsg_or_notice(extra.as_deref());
                if command == "TAGMSG" {
                    write_message(out, &[], Some(mask), command, &[to]);
                } else {
                    write_message_trailing(out, &[], Some(mask), command, &[to, text]);
                }
                // To oneself with echo-message: the echo and the delivery.
                let me = self.nick.as_deref().unwrap_or("");
                if self.caps.echo_message
                    && to.eq_ignore_ascii_case(me)
                    && from.eq_ignore_ascii_case(me)
                {
                    out.extend_from_within(start..);
                }
            }
            Event::Broadcast {
                from, id, at, text, ..
            } => {
                self.tags(out, *at, id.0, None);
                let text = format!("[broadcast from {from}] {text}");
                write_message_trailing(out, &[], Some(server), "NOTICE", &["*", &text]);
            }
            Event::Join { room, mask, .. } => {
                write_message(out, &[], Some(mask), "JOIN", &[room]);
            }
            Event::Leave {
                room, mask, reason, ..
            } => match reason {
                Some(r) => write_message_trailing(out, &[], Some(mask), "PART", &[room, r]),
                None => write_message(out, &[], Some(mask), "PART", &[room]),
            },
            Event::Offline { mask, reason, .. } => {
                let reason = reason.as_deref().unwrap_or("Quit");
                write_message_trailing(out, &[], Some(mask), "QUIT", &[reason]);
            }
            Event::Topic {
                room, mask, topic, ..
            } => write_message_trailing(out, &[], Some(mask), "TOPIC", &[room, topic]),
            Event::Nick { mask, new, .. } => write_message(out, &[], Some(mask), "NICK", &[new]),
            Event::Kick {
                room,
                mask,
                name,
                reason,
                ..
            } => write_message_trailing(out, &[], Some(mask), "KICK", &[room, name, reason]),
            Event::Mode {
                room, mask, change, ..
            } => {
                let mut params = vec![&**room];
                params.extend(change.split(' '));
                write_message(out, &[], Some(mask), "MODE", &params);
            }
            Event::Invited {
                room, mask, name, ..
            } => write_message(out, &[], Some(mask), "INVITE", &[name, room]),
            Event::Wallops { mask, text, .. } => {
                write_message_trailing(out, &[], Some(mask), "WALLOPS", &[text]);
            }
            Event::AwayChanged {
                mask,
                text: Some(text),
                ..
            } => write_message_trailing(out, &[], Some(mask), "AWAY", &[text]),
            Event::AwayChanged {
                mask, text: None, ..
            } => write_message(out, &[], Some(mask), "AWAY", &[]),
            Event::RealName { mask, realname, .. } => {
                write_message_trailing(out, &[], Some(mask), "SETNAME", &[realname]);
            }
            Event::Bye { reason } => {
                let text = format!("Closing Link: {} ({reason})", self.ip);
                write_message_trailing(out, &[], None, "ERROR", &[&text]);
            }
            _ => {}
        }
    }

    /// `@time=...;msgid=...;+client ` as this client's capabilities allow.
    fn tags(&self, out: &mut Vec<u8>, at: Timestamp, id: u64, extra: Option<&Extra>) {
        let mut tags = String::new();
        if self.caps.server_time {
            let _ = write!(tags, "time={at}");
        }
        if self.caps.message_tags {
            let sep = if tags.is_empty() { "" } else { ";" };
            let _ = write!(tags, "{sep}msgid={id}");
            if extra.is_some_and(|e| e.bot) {
                tags.push_str(";bot");
            }
            if let Some(client) = extra.and_then(|e| e.tags.as_deref()) {
                let _ = write!(tags, ";{client}");
            }
        }
        if !tags.is_empty() {
            out.push(b'@');
            out.extend_from_slice(tags.as_bytes());
            out.push(b' ');
        }
    }

    /// The bytes of an event addressed to this client alone.
    pub fn render(&mut self, event: &Event, out: &mut Vec<u8>) {
        match event {
            Event::Hello { .. } | Event::Users { .. } | Event::Help { .. } => {}
            Event::Ok(ok) => self.render_ok(ok, out),
            Event::Members {
                room,
                names,
                ops,
                voices,
                masks,
                secret,
            } => {
                let head_len = self.settings.server.len() + self.client().len() + room.len() + 20;
                let symbol = if *secret { "@" } else { "=" };
                let mut line = String::new();
                for (i, ((name, op), voice)) in names.iter().zip(ops).zip(voices).enumerate() {
                    let name = match masks.get(i) {
                        Some(mask) if self.caps.userhost_in_names => mask,
                        _ => name,
                    };
                    if head_len + line.len() + name.len() + 3 > 510 {
                        self.write_numeric(out, "353", &[symbol, room, &line]);
                        line.clear();
                    }
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(self.prefixes(*op, *voice));
                    line.push_str(name);
                }
                if !line.is_empty() {
                    self.write_numeric(out, "353", &[symbol, room, &line]);
                }
                self.write_numeric(out, "366", &[room, "End of /NAMES list"]);
            }
            Event::Room {
                name,
                members,
                topic,
                ..
            } => {
                // An IRC channel exists while someone is in it.
                let listed = *members > 0
                    && self
                        .rare
                        .as_ref()
                        .and_then(|x| x.list_filter.as_ref())
                        .is_none_or(|f| f.contains(&name.to_ascii_lowercase()));
                if listed {
                    self.write_numeric(out, "322", &[name, &members.to_string(), topic]);
                }
            }
            Event::TopicIs {
                room,
                topic,
                by,
                at,
                ..
            } => {
                if topic.is_empty() {
                    self.write_numeric(out, "331", &[room, "No topic is set"]);
                } else {
                    self.write_numeric(out, "332", &[room, topic]);
                    let secs = (at.as_millis() / 1000).to_string();
                    self.write_numeric_plain(out, "333", &[room, by, &secs]);
                }
            }
            Event::History { count, .. } => self.replay = *count,
            Event::Msg { .. } if self.replay > 0 => {
                self.replay -= 1;
                if self.caps.server_time {
                    self.render_shared(event, out);
                }
            }
            Event::You { name, rooms, .. } => {
                let text = format!("you are {name}, in {}", rooms.join(" "));
                self.write_notice(out, &text);
            }
            Event::Pong { token } => {
                let server = self.settings.server.clone();
                let token = token.as_deref().unwrap_or(&server);
                write_message(out, &[], Some(&server), "PONG", &[&server, token]);
            }
            Event::Stats { counters } => {
                for (name, value) in counters {
                    self.write_notice(out, &format!("{name} {value}"));
                }
            }
            Event::Bye { .. } => self.render_shared(event, out),
            Event::Error(e) => self.render_error(e, out),
            Event::RoomModes {
                room,
                modes,
                created,
            } => {
                let mut params = vec![&**room];
                params.extend(modes.split(' '));
                self.write_numeric_plain(out, "324", &params);
                // 329 only when the creation time is known (not for a room
                // made at start-up before any clock reading, like the lobby).
                if created.as_millis() > 0 {
                    let secs = (created.as_millis() / 1000).to_string();
                    self.write_numeric_plain(out, "329", &[room, &secs]);
                }
            }
            Event::Whois(info) => {
                let name = &*info.name;
                self.write_numeric(
                    out,
                    "311",
                    &[name, &info.ident, &info.host, "*", &info.realname],
                );
                if !info.rooms.is_empty() {
                    let rooms: Vec<String> = info
                        .rooms
                        .iter()
                        .map(|(r, op)| format!("{}{r}", if *op { "@" } else { "" }))
                        .collect();
                    self.write_numeric(out, "319", &[name, &rooms.join(" ")]);
                }
                let server = self.settings.server.clone();
                self.write_numeric(out, "312", &[name, &server, "chatd"]);
                if info.oper {
                    self.write_numeric(out, "313", &[name, "is an IRC operator"]);
                }
                if let Some(away) = &info.away {
                    self.write_numeric(out, "301", &[name, away]);
                }
                if info.registered {
                    self.write_numeric(out, "330", &[name, name, "is logged in as"]);
                }
                if info.bot {
                    self.write_numeric(out, "335", &[name, "is a bot"]);
                }
                self.write_numeric(out, "318", &[name, "End of /WHOIS list"]);
            }
            Event::Who { mask, rows } if self.rare.as_ref().is_some_and(|x| x.whox.is_some()) => {
                if let Some((fields, token)) = self.take_rare(|x| x.whox.take()) {
                    self.render_whox(&fields, &token, rows, out);
                }
                self.write_numeric(out, "315", &[mask, "End of WHO list"]);
            }
            Event::Who { mask, rows } => {
                let server = self.settings.server.clone();
                for row in rows {
                    let flags = self.who_flags(row);
                    let room = row.room.as_deref().unwrap_or("*");
                    let real = format!("0 {}", row.realname);
                    self.write_numeric(
                        out,
                        "352",
                        &[
                            room, &row.ident, &row.host, &server, &row.name, &flags, &real,
                        ],
                    );
                }
                self.write_numeric(out, "315", &[mask, "End of WHO list"]);
            }
            Event::Ison { names } => {
                let names: Vec<&str> = names.iter().map(|n| &**n).collect();
                self.write_numeric(out, "303", &[&names.join(" ")]);
            }
            Event::Userhost { rows } => {
                let rows: Vec<String> = rows
                    .iter()
                    .map(|r| {
                        let away = if r.away.is_some() { '-' } else { '+' };
                        format!("{}={away}{}@{}", r.name, r.ident, r.host)
                    })
                    .collect();
                self.write_numeric(out, "302", &[&rows.join(" ")]);
            }
            Event::AwayIs { name, text } => self.write_numeric(out, "301", &[name, text]),
            Event::Invites { rooms } => {
                for room in rooms {
                    self.write_numeric_plain(out, "336", &[room]);
                }
                self.write_numeric(out, "337", &["End of /INVITE list"]);
            }
            Event::MaskList {
                room,
                list,
                entries,
            } => {
                let (item, end, text) = match list {
                    MaskList::Ban => ("367", "368", "End of channel ban list"),
                    MaskList::Except => ("348", "349", "End of channel exception list"),
                    MaskList::Invite => ("346", "347", "End of channel invite list"),
                };
                for e in entries {
                    let secs = (e.at.as_millis() / 1000).to_string();
                    self.write_numeric_plain(out, item, &[room, &e.mask, &e.by, &secs]);
                }
                self.write_numeric(out, end, &[room, text]);
            }
            Event::Lusers {
                users,
                invisible,
                opers,
                unknown,
                rooms,
                max_users,
            } => {
                let visible = users.saturating_sub(*invisible);
                let text =
                    format!("There are {visible} users and {invisible} invisible on 1 servers");
                self.write_numeric(out, "251", &[&text]);
                self.write_numeric(out, "252", &[&opers.to_string(), "operator(s) online"]);
                if *unknown > 0 {
                    self.write_numeric(
                        out,
                        "253",
                        &[&unknown.to_string(), "unknown connection(s)"],
                    );
                }
                self.write_numeric(out, "254", &[&rooms.to_string(), "channels formed"]);
                let text = format!("I have {users} clients and 0 servers");
                self.write_numeric(out, "255", &[&text]);
                // The counts are in the text only: the optional `<u> <m>`
                // parameters are left out, as the maximum counts since the
                // server started, which a client cannot compare with
                // anything it sees.
                let text = format!("Current local users {users}, max {max_users}");
                self.write_numeric(out, "265", &[&text]);
                let text = format!("Current global users {users}, max {max_users}");
                self.write_numeric(out, "266", &[&text]);
                if std::mem::take(&mut self.motd_due) {
                    self.write_motd(out);
                }
            }
            Event::Time { now } => {
                let server = self.settings.server.clone();
                self.write_numeric(out, "391", &[&server, &now.to_string()]);
            }
            Event::UserMode { change, .. } => {
                let me = self.client().to_string();
                write_message_trailing(out, &[], Some(&me), "MODE", &[&me, change]);
            }
            Event::UserModes { modes } => self.write_numeric_plain(out, "221", &[modes]),
            Event::Whowas { name, rows } => {
                let server = self.settings.server.clone();
                for row in rows {
                    let who = &*row.name;
                    self.write_numeric(
                        out,
                        "314",
                        &[who, &row.ident, &row.host, "*", &row.realname],
                    );
                    self.write_numeric(out, "312", &[who, &server, &row.at.to_string()]);
                }
                self.write_numeric(out, "369", &[name, "End of WHOWAS"]);
            }
            Event::MonOnline { masks } => self.write_comma_list(out, "730", masks),
            Event::MonOffline { names } => self.write_comma_list(out, "731", names),
            Event::MonList { names } => {
                self.write_comma_list(out, "732", names);
                self.write_numeric(out, "733", &["End of MONITOR list"]);
            }
            shared => {
                if self.wants(shared) {
                    self.render_shared(shared, out);
                }
            }
        }
    }

    /// WHOX replies (354): the asked fields in the spec's order
    /// `tcuihsnfdlaor`, whatever order they were asked in.
    fn render_whox(&self, fields: &str, token: &str, rows: &[WhoRow], out: &mut Vec<u8>) {
        let server = self.settings.server.clone();
        for row in rows {
            let mut params: Vec<String> = Vec::new();
            for f in "tcuihsnfdlaor".chars().filter(|c| fields.contains(*c)) {
                params.push(match f {
                    't' => token.to_string(),
                    'c' => row.room.as_deref().unwrap_or("*").to_string(),
                    'u' => row.ident.to_string(),
                    'i' | 'h' => row.host.to_string(),
                    's' => server.to_string(),
                    'n' => row.name.to_string(),
                    'f' => self.who_flags(row),
                    'd' | 'l' => "0".into(),
                    'a' if row.registered => row.name.to_string(),
                    'a' => "0".into(),
                    'o' => "n/a".into(),
                    _ => row.realname.to_string(),
                });
            }
            let params: Vec<&str> = params.iter().map(String::as_str).collect();
            if fields.contains('r') {
                self.write_numeric(out, "354", &params);
            } else {
                self.write_numeric_plain(out, "354", &params);
            }
        }
    }

    fn render_ok(&mut self, ok: &OkReply, out: &mut Vec<u8>) {
        match ok {
            OkReply::Login { name, id } | OkReply::Register { name, id } => {
                self.me = Some(*id);
                self.login_sent = false;
                // Kept for a retry until now (a nick in use, a wrong password).
                self.set_rare(None, |x| &mut x.pass);
                self.set_rare(None, |x| &mut x.realname);
                self.nick = Some(name.to_string());
                self.motd_due = true;
                self.welcome(out);
            }
            OkReply::Join { room } => {
                self.rooms.insert(room.to_ascii_lowercase());
                write_message(out, &[], Some(&self.my_mask()), "JOIN", &[room]);
            }
            OkReply::Leave { room } => {
                self.rooms.remove(&room.to_ascii_lowercase());
                let mask = self.my_mask();
                match self.rare.as_ref().and_then(|x| x.part_reason.as_ref()) {
                    Some(r) => write_message_trailing(out, &[], Some(&mask), "PART", &[room, r]),
                    None => write_message(out, &[], Some(&mask), "PART", &[room]),
                }
            }
            OkReply::Rooms { .. } => {
                self.take_rare(|x| x.list_filter.take());
                self.write_numeric(out, "323", &["End of /LIST"]);
            }
            OkReply::Away { away: true } => {
                self.write_numeric(out, "306", &["You have been marked as being away"]);
            }
            OkReply::Away { away: false } => {
                self.write_numeric(out, "305", &["You are no longer marked as being away"]);
            }
            OkReply::Invite { name, room } => self.write_numeric_plain(out, "341", &[name, room]),
            OkReply::Oper => self.write_numeric(out, "381", &["You are now an IRC operator"]),
            OkReply::Logout
            | OkReply::Create { .. }
            | OkReply::Switch { .. }
            | OkReply::Users { .. }
            | OkReply::Help
            | OkReply::Stats => {}
        }
    }

    fn welcome(&self, out: &mut Vec<u8>) {
        let s = &self.settings;
        let nick = self.client();
        let version = format!("chatd-{}", crate::VERSION);
        let text = format!("Welcome to the {} Network, {}", s.network, self.my_mask());
        self.write_numeric(out, "001", &[&text]);
        let text = format!("Your host is {}, running version {version}", s.server);
        self.write_numeric(out, "002", &[&text]);
        let text = format!("This server was created {}", s.created);
        self.write_numeric(out, "003", &[&text]);
        let _ = nick;
        self.write_numeric_plain(
            out,
            "004",
            &[&s.server, &version, "Biow", "beIiklmnostv", "beIklov"],
        );
        self.isupport(out);
    }

    fn render_error(&mut self, e: &Error, out: &mut Vec<u8>) {
        let arg = e.arg.as_deref().unwrap_or("*");
        let command = e.command.unwrap_or("");
        let room_arg = arg.starts_with('#');
        use ErrorCode as C;
        match (command, e.code) {
            ("notice", _) => {}
            ("tagmsg", _) if !self.caps.message_tags => {}
            ("login", code) => {
                self.login_sent = false;
                let nick = self.nick.clone().unwrap_or_else(|| "*".into());
                match code {
                    C::BadName => self.write_numeric(out, "432", &[&nick, "Erroneous nickname"]),
                    C::NameTaken => {
                        self.write_numeric(out, "433", &[&nick, "Nickname is already in use"]);
                    }
                    C::AuthFailed => self.write_numeric(out, "464", &["Password incorrect"]),
                    _ => self.write_notice(out, &e.text),
                }
            }
            ("oper", C::AuthFailed) => self.write_numeric(out, "464", &["Password incorrect"]),
            ("oper", C::RateLimited) => self.write_numeric(out, "464", &[&e.text]),
            ("oper", C::NotAvailable) => {
                self.write_numeric(out, "491", &["No O-lines for your host"]);
            }
            (_, C::NoPrivileges) => self.write_numeric(
                out,
                "481",
                &["Permission Denied- You're not an IRC operator"],
            ),
            ("whowas", _) => {
                self.write_numeric(out, "406", &[arg, "There was no such nickname"]);
                self.write_numeric(out, "369", &[arg, "End of WHOWAS"]);
            }
            ("monitor", C::WatchListFull) => {
                let limit = MAX_MONITOR.to_string();
                self.write_numeric(out, "734", &[&limit, arg, "Monitor list is full."]);
            }
            ("monitor", C::BadName) => {
                self.write_numeric(out, "432", &[arg, "Erroneous nickname"]);
            }
            ("setname", _) => {
                let server = self.settings.server.clone();
                let params = ["SETNAME", "INVALID_REALNAME", "Realname is not valid"];
                write_message_trailing(out, &[], Some(&server), "FAIL", &params);
            }
            ("nick", C::BadName) => self.write_numeric(out, "432", &[arg, "Erroneous nickname"]),
            ("nick", C::CannotRename) => {
                self.write_numeric(out, "447", &["Cannot change nickname"]);
            }
            ("nick", C::NameTaken) => {
                self.write_numeric(out, "433", &[arg, "Nickname is already in use"]);
            }
            ("whois", C::NoSuchUser | C::BadName) => {
                self.write_numeric(out, "401", &[arg, "No such nick/channel"]);
                self.write_numeric(out, "318", &[arg, "End of /WHOIS list"]);
            }
            ("names", C::NoSuchRoom | C::BadName) => {
                self.write_numeric(out, "366", &[arg, "End of /NAMES list"]);
            }
            ("join" | "create", C::TooManyRooms) => {
                self.write_numeric(out, "405", &[arg, "You have joined too many channels"]);
            }
            ("join", C::Banned) => {
                self.write_numeric(out, "474", &[arg, "Cannot join channel (+b)"]);
            }
            ("join", C::InviteOnly) => {
                self.write_numeric(out, "473", &[arg, "Cannot join channel (+i)"]);
            }
            ("join", C::BadKey) => {
                self.write_numeric(out, "475", &[arg, "Cannot join channel (+k)"]);
            }
            ("join", C::RoomFull) => {
                self.write_numeric(out, "471", &[arg, "Cannot join channel (+l)"]);
            }
            ("tell", C::NotInRoom | C::Moderated | C::Banned) => {
                self.write_numeric(out, "404", &[arg, "Cannot send to channel"]);
            }
            ("invite", C::AlreadyInRoom) => {
                let room = self.rare_room(|x| x.invite_room.as_ref());
                self.write_numeric(out, "443", &[arg, &room, "is already on channel"]);
            }
            (_, C::BadModeParam(letter)) => {
                let text = e.text.clone();
                self.write_numeric(out, "696", &[arg, &letter.to_string(), "*", &text]);
            }
            (_, C::ListFull(letter)) => {
                let letter = letter.to_string();
                self.write_numeric(out, "478", &[arg, &letter, "Channel list is full"]);
            }
            ("tell" | "kick" | "mode" | "invite" | "kill", C::NoSuchUser | C::BadName)
                if !room_arg =>
            {
                self.write_numeric(out, "401", &[arg, "No such nick/channel"]);
            }
            (_, C::NoSuchRoom | C::BadName) if room_arg => {
                self.write_numeric(out, "403", &[arg, "No such channel"]);
            }
            ("kick" | "mode", C::NotInRoom) if !room_arg => {
                let room = self.rare_room(|x| x.kick_room.as_ref());
                self.write_numeric(out, "441", &[arg, &room, "They aren't on that channel"]);
            }
            (_, C::NotInRoom) => {
                self.write_numeric(out, "442", &[arg, "You're not on that channel"]);
            }
            (_, C::NotOperator) => {
                self.write_numeric(out, "482", &[arg, "You're not channel operator"]);
            }
            (_, C::NotLoggedIn) => self.write_numeric(out, "451", &["You have not registered"]),
            _ => self.write_notice(out, &e.text),
        }
    }
}

/// Commands that exist but need registration (`451` rather than `421`).
const KNOWN: &[&str] = &[
    "HELP", "HELPOP", "TAGMSG", "JOIN", "PART", "PRIVMSG", "NOTICE", "TOPIC", "NAMES", "LIST",
    "WHO", "WHOIS", "MODE", "KICK", "AWAY", "MOTD", "LUSERS", "VERSION", "TIME", "USERHOST",
    "ISON", "INVITE", "INFO", "OPER", "KILL", "WALLOPS", "WHOWAS", "MONITOR", "SETNAME",
];

/// Appends `line` with `tag` added to its tags, and `\r\n`.
fn push_tagged(out: &mut Vec<u8>, tag: &str, line: &str) {
    match line.strip_prefix('@') {
        Some(rest) => out.extend_from_slice(format!("@{tag};{rest}\r\n").as_bytes()),
        None => out.extend_from_slice(format!("@{tag} {line}\r\n").as_bytes()),
    }
}

/// A `fmt::Write` view of a byte buffer.
fn out_string(out: &mut Vec<u8>) -> impl std::fmt::Write + '_ {
    struct W<'a>(&'a mut Vec<u8>);
    impl std::fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    W(out)
}

fn privmsg_or_notice(extra: Option<&Extra>) -> &'static str {
    match extra {
        Some(e) if e.tag_only => "TAGMSG",
        Some(e) if e.notice => "NOTICE",
        _ => "PRIVMSG",
    }
}

/// The client-only tags (`+key[=value]`) of a message, as sent.
fn client_tags(msg: &Message<'_>) -> Option<Arc<str>> {
    let client: Vec<&str> = msg
        .tags()
        .raw()
        .split(';')
        .filter(|t| t.starts_with('+'))
        .collect();
    (!client.is_empty()).then(|| Arc::from(client.join(";")))
}

#[cfg(test)]
mod tests;
