//! The state machine: who is connected, who is logged in, which rooms exist
//! and who is in them. Each input returns the actions it causes.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use super::command::Command;
use super::command::{ModeChange, MonitorOp, UserMode, UserModeChange};
use super::event::{
    Action, AuthOutcome, AuthRequest, Error, ErrorCode, Event, Extra, OkReply, UserInfo, WhoRow,
    WhowasRow,
};
use super::model::{
    Account, ConnId, Message, Modes, MsgId, Room, RoomId, Secret, StoredDirect, Timestamp, User,
    UserId, user_mask as mask,
};
use super::record::{Record, Snapshot};
use crate::config::{
    CoreConfig, MAX_HISTORY_REQUEST, MAX_MONITOR, MAX_REALNAME, MAX_TOPIC, MAX_TRACKED_ADDRESSES,
    PASSWORD_LEN, is_room_name, is_user_name,
};

mod accounts;
mod modes;
mod monitor;
mod online;
mod opers;
mod people;
mod rooms;
mod whowas;

use accounts::{Budget, Entry, Pending};
use monitor::Watches;
pub(crate) use people::wildcard;

/// Commands a connection may send while its password is being checked; they
/// run, in order, once the answer is in.
const MAX_QUEUED: usize = 64;

/// The lines of `/help`.
const HELP: &[&str] = &[
    "commands (a line without / is said in your current room):",
    "/register NAME PASSWORD    create an account (password: 8-256 bytes) and log in",
    "/login NAME [PASSWORD]     log in (a name nobody registered logs in as a guest)",
    "/logout                    log out and stay connected",
    "/quit [reason]             leave the server",
    "/join ROOM [KEY]           join a room (created if new) and make it current",
    "/create ROOM               create a new room and join it",
    "/leave ROOM [reason]       leave a room",
    "/switch ROOM               make a joined room current",
    "/say ROOM text             say something in a joined room",
    "/msg NAME text             send a direct message",
    "/broadcast text            send a message to everyone online",
    "/users                     who is online",
    "/rooms                     list the rooms",
    "/history ROOM [N]          the last N messages of a room (default 20, at most 500)",
    "/topic ROOM [text]         show or set a room's topic",
    "/invite NAME ROOM          invite someone into a room you are in",
    "/whoami                    your name, id, address and rooms",
    "/stats                     the server's counters",
    "/ping [token]              a round trip",
    "//text                     say text that starts with /",
];

/// One connection's state.
#[derive(Debug)]
struct Conn {
    ip: IpAddr,
    user: Option<UserId>,
    /// A password being hashed or checked for this connection.
    check: Option<Box<Check>>,
    /// What [`Command::Profile`] said: ident, real name, IRC conventions.
    profile: Option<(Arc<str>, Arc<str>)>,
    irc: bool,
}

/// A password being hashed or checked, and what waits for it. Boxed in
/// [`Conn`]: few connections ever have one, and every idle connection would
/// pay for the space.
#[derive(Debug)]
struct Check {
    pending: Pending,
    /// Commands that arrived meanwhile (at most [`MAX_QUEUED`]).
    queued: VecDeque<Command>,
    /// The peer stopped sending meanwhile: close (for this reason) once the
    /// held commands have run.
    ended: Option<Arc<str>>,
}

impl Check {
    fn new(pending: Pending) -> Box<Self> {
        Box::new(Check {
            pending,
            queued: VecDeque::new(),
            ended: None,
        })
    }
}

/// The chat: users, rooms and messages, driven by inputs with the current time.
///
/// ```
/// use chatd::config::CoreConfig;
/// use chatd::core::{Chat, Command, ConnId, Timestamp};
///
/// let mut chat = Chat::new(CoreConfig::default());
/// let now = Timestamp::from_millis(0);
/// chat.connect(ConnId(1), "127.0.0.1".parse().unwrap(), now);
/// let out = chat.handle(ConnId(1), Command::Login { name: "alice".into(), password: None }, now);
/// assert!(!out.is_empty());
/// ```
#[derive(Debug)]
pub struct Chat {
    config: CoreConfig,
    server_name: Arc<str>,
    conns: HashMap<ConnId, Conn>,
    users: BTreeMap<UserId, User>,
    /// The logged-in users' names, ready for `/users`.
    online: online::Online,
    /// Lower-cased name → user, for case-insensitive uniqueness.
    user_names: HashMap<String, UserId>,
    rooms: BTreeMap<RoomId, Room>,
    /// Lower-cased name → room.
    room_names: HashMap<String, RoomId>,
    /// Lower-cased name → registered account.
    accounts: HashMap<String, Account>,
    /// Failed-login allowances by address.
    failures: HashMap<IpAddr, Budget>,
    next_user: u64,
    next_room: u64,
    next_msg: u64,
    /// Chat messages accepted (room messages, direct messages, broadcasts).
    messages_in: u64,
    /// Deliveries of those messages to recipients.
    deliveries_out: u64,
    /// The most users logged in at once.
    max_users: usize,
    /// Users with `+i`, and server operators (for LUSERS).
    invisible_count: usize,
    oper_count: usize,
    /// Who recently went by which name.
    whowas: whowas::Whowas,
    /// Who watches which names (IRC `MONITOR`).
    watches: Watches,
}

/// What the core counts, for `/stats` and the stats log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Connections the core knows.
    pub connections: usize,
    /// Users logged in.
    pub users: usize,
    /// Rooms.
    pub rooms: usize,
    /// Registered accounts.
    pub accounts: usize,
    /// Chat messages accepted since start.
    pub messages_in: u64,
    /// Deliveries of chat messages since start.
    pub deliveries_out: u64,
}

impl Chat {
    /// A chat with no accounts, no users and only the lobby room (if configured).
    pub fn new(config: CoreConfig) -> Self {
        Chat::restore(config, Snapshot::default()).0
    }

    /// A chat rebuilt from what the store loaded. Also returns the actions of
    /// start-up (the lobby's record when it is new).
    pub fn restore(config: CoreConfig, snapshot: Snapshot) -> (Self, Vec<Action>) {
        let mut chat = Chat {
            server_name: config.server_name.as_str().into(),
            config,
            conns: HashMap::new(),
            users: BTreeMap::new(),
            online: online::Online::default(),
            user_names: HashMap::new(),
            rooms: BTreeMap::new(),
            room_names: HashMap::new(),
            accounts: HashMap::new(),
            failures: HashMap::new(),
            next_user: snapshot.next_user.max(1),
            next_room: snapshot.next_room.max(1),
            next_msg: snapshot.next_msg.max(1),
            messages_in: 0,
            deliveries_out: 0,
            max_users: 0,
            invisible_count: 0,
            oper_count: 0,
            whowas: whowas::Whowas::default(),
            watches: Watches::default(),
        };
        for room in snapshot.rooms {
            let skip = room.history.len().saturating_sub(chat.config.history_len);
            chat.next_room = chat.next_room.max(room.id.0 + 1);
            chat.room_names
                .insert(room.name.to_ascii_lowercase(), room.id);
            chat.rooms.insert(
                room.id,
                Room {
                    name: room.name.into(),
                    topic: room.topic.into(),
                    members: BTreeMap::new(),
                    ops: BTreeSet::new(),
                    topic_lock: false,
                    no_external: true,
                    topic_by: chat.server_name.clone(),
                    topic_at: room.created,
                    created: room.created,
                    history: room.history.into_iter().skip(skip).map(Arc::new).collect(),
                    modes: Modes::default(),
                },
            );
        }
        let mut keys = HashMap::new();
        for account in snapshot.accounts {
            let key = account.name.to_ascii_lowercase();
            chat.next_user = chat.next_user.max(account.id.0 + 1);
            keys.insert(account.id, key.clone());
            let rooms = account
                .rooms
                .into_iter()
                .filter(|r| chat.rooms.contains_key(r))
                .collect();
            chat.accounts.insert(
                key,
                Account {
                    id: account.id,
                    name: account.name.into(),
                    hash: account.hash.into(),
                    rooms,
                    inbox: VecDeque::new(),
                },
            );
        }
        for dm in snapshot.pending_dms {
            chat.next_msg = chat.next_msg.max(dm.id.0 + 1);
            if let Some(account) = keys.get(&dm.to).and_then(|k| chat.accounts.get_mut(k)) {
                account.inbox.push_back(StoredDirect {
                    id: dm.id,
                    from: dm.from_name.into(),
                    at: dm.at,
                    text: dm.text.into(),
                });
            }
        }
        let mut out = Vec::new();
        if let Some(lobby) = chat.config.lobby.clone()
            && !chat.room_names.contains_key(&lobby.to_ascii_lowercase())
        {
            chat.create_room(&lobby, Timestamp::default(), &mut out);
        }
        (chat, out)
    }

    /// A new connection from `ip`: greets it.
    pub fn connect(&mut self, conn: ConnId, ip: IpAddr, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        self.connect_into(conn, ip, now, &mut out);
        out
    }

    /// Like [`Chat::connect`], appending to `out`.
    pub fn connect_into(
        &mut self,
        conn: ConnId,
        ip: IpAddr,
        _now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        self.conns.insert(
            conn,
            Conn {
                ip,
                user: None,
                check: None,
                profile: None,
                irc: false,
            },
        );
        send(
            out,
            conn,
            Event::Hello {
                server: self.server_name.clone(),
            },
        );
    }

    /// One command from a connection. Commands from unknown (closed)
    /// connections are ignored.
    pub fn handle(&mut self, conn: ConnId, cmd: Command, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        self.handle_into(conn, cmd, now, &mut out);
        out
    }

    /// Like [`Chat::handle`], appending to `out`.
    pub fn handle_into(
        &mut self,
        conn: ConnId,
        cmd: Command,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(check) = &mut state.check {
            if check.queued.len() < MAX_QUEUED {
                check.queued.push_back(cmd);
            } else {
                let e = Error::new(ErrorCode::RateLimited).text("wait for your login to finish");
                send(out, conn, e.into());
            }
            return;
        }
        let name = cmd.name();
        let result = match state.user {
            None if !cmd.allowed_before_login() => Err(Error::new(ErrorCode::NotLoggedIn)),
            None => self.handle_guest(conn, cmd, now, out),
            Some(user) => self.handle_user(conn, user, cmd, now, out),
        };
        if let Err(mut e) = result {
            e.command = Some(name);
            send(out, conn, e.into());
        }
    }

    /// The password workers finished the job [`Action::Auth`] asked for.
    /// Answers for connections that are gone are ignored.
    pub fn auth_done(&mut self, conn: ConnId, outcome: AuthOutcome, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        self.auth_done_into(conn, outcome, now, &mut out);
        out
    }

    /// Like [`Chat::auth_done`], appending to `out`.
    pub fn auth_done_into(
        &mut self,
        conn: ConnId,
        outcome: AuthOutcome,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(check) = state.check.take() else {
            return;
        };
        let Check {
            pending,
            queued,
            ended,
        } = *check;
        let ip = state.ip;
        let result = match (pending, outcome) {
            (Pending::Register { name }, AuthOutcome::Hashed(hash)) => {
                self.create_account(conn, &name, hash, now, out)
            }
            (Pending::Login { key }, AuthOutcome::Verified(true)) => {
                match self.accounts.get(&key) {
                    Some(_) if self.user_names.contains_key(&key) => {
                        Err(Error::new(ErrorCode::NameTaken).about(key))
                    }
                    Some(account) => {
                        let (id, name) = (account.id, account.name.clone());
                        self.enter(conn, id, name, Entry::Account, now, out)
                    }
                    None => Err(Error::new(ErrorCode::AuthFailed)),
                }
            }
            (Pending::Login { .. }, _) => {
                self.record_failure(ip, now);
                Err(Error::new(ErrorCode::AuthFailed))
            }
            (Pending::Register { .. }, _) => Err(Error::new(ErrorCode::NotAvailable)
                .about("register")
                .text("registration failed on the server; try again")),
        };
        if let Err(mut e) = result {
            e.command = Some("login");
            send(out, conn, e.into());
        }
        for cmd in queued {
            self.handle_into(conn, cmd, now, out);
        }
        if let Some(reason) = ended {
            // Waits for a check a held command started, if any.
            self.input_ended_into(conn, &reason, now, out);
        }
    }

    /// The peer closed its sending side (`nc -N`, a script). Its user goes
    /// offline and the connection closes after its replies are flushed; if a
    /// password is being checked, that happens only after the answer and the
    /// commands held behind it, so a pipelined login still runs whole.
    pub fn input_ended(&mut self, conn: ConnId, reason: &str, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        self.input_ended_into(conn, reason, now, &mut out);
        out
    }

    /// Like [`Chat::input_ended`], appending to `out`.
    pub fn input_ended_into(
        &mut self,
        conn: ConnId,
        reason: &str,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(check) = &mut state.check {
            check.ended = Some(reason.into());
            return;
        }
        self.disconnect_into(conn, reason, now, out);
        out.push(Action::Close { conn });
    }

    /// The connection went away (closed, reset, dropped by the server): its
    /// user goes offline. Unknown connections are ignored.
    pub fn disconnect(&mut self, conn: ConnId, reason: &str, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        self.disconnect_into(conn, reason, now, &mut out);
        out
    }

    /// Like [`Chat::disconnect`], appending to `out`.
    pub fn disconnect_into(
        &mut self,
        conn: ConnId,
        reason: &str,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        if let Some(Conn {
            user: Some(user), ..
        }) = self.conns.remove(&conn)
        {
            self.remove_user(user, Some(reason.into()), now, out);
        }
    }

    /// The server is stopping: everyone gets `BYE` and is closed.
    pub fn shutdown(&mut self, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        self.shutdown_into(now, &mut out);
        out
    }

    /// Like [`Chat::shutdown`], appending to `out`.
    pub fn shutdown_into(&mut self, _now: Timestamp, out: &mut Vec<Action>) {
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort_unstable();
        if conns.is_empty() {
            return;
        }
        out.push(Action::Fanout {
            to: conns.clone(),
            event: Event::Bye {
                reason: "server shutting down".into(),
            },
        });
        out.extend(conns.into_iter().map(|conn| Action::Close { conn }));
        self.conns.clear();
        self.users.clear();
        self.online = online::Online::default();
        self.user_names.clear();
        self.invisible_count = 0;
        self.oper_count = 0;
        self.watches = Watches::default();
        for room in self.rooms.values_mut() {
            room.members.clear();
            room.ops.clear();
            room.reset_modes();
        }
    }

    /// The core's counters.
    pub fn counts(&self) -> Counts {
        Counts {
            connections: self.conns.len(),
            users: self.users.len(),
            rooms: self.rooms.len(),
            accounts: self.accounts.len(),
            messages_in: self.messages_in,
            deliveries_out: self.deliveries_out,
        }
    }

    /// A connection that has not logged in by its deadline is told so and
    /// closed. Logged-in connections, ones whose password is being checked
    /// and unknown ones are left alone.
    pub fn login_deadline(&mut self, conn: ConnId, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        self.login_deadline_into(conn, now, &mut out);
        out
    }

    /// Like [`Chat::login_deadline`], appending to `out`.
    pub fn login_deadline_into(&mut self, conn: ConnId, _now: Timestamp, out: &mut Vec<Action>) {
        if self
            .conns
            .get(&conn)
            .is_some_and(|c| c.user.is_none() && c.check.is_none())
        {
            self.conns.remove(&conn);
            send(
                out,
                conn,
                Event::Bye {
                    reason: "login timeout".into(),
                },
            );
            out.push(Action::Close { conn });
        }
    }

    /// Connections the core knows.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Users logged in.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The names of a room's members, in login order (`None`: no such room).
    pub fn room_members(&self, room: &str) -> Option<Vec<String>> {
        let room = self
            .rooms
            .get(self.room_names.get(&room.to_ascii_lowercase())?)?;
        Some(
            room.members
                .keys()
                .filter_map(|u| self.users.get(u))
                .map(|u| u.name.to_string())
                .collect(),
        )
    }

    /// Checks the model's invariants; returns the first one broken. Used by
    /// tests and property checks.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (id, user) in &self.users {
            if self.conns.get(&user.conn).and_then(|c| c.user) != Some(*id) {
                return Err(format!("user {id} has no connection pointing back"));
            }
            if self.user_names.get(&user.name.to_ascii_lowercase()) != Some(id) {
                return Err(format!("user {id} is not indexed by name"));
            }
            for room in &user.rooms {
                if !self
                    .rooms
                    .get(room)
                    .is_some_and(|r| r.members.contains_key(id))
                {
                    return Err(format!("user {id} thinks it is in room {room}"));
                }
            }
            if user.current.is_some_and(|c| !user.rooms.contains(&c)) {
                return Err(format!("user {id} has a current room it is not in"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (conn, state) in &self.conns {
            if let Some(user) = state.user
                && !seen.insert(user)
            {
                return Err(format!("user {user} has a second connection {conn}"));
            }
        }
        let mut listed: Vec<&str> = self
            .online
            .as_str()
            .split(' ')
            .filter(|n| !n.is_empty())
            .collect();
        let mut names: Vec<&str> = self.users.values().map(|u| &*u.name).collect();
        listed.sort_unstable();
        names.sort_unstable();
        if listed != names {
            return Err(format!(
                "the online list {listed:?} is not the users {names:?}"
            ));
        }
        if self.user_names.len() != self.users.len() {
            return Err("name index and users differ".into());
        }
        let invisible = self.users.values().filter(|u| u.invisible).count();
        let opers = self.users.values().filter(|u| u.oper).count();
        if (invisible, opers) != (self.invisible_count, self.oper_count) {
            return Err("invisible or operator counts are off".into());
        }
        for (id, room) in &self.rooms {
            for (member, conn) in &room.members {
                if !self
                    .users
                    .get(member)
                    .is_some_and(|u| u.rooms.contains(id) && u.conn == *conn)
                {
                    return Err(format!(
                        "room {id} holds {member}, who is not logged in there"
                    ));
                }
            }
            if room.history.len() > self.config.history_len {
                return Err(format!("room {id} history over its limit"));
            }
            let m = &room.modes;
            if room
                .ops
                .iter()
                .chain(&m.voiced)
                .any(|u| !room.members.contains_key(u))
            {
                return Err(format!(
                    "room {id} has an operator or voice who is not in it"
                ));
            }
            let lists = [
                m.bans.len(),
                m.excepts.len(),
                m.invexes.len(),
                m.invited.len(),
            ];
            if lists.iter().any(|n| *n > super::command::MAX_LIST) {
                return Err(format!("room {id} has a list over its limit"));
            }
            if room.members.is_empty() && (m.invite_only || m.key.is_some() || !m.bans.is_empty()) {
                return Err(format!("room {id} is empty and kept its modes"));
            }
        }
        self.watches.check(|u| self.users.contains_key(&u))
    }

    /// Commands before login.
    fn handle_guest(
        &mut self,
        conn: ConnId,
        cmd: Command,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        match cmd {
            Command::Login { name, password } => self.login(conn, &name, password, now, out),
            Command::Register { name, password } => self.register(conn, &name, password, out),
            Command::Profile {
                ident,
                realname,
                irc,
            } => {
                if let Some(state) = self.conns.get_mut(&conn) {
                    state.profile = Some((ident.into(), realname.into()));
                    state.irc = irc;
                }
                Ok(())
            }
            cmd => self.handle_anyone(conn, cmd, now, out),
        }
    }

    /// Commands that need no login, or are answered the same way for everyone.
    fn handle_anyone(
        &mut self,
        conn: ConnId,
        cmd: Command,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        match cmd {
            Command::Quit { reason } => {
                let bye: Arc<str> = reason.as_deref().unwrap_or("bye").into();
                if let Some(Conn {
                    user: Some(user), ..
                }) = self.conns.remove(&conn)
                {
                    let offline = reason.as_deref().unwrap_or("quit");
                    self.remove_user(user, Some(offline.into()), now, out);
                }
                send(out, conn, Event::Bye { reason: bye });
                out.push(Action::Close { conn });
            }
            Command::Ping { token } => send(
                out,
                conn,
                Event::Pong {
                    token: token.map(Into::into),
                },
            ),
            Command::Help => {
                for line in HELP {
                    send(out, conn, Event::Help { line });
                }
                send(out, conn, Event::Ok(OkReply::Help));
            }
            Command::Lusers => self.lusers(conn, out),
            Command::Time => send(out, conn, Event::Time { now }),
            Command::Login { .. } | Command::Register { .. } | Command::Profile { .. } => {
                return Err(Error::new(ErrorCode::AlreadyLoggedIn));
            }
            _ => return Err(Error::new(ErrorCode::NotLoggedIn)),
        }
        Ok(())
    }

    /// Commands of a logged-in user.
    fn handle_user(
        &mut self,
        conn: ConnId,
        user: UserId,
        cmd: Command,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        match cmd {
            Command::Logout => {
                if let Some(state) = self.conns.get_mut(&conn) {
                    state.user = None;
                }
                self.remove_user(user, Some("logged out".into()), now, out);
                send(out, conn, Event::Ok(OkReply::Logout));
            }
            Command::Join { room, key } => {
                let id = match self.find_room(&room) {
                    Ok(id) => {
                        self.check_entry(user, id, key.as_deref())?;
                        id
                    }
                    Err(e) if e.code == ErrorCode::NoSuchRoom => {
                        self.check_can_join(user)?;
                        self.check_can_create()?;
                        self.create_room(&room, now, out)
                    }
                    Err(e) => return Err(e),
                };
                self.join_room(user, id, out)?;
            }
            Command::Create { room } => {
                match self.find_room(&room) {
                    Ok(_) => return Err(Error::new(ErrorCode::RoomExists).about(room)),
                    Err(e) if e.code == ErrorCode::NoSuchRoom => {}
                    Err(e) => return Err(e),
                }
                self.check_can_join(user)?;
                self.check_can_create()?;
                let id = self.create_room(&room, now, out);
                let name = self.rooms[&id].name.clone();
                send(out, conn, Event::Ok(OkReply::Create { room: name, id }));
                self.join_room(user, id, out)?;
            }
            Command::Leave { room, reason } => {
                let id = self.find_joined(user, &room)?;
                self.leave_room(user, id, reason.map(Into::into), out);
            }
            Command::Switch { room } => {
                let id = self.find_joined(user, &room)?;
                if let Some(u) = self.users.get_mut(&user) {
                    u.current = Some(id);
                }
                send(
                    out,
                    conn,
                    Event::Ok(OkReply::Switch {
                        room: self.rooms[&id].name.clone(),
                    }),
                );
            }
            Command::Say { room, text } => {
                let id = match room {
                    Some(room) => self.find_joined(user, &room)?,
                    None => self.users[&user].current.ok_or_else(|| {
                        Error::new(ErrorCode::NotInRoom)
                            .text("you are in no room: /join ROOM first")
                    })?,
                };
                self.check_can_speak(user, id)?;
                self.say(user, id, text, None, now, out);
            }
            Command::Msg { to, text } => self.direct(user, &to, text, None, now, out)?,
            Command::Broadcast { text } => {
                let event = Event::Broadcast {
                    from: self.users[&user].name.clone(),
                    mask: self.users[&user].mask.clone(),
                    id: self.next_msg_id(),
                    at: now,
                    text: text.into(),
                };
                let to: Vec<ConnId> = self.users.values().map(|u| u.conn).collect();
                self.count_message(to.len());
                self.store_counters(out);
                out.push(Action::Fanout { to, event });
            }
            Command::Topic { room, text: None } => {
                let id = self.find_visible(user, &room)?;
                self.check_visible(user, id)?;
                self.send_topic(conn, id, out);
            }
            Command::Topic {
                room,
                text: Some(text),
            } => {
                let id = self.find_joined(user, &room)?;
                let r = &self.rooms[&id];
                if r.topic_lock && !r.ops.contains(&user) {
                    return Err(Error::new(ErrorCode::NotOperator).about(r.name.clone()));
                }
                if text.len() > MAX_TOPIC {
                    return Err(Error::new(ErrorCode::BadArgs)
                        .about("topic")
                        .text(format!("a topic is at most {MAX_TOPIC} bytes")));
                }
                let topic: Arc<str> = text.into();
                let to = self.member_conns(id, None);
                let Some(r) = self.rooms.get_mut(&id) else {
                    return Ok(());
                };
                r.topic = topic.clone();
                r.topic_by = self.users[&user].name.clone();
                r.topic_at = now;
                out.push(Action::Store(Record::Topic {
                    room: id,
                    topic: topic.clone(),
                }));
                out.push(Action::Fanout {
                    to,
                    event: Event::Topic {
                        room: r.name.clone(),
                        name: self.users[&user].name.clone(),
                        mask: self.users[&user].mask.clone(),
                        topic,
                    },
                });
            }
            Command::Users => {
                let names = self.online.as_str().into();
                send(out, conn, Event::Users { names });
                let count = self.users.len();
                send(out, conn, Event::Ok(OkReply::Users { count }));
            }
            Command::Rooms => {
                let irc = self.users[&user].irc;
                let mut count = 0;
                for (id, room) in &self.rooms {
                    let hidden = room.modes.secret && !room.members.contains_key(&user);
                    if hidden || irc && room.members.is_empty() {
                        continue;
                    }
                    count += 1;
                    send(
                        out,
                        conn,
                        Event::Room {
                            name: room.name.clone(),
                            id: *id,
                            members: room.members.len(),
                            topic: room.topic.clone(),
                        },
                    );
                }
                send(out, conn, Event::Ok(OkReply::Rooms { count }));
            }
            Command::History { room, count } => {
                let id = self.find_room(&room)?;
                self.check_visible(user, id)?;
                let count = count
                    .unwrap_or(self.config.join_history)
                    .min(MAX_HISTORY_REQUEST);
                self.replay(conn, id, count, out);
            }
            Command::Whoami => {
                let u = &self.users[&user];
                send(
                    out,
                    conn,
                    Event::You {
                        name: u.name.clone(),
                        id: user,
                        ip: u.ip,
                        rooms: u.rooms.iter().map(|r| self.rooms[r].name.clone()).collect(),
                    },
                );
            }
            Command::Stats => out.push(Action::Stats { conn }),
            Command::Tell {
                target,
                text,
                extra,
            } => self.tell(user, &target, text, extra, now, out)?,
            Command::Nick { name } => self.rename(conn, user, &name, now, out)?,
            Command::Kick { room, name, reason } => self.kick(user, &room, &name, reason, out)?,
            Command::Mode { room, changes } => {
                self.mode(conn, user, &room, changes, now, out)?;
            }
            Command::Names { room } => {
                let id = self.find_visible(user, &room)?;
                let r = &self.rooms[&id];
                if r.modes.secret && !r.members.contains_key(&user) {
                    return Err(Error::new(ErrorCode::NoSuchRoom).about(room));
                }
                self.send_members(conn, id, out);
            }
            Command::Invite { name, room } => self.invite(user, &name, &room, out)?,
            Command::Invites => self.invites(conn, user, out),
            Command::Who { mask } => self.who(conn, user, mask, out),
            Command::Whois { name } => self.whois(conn, user, &name, out)?,
            Command::Ison { names } => self.ison(conn, &names, out),
            Command::Userhost { names } => self.userhost(conn, &names, out),
            Command::Away { text } => self.away(conn, user, text, out),
            Command::Oper { name, password } => {
                self.oper(conn, user, &name, &password, now, out)?
            }
            Command::Kill { name, reason } => self.kill(user, &name, reason, now, out)?,
            Command::Wallops { text } => self.wallops(user, text, out)?,
            Command::UserMode { changes } => self.user_mode(conn, user, &changes, out),
            Command::Whowas { name, count } => self.whowas(conn, &name, count, out)?,
            Command::Monitor { op } => self.monitor(conn, user, op, out)?,
            Command::SetName { realname } => self.set_realname(user, realname, out)?,
            cmd => return self.handle_anyone(conn, cmd, now, out),
        }
        Ok(())
    }
}

/// Queues one event for one connection.
fn send(out: &mut Vec<Action>, to: ConnId, event: Event) {
    out.push(Action::Send { to, event });
}
