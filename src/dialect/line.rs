//! The plain line protocol that telnet, `nc` and the `chat` client speak
//! (`docs/protocol.md`): client lines → [`Command`]s, [`Event`]s → server lines.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::MAX_SERVER_LINE;
use crate::core::{
    Action, Chat, Command, ConnId, Error, ErrorCode, Event, OkReply, Secret, Timestamp,
};
use crate::framing::FrameError;

/// Parses one client line (framing already done: no `\n`, not empty).
/// A line without a leading `/` is text for the current room.
pub fn parse(line: &str) -> Result<Command, Error> {
    let Some(body) = line.strip_prefix('/') else {
        return Ok(say(line));
    };
    if body.starts_with('/') {
        return Ok(say(body));
    }
    let (word, rest) = split_word(body);
    let cmd = word.to_ascii_lowercase();
    let usage = |text: &'static str| {
        Error::new(ErrorCode::BadArgs)
            .about(cmd.as_str())
            .text(text)
    };
    Ok(match cmd.as_str() {
        "register" => match split_word(rest) {
            (name, password) if !name.is_empty() && !password.is_empty() => Command::Register {
                name: name.into(),
                password: Secret::new(password),
            },
            _ => return Err(usage("usage: /register NAME PASSWORD")),
        },
        "login" => match split_word(rest) {
            ("", _) => return Err(usage("usage: /login NAME [PASSWORD]")),
            (name, password) => Command::Login {
                name: name.into(),
                password: non_empty(password).map(Secret::new),
            },
        },
        "logout" => no_args(rest, Command::Logout).ok_or_else(|| usage("usage: /logout"))?,
        "quit" => Command::Quit {
            reason: non_empty(rest),
        },
        "join" => match split_word(rest) {
            (room, key) if !room.is_empty() && !key.contains(char::is_whitespace) => {
                Command::Join {
                    room: room_name(room),
                    key: non_empty(key),
                }
            }
            _ => return Err(usage("usage: /join ROOM [KEY]")),
        },
        "invite" => match split_word(rest) {
            (name, room) if !name.is_empty() && one_room(room).is_some() => Command::Invite {
                name: name.into(),
                room: room_name(room),
            },
            _ => return Err(usage("usage: /invite NAME ROOM")),
        },
        "create" => Command::Create {
            room: one_room(rest).ok_or_else(|| usage("usage: /create ROOM"))?,
        },
        "switch" => Command::Switch {
            room: one_room(rest).ok_or_else(|| usage("usage: /switch ROOM"))?,
        },
        "leave" => match split_word(rest) {
            ("", _) => return Err(usage("usage: /leave ROOM [reason]")),
            (room, reason) => Command::Leave {
                room: room_name(room),
                reason: non_empty(reason),
            },
        },
        "say" => match split_word(rest) {
            (room, text) if !room.is_empty() && !text.is_empty() => Command::Say {
                room: Some(room_name(room)),
                text: text.into(),
            },
            _ => return Err(usage("usage: /say ROOM text")),
        },
        "msg" => match split_word(rest) {
            (to, text) if !to.is_empty() && !text.is_empty() => Command::Msg {
                to: to.into(),
                text: text.into(),
            },
            _ => return Err(usage("usage: /msg NAME text")),
        },
        "broadcast" if !rest.is_empty() => Command::Broadcast { text: rest.into() },
        "broadcast" => return Err(usage("usage: /broadcast text")),
        "users" => no_args(rest, Command::Users).ok_or_else(|| usage("usage: /users"))?,
        "rooms" => no_args(rest, Command::Rooms).ok_or_else(|| usage("usage: /rooms"))?,
        "topic" => match split_word(rest) {
            ("", _) => return Err(usage("usage: /topic ROOM [text]")),
            (room, text) => Command::Topic {
                room: room_name(room),
                text: (!text.is_empty()).then(|| text.into()),
            },
        },
        "whoami" => no_args(rest, Command::Whoami).ok_or_else(|| usage("usage: /whoami"))?,
        "stats" => no_args(rest, Command::Stats).ok_or_else(|| usage("usage: /stats"))?,
        "help" => Command::Help,
        "history" => {
            let bad = || usage("usage: /history ROOM [N]");
            let (room, rest) = split_word(rest);
            let (count, extra) = split_word(rest);
            if room.is_empty() || !extra.is_empty() {
                return Err(bad());
            }
            let count = match count {
                "" => None,
                n => Some(n.parse::<usize>().map_err(|_| bad())?),
            };
            Command::History {
                room: room_name(room),
                count,
            }
        }
        "ping" => Command::Ping {
            token: non_empty(rest),
        },
        _ => return Err(Error::new(ErrorCode::UnknownCommand).about(word)),
    })
}

/// The error a framing problem is answered with.
pub fn frame_error(e: FrameError) -> Error {
    Error::new(match e {
        FrameError::LineTooLong => ErrorCode::LineTooLong,
        FrameError::BadUtf8 => ErrorCode::BadUtf8,
    })
}

/// Appends the server line(s) for `event` to `out`, each ending in `\n`.
pub fn render(event: &Event, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = render_to(event, out);
}

fn render_to(event: &Event, out: &mut Vec<u8>) -> std::io::Result<()> {
    match event {
        Event::Hello { server } => writeln!(
            out,
            "HELLO {server} {} :welcome, type /help",
            crate::VERSION
        ),
        Event::Ok(ok) => match ok {
            OkReply::Register { name, id } => writeln!(out, "OK register {name} {id}"),
            OkReply::Login { name, id } => writeln!(out, "OK login {name} {id}"),
            OkReply::Logout => writeln!(out, "OK logout"),
            OkReply::Join { room } => writeln!(out, "OK join {room}"),
            OkReply::Create { room, id } => writeln!(out, "OK create {room} {id}"),
            OkReply::Leave { room } => writeln!(out, "OK leave {room}"),
            OkReply::Switch { room } => writeln!(out, "OK switch {room}"),
            OkReply::Users { count } => writeln!(out, "OK users {count}"),
            OkReply::Rooms { count } => writeln!(out, "OK rooms {count}"),
            OkReply::Help => writeln!(out, "OK help"),
            OkReply::Stats => writeln!(out, "OK stats"),
            OkReply::Away { away: true } => writeln!(out, "OK away"),
            OkReply::Away { away: false } => writeln!(out, "OK back"),
            OkReply::Invite { name, room } => writeln!(out, "OK invite {name} {room}"),
            OkReply::Oper => writeln!(out, "OK oper"),
        },
        Event::Members { room, names, .. } => {
            let head = format!("MEMBERS {room} :");
            write_list(out, &head, names, true);
            Ok(())
        }
        Event::Users { names } => {
            write_name_lines(out, "USERS :", names);
            Ok(())
        }
        Event::Room {
            name,
            id,
            members,
            topic,
        } => writeln!(out, "ROOM {name} {id} {members} :{topic}"),
        Event::Topic {
            room, name, topic, ..
        } => writeln!(out, "TOPIC {room} {name} :{topic}"),
        Event::History { room, count } => writeln!(out, "HISTORY {room} {count}"),
        Event::Msg { room, msg, .. } => writeln!(
            out,
            "MSG {room} {} {} {} :{}",
            msg.sender_name, msg.id, msg.at, msg.text
        ),
        Event::Dm {
            from,
            to,
            id,
            at,
            text,
            ..
        } => writeln!(out, "DM {from} {to} {id} {at} :{text}"),
        Event::Broadcast {
            from, id, at, text, ..
        } => {
            writeln!(out, "BROADCAST {from} {id} {at} :{text}")
        }
        Event::Join { room, name, .. } => writeln!(out, "JOIN {room} {name}"),
        Event::Leave {
            room, name, reason, ..
        } => {
            write!(out, "LEAVE {room} {name}")?;
            end_with_reason(out, reason.as_deref())
        }
        Event::Offline { name, reason, .. } => {
            write!(out, "OFFLINE {name}")?;
            end_with_reason(out, reason.as_deref())
        }
        Event::You {
            name,
            id,
            ip,
            rooms,
        } => {
            write!(out, "YOU {name} {id} {} :", wire_ip(*ip))?;
            write_joined(out, rooms)?;
            writeln!(out)
        }
        Event::Pong { token: None } => writeln!(out, "PONG"),
        Event::Pong { token: Some(t) } if is_word(t) => writeln!(out, "PONG {t}"),
        Event::Pong { token: Some(t) } => writeln!(out, "PONG :{t}"),
        Event::Help { line } => writeln!(out, "HELP :{line}"),
        Event::Bye { reason } => writeln!(out, "BYE :{reason}"),
        Event::Stats { counters } => {
            for (name, value) in counters {
                writeln!(out, "STATS {name} {value}")?;
            }
            Ok(())
        }
        Event::Nick { old, new, .. } => writeln!(out, "NICK {old} {new}"),
        Event::Kick {
            room,
            by,
            name,
            reason,
            ..
        } => writeln!(out, "KICK {room} {name} {by} :{reason}"),
        Event::Mode {
            room, by, change, ..
        } => writeln!(out, "MODE {room} {by} :{change}"),
        Event::RoomModes { room, modes, .. } => writeln!(out, "MODES {room} {modes}"),
        Event::TopicIs {
            room,
            id,
            members,
            topic,
            ..
        } => writeln!(out, "ROOM {room} {id} {members} :{topic}"),
        Event::Whois(info) => {
            write!(out, "WHOIS {} {} :", info.name, info.host)?;
            let rooms: Vec<Arc<str>> = info.rooms.iter().map(|(r, _)| r.clone()).collect();
            write_joined(out, &rooms)?;
            writeln!(out)
        }
        Event::Who { rows, .. } => {
            let names: Vec<Arc<str>> = rows.iter().map(|r| r.name.clone()).collect();
            write_list(out, "USERS :", &names, false);
            Ok(())
        }
        Event::Ison { names } => {
            write_list(out, "USERS :", names, false);
            Ok(())
        }
        Event::Userhost { rows } => {
            let names: Vec<Arc<str>> = rows.iter().map(|r| r.name.clone()).collect();
            write_list(out, "USERS :", &names, false);
            Ok(())
        }
        Event::AwayIs { name, text } => writeln!(out, "AWAY {name} :{text}"),
        Event::Invited { room, by, .. } => writeln!(out, "INVITE {room} {by}"),
        Event::Invites { rooms } => {
            write_list(out, "INVITES :", rooms, true);
            Ok(())
        }
        Event::MaskList {
            room,
            list,
            entries,
        } => {
            let masks: Vec<Arc<str>> = entries.iter().map(|e| e.mask.clone()).collect();
            let head = format!("MASKS {room} {} :", list.as_str());
            write_list(out, &head, &masks, true);
            Ok(())
        }
        Event::AwayChanged {
            name,
            text: Some(text),
            ..
        } => writeln!(out, "AWAY {name} :{text}"),
        Event::AwayChanged {
            name, text: None, ..
        } => writeln!(out, "BACK {name}"),
        Event::RealName { name, realname, .. } => writeln!(out, "REALNAME {name} :{realname}"),
        Event::MonOnline { masks } => {
            write_list(out, "WATCH online :", masks, false);
            Ok(())
        }
        Event::MonOffline { names } => {
            write_list(out, "WATCH offline :", names, false);
            Ok(())
        }
        Event::MonList { names } => {
            write_list(out, "WATCHING :", names, true);
            Ok(())
        }
        Event::Lusers { users, rooms, .. } => writeln!(out, "LUSERS {users} {rooms}"),
        Event::Time { now } => writeln!(out, "TIME {now}"),
        Event::UserMode { name, change } => writeln!(out, "USERMODE {name} {change}"),
        Event::UserModes { modes } => writeln!(out, "USERMODES {modes}"),
        Event::Wallops { from, text, .. } => writeln!(out, "WALLOPS {from} :{text}"),
        Event::Whowas { rows, .. } => {
            for r in rows {
                writeln!(
                    out,
                    "WHOWAS {} {} {} {} :{}",
                    r.name, r.ident, r.host, r.at, r.realname
                )?;
            }
            Ok(())
        }
        Event::Error(Error {
            code, arg, text, ..
        }) => match arg {
            Some(arg) if is_word(arg) => writeln!(out, "ERR {code} {arg} :{text}"),
            _ => writeln!(out, "ERR {code} :{text}"),
        },
    }
}

/// Names separated by single spaces.
fn write_joined(out: &mut Vec<u8>, names: &[Arc<str>]) -> std::io::Result<()> {
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(name.as_bytes());
    }
    Ok(())
}

/// Runs one raw client line through the parser, the state machine and the
/// renderer: the line-level view tests and embedders want.
///
/// ```
/// use chatd::config::CoreConfig;
/// use chatd::core::{Chat, ConnId, Timestamp};
/// use chatd::dialect::line::handle_line;
///
/// let mut chat = Chat::new(CoreConfig::default());
/// let now = Timestamp::from_millis(0);
/// chat.connect(ConnId(1), "127.0.0.1".parse().unwrap(), now);
/// let out = handle_line(&mut chat, ConnId(1), "/ping hi", now);
/// assert_eq!(out, [(ConnId(1), "PONG hi".to_string())]);
/// ```
pub fn handle_line(
    chat: &mut Chat,
    conn: ConnId,
    line: &str,
    now: Timestamp,
) -> Vec<(ConnId, String)> {
    let actions = match parse(line) {
        Ok(cmd) => chat.handle(conn, cmd, now),
        Err(e) => vec![Action::Send {
            to: conn,
            event: e.into(),
        }],
    };
    render_actions(&actions)
}

/// Renders actions into `(recipient, line)` pairs, fan-outs expanded in
/// recipient order and without the `\n`. Closes are left out.
pub fn render_actions(actions: &[Action]) -> Vec<(ConnId, String)> {
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    for action in actions {
        let (to, event) = match action {
            Action::Send { to, event } => (std::slice::from_ref(to), event),
            Action::Fanout { to, event } => (to.as_slice(), event),
            Action::Close { .. }
            | Action::Store(_)
            | Action::Auth { .. }
            | Action::Raw { .. }
            | Action::Group { .. }
            | Action::Stats { .. } => {
                continue;
            }
        };
        buf.clear();
        render(event, &mut buf);
        let text = String::from_utf8_lossy(&buf);
        for conn in to {
            lines.extend(text.lines().map(|l| (*conn, l.to_string())));
        }
    }
    lines
}

/// Splits a server line into its keyword and arguments; an argument starting
/// with `:` runs to the end of the line (the `:` dropped).
pub fn split_server_line(line: &str) -> (&str, Vec<&str>) {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (keyword, mut rest) = line.split_once(' ').unwrap_or((line, ""));
    let mut args = Vec::new();
    while !rest.is_empty() {
        if let Some(trailing) = rest.strip_prefix(':') {
            args.push(trailing);
            break;
        }
        let (arg, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        args.push(arg);
        rest = tail;
    }
    (keyword, args)
}

fn say(text: &str) -> Command {
    Command::Say {
        room: None,
        text: text.into(),
    }
}

/// The first word and the rest, with the whitespace between them dropped.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.into())
}

fn no_args(rest: &str, cmd: Command) -> Option<Command> {
    rest.trim().is_empty().then_some(cmd)
}

/// Exactly one room name (a `#` added if missing).
fn one_room(rest: &str) -> Option<String> {
    match split_word(rest) {
        (room, "") if !room.is_empty() => Some(room_name(room)),
        _ => None,
    }
}

/// A room given without `#` gets one.
fn room_name(room: &str) -> String {
    if room.starts_with('#') {
        room.into()
    } else {
        format!("#{room}")
    }
}

/// Whether `s` can stand as a middle argument (no space, no leading `:`).
fn is_word(s: &str) -> bool {
    !s.is_empty() && !s.starts_with(':') && !s.contains(' ')
}

/// IPv6 addresses that start with `:` get a leading `0`, as IRC servers do,
/// so they cannot be mistaken for a trailing argument.
fn wire_ip(ip: IpAddr) -> String {
    let text = ip.to_string();
    if text.starts_with(':') {
        format!("0{text}")
    } else {
        text
    }
}

fn end_with_reason(out: &mut Vec<u8>, reason: Option<&str>) -> std::io::Result<()> {
    match reason {
        Some(r) => writeln!(out, " :{r}"),
        None => writeln!(out),
    }
}

/// Writes `head` + space-separated names, starting a new line of the same
/// keyword before the line limit; `always` writes one line even for no names.
fn write_list(out: &mut Vec<u8>, head: &str, names: &[Arc<str>], always: bool) {
    if names.is_empty() {
        if always {
            out.extend_from_slice(head.as_bytes());
            out.push(b'\n');
        }
        return;
    }
    let mut line_len = 0;
    for name in names {
        if line_len > 0 && line_len + 1 + name.len() > MAX_SERVER_LINE {
            out.push(b'\n');
            line_len = 0;
        }
        if line_len == 0 {
            out.extend_from_slice(head.as_bytes());
            line_len = head.len();
        } else {
            out.push(b' ');
            line_len += 1;
        }
        out.extend_from_slice(name.as_bytes());
        line_len += name.len();
    }
    out.push(b'\n');
}

/// Writes `names` (space-separated) as `head` lines under the line limit,
/// each line a run of whole names; nothing for an empty list.
fn write_name_lines(out: &mut Vec<u8>, head: &str, names: &str) {
    let room = MAX_SERVER_LINE.saturating_sub(head.len()).max(1);
    let mut rest = names.as_bytes();
    while !rest.is_empty() {
        let (line, next) = if rest.len() <= room {
            (rest, &[][..])
        } else {
            // The last space that leaves the line within the limit (names
            // are at most 32 bytes, so there is one).
            match rest[..=room].iter().rposition(|&b| b == b' ') {
                Some(space) => (&rest[..space], &rest[space + 1..]),
                None => rest.split_at(room),
            }
        };
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = next;
    }
}

#[cfg(test)]
mod tests;
