//! Room operators and modes: `+o`, `+t`, `+n`, mode queries and kicks.

use super::*;
use crate::core::command::RoomMode;

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
            r.reset_if_empty();
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
    /// change (operators only) and tells the room about those that changed
    /// something.
    pub(super) fn mode(
        &mut self,
        conn: ConnId,
        user: UserId,
        room: &str,
        changes: Vec<ModeChange>,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let id = self.find_visible(user, room)?;
        let r = &self.rooms[&id];
        if changes.is_empty() {
            let mut modes = String::from("+");
            modes.push_str(if r.no_external { "n" } else { "" });
            modes.push_str(if r.topic_lock { "t" } else { "" });
            send(
                out,
                conn,
                Event::RoomModes {
                    room: r.name.clone(),
                    modes: modes.into(),
                    created: r.created,
                },
            );
            return Ok(());
        }
        if !r.ops.contains(&user) {
            return Err(Error::new(ErrorCode::NotOperator).about(r.name.clone()));
        }
        let (by, mask) = (
            self.users[&user].name.clone(),
            self.users[&user].mask.clone(),
        );
        for change in changes {
            let sign = if change.add { '+' } else { '-' };
            let done = match change.mode {
                RoomMode::Op(name) => {
                    let target = self.user_names.get(&name.to_ascii_lowercase()).copied();
                    let Some(target) = target else {
                        send(out, conn, no_such_user(&name));
                        continue;
                    };
                    let Some(r) = self.rooms.get_mut(&id) else {
                        continue;
                    };
                    if !r.members.contains_key(&target) {
                        let e = Error::new(ErrorCode::NotInRoom).about(name);
                        send(out, conn, with_command(e));
                        continue;
                    }
                    let changed = if change.add {
                        r.ops.insert(target)
                    } else {
                        r.ops.remove(&target)
                    };
                    changed.then(|| format!("{sign}o {}", self.users[&target].name))
                }
                RoomMode::TopicLock | RoomMode::NoExternal => {
                    let Some(r) = self.rooms.get_mut(&id) else {
                        continue;
                    };
                    let (flag, letter) = match change.mode {
                        RoomMode::TopicLock => (&mut r.topic_lock, 't'),
                        _ => (&mut r.no_external, 'n'),
                    };
                    let changed = *flag != change.add;
                    *flag = change.add;
                    changed.then(|| format!("{sign}{letter}"))
                }
            };
            if let Some(change) = done {
                out.push(Action::Fanout {
                    to: self.member_conns(id, None),
                    event: Event::Mode {
                        room: self.rooms[&id].name.clone(),
                        by: by.clone(),
                        mask: mask.clone(),
                        change: change.into(),
                    },
                });
            }
        }
        Ok(())
    }
}

/// An error from within a mode change that goes on with the others.
fn with_command(mut e: Error) -> Event {
    e.command = Some("mode");
    e.into()
}

fn no_such_user(name: &str) -> Event {
    with_command(Error::new(ErrorCode::NoSuchUser).about(name))
}
