//! The state machine: who is connected, who is logged in, which rooms exist
//! and who is in them. Each input returns the actions it causes.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use super::command::Command;
use super::event::{Action, Error, ErrorCode, Event, OkReply};
use super::model::{ConnId, Message, MsgId, Room, RoomId, Timestamp, User, UserId};
use crate::config::{CoreConfig, MAX_HISTORY_REQUEST, is_room_name, is_user_name};

/// The lines of `/help`.
const HELP: &[&str] = &[
    "commands (a line without / is said in your current room):",
    "/login NAME                log in (a free name logs in as a guest)",
    "/logout                    log out and stay connected",
    "/quit [reason]             leave the server",
    "/join ROOM                 join a room (created if new) and make it current",
    "/create ROOM               create a new room and join it",
    "/leave ROOM [reason]       leave a room",
    "/switch ROOM               make a joined room current",
    "/say ROOM text             say something in a joined room",
    "/msg NAME text             send a direct message",
    "/broadcast text            send a message to everyone online",
    "/users                     who is online",
    "/rooms                     list the rooms",
    "/history ROOM [N]          the last N messages of a room (default 20, at most 500)",
    "/whoami                    your name, id, address and rooms",
    "/ping [token]              a round trip",
    "//text                     say text that starts with /",
];

/// One connection's state.
#[derive(Debug)]
struct Conn {
    ip: IpAddr,
    user: Option<UserId>,
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
    /// Lower-cased name → user, for case-insensitive uniqueness.
    user_names: HashMap<String, UserId>,
    rooms: BTreeMap<RoomId, Room>,
    /// Lower-cased name → room.
    room_names: HashMap<String, RoomId>,
    next_user: u64,
    next_room: u64,
    next_msg: u64,
}

impl Chat {
    /// A chat with no users and only the lobby room (if configured).
    pub fn new(config: CoreConfig) -> Self {
        let mut chat = Chat {
            server_name: config.server_name.as_str().into(),
            config,
            conns: HashMap::new(),
            users: BTreeMap::new(),
            user_names: HashMap::new(),
            rooms: BTreeMap::new(),
            room_names: HashMap::new(),
            next_user: 1,
            next_room: 1,
            next_msg: 1,
        };
        if let Some(lobby) = chat.config.lobby.clone() {
            chat.create_room(&lobby, Timestamp::default());
        }
        chat
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
        self.conns.insert(conn, Conn { ip, user: None });
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
        let Some(state) = self.conns.get(&conn) else {
            return;
        };
        let result = match state.user {
            None if !cmd.allowed_before_login() => Err(Error::new(ErrorCode::NotLoggedIn)),
            None => self.handle_guest(conn, cmd, now, out),
            Some(user) => self.handle_user(conn, user, cmd, now, out),
        };
        if let Err(e) = result {
            send(out, conn, e.into());
        }
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
        _now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        if let Some(Conn {
            user: Some(user), ..
        }) = self.conns.remove(&conn)
        {
            self.remove_user(user, Some(reason.into()), out);
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
        self.user_names.clear();
        for room in self.rooms.values_mut() {
            room.members.clear();
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
                .iter()
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
                if !self.rooms.get(room).is_some_and(|r| r.members.contains(id)) {
                    return Err(format!("user {id} thinks it is in room {room}"));
                }
            }
            if user.current.is_some_and(|c| !user.rooms.contains(&c)) {
                return Err(format!("user {id} has a current room it is not in"));
            }
        }
        if self.user_names.len() != self.users.len() {
            return Err("name index and users differ".into());
        }
        for (id, room) in &self.rooms {
            for member in &room.members {
                if !self.users.get(member).is_some_and(|u| u.rooms.contains(id)) {
                    return Err(format!(
                        "room {id} holds {member}, who is not logged in there"
                    ));
                }
            }
            if room.history.len() > self.config.history_len {
                return Err(format!("room {id} history over its limit"));
            }
        }
        Ok(())
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
            Command::Login { name, password: _ } => self.login(conn, &name, now, out),
            Command::Register { .. } => Err(Error::new(ErrorCode::NotAvailable)
                .about("register")
                .text("accounts are not available yet; log in as a guest with /login NAME")),
            cmd => self.handle_anyone(conn, cmd, out),
        }
    }

    /// Commands that need no login, or are answered the same way for everyone.
    fn handle_anyone(
        &mut self,
        conn: ConnId,
        cmd: Command,
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
                    self.remove_user(user, Some(offline.into()), out);
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
            Command::Login { .. } | Command::Register { .. } => {
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
                self.remove_user(user, Some("logged out".into()), out);
                send(out, conn, Event::Ok(OkReply::Logout));
            }
            Command::Join { room } => {
                let id = match self.find_room(&room) {
                    Ok(id) => id,
                    Err(e) if e.code == ErrorCode::NoSuchRoom => {
                        self.check_can_join(user)?;
                        self.check_can_create()?;
                        self.create_room(&room, now)
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
                let id = self.create_room(&room, now);
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
                self.say(user, id, text, now, out);
            }
            Command::Msg { to, text } => self.direct(user, &to, text, now, out)?,
            Command::Broadcast { text } => {
                let event = Event::Broadcast {
                    from: self.users[&user].name.clone(),
                    id: self.next_msg_id(),
                    at: now,
                    text: text.into(),
                };
                let to = self.users.values().map(|u| u.conn).collect();
                out.push(Action::Fanout { to, event });
            }
            Command::Users => {
                let names: Vec<Arc<str>> = self.users.values().map(|u| u.name.clone()).collect();
                let count = names.len();
                send(out, conn, Event::Users { names });
                send(out, conn, Event::Ok(OkReply::Users { count }));
            }
            Command::Rooms => {
                for (id, room) in &self.rooms {
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
                send(
                    out,
                    conn,
                    Event::Ok(OkReply::Rooms {
                        count: self.rooms.len(),
                    }),
                );
            }
            Command::History { room, count } => {
                let id = self.find_room(&room)?;
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
            cmd => return self.handle_anyone(conn, cmd, out),
        }
        Ok(())
    }

    /// Logs a connection in as a guest named `name`, then lists who is online
    /// and joins the lobby.
    fn login(
        &mut self,
        conn: ConnId,
        name: &str,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        if !is_user_name(name) {
            return Err(Error::new(ErrorCode::BadName).about(name));
        }
        let key = name.to_ascii_lowercase();
        if self.user_names.contains_key(&key) {
            return Err(Error::new(ErrorCode::NameTaken).about(name));
        }
        let Some(state) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        let id = UserId(self.next_user);
        self.next_user += 1;
        state.user = Some(id);
        let name: Arc<str> = name.into();
        self.user_names.insert(key, id);
        self.users.insert(
            id,
            User {
                name: name.clone(),
                conn,
                ip: state.ip,
                logged_in_at: now,
                rooms: Vec::new(),
                current: None,
            },
        );
        send(out, conn, Event::Ok(OkReply::Login { name, id }));
        self.handle_user(conn, id, Command::Users, now, out)?;
        if let Some(lobby) = self
            .config
            .lobby
            .as_deref()
            .and_then(|l| self.find_room(l).ok())
        {
            self.join_room(id, lobby, out)?;
        }
        Ok(())
    }

    /// Looks a room up by name (any case).
    fn find_room(&self, name: &str) -> Result<RoomId, Error> {
        if !is_room_name(name) {
            return Err(Error::new(ErrorCode::BadName).about(name));
        }
        self.room_names
            .get(&name.to_ascii_lowercase())
            .copied()
            .ok_or_else(|| Error::new(ErrorCode::NoSuchRoom).about(name))
    }

    /// Looks up a room the user is in.
    fn find_joined(&self, user: UserId, name: &str) -> Result<RoomId, Error> {
        let id = self.find_room(name)?;
        if !self.rooms[&id].members.contains(&user) {
            return Err(Error::new(ErrorCode::NotInRoom).about(self.rooms[&id].name.clone()));
        }
        Ok(id)
    }

    fn check_can_create(&self) -> Result<(), Error> {
        if self.rooms.len() >= self.config.max_rooms {
            return Err(Error::new(ErrorCode::TooManyRooms)
                .text("the server holds as many rooms as it may"));
        }
        Ok(())
    }

    fn check_can_join(&self, user: UserId) -> Result<(), Error> {
        if self.users[&user].rooms.len() >= self.config.max_rooms_per_user {
            return Err(Error::new(ErrorCode::TooManyRooms).text(format!(
                "you are in {} rooms, the most allowed",
                self.config.max_rooms_per_user
            )));
        }
        Ok(())
    }

    /// Creates a room (the name was checked and is free).
    fn create_room(&mut self, name: &str, now: Timestamp) -> RoomId {
        let id = RoomId(self.next_room);
        self.next_room += 1;
        self.room_names.insert(name.to_ascii_lowercase(), id);
        self.rooms.insert(
            id,
            Room {
                name: name.into(),
                topic: "".into(),
                created: now,
                members: BTreeSet::new(),
                history: VecDeque::new(),
            },
        );
        id
    }

    /// Puts the user in a room (telling the others), makes it current and sends
    /// the join replies. Joining a room again only repeats the replies.
    fn join_room(&mut self, user: UserId, id: RoomId, out: &mut Vec<Action>) -> Result<(), Error> {
        let room = &self.rooms[&id];
        let u = &self.users[&user];
        let (conn, name, room_name) = (u.conn, u.name.clone(), room.name.clone());
        if !room.members.contains(&user) {
            self.check_can_join(user)?;
            let others: Vec<ConnId> = self.member_conns(id, Some(user));
            if !others.is_empty() {
                out.push(Action::Fanout {
                    to: others,
                    event: Event::Join {
                        room: room_name.clone(),
                        name,
                    },
                });
            }
            if let Some(room) = self.rooms.get_mut(&id) {
                room.members.insert(user);
            }
            if let Some(u) = self.users.get_mut(&user) {
                u.rooms.push(id);
            }
        }
        if let Some(u) = self.users.get_mut(&user) {
            u.current = Some(id);
        }
        send(
            out,
            conn,
            Event::Ok(OkReply::Join {
                room: room_name.clone(),
            }),
        );
        let names = self.rooms[&id]
            .members
            .iter()
            .filter_map(|m| self.users.get(m))
            .map(|m| m.name.clone())
            .collect();
        send(
            out,
            conn,
            Event::Members {
                room: room_name,
                names,
            },
        );
        self.replay(conn, id, self.config.join_history, out);
        Ok(())
    }

    /// Takes the user out of a room, telling the others, and picks the most
    /// recently joined remaining room as current if this one was.
    fn leave_room(
        &mut self,
        user: UserId,
        id: RoomId,
        reason: Option<Arc<str>>,
        out: &mut Vec<Action>,
    ) {
        let Some(room) = self.rooms.get_mut(&id) else {
            return;
        };
        room.members.remove(&user);
        let room_name = room.name.clone();
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        u.rooms.retain(|r| *r != id);
        if u.current == Some(id) {
            u.current = u.rooms.last().copied();
        }
        let (conn, name) = (u.conn, u.name.clone());
        let others = self.member_conns(id, None);
        if !others.is_empty() {
            out.push(Action::Fanout {
                to: others,
                event: Event::Leave {
                    room: room_name.clone(),
                    name,
                    reason,
                },
            });
        }
        send(out, conn, Event::Ok(OkReply::Leave { room: room_name }));
    }

    /// Logs a user out of everything; everyone who shared a room hears
    /// `OFFLINE` once.
    fn remove_user(&mut self, user: UserId, reason: Option<Arc<str>>, out: &mut Vec<Action>) {
        let Some(u) = self.users.remove(&user) else {
            return;
        };
        self.user_names.remove(&u.name.to_ascii_lowercase());
        let mut peers = Vec::new();
        for id in &u.rooms {
            if let Some(room) = self.rooms.get_mut(id) {
                room.members.remove(&user);
                peers.extend(
                    room.members
                        .iter()
                        .filter_map(|m| self.users.get(m))
                        .map(|m| m.conn),
                );
            }
        }
        peers.sort_unstable();
        peers.dedup();
        if !peers.is_empty() {
            out.push(Action::Fanout {
                to: peers,
                event: Event::Offline {
                    name: u.name,
                    reason,
                },
            });
        }
    }

    /// Says `text` in a room: stored in its history, delivered to every member.
    fn say(
        &mut self,
        user: UserId,
        id: RoomId,
        text: String,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let msg = Arc::new(Message {
            id: self.next_msg_id(),
            sender: user,
            sender_name: self.users[&user].name.clone(),
            room: id,
            at: now,
            text: text.into(),
        });
        let to = self.member_conns(id, None);
        let Some(room) = self.rooms.get_mut(&id) else {
            return;
        };
        if self.config.history_len > 0 {
            if room.history.len() >= self.config.history_len {
                room.history.pop_front();
            }
            room.history.push_back(msg.clone());
        }
        out.push(Action::Fanout {
            to,
            event: Event::Msg {
                room: room.name.clone(),
                msg,
            },
        });
    }

    /// A direct message to whoever is online under `to`.
    fn direct(
        &mut self,
        user: UserId,
        to: &str,
        text: String,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        if !is_user_name(to) {
            return Err(Error::new(ErrorCode::BadName).about(to));
        }
        let target = self
            .user_names
            .get(&to.to_ascii_lowercase())
            .and_then(|id| self.users.get(id))
            .ok_or_else(|| Error::new(ErrorCode::NoSuchUser).about(to))?;
        let sender = &self.users[&user];
        let mut recipients = vec![target.conn];
        if target.conn != sender.conn {
            recipients.push(sender.conn);
        }
        let event = Event::Dm {
            from: sender.name.clone(),
            to: target.name.clone(),
            id: self.next_msg_id(),
            at: now,
            text: text.into(),
        };
        out.push(Action::Fanout {
            to: recipients,
            event,
        });
        Ok(())
    }

    /// Sends `HISTORY ROOM COUNT` and the last `count` messages, oldest first.
    fn replay(&self, conn: ConnId, id: RoomId, count: usize, out: &mut Vec<Action>) {
        let room = &self.rooms[&id];
        let skip = room.history.len().saturating_sub(count);
        send(
            out,
            conn,
            Event::History {
                room: room.name.clone(),
                count: room.history.len() - skip,
            },
        );
        for msg in room.history.iter().skip(skip) {
            send(
                out,
                conn,
                Event::Msg {
                    room: room.name.clone(),
                    msg: msg.clone(),
                },
            );
        }
    }

    /// The connections of a room's members, but `except`.
    fn member_conns(&self, id: RoomId, except: Option<UserId>) -> Vec<ConnId> {
        self.rooms[&id]
            .members
            .iter()
            .filter(|m| Some(**m) != except)
            .filter_map(|m| self.users.get(m))
            .map(|m| m.conn)
            .collect()
    }

    fn next_msg_id(&mut self) -> MsgId {
        let id = MsgId(self.next_msg);
        self.next_msg += 1;
        id
    }
}

/// Queues one event for one connection.
fn send(out: &mut Vec<Action>, to: ConnId, event: Event) {
    out.push(Action::Send { to, event });
}
