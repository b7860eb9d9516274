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
        let id = self.find_room(room)?;
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
