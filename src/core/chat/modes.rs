//! Room operators and modes (`+o`, `+v`, `+t`, `+n`, `+i`, `+m`, `+s`,
//! `+k`, `+l`, the `+b`/`+e`/`+I` mask lists), mode queries, who may enter
//! and speak, invitations and kicks.

use super::people::wildcard;
use super::*;
use crate::core::command::{MAX_KEY, MAX_LIST, MAX_MASK, MaskList, RoomMode};
use crate::core::model::MaskEntry;

impl Chat {
    /// Puts `name` out of a room; only its operators may. Everyone in the
    /// room, `name` included, hears `Kick`.
    pub(super) fn kick(
        &mut self,
        user: UserId,
        room: &str,
        name: &str,
        reason: Option<String>,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let id = self.find_joined(user, room)?;
        let r = &self.rooms[&id];
        if !r.ops.contains(&user) {
            return Err(Error::new(ErrorCode::NotOperator).about(r.name.clone()));
        }
        let target = self
            .user_names
            .get(&name.to_ascii_lowercase())
            .copied()
            .ok_or_else(|| Error::new(ErrorCode::NoSuchUser).about(name))?;
        if !r.members.contains_key(&target) {
            return Err(Error::new(ErrorCode::NotInRoom).about(name));
        }
        let by = &self.users[&user];
        let event = Event::Kick {
            room: r.name.clone(),
            by: by.name.clone(),
            mask: by.mask.clone(),
            name: self.users[&target].name.clone(),
            reason: reason
                .filter(|r| !r.is_empty())
                .map_or_else(|| by.name.clone(), Arc::from),
        };
        out.push(Action::Fanout {
            to: self.member_conns(id, None),
            event,
        });
        if let Some(r) = self.rooms.get_mut(&id) {
            r.members.remove(&target);
            r.ops.remove(&target);
            r.modes.voiced.remove(&target);
            if r.members.is_empty() {
                r.reset_modes();
            }
        }
        if let Some(u) = self.users.get_mut(&target) {
            u.rooms.retain(|r| *r != id);
            if u.current == Some(id) {
                u.current = u.rooms.last().copied();
            }
            if u.registered {
                let key = u.name.to_ascii_lowercase();
                self.remember_room(&key, id, false, out);
            }
        }
        Ok(())
    }

    /// No changes: answers with the room's modes. Otherwise applies each
    /// change (operators only; anyone may list a mask list) and tells the
    /// room about those that changed something, in one `Mode` event.
    /// A change that fails is answered with its error and the others go on.
    pub(super) fn mode(
        &mut self,
        conn: ConnId,
        user: UserId,
        room: &str,
        changes: Vec<ModeChange>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let id = self.find_visible(user, room)?;
        let r = &self.rooms[&id];
        if changes.is_empty() {
            send(
                out,
                conn,
                Event::RoomModes {
                    room: r.name.clone(),
                    modes: mode_string(r, r.members.contains_key(&user)).into(),
                    created: r.created,
                },
            );
            return Ok(());
        }
        let lists_only = changes.iter().all(|c| matches!(c.mode, RoomMode::List(_)));
        if !lists_only && !r.ops.contains(&user) {
            return Err(Error::new(ErrorCode::NotOperator).about(r.name.clone()));
        }
        let (by, mask) = (
            self.users[&user].name.clone(),
            self.users[&user].mask.clone(),
        );
        let mut done = ModeLine::default();
        for change in changes {
            let add = change.add;
            match self.apply_mode(conn, user, id, change, now, out) {
                Ok(Some((letter, param))) => done.push(add, letter, param),
                Ok(None) => {}
                Err(e) => send(out, conn, with_command(e)),
            }
        }
        if let Some(change) = done.finish() {
            out.push(Action::Fanout {
                to: self.member_conns(id, None),
                event: Event::Mode {
                    room: self.rooms[&id].name.clone(),
                    by,
                    mask,
                    change: change.into(),
                },
            });
        }
        Ok(())
    }

    /// Applies one mode change; returns its letter and parameter if it
    /// changed something.
    fn apply_mode(
        &mut self,
        conn: ConnId,
        user: UserId,
        id: RoomId,
        change: ModeChange,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<Option<Applied>, Error> {
        let add = change.add;
        let Some(r) = self.rooms.get_mut(&id) else {
            return Ok(None);
        };
        let flag = |flag: &mut bool, letter: char| {
            let changed = *flag != add;
            *flag = add;
            changed.then_some((letter, None))
        };
        Ok(match change.mode {
            RoomMode::Op(name) | RoomMode::Voice(name) if name.is_empty() => None,
            RoomMode::Op(ref name) | RoomMode::Voice(ref name) => {
                let target = self
                    .user_names
                    .get(&name.to_ascii_lowercase())
                    .copied()
                    .ok_or_else(|| Error::new(ErrorCode::NoSuchUser).about(name.as_str()))?;
                if !r.members.contains_key(&target) {
                    return Err(Error::new(ErrorCode::NotInRoom).about(name.as_str()));
                }
                let (set, letter) = match change.mode {
                    RoomMode::Op(_) => (&mut r.ops, 'o'),
                    _ => (&mut r.modes.voiced, 'v'),
                };
                let changed = if add {
                    set.insert(target)
                } else {
                    set.remove(&target)
                };
                changed.then(|| (letter, Some(self.users[&target].name.clone())))
            }
            RoomMode::TopicLock => flag(&mut r.topic_lock, 't'),
            RoomMode::NoExternal => flag(&mut r.no_external, 'n'),
            RoomMode::InviteOnly => flag(&mut r.modes.invite_only, 'i'),
            RoomMode::Moderated => flag(&mut r.modes.moderated, 'm'),
            RoomMode::Secret => flag(&mut r.modes.secret, 's'),
            RoomMode::Key(key) if add => {
                if !is_key(&key) {
                    return Err(Error::new(ErrorCode::BadModeParam('k'))
                        .about(r.name.clone())
                        .text(format!(
                            "a key is 1-{MAX_KEY} characters without spaces, commas or controls"
                        )));
                }
                let key: Arc<str> = key.into();
                let changed = r.modes.key.as_ref() != Some(&key);
                r.modes.key = Some(key.clone());
                changed.then_some(('k', Some(key)))
            }
            RoomMode::Key(_) => r.modes.key.take().map(|_| ('k', Some("*".into()))),
            RoomMode::Limit(text) if add => {
                let limit = text.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Error::new(ErrorCode::BadModeParam('l'))
                        .about(r.name.clone())
                        .text("a limit is a whole number from 1")
                })?;
                let changed = r.modes.limit != Some(limit);
                r.modes.limit = Some(limit);
                changed.then(|| ('l', Some(limit.to_string().into())))
            }
            RoomMode::Limit(_) => r.modes.limit.take().map(|_| ('l', None)),
            RoomMode::Mask(list, mask) => {
                let letter = list.letter();
                let mask = normalize_mask(&mask).ok_or_else(|| {
                    Error::new(ErrorCode::BadModeParam(letter))
                        .about(r.name.clone())
                        .text(format!(
                            "a mask is nick!user@host, at most {MAX_MASK} bytes"
                        ))
                })?;
                let entries = match list {
                    MaskList::Ban => &mut r.modes.bans,
                    MaskList::Except => &mut r.modes.excepts,
                    MaskList::Invite => &mut r.modes.invexes,
                };
                let at = entries
                    .iter()
                    .position(|e| e.mask.eq_ignore_ascii_case(&mask));
                match (add, at) {
                    (true, Some(_)) | (false, None) => None,
                    (true, None) if entries.len() >= MAX_LIST => {
                        return Err(Error::new(ErrorCode::ListFull(letter))
                            .about(r.name.clone())
                            .text(format!(
                                "a room's {} list holds at most {MAX_LIST}",
                                list.as_str()
                            )));
                    }
                    (true, None) => {
                        let mask: Arc<str> = mask.into();
                        entries.push(MaskEntry {
                            mask: mask.clone(),
                            by: self.users[&user].mask.clone(),
                            at: now,
                        });
                        Some((letter, Some(mask)))
                    }
                    (false, Some(i)) => Some((letter, Some(entries.remove(i).mask))),
                }
            }
            RoomMode::List(list) => {
                if r.modes.secret && !r.members.contains_key(&user) {
                    return Err(Error::new(ErrorCode::NotInRoom).about(r.name.clone()));
                }
                let entries = match list {
                    MaskList::Ban => &r.modes.bans,
                    MaskList::Except => &r.modes.excepts,
                    MaskList::Invite => &r.modes.invexes,
                };
                let event = Event::MaskList {
                    room: r.name.clone(),
                    list,
                    entries: entries.clone(),
                };
                send(out, conn, event);
                None
            }
        })
    }

    /// Whether `user` may enter room `id` (giving `key`): checked in the
    /// order IRC servers use: ban (unless an exception matches), invite-only
    /// (unless invited or an invite exception matches), key, limit. An
    /// invitation also lets one past a ban and the limit.
    pub(super) fn check_entry(
        &self,
        user: UserId,
        id: RoomId,
        key: Option<&str>,
    ) -> Result<(), Error> {
        let r = &self.rooms[&id];
        if r.members.contains_key(&user) {
            return Ok(());
        }
        let m = &r.modes;
        let invited = m.invited.contains(&user);
        let refuse = |code| Err(Error::new(code).about(r.name.clone()));
        if !invited && self.banned(user, r) {
            return refuse(ErrorCode::Banned);
        }
        if !invited && m.invite_only && !self.matches(user, &m.invexes) {
            return refuse(ErrorCode::InviteOnly);
        }
        if m.key.as_deref().is_some_and(|k| key != Some(k)) {
            return refuse(ErrorCode::BadKey);
        }
        if !invited && m.limit.is_some_and(|l| r.members.len() >= l as usize) {
            return refuse(ErrorCode::RoomFull);
        }
        Ok(())
    }

    /// Whether `user` may speak in room `id`: operators and voiced members
    /// always; others not in a moderated room, nor while banned.
    pub(super) fn check_can_speak(&self, user: UserId, id: RoomId) -> Result<(), Error> {
        let r = &self.rooms[&id];
        if r.ops.contains(&user) || r.modes.voiced.contains(&user) {
            return Ok(());
        }
        if r.modes.moderated {
            return Err(Error::new(ErrorCode::Moderated).about(r.name.clone()));
        }
        if self.banned(user, r) {
            return Err(Error::new(ErrorCode::Banned).about(r.name.clone()));
        }
        Ok(())
    }

    /// A secret room shows its topic and history to members only.
    pub(super) fn check_visible(&self, user: UserId, id: RoomId) -> Result<(), Error> {
        let r = &self.rooms[&id];
        if r.modes.secret && !r.members.contains_key(&user) {
            return Err(Error::new(ErrorCode::NotInRoom).about(r.name.clone()));
        }
        Ok(())
    }

    /// A ban matches `user` and no ban exception does.
    fn banned(&self, user: UserId, r: &Room) -> bool {
        self.matches(user, &r.modes.bans) && !self.matches(user, &r.modes.excepts)
    }

    /// Whether a mask of `list` matches the user's `name!ident@host`, any case.
    fn matches(&self, user: UserId, list: &[MaskEntry]) -> bool {
        if list.is_empty() {
            return false;
        }
        let Some(u) = self.users.get(&user) else {
            return false;
        };
        let mask = u.mask.to_ascii_lowercase();
        list.iter()
            .any(|e| wildcard(&e.mask.to_ascii_lowercase(), &mask))
    }

    /// Invites `name` into a room: the inviter must be in it (and an
    /// operator if it is invite-only). The invitation lets them in once,
    /// past `+i`, `+b` and `+l`; the room keeps at most [`MAX_LIST`], the
    /// oldest dropped first.
    pub(super) fn invite(
        &mut self,
        user: UserId,
        name: &str,
        room: &str,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let id = self.find_room(room)?;
        let r = &self.rooms[&id];
        if !r.members.contains_key(&user) {
            return Err(Error::new(ErrorCode::NotInRoom).about(r.name.clone()));
        }
        if r.modes.invite_only && !r.ops.contains(&user) {
            return Err(Error::new(ErrorCode::NotOperator).about(r.name.clone()));
        }
        let target = self
            .user_names
            .get(&name.to_ascii_lowercase())
            .copied()
            .ok_or_else(|| Error::new(ErrorCode::NoSuchUser).about(name))?;
        let t = &self.users[&target];
        if r.members.contains_key(&target) {
            return Err(Error::new(ErrorCode::AlreadyInRoom).about(t.name.clone()));
        }
        let (room_name, target_name, target_conn) = (r.name.clone(), t.name.clone(), t.conn);
        let u = &self.users[&user];
        let (by, mask, conn) = (u.name.clone(), u.mask.clone(), u.conn);
        if let Some(r) = self.rooms.get_mut(&id)
            && !r.modes.invited.contains(&target)
        {
            if r.modes.invited.len() >= MAX_LIST {
                r.modes.invited.pop_front();
            }
            r.modes.invited.push_back(target);
        }
        send(
            out,
            conn,
            Event::Ok(OkReply::Invite {
                name: target_name.clone(),
                room: room_name.clone(),
            }),
        );
        send(
            out,
            target_conn,
            Event::Invited {
                room: room_name,
                by,
                mask,
                name: target_name,
            },
        );
        Ok(())
    }

    /// The rooms `user` is invited to.
    pub(super) fn invites(&self, conn: ConnId, user: UserId, out: &mut Vec<Action>) {
        let rooms = self
            .rooms
            .values()
            .filter(|r| r.modes.invited.contains(&user))
            .map(|r| r.name.clone())
            .collect();
        send(out, conn, Event::Invites { rooms });
    }
}

/// A mode change that changed something: its letter and parameter.
type Applied = (char, Option<Arc<str>>);

/// A room's modes as IRC shows them: `+iklmnst KEY LIMIT` (the key only
/// to members).
fn mode_string(r: &Room, show_key: bool) -> String {
    let m = &r.modes;
    let mut letters = String::from("+");
    let mut params = String::new();
    let flags = [
        (m.invite_only, 'i'),
        (m.key.is_some(), 'k'),
        (m.limit.is_some(), 'l'),
        (m.moderated, 'm'),
        (r.no_external, 'n'),
        (m.secret, 's'),
        (r.topic_lock, 't'),
    ];
    for (on, letter) in flags {
        if on {
            letters.push(letter);
        }
    }
    if let Some(key) = &m.key {
        params.push(' ');
        params.push_str(if show_key { key } else { "*" });
    }
    if let Some(limit) = m.limit {
        params.push(' ');
        params.push_str(&limit.to_string());
    }
    letters + &params
}

/// The changes of one MODE command as IRC writes them: `+kl-i key 5`.
#[derive(Default)]
struct ModeLine {
    letters: String,
    params: Vec<Arc<str>>,
    sign: Option<bool>,
}

impl ModeLine {
    fn push(&mut self, add: bool, letter: char, param: Option<Arc<str>>) {
        if self.sign != Some(add) {
            self.letters.push(if add { '+' } else { '-' });
            self.sign = Some(add);
        }
        self.letters.push(letter);
        self.params.extend(param);
    }

    fn finish(self) -> Option<String> {
        if self.letters.is_empty() {
            return None;
        }
        let mut line = self.letters;
        for p in self.params {
            line.push(' ');
            line.push_str(&p);
        }
        Some(line)
    }
}

/// A key: 1-[`MAX_KEY`] characters, no spaces, commas (which separate
/// keys in JOIN) or controls, not starting with `:`.
fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= MAX_KEY
        && !key.starts_with(':')
        && !key.chars().any(|c| c == ' ' || c == ',' || c.is_control())
}

/// A mask completed to `nick!user@host` (`bob` → `bob!*@*`, `u@h` →
/// `*!u@h`), or `None` if it is empty, too long or holds spaces, commas or
/// controls.
fn normalize_mask(mask: &str) -> Option<String> {
    let bad = |m: &str| {
        m.is_empty()
            || m.len() > MAX_MASK
            || m.starts_with(':')
            || m.chars().any(|c| c == ' ' || c == ',' || c.is_control())
    };
    if bad(mask) {
        return None;
    }
    let full = match (mask.contains('!'), mask.contains('@')) {
        (false, false) => format!("{mask}!*@*"),
        (false, true) => format!("*!{mask}"),
        (true, false) => format!("{mask}@*"),
        (true, true) => mask.to_string(),
    };
    (!bad(&full)).then_some(full)
}

/// An error from within a mode change that goes on with the others.
fn with_command(mut e: Error) -> Event {
    e.command = Some("mode");
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::command::MaskList::{Ban, Except, Invite};
    use crate::core::tests::{login_at, run_at};

    const T0: Timestamp = Timestamp(1_000_000);

    fn chat() -> Chat {
        Chat::new(CoreConfig {
            lobby: None,
            ..CoreConfig::default()
        })
    }

    fn login(chat: &mut Chat, conn: u64, name: &str) {
        login_at(chat, conn, name, T0);
    }

    fn run(chat: &mut Chat, conn: u64, cmd: Command) -> Vec<Action> {
        run_at(chat, conn, cmd, T0)
    }

    fn join(chat: &mut Chat, conn: u64, room: &str, key: Option<&str>) -> Vec<Action> {
        let cmd = Command::Join {
            room: room.into(),
            key: key.map(Into::into),
        };
        run(chat, conn, cmd)
    }

    fn mode(chat: &mut Chat, conn: u64, room: &str, changes: &[(bool, RoomMode)]) -> Vec<Action> {
        let changes = changes
            .iter()
            .map(|(add, mode)| ModeChange {
                add: *add,
                mode: mode.clone(),
            })
            .collect();
        let cmd = Command::Mode {
            room: room.into(),
            changes,
        };
        run(chat, conn, cmd)
    }

    fn invite(chat: &mut Chat, conn: u64, name: &str, room: &str) -> Vec<Action> {
        let cmd = Command::Invite {
            name: name.into(),
            room: room.into(),
        };
        run(chat, conn, cmd)
    }

    fn say(chat: &mut Chat, conn: u64, room: &str, text: &str) -> Vec<Action> {
        let cmd = Command::Tell {
            target: room.into(),
            text: text.into(),
            extra: None,
        };
        run(chat, conn, cmd)
    }

    /// Events delivered to `conn`.
    fn events(out: &[Action], conn: u64) -> Vec<&Event> {
        out.iter()
            .filter_map(|a| match a {
                Action::Send { to, event } if *to == ConnId(conn) => Some(event),
                Action::Fanout { to, event } if to.contains(&ConnId(conn)) => Some(event),
                _ => None,
            })
            .collect()
    }

    /// The errors delivered to `conn`: code, argument, command.
    fn errors(out: &[Action], conn: u64) -> Vec<(ErrorCode, String, &'static str)> {
        events(out, conn)
            .into_iter()
            .filter_map(|e| match e {
                Event::Error(e) => Some((
                    e.code,
                    e.arg.as_deref().unwrap_or("").to_string(),
                    e.command.unwrap_or(""),
                )),
                _ => None,
            })
            .collect()
    }

    /// The `Mode` changes told to `conn`.
    fn changes(out: &[Action], conn: u64) -> Vec<String> {
        events(out, conn)
            .into_iter()
            .filter_map(|e| match e {
                Event::Mode { change, .. } => Some(change.to_string()),
                _ => None,
            })
            .collect()
    }

    fn joined(out: &[Action], conn: u64) -> bool {
        events(out, conn)
            .iter()
            .any(|e| matches!(e, Event::Ok(OkReply::Join { .. })))
    }

    fn members(chat: &Chat, room: &str) -> Vec<String> {
        chat.room_members(room).unwrap()
    }

    fn modes_of(chat: &mut Chat, conn: u64, room: &str) -> String {
        let out = mode(chat, conn, room, &[]);
        match events(&out, conn)[..] {
            [Event::RoomModes { modes, .. }] => modes.to_string(),
            _ => panic!("{out:?}"),
        }
    }

    /// alice (conn 1) runs `#r`; bob (2) and carol (3) are online.
    fn room_with_op() -> Chat {
        let mut chat = chat();
        login(&mut chat, 1, "alice");
        login(&mut chat, 2, "bob");
        login(&mut chat, 3, "carol");
        assert!(joined(&join(&mut chat, 1, "#r", None), 1));
        chat
    }

    #[test]
    fn invite_only_needs_an_invitation_used_once() {
        let mut chat = room_with_op();
        let out = mode(&mut chat, 1, "#r", &[(true, RoomMode::InviteOnly)]);
        assert_eq!(changes(&out, 1), ["+i"]);
        let out = join(&mut chat, 2, "#r", None);
        assert_eq!(
            errors(&out, 2),
            [(ErrorCode::InviteOnly, "#r".into(), "join")]
        );
        assert_eq!(members(&chat, "#r"), ["alice"]);

        let out = invite(&mut chat, 1, "BOB", "#R");
        assert_eq!(
            events(&out, 1),
            [&Event::Ok(OkReply::Invite {
                name: "bob".into(),
                room: "#r".into()
            })]
        );
        let [
            Event::Invited {
                room,
                by,
                mask,
                name,
            },
        ] = events(&out, 2)[..]
        else {
            panic!("{out:?}");
        };
        assert_eq!((&**room, &**by, &**name), ("#r", "alice", "bob"));
        assert_eq!(&**mask, "alice!alice@192.0.2.7");
        // Nobody else hears of it.
        assert!(events(&out, 3).is_empty());

        let out = run(&mut chat, 2, Command::Invites);
        assert_eq!(
            events(&out, 2),
            [&Event::Invites {
                rooms: vec!["#r".into()]
            }]
        );
        assert!(joined(&join(&mut chat, 2, "#r", None), 2));
        let out = run(&mut chat, 2, Command::Invites);
        assert_eq!(events(&out, 2), [&Event::Invites { rooms: vec![] }]);

        // The invitation is used up.
        run(
            &mut chat,
            2,
            Command::Leave {
                room: "#r".into(),
                reason: None,
            },
        );
        let out = join(&mut chat, 2, "#r", None);
        assert_eq!(
            errors(&out, 2),
            [(ErrorCode::InviteOnly, "#r".into(), "join")]
        );
    }

    #[test]
    fn invite_errors_change_nothing() {
        let mut chat = room_with_op();
        let nobody = invite(&mut chat, 1, "nobody", "#r");
        assert_eq!(
            errors(&nobody, 1),
            [(ErrorCode::NoSuchUser, "nobody".into(), "invite")]
        );
        let no_room = invite(&mut chat, 1, "bob", "#nowhere");
        assert_eq!(
            errors(&no_room, 1),
            [(ErrorCode::NoSuchRoom, "#nowhere".into(), "invite")]
        );
        let outsider = invite(&mut chat, 2, "carol", "#r");
        assert_eq!(
            errors(&outsider, 2),
            [(ErrorCode::NotInRoom, "#r".into(), "invite")]
        );
        let inside = invite(&mut chat, 1, "alice", "#r");
        assert_eq!(
            errors(&inside, 1),
            [(ErrorCode::AlreadyInRoom, "alice".into(), "invite")]
        );
        for out in [&nobody, &no_room, &inside] {
            assert!(events(out, 2).is_empty() && events(out, 3).is_empty());
        }
        assert!(events(&outsider, 3).is_empty());
        assert!(chat.rooms.values().all(|r| r.modes.invited.is_empty()));

        // Anyone in a room may invite, but only operators into a +i one.
        assert!(joined(&join(&mut chat, 2, "#r", None), 2));
        mode(&mut chat, 1, "#r", &[(true, RoomMode::InviteOnly)]);
        let out = invite(&mut chat, 2, "carol", "#r");
        assert_eq!(
            errors(&out, 2),
            [(ErrorCode::NotOperator, "#r".into(), "invite")]
        );
        assert!(events(&out, 3).is_empty());
        mode(&mut chat, 1, "#r", &[(false, RoomMode::InviteOnly)]);
        let out = invite(&mut chat, 2, "carol", "#r");
        assert!(errors(&out, 2).is_empty());
        assert_eq!(events(&out, 3).len(), 1);
    }

    #[test]
    fn pending_invitations_are_bounded() {
        let mut chat = room_with_op();
        for i in 0..MAX_LIST + 5 {
            login(&mut chat, 10 + i as u64, &format!("u{i}"));
            invite(&mut chat, 1, &format!("u{i}"), "#r");
        }
        let invited = &chat.rooms.values().next().unwrap().modes.invited;
        assert_eq!(invited.len(), MAX_LIST);
        // The oldest went first.
        let out = join(&mut chat, 10, "#r", None);
        assert!(joined(&out, 10));
        mode(&mut chat, 1, "#r", &[(true, RoomMode::InviteOnly)]);
        assert!(!joined(&join(&mut chat, 11, "#r", None), 11));
        assert!(joined(&join(&mut chat, 15, "#r", None), 15));
    }

    #[test]
    fn a_key_is_checked_and_bad_keys_are_refused() {
        let mut chat = room_with_op();
        let long = "k".repeat(MAX_KEY + 1);
        for bad in [
            "",
            " ",
            "two words",
            "a,b",
            ":colon",
            "tab\t",
            long.as_str(),
        ] {
            let out = mode(&mut chat, 1, "#r", &[(true, RoomMode::Key(bad.into()))]);
            assert_eq!(
                errors(&out, 1),
                [(ErrorCode::BadModeParam('k'), "#r".into(), "mode")],
                "{bad:?}"
            );
            assert!(changes(&out, 1).is_empty());
            assert_eq!(modes_of(&mut chat, 1, "#r"), "+n");
        }
        let out = mode(&mut chat, 1, "#r", &[(true, RoomMode::Key("beer".into()))]);
        assert_eq!(changes(&out, 1), ["+k beer"]);
        assert_eq!(modes_of(&mut chat, 1, "#r"), "+kn beer");
        // Outsiders see that there is a key, not the key.
        assert_eq!(modes_of(&mut chat, 2, "#r"), "+kn *");
        // The same key again changes nothing.
        let out = mode(&mut chat, 1, "#r", &[(true, RoomMode::Key("beer".into()))]);
        assert!(changes(&out, 1).is_empty());

        for key in [None, Some("bees"), Some("BEER")] {
            let out = join(&mut chat, 2, "#r", key);
            assert_eq!(errors(&out, 2), [(ErrorCode::BadKey, "#r".into(), "join")]);
        }
        assert!(joined(&join(&mut chat, 2, "#r", Some("beer")), 2));

        let out = mode(&mut chat, 1, "#r", &[(false, RoomMode::Key(String::new()))]);
        assert_eq!(changes(&out, 1), ["-k *"]);
        assert!(joined(&join(&mut chat, 3, "#r", None), 3));
    }

    #[test]
    fn a_limit_caps_members_and_bad_limits_are_refused() {
        let mut chat = room_with_op();
        let huge = (u64::from(u32::MAX) + 1).to_string();
        for bad in ["0", "-1", "abc", "", "1.5", huge.as_str()] {
            let out = mode(&mut chat, 1, "#r", &[(true, RoomMode::Limit(bad.into()))]);
            assert_eq!(
                errors(&out, 1),
                [(ErrorCode::BadModeParam('l'), "#r".into(), "mode")],
                "{bad:?}"
            );
            assert!(changes(&out, 1).is_empty());
            assert_eq!(modes_of(&mut chat, 1, "#r"), "+n");
        }
        let out = mode(&mut chat, 1, "#r", &[(true, RoomMode::Limit("2".into()))]);
        assert_eq!(changes(&out, 1), ["+l 2"]);
        assert_eq!(modes_of(&mut chat, 1, "#r"), "+ln 2");
        assert!(joined(&join(&mut chat, 2, "#r", None), 2));
        let out = join(&mut chat, 3, "#r", None);
        assert_eq!(
            errors(&out, 3),
            [(ErrorCode::RoomFull, "#r".into(), "join")]
        );
        assert_eq!(members(&chat, "#r"), ["alice", "bob"]);

        // An invitation lets one past the limit.
        invite(&mut chat, 1, "carol", "#r");
        assert!(joined(&join(&mut chat, 3, "#r", None), 3));

        let out = mode(
            &mut chat,
            1,
            "#r",
            &[(false, RoomMode::Limit(String::new()))],
        );
        assert_eq!(changes(&out, 1), ["-l"]);
        assert_eq!(modes_of(&mut chat, 1, "#r"), "+n");
    }

    #[test]
    fn moderated_rooms_hear_only_operators_and_voices() {
        let mut chat = room_with_op();
        join(&mut chat, 2, "#r", None);
        let out = mode(&mut chat, 1, "#r", &[(true, RoomMode::Moderated)]);
        assert_eq!(changes(&out, 2), ["+m"]);
        let out = say(&mut chat, 2, "#r", "hi");
        assert_eq!(
            errors(&out, 2),
            [(ErrorCode::Moderated, "#r".into(), "tell")]
        );
        assert!(events(&out, 1).is_empty());
        // The line protocol's `/say` too.
        let cmd = Command::Say {
            room: Some("#r".into()),
            text: "hi".into(),
        };
        let out = run(&mut chat, 2, cmd);
        assert_eq!(
            errors(&out, 2),
            [(ErrorCode::Moderated, "#r".into(), "say")]
        );
        assert!(events(&out, 1).is_empty());
        assert_eq!(events(&say(&mut chat, 1, "#r", "op"), 2).len(), 1);

        let out = mode(&mut chat, 1, "#r", &[(true, RoomMode::Voice("Bob".into()))]);
        assert_eq!(changes(&out, 1), ["+v bob"]);
        assert_eq!(events(&say(&mut chat, 2, "#r", "hi"), 1).len(), 1);
        let out = run(&mut chat, 1, Command::Names { room: "#r".into() });
        let [Event::Members { ops, voices, .. }] = events(&out, 1)[..] else {
            panic!("{out:?}");
        };
        assert_eq!(
            (&ops[..], &voices[..]),
            (&[true, false][..], &[false, true][..])
        );

        // Voice goes with leaving.
        run(
            &mut chat,
            2,
            Command::Leave {
                room: "#r".into(),
                reason: None,
            },
        );
        join(&mut chat, 2, "#r", None);
        let out = say(&mut chat, 2, "#r", "hi");
        assert_eq!(
            errors(&out, 2),
            [(ErrorCode::Moderated, "#r".into(), "tell")]
        );

        // Voicing someone not there fails and changes nothing.
        let out = mode(
            &mut chat,
            1,
            "#r",
            &[(true, RoomMode::Voice("carol".into()))],
        );
        assert_eq!(
            errors(&out, 1),
            [(ErrorCode::NotInRoom, "carol".into(), "mode")]
        );
        let out = mode(
            &mut chat,
            1,
            "#r",
            &[(true, RoomMode::Voice("nobody".into()))],
        );
        assert_eq!(
            errors(&out, 1),
            [(ErrorCode::NoSuchUser, "nobody".into(), "mode")]
        );
        assert!(changes(&out, 1).is_empty());
    }

    #[test]
    fn secret_rooms_hide_from_non_members() {
        let mut chat = room_with_op();
        join(&mut chat, 1, "#open", None);
        mode(&mut chat, 1, "#r", &[(true, RoomMode::Secret)]);
        let listed = |chat: &mut Chat, conn| {
            let out = run(chat, conn, Command::Rooms);
            events(&out, conn)
                .iter()
                .filter_map(|e| match e {
                    Event::Room { name, .. } => Some(name.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(listed(&mut chat, 1), ["#r", "#open"]);
        assert_eq!(listed(&mut chat, 2), ["#open"]);

        let out = run(&mut chat, 2, Command::Names { room: "#r".into() });
        assert_eq!(
            errors(&out, 2),
            [(ErrorCode::NoSuchRoom, "#r".into(), "names")]
        );
        let out = run(&mut chat, 2, Command::Who { mask: "#r".into() });
        assert!(matches!(events(&out, 2)[..], [Event::Who { rows, .. }] if rows.is_empty()));
        let out = run(
            &mut chat,
            2,
            Command::Whois {
                name: "alice".into(),
            },
        );
        let [Event::Whois(info)] = events(&out, 2)[..] else {
            panic!("{out:?}");
        };
        assert_eq!(info.rooms, [("#open".into(), true)]);

        for cmd in [
            Command::Topic {
                room: "#r".into(),
                text: None,
            },
            Command::History {
                room: "#r".into(),
                count: None,
            },
        ] {
            let name = cmd.name();
            let out = run(&mut chat, 2, cmd);
            assert_eq!(errors(&out, 2), [(ErrorCode::NotInRoom, "#r".into(), name)]);
        }

        join(&mut chat, 2, "#r", None);
        assert_eq!(listed(&mut chat, 2), ["#r", "#open"]);
        let out = run(&mut chat, 2, Command::Names { room: "#r".into() });
        assert!(matches!(
            events(&out, 2)[..],
            [Event::Members { secret: true, .. }]
        ));
    }

    #[test]
    fn bans_keep_out_and_silence_unless_excepted() {
        let mut chat = room_with_op();
        join(&mut chat, 3, "#r", None);
        let ban = |m: &str| (true, RoomMode::Mask(Ban, m.into()));
        let out = mode(&mut chat, 1, "#r", &[ban("BOB"), ban("carol!*@192.0.2.*")]);
        assert_eq!(changes(&out, 1), ["+bb BOB!*@* carol!*@192.0.2.*"]);
        let out = join(&mut chat, 2, "#r", None);
        assert_eq!(errors(&out, 2), [(ErrorCode::Banned, "#r".into(), "join")]);
        // A banned member stays but cannot speak.
        let out = say(&mut chat, 3, "#r", "hi");
        assert_eq!(errors(&out, 3), [(ErrorCode::Banned, "#r".into(), "tell")]);
        assert!(events(&out, 1).is_empty());

        let out = mode(
            &mut chat,
            1,
            "#r",
            &[(true, RoomMode::Mask(Except, "*!*@*".into()))],
        );
        assert_eq!(changes(&out, 1), ["+e *!*@*"]);
        assert!(joined(&join(&mut chat, 2, "#r", None), 2));
        assert!(errors(&say(&mut chat, 3, "#r", "hi"), 3).is_empty());

        // Removal ignores case; removing what is not there changes nothing.
        let out = mode(
            &mut chat,
            1,
            "#r",
            &[
                (false, RoomMode::Mask(Ban, "bob!*@*".into())),
                (false, RoomMode::Mask(Ban, "dave".into())),
            ],
        );
        assert_eq!(changes(&out, 1), ["-b BOB!*@*"]);

        let out = mode(&mut chat, 2, "#r", &[(true, RoomMode::List(Ban))]);
        let [
            Event::MaskList {
                room,
                list,
                entries,
            },
        ] = events(&out, 2)[..]
        else {
            panic!("{out:?}");
        };
        assert_eq!((&**room, *list, entries.len()), ("#r", Ban, 1));
        assert_eq!(&*entries[0].mask, "carol!*@192.0.2.*");
        assert_eq!(&*entries[0].by, "alice!alice@192.0.2.7");
        assert_eq!(entries[0].at, T0);
    }

    #[test]
    fn mask_lists_are_bounded_and_masks_checked() {
        let mut chat = room_with_op();
        let long = "x".repeat(MAX_MASK);
        for bad in ["", "a b", "a,b", ":x", long.as_str()] {
            let out = mode(
                &mut chat,
                1,
                "#r",
                &[(true, RoomMode::Mask(Invite, bad.into()))],
            );
            assert_eq!(
                errors(&out, 1),
                [(ErrorCode::BadModeParam('I'), "#r".into(), "mode")],
                "{bad:?}"
            );
        }
        for i in 0..MAX_LIST {
            let out = mode(
                &mut chat,
                1,
                "#r",
                &[(true, RoomMode::Mask(Ban, format!("u{i}")))],
            );
            assert_eq!(changes(&out, 1).len(), 1);
        }
        let out = mode(
            &mut chat,
            1,
            "#r",
            &[(true, RoomMode::Mask(Ban, "one-more".into()))],
        );
        assert_eq!(
            errors(&out, 1),
            [(ErrorCode::ListFull('b'), "#r".into(), "mode")]
        );
        assert!(changes(&out, 1).is_empty());
        assert_eq!(
            chat.rooms.values().next().unwrap().modes.bans.len(),
            MAX_LIST
        );
    }

    #[test]
    fn invite_exceptions_open_invite_only_rooms() {
        let mut chat = room_with_op();
        let out = mode(
            &mut chat,
            1,
            "#r",
            &[
                (true, RoomMode::InviteOnly),
                (true, RoomMode::Mask(Invite, "bob!*@*".into())),
            ],
        );
        assert_eq!(changes(&out, 1), ["+iI bob!*@*"]);
        assert!(joined(&join(&mut chat, 2, "#r", None), 2));
        let out = join(&mut chat, 3, "#r", None);
        assert_eq!(
            errors(&out, 3),
            [(ErrorCode::InviteOnly, "#r".into(), "join")]
        );
    }

    #[test]
    fn entry_is_checked_ban_invite_key_limit() {
        let mut chat = room_with_op();
        mode(
            &mut chat,
            1,
            "#r",
            &[
                (true, RoomMode::Mask(Ban, "bob".into())),
                (true, RoomMode::InviteOnly),
                (true, RoomMode::Key("k".into())),
                (true, RoomMode::Limit("1".into())),
            ],
        );
        let code = |chat: &mut Chat, key| errors(&join(chat, 2, "#r", key), 2)[0].0;
        assert_eq!(code(&mut chat, None), ErrorCode::Banned);
        mode(
            &mut chat,
            1,
            "#r",
            &[(true, RoomMode::Mask(Except, "bob".into()))],
        );
        assert_eq!(code(&mut chat, None), ErrorCode::InviteOnly);
        mode(
            &mut chat,
            1,
            "#r",
            &[(true, RoomMode::Mask(Invite, "bob".into()))],
        );
        assert_eq!(code(&mut chat, None), ErrorCode::BadKey);
        assert_eq!(code(&mut chat, Some("k")), ErrorCode::RoomFull);
        // An invitation passes all but the key.
        invite(&mut chat, 1, "bob", "#r");
        assert_eq!(code(&mut chat, None), ErrorCode::BadKey);
        assert!(joined(&join(&mut chat, 2, "#r", Some("k")), 2));
    }

    #[test]
    fn only_operators_change_modes_and_anyone_lists() {
        let mut chat = room_with_op();
        join(&mut chat, 2, "#r", None);
        let out = mode(
            &mut chat,
            2,
            "#r",
            &[(true, RoomMode::Secret), (true, RoomMode::List(Ban))],
        );
        assert_eq!(
            errors(&out, 2),
            [(ErrorCode::NotOperator, "#r".into(), "mode")]
        );
        assert_eq!(modes_of(&mut chat, 2, "#r"), "+n");
        let out = mode(&mut chat, 2, "#r", &[(true, RoomMode::List(Except))]);
        assert!(matches!(
            events(&out, 2)[..],
            [Event::MaskList { list: Except, .. }]
        ));
    }

    #[test]
    fn one_command_is_one_mode_line_and_the_query_shows_all() {
        let mut chat = room_with_op();
        join(&mut chat, 2, "#r", None);
        let out = mode(
            &mut chat,
            1,
            "#r",
            &[
                (true, RoomMode::InviteOnly),
                (true, RoomMode::Key("sesame".into())),
                (true, RoomMode::Limit("05".into())),
                (true, RoomMode::Moderated),
                (true, RoomMode::Secret),
                (true, RoomMode::TopicLock),
                (true, RoomMode::NoExternal),
                (false, RoomMode::Op("bob".into())),
            ],
        );
        assert_eq!(changes(&out, 2), ["+iklmst sesame 5"]);
        assert_eq!(modes_of(&mut chat, 2, "#r"), "+iklmnst sesame 5");
        let out = mode(
            &mut chat,
            1,
            "#r",
            &[
                (false, RoomMode::InviteOnly),
                (false, RoomMode::Key("whatever".into())),
                (true, RoomMode::Op("bob".into())),
                (false, RoomMode::NoExternal),
            ],
        );
        assert_eq!(changes(&out, 2), ["-ik+o-n * bob"]);
        assert_eq!(modes_of(&mut chat, 2, "#r"), "+lmst 5");
    }

    #[test]
    fn an_emptied_room_forgets_its_modes() {
        let mut chat = room_with_op();
        mode(
            &mut chat,
            1,
            "#r",
            &[
                (true, RoomMode::InviteOnly),
                (true, RoomMode::Key("k".into())),
                (true, RoomMode::Mask(Ban, "bob".into())),
                (true, RoomMode::TopicLock),
            ],
        );
        invite(&mut chat, 1, "carol", "#r");
        run(
            &mut chat,
            1,
            Command::Leave {
                room: "#r".into(),
                reason: None,
            },
        );
        assert!(joined(&join(&mut chat, 2, "#r", None), 2));
        assert_eq!(modes_of(&mut chat, 2, "#r"), "+n");
        let r = chat.rooms.values().next().unwrap();
        assert!(r.modes.invited.is_empty() && r.ops.contains(&UserId(2)));
    }

    #[test]
    fn line_users_get_error_codes_and_lines() {
        use crate::dialect::line::handle_line;
        let mut chat = room_with_op();
        mode(&mut chat, 1, "#r", &[(true, RoomMode::Key("beer".into()))]);
        assert_eq!(
            handle_line(&mut chat, ConnId(2), "/join r", T0),
            [(
                ConnId(2),
                "ERR bad-key #r :that room needs the right key: /join ROOM KEY".into()
            )]
        );
        let out = handle_line(&mut chat, ConnId(2), "/join r beer", T0);
        assert!(out.contains(&(ConnId(2), "OK join #r".into())));
        assert_eq!(
            handle_line(&mut chat, ConnId(2), "/invite carol #r", T0),
            [
                (ConnId(2), "OK invite carol #r".into()),
                (ConnId(3), "INVITE #r bob".into())
            ]
        );
        mode(&mut chat, 1, "#r", &[(true, RoomMode::Moderated)]);
        assert_eq!(
            handle_line(&mut chat, ConnId(2), "/say r hi", T0),
            [(
                ConnId(2),
                "ERR moderated #r :only operators and voiced members speak in that room".into()
            )]
        );
    }
}
