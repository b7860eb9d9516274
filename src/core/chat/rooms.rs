//! Rooms and messages: finding, creating, joining and leaving rooms, saying
//! things, direct messages, history replay.

use super::*;

impl Chat {
    /// Looks a room up by name (any case).
    pub(super) fn find_room(&self, name: &str) -> Result<RoomId, Error> {
        if !is_room_name(name) {
            return Err(Error::new(ErrorCode::BadName).about(name));
        }
        self.room_names
            .get(&name.to_ascii_lowercase())
            .copied()
            .ok_or_else(|| Error::new(ErrorCode::NoSuchRoom).about(name))
    }

    /// Looks a room up for a user: for an IRC user an empty room does not
    /// exist (an IRC channel lives only while someone is in it).
    pub(super) fn find_visible(&self, user: UserId, name: &str) -> Result<RoomId, Error> {
        let id = self.find_room(name)?;
        let irc = self.users.get(&user).is_some_and(|u| u.irc);
        if irc && self.rooms[&id].members.is_empty() {
            return Err(Error::new(ErrorCode::NoSuchRoom).about(name));
        }
        Ok(id)
    }

    /// Looks up a room the user is in.
    pub(super) fn find_joined(&self, user: UserId, name: &str) -> Result<RoomId, Error> {
        let id = self.find_visible(user, name)?;
        if !self.rooms[&id].members.contains_key(&user) {
            return Err(Error::new(ErrorCode::NotInRoom).about(self.rooms[&id].name.clone()));
        }
        Ok(id)
    }

    pub(super) fn check_can_create(&self) -> Result<(), Error> {
        if self.rooms.len() >= self.config.max_rooms {
            return Err(Error::new(ErrorCode::TooManyRooms)
                .text("the server holds as many rooms as it may"));
        }
        Ok(())
    }

    pub(super) fn check_can_join(&self, user: UserId) -> Result<(), Error> {
        if self.users[&user].rooms.len() >= self.config.max_rooms_per_user {
            return Err(Error::new(ErrorCode::TooManyRooms).text(format!(
                "you are in {} rooms, the most allowed",
                self.config.max_rooms_per_user
            )));
        }
        Ok(())
    }

    /// Creates a room (the name was checked and is free).
    pub(super) fn create_room(
        &mut self,
        name: &str,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> RoomId {
        let id = RoomId(self.next_room);
        self.next_room += 1;
        let name: Arc<str> = name.into();
        let topic: Arc<str> = "".into();
        self.room_names.insert(name.to_ascii_lowercase(), id);
        out.push(Action::Store(Record::Room {
            id,
            name: name.clone(),
            topic: topic.clone(),
            created: now,
        }));
        self.rooms.insert(
            id,
            Room {
                name,
                topic,
                members: BTreeMap::new(),
                ops: BTreeSet::new(),
                topic_lock: false,
                no_external: true,
                topic_by: self.server_name.clone(),
                topic_at: now,
                created: now,
                history: VecDeque::new(),
                modes: Modes::default(),
            },
        );
        id
    }

    /// Puts the user in a room (telling the others), makes it current and sends
    /// the join replies. Joining a room again only repeats the replies.
    pub(super) fn join_room(
        &mut self,
        user: UserId,
        id: RoomId,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let room = &self.rooms[&id];
        let u = &self.users[&user];
        let (conn, name, room_name) = (u.conn, u.name.clone(), room.name.clone());
        let (mask, irc) = (u.mask.clone(), self.conns.get(&conn).is_some_and(|c| c.irc));
        if !room.members.contains_key(&user) {
            self.check_can_join(user)?;
            let others: Vec<ConnId> = if self.announces(room.members.len() + 1) {
                self.member_conns(id, Some(user))
            } else {
                Vec::new()
            };
            if !others.is_empty() {
                // Someone away is announced as such (IRC away-notify).
                let away = u.away.clone().map(|text| Event::AwayChanged {
                    name: name.clone(),
                    mask: mask.clone(),
                    text: Some(text),
                    monitor: false,
                });
                let to = if away.is_some() {
                    others.clone()
                } else {
                    Vec::new()
                };
                out.push(Action::Fanout {
                    to: others,
                    event: Event::Join {
                        room: room_name.clone(),
                        name,
                        mask,
                    },
                });
                if let Some(event) = away {
                    out.push(Action::Fanout { to, event });
                }
            }
            if let Some(room) = self.rooms.get_mut(&id) {
                // The first into an empty room runs it, as on IRC.
                if room.members.is_empty() {
                    room.ops.insert(user);
                }
                room.members.insert(user, conn);
                room.modes.invited.retain(|u| *u != user);
            }
            let account = self.users.get_mut(&user).and_then(|u| {
                u.rooms.push(id);
                u.registered.then(|| u.name.to_ascii_lowercase())
            });
            if let Some(key) = account {
                self.remember_room(&key, id, true, out);
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
        if irc && !self.rooms[&id].topic.is_empty() {
            self.send_topic(conn, id, out);
        }
        self.send_members(conn, id, out);
        self.replay(conn, id, self.config.join_history, out);
        Ok(())
    }

    /// `MEMBERS` (IRC `NAMES`): who is in a room, operators marked.
    pub(super) fn send_members(&self, conn: ConnId, id: RoomId, out: &mut Vec<Action>) {
        let room = &self.rooms[&id];
        let mut names = Vec::with_capacity(room.members.len());
        let mut ops = Vec::with_capacity(room.members.len());
        let mut voices = Vec::with_capacity(room.members.len());
        let mut masks = Vec::with_capacity(room.members.len());
        for m in room.members.keys() {
            if let Some(u) = self.users.get(m) {
                names.push(u.name.clone());
                ops.push(room.ops.contains(m));
                voices.push(room.modes.voiced.contains(m));
                masks.push(u.mask.clone());
            }
        }
        send(
            out,
            conn,
            Event::Members {
                room: room.name.clone(),
                names,
                ops,
                voices,
                masks,
                secret: room.modes.secret,
            },
        );
    }

    /// A room's topic, who set it and when.
    pub(super) fn send_topic(&self, conn: ConnId, id: RoomId, out: &mut Vec<Action>) {
        let r = &self.rooms[&id];
        send(
            out,
            conn,
            Event::TopicIs {
                room: r.name.clone(),
                id,
                members: r.members.len(),
                topic: r.topic.clone(),
                by: r.topic_by.clone(),
                at: r.topic_at,
            },
        );
    }

    /// Takes the user out of a room, telling the others, and picks the most
    /// recently joined remaining room as current if this one was.
    pub(super) fn leave_room(
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
        room.ops.remove(&user);
        room.modes.voiced.remove(&user);
        if room.members.is_empty() {
            room.reset_modes();
        }
        let room_name = room.name.clone();
        let Some(u) = self.users.get_mut(&user) else {
            return;
        };
        u.rooms.retain(|r| *r != id);
        let account = u.registered.then(|| u.name.to_ascii_lowercase());
        if u.current == Some(id) {
            u.current = u.rooms.last().copied();
        }
        let (conn, name, mask) = (u.conn, u.name.clone(), u.mask.clone());
        let others = if self.announces(self.rooms[&id].members.len() + 1) {
            self.member_conns(id, None)
        } else {
            Vec::new()
        };
        if !others.is_empty() {
            out.push(Action::Fanout {
                to: others,
                event: Event::Leave {
                    room: room_name.clone(),
                    name,
                    mask,
                    reason,
                },
            });
        }
        send(out, conn, Event::Ok(OkReply::Leave { room: room_name }));
        if let Some(key) = account {
            self.remember_room(&key, id, false, out);
        }
    }

    /// Keeps an account's room list (and the store) in step with a join or
    /// an explicit leave.
    pub(super) fn remember_room(
        &mut self,
        key: &str,
        room: RoomId,
        joined: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(account) = self.accounts.get_mut(key) else {
            return;
        };
        let user = account.id;
        let known = account.rooms.contains(&room);
        if joined && !known {
            account.rooms.push(room);
            out.push(Action::Store(Record::Joined { user, room }));
        } else if !joined && known {
            account.rooms.retain(|r| *r != room);
            out.push(Action::Store(Record::Left { user, room }));
        }
    }

    /// Logs a user out of everything; everyone who shared a room hears
    /// `OFFLINE` once. WHOWAS remembers them.
    pub(super) fn remove_user(
        &mut self,
        user: UserId,
        reason: Option<Arc<str>>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let Some(u) = self.users.remove(&user) else {
            return;
        };
        self.departed(&u, now);
        self.online.remove(&u.name);
        let key = u.name.to_ascii_lowercase();
        self.user_names.remove(&key);
        self.watches.forget(user);
        self.monitor_offline(&key, &u.name, out);
        let mut peers = Vec::new();
        let limit = self.config.presence_limit;
        for id in &u.rooms {
            if let Some(room) = self.rooms.get_mut(id) {
                let announce = limit == 0 || room.members.len() <= limit;
                room.members.remove(&user);
                room.ops.remove(&user);
                room.modes.voiced.remove(&user);
                if room.members.is_empty() {
                    room.reset_modes();
                }
                if !announce {
                    continue;
                }
                peers.extend(room.members.values().copied());
            }
        }
        peers.sort_unstable();
        peers.dedup();
        if !peers.is_empty() {
            out.push(Action::Fanout {
                to: peers,
                event: Event::Offline {
                    name: u.name,
                    mask: u.mask,
                    reason,
                },
            });
        }
    }

    /// Says `text` in a room: stored in its history, delivered to every member.
    /// A notice (`extra`) is delivered but neither kept nor stored.
    pub(super) fn say(
        &mut self,
        user: UserId,
        id: RoomId,
        text: String,
        extra: Option<Extra>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let id_ = self.next_msg_id();
        let sender = &self.users[&user];
        let extra = bot_extra(extra, sender.bot);
        let msg = Arc::new(Message {
            id: id_,
            sender: user,
            sender_name: sender.name.clone(),
            sender_mask: sender.mask.clone(),
            room: id,
            at: now,
            text: text.into(),
        });
        let to = self.member_conns(id, None);
        self.count_message(to.len());
        let Some(room) = self.rooms.get_mut(&id) else {
            return;
        };
        if extra.as_ref().is_some_and(|e| e.notice || e.tag_only) {
            out.push(Action::Fanout {
                to,
                event: Event::Msg {
                    room: room.name.clone(),
                    msg,
                    extra: extra.map(Arc::new),
                },
            });
            return;
        }
        if self.config.history_len > 0 {
            if room.history.len() >= self.config.history_len {
                room.history.pop_front();
            }
            room.history.push_back(msg.clone());
        }
        out.push(Action::Store(Record::Message(msg.clone())));
        out.push(Action::Fanout {
            to,
            event: Event::Msg {
                room: room.name.clone(),
                msg,
                extra: extra.map(Arc::new),
            },
        });
    }

    /// A direct message to whoever is online under `to`, or kept for an
    /// offline account until it logs in.
    /// A notice (`extra`) is only delivered to someone online, and never
    /// stored.
    pub(super) fn direct(
        &mut self,
        user: UserId,
        to: &str,
        text: String,
        extra: Option<Extra>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let notice = extra.as_ref().is_some_and(|e| e.notice || e.tag_only);
        if !is_user_name(to) {
            return Err(Error::new(ErrorCode::BadName).about(to));
        }
        let key = to.to_ascii_lowercase();
        // One lookup per map: this runs for every direct message.
        let online = self
            .user_names
            .get(&key)
            .and_then(|&id| Some((id, self.users.get(&id)?)));
        let (target_id, target_name, target_conn, away) = match online {
            Some((id, target)) => (
                id,
                target.name.clone(),
                Some(target.conn),
                target.away.clone(),
            ),
            None => match self.accounts.get(&key) {
                Some(_) if notice => return Err(Error::new(ErrorCode::NoSuchUser).about(to)),
                Some(account) if account.inbox.len() >= self.config.inbox_limit => {
                    return Err(Error::new(ErrorCode::MailboxFull).about(account.name.clone()));
                }
                Some(account) => (account.id, account.name.clone(), None, None),
                None => return Err(Error::new(ErrorCode::NoSuchUser).about(to)),
            },
        };
        let sender = &self.users[&user];
        let (from, mask, sender_conn) = (sender.name.clone(), sender.mask.clone(), sender.conn);
        let extra = bot_extra(extra, sender.bot);
        let (id, text): (MsgId, Arc<str>) = (self.next_msg_id(), text.into());
        if let (Some(away), false) = (away, notice) {
            send(
                out,
                sender_conn,
                Event::AwayIs {
                    name: target_name.clone(),
                    text: away,
                },
            );
        }
        let stored = !notice;
        if stored {
            out.push(Action::Store(Record::Dm {
                id,
                from: user,
                from_name: from.clone(),
                to: target_id,
                at: now,
                text: text.clone(),
                pending: target_conn.is_none(),
            }));
        }
        if target_conn.is_none()
            && let Some(account) = self.accounts.get_mut(&key)
        {
            account.inbox.push_back(StoredDirect {
                id,
                from: from.clone(),
                at: now,
                text: text.clone(),
            });
        }
        let mut recipients = Vec::with_capacity(2);
        recipients.extend(target_conn);
        if target_conn != Some(sender_conn) {
            recipients.push(sender_conn);
        }
        self.count_message(recipients.len());
        let event = Event::Dm {
            from,
            mask,
            extra: extra.map(Arc::new),
            to: target_name,
            id,
            at: now,
            text,
        };
        out.push(Action::Fanout {
            to: recipients,
            event,
        });
        Ok(())
    }

    /// Sends `HISTORY ROOM COUNT` and the last `count` messages, oldest first.
    pub(super) fn replay(&self, conn: ConnId, id: RoomId, count: usize, out: &mut Vec<Action>) {
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
                    extra: None,
                },
            );
        }
    }

    /// The connections of a room's members, but `except`.
    pub(super) fn member_conns(&self, id: RoomId, except: Option<UserId>) -> Vec<ConnId> {
        // Members carry their connection, so a fan-out needs no user lookups.
        let members = &self.rooms[&id].members;
        let mut conns = Vec::with_capacity(members.len());
        conns.extend(
            members
                .iter()
                .filter(|(m, _)| Some(**m) != except)
                .map(|(_, conn)| *conn),
        );
        conns
    }

    /// Whether comings and goings in a room of `size` members are announced
    /// to the others (`--presence-limit`): in a bigger room they are not, so
    /// filling or emptying it costs time linear in its size, not quadratic.
    pub(super) fn announces(&self, size: usize) -> bool {
        self.config.presence_limit == 0 || size <= self.config.presence_limit
    }

    /// Counts one chat message and its deliveries.
    pub(super) fn count_message(&mut self, deliveries: usize) {
        self.messages_in += 1;
        self.deliveries_out += deliveries as u64;
    }

    pub(super) fn next_msg_id(&mut self) -> MsgId {
        let id = MsgId(self.next_msg);
        self.next_msg += 1;
        id
    }
}

/// A bot's messages carry the mark (IRC's `bot` tag).
fn bot_extra(extra: Option<Extra>, bot: bool) -> Option<Extra> {
    if !bot {
        return extra;
    }
    Some(Extra {
        bot: true,
        ..extra.unwrap_or_default()
    })
}
