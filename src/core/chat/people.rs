//! Users as IRC sees them: messages to any target, renames, away messages,
//! and the lookups (WHO, WHOIS, ISON, USERHOST, LUSERS).

use super::*;

/// The most rows one WHO answer holds.
const MAX_WHO_ROWS: usize = 1000;

/// The most names one USERHOST looks up (RFC 2812).
const MAX_USERHOST: usize = 5;

impl Chat {
    /// A message to a room (`#name`) or a user. A room that is not `+n`
    /// takes messages from outside.
    pub(super) fn tell(
        &mut self,
        user: UserId,
        target: &str,
        text: String,
        extra: Option<Extra>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        if !target.starts_with('#') {
            return self.direct(user, target, text, extra, now, out);
        }
        let id = self.find_visible(user, target)?;
        let room = &self.rooms[&id];
        if room.no_external && !room.members.contains_key(&user) {
            return Err(Error::new(ErrorCode::NotInRoom).about(room.name.clone()));
        }
        self.check_can_speak(user, id)?;
        self.say(user, id, text, extra, now, out);
        Ok(())
    }

    /// A guest takes another free name; the user and everyone sharing a
    /// room with them hear `Nick`.
    pub(super) fn rename(
        &mut self,
        conn: ConnId,
        user: UserId,
        name: &str,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        if !is_user_name(name) {
            return Err(Error::new(ErrorCode::BadName).about(name));
        }
        let u = &self.users[&user];
        if *u.name == *name {
            return Ok(());
        }
        let (old_key, key) = (u.name.to_ascii_lowercase(), name.to_ascii_lowercase());
        if key != old_key
            && (self.user_names.contains_key(&key) || self.accounts.contains_key(&key))
        {
            return Err(Error::new(ErrorCode::NameTaken).about(name));
        }
        if u.registered {
            return Err(Error::new(ErrorCode::CannotRename).about(u.name.clone()));
        }
        let mut to = vec![conn];
        for id in &u.rooms {
            let room = &self.rooms[id];
            if self.announces(room.members.len()) {
                to.extend(room.members.values().copied());
            }
        }
        to.sort_unstable();
        to.dedup();
        if key != old_key {
            self.whowas.push(whowas::row(u, now));
        }
        self.user_names.remove(&old_key);
        self.user_names.insert(key.clone(), user);
        let Some(u) = self.users.get_mut(&user) else {
            return Ok(());
        };
        let new: Arc<str> = name.into();
        let old = std::mem::replace(&mut u.name, new.clone());
        self.online.rename(&old, &new);
        let event = Event::Nick {
            old: old.clone(),
            mask: std::mem::replace(&mut u.mask, mask(&new, &u.ident, u.ip)),
            new,
        };
        out.push(Action::Fanout { to, event });
        if key != old_key {
            self.monitor_offline(&old_key, &old, out);
            self.monitor_online(&key, out);
        }
        Ok(())
    }

    /// Sets (non-empty text) or clears the away message. A change is told
    /// to those sharing a room and to those watching the name.
    pub(super) fn away(
        &mut self,
        conn: ConnId,
        user: UserId,
        text: Option<String>,
        out: &mut Vec<Action>,
    ) {
        let text: Option<Arc<str>> = text.filter(|t| !t.is_empty()).map(Arc::from);
        let away = text.is_some();
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        let changed = u.away != text;
        u.away = text.clone();
        let (name, mask) = (u.name.clone(), u.mask.clone());
        send(out, conn, Event::Ok(OkReply::Away { away }));
        if changed {
            let event = |monitor| Event::AwayChanged {
                name: name.clone(),
                mask: mask.clone(),
                text: text.clone(),
                monitor,
            };
            self.tell_peers_and_watchers(user, false, event, out);
        }
    }

    /// Changes the real name (1 to [`MAX_REALNAME`] bytes, no control
    /// characters); the user, those sharing a room and those watching the
    /// name are told.
    pub(super) fn set_realname(
        &mut self,
        user: UserId,
        realname: String,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        if realname.is_empty()
            || realname.len() > MAX_REALNAME
            || realname.chars().any(char::is_control)
        {
            return Err(Error::new(ErrorCode::BadArgs)
                .about("realname")
                .text(format!(
                    "a real name is 1-{MAX_REALNAME} bytes without control characters"
                )));
        }
        let Some(u) = self.users.get_mut(&user) else {
            return Ok(());
        };
        let realname: Arc<str> = realname.into();
        u.realname = realname.clone();
        let (name, mask) = (u.name.clone(), u.mask.clone());
        let event = |monitor| Event::RealName {
            name: name.clone(),
            mask: mask.clone(),
            realname: realname.clone(),
            monitor,
        };
        self.tell_peers_and_watchers(user, true, event, out);
        Ok(())
    }

    /// Everything known of one online user; secret rooms only show to
    /// their members.
    pub(super) fn whois(
        &self,
        conn: ConnId,
        me: UserId,
        name: &str,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let u = self
            .online(name)
            .ok_or_else(|| Error::new(ErrorCode::NoSuchUser).about(name))?;
        let mut info = self.info(u);
        let hidden = |room: &Arc<str>| {
            self.room_names
                .get(&room.to_ascii_lowercase())
                .and_then(|id| self.rooms.get(id))
                .is_some_and(|r| r.modes.secret && !r.members.contains_key(&me))
        };
        info.rooms.retain(|(room, _)| !hidden(room));
        send(out, conn, Event::Whois(Box::new(info)));
        Ok(())
    }

    /// Users matching `mask`: a room's members, or users whose name or
    /// `name!ident@host` matches a `*`/`?` pattern, case-insensitively
    /// (`*` alone: the users sharing a room with the asker).
    /// Invisible users (`+i`) are left out for those who share no room with
    /// them, unless the mask is exactly their name.
    pub(super) fn who(&self, conn: ConnId, me: UserId, mask: String, out: &mut Vec<Action>) {
        let mut rows = Vec::new();
        if mask.starts_with('#') {
            if let Ok(id) = self.find_room(&mask) {
                let room = &self.rooms[&id];
                let inside = room.members.contains_key(&me);
                let visible = !room.modes.secret || inside;
                for (member, _) in room.members.iter() {
                    if rows.len() >= MAX_WHO_ROWS || !visible {
                        break;
                    }
                    if let Some(u) = self.users.get(member).filter(|u| inside || !u.invisible) {
                        let op = room.ops.contains(member);
                        let mut row = who_row(u, Some(room.name.clone()), op);
                        row.voice = room.modes.voiced.contains(member);
                        rows.push(row);
                    }
                }
            }
        } else {
            let pattern = mask.to_ascii_lowercase();
            // `*` and `0` mean "everyone I can see": those sharing a room
            // with me, and me.
            let all = pattern == "*" || pattern == "0";
            let mine = self
                .users
                .get(&me)
                .map(|u| u.rooms.as_slice())
                .unwrap_or(&[]);
            for (id, u) in &self.users {
                if rows.len() >= MAX_WHO_ROWS {
                    break;
                }
                let near = *id == me || u.rooms.iter().any(|r| mine.contains(r));
                let exact = pattern == u.name.to_ascii_lowercase();
                let hit = if all {
                    near
                } else {
                    exact
                        || wildcard(&pattern, &u.name.to_ascii_lowercase())
                        || wildcard(&pattern, &u.mask.to_ascii_lowercase())
                };
                let hidden = u.invisible && !exact && !near;
                if hit && !hidden {
                    rows.push(who_row(u, None, false));
                }
            }
        }
        send(
            out,
            conn,
            Event::Who {
                mask: mask.into(),
                rows,
            },
        );
    }

    /// Which of `names` are online.
    pub(super) fn ison(&self, conn: ConnId, names: &[String], out: &mut Vec<Action>) {
        let names = names
            .iter()
            .filter_map(|n| self.online(n).map(|u| u.name.clone()))
            .collect();
        send(out, conn, Event::Ison { names });
    }

    /// Masks and away state of up to five users.
    pub(super) fn userhost(&self, conn: ConnId, names: &[String], out: &mut Vec<Action>) {
        let rows = names
            .iter()
            .take(MAX_USERHOST)
            .filter_map(|n| self.online(n).map(|u| self.info(u)))
            .collect();
        send(out, conn, Event::Userhost { rows });
    }

    /// Server-wide counts.
    pub(super) fn lusers(&self, conn: ConnId, out: &mut Vec<Action>) {
        send(
            out,
            conn,
            Event::Lusers {
                users: self.users.len(),
                invisible: self.invisible_count,
                opers: self.oper_count,
                unknown: self.conns.len().saturating_sub(self.users.len()),
                rooms: self.rooms.len(),
                max_users: self.max_users,
            },
        );
    }

    /// The online user of that name (any case).
    pub(super) fn online(&self, name: &str) -> Option<&User> {
        self.user_names
            .get(&name.to_ascii_lowercase())
            .and_then(|id| self.users.get(id))
    }

    fn info(&self, u: &User) -> UserInfo {
        let id = self.user_names.get(&u.name.to_ascii_lowercase());
        UserInfo {
            name: u.name.clone(),
            ident: u.ident.clone(),
            host: u.ip.to_string().into(),
            realname: u.realname.clone(),
            away: u.away.clone(),
            registered: u.registered,
            oper: u.oper,
            bot: u.bot,
            rooms: u
                .rooms
                .iter()
                .map(|r| {
                    let room = &self.rooms[r];
                    let op = id.is_some_and(|id| room.ops.contains(id));
                    (room.name.clone(), op)
                })
                .collect(),
            since: u.logged_in_at,
        }
    }
}

fn who_row(u: &User, room: Option<Arc<str>>, op: bool) -> WhoRow {
    WhoRow {
        room,
        name: u.name.clone(),
        ident: u.ident.clone(),
        host: u.ip.to_string().into(),
        realname: u.realname.clone(),
        away: u.away.is_some(),
        op,
        registered: u.registered,
        voice: false,
        oper: u.oper,
        bot: u.bot,
    }
}

/// Glob matching with `*` (any run) and `?` (one character), iterative and
/// linear in practice (the classic backtrack-to-last-star algorithm).
pub(crate) fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_like_irc_masks() {
        assert!(wildcard("*", ""));
        assert!(wildcard("cool*", "coolnick"));
        assert!(wildcard("c?olnick", "coolnick"));
        assert!(wildcard("*!*@127.0.0.1", "bob!bob@127.0.0.1"));
        assert!(!wildcard("cool", "coolnick"));
        assert!(!wildcard("*x", "coolnick"));
        assert!(wildcard("a*b*c", "aXXbYYc"));
    }
}
