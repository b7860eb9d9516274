//! Watch lists (IRCv3 `MONITOR`): each user watches up to [`MAX_MONITOR`]
//! names, and hears when one of them comes online or goes offline. A
//! reverse index (name → watchers) makes every notification cost the number
//! of watchers, not the number of users. Watchers also hear a watched
//! user's away and real-name changes (IRC `extended-monitor`).

use super::*;

/// Who watches which names. Names are kept lower-cased.
#[derive(Debug, Default)]
pub(super) struct Watches {
    /// User → the names it watches (at most [`MAX_MONITOR`]).
    lists: HashMap<UserId, BTreeSet<Arc<str>>>,
    /// Name → the users watching it (never an empty set).
    watchers: HashMap<Arc<str>, BTreeSet<UserId>>,
}

impl Watches {
    /// How many names `user` watches.
    fn len(&self, user: UserId) -> usize {
        self.lists.get(&user).map_or(0, BTreeSet::len)
    }

    /// Whether `user` watches `key` (lower-cased).
    fn watching(&self, user: UserId, key: &str) -> bool {
        self.lists.get(&user).is_some_and(|l| l.contains(key))
    }

    /// `user` watches `key` (lower-cased) from now on.
    fn add(&mut self, user: UserId, key: &str) {
        let key: Arc<str> = key.into();
        self.lists.entry(user).or_default().insert(key.clone());
        self.watchers.entry(key).or_default().insert(user);
    }

    /// `user` stops watching `key` (lower-cased).
    fn remove(&mut self, user: UserId, key: &str) {
        let Some(list) = self.lists.get_mut(&user) else {
            return;
        };
        if !list.remove(key) {
            return;
        }
        if list.is_empty() {
            self.lists.remove(&user);
        }
        self.unindex(user, key);
    }

    /// `user` stops watching anyone (it cleared its list or went offline).
    pub(super) fn forget(&mut self, user: UserId) {
        for key in self.lists.remove(&user).unwrap_or_default() {
            self.unindex(user, &key);
        }
    }

    fn unindex(&mut self, user: UserId, key: &str) {
        if let Some(set) = self.watchers.get_mut(key) {
            set.remove(&user);
            if set.is_empty() {
                self.watchers.remove(key);
            }
        }
    }

    /// The names `user` watches, in order.
    fn list(&self, user: UserId) -> Vec<Arc<str>> {
        self.lists
            .get(&user)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Who watches `key` (lower-cased).
    pub(super) fn of(&self, key: &str) -> impl Iterator<Item = UserId> + '_ {
        self.watchers.get(key).into_iter().flatten().copied()
    }

    /// The two maps mirror each other, lists are bounded and every watcher
    /// is `online`.
    pub(super) fn check(&self, online: impl Fn(UserId) -> bool) -> Result<(), String> {
        for (user, list) in &self.lists {
            if !online(*user) {
                return Err(format!("user {user} watches names but is not online"));
            }
            if list.is_empty() || list.len() > MAX_MONITOR {
                return Err(format!("user {user} has a watch list of {}", list.len()));
            }
            for key in list {
                if !self.watchers.get(key).is_some_and(|w| w.contains(user)) {
                    return Err(format!("user {user} watches {key}, not indexed"));
                }
            }
        }
        for (key, set) in &self.watchers {
            if set.is_empty() {
                return Err(format!("{key} is indexed with no watchers"));
            }
            if **key != *key.to_ascii_lowercase() {
                return Err(format!("{key} is not lower-cased"));
            }
            for user in set {
                if !self.watching(*user, key) {
                    return Err(format!("{key} indexes {user}, who does not watch it"));
                }
            }
        }
        Ok(())
    }
}

impl Chat {
    /// `MONITOR`: changes or shows the user's watch list.
    ///
    /// Adding is all or nothing: if the names not yet watched would take the
    /// list past [`MAX_MONITOR`], nothing is added and the answer is
    /// `WatchListFull` about the names as given. A name that is not a valid user
    /// name gets its own `BadName` error and is skipped; the others are
    /// added. The answer to an add (and to `Status`) is who of the names is
    /// online (`MonOnline`, with masks) and who is not (`MonOffline`).
    pub(super) fn monitor(
        &mut self,
        conn: ConnId,
        user: UserId,
        op: MonitorOp,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        match op {
            MonitorOp::Add(names) => {
                let mut valid: Vec<&str> = Vec::new();
                let mut fresh: Vec<String> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for name in names.iter().filter(|n| !n.is_empty()) {
                    if !is_user_name(name) {
                        let mut e = Error::new(ErrorCode::BadName).about(name.as_str());
                        e.command = Some("monitor");
                        send(out, conn, e.into());
                        continue;
                    }
                    let key = name.to_ascii_lowercase();
                    if !seen.insert(key.clone()) {
                        continue;
                    }
                    valid.push(name);
                    if !self.watches.watching(user, &key) {
                        fresh.push(key);
                    }
                }
                if self.watches.len(user) + fresh.len() > MAX_MONITOR {
                    let given: Vec<&str> = names.iter().map(String::as_str).collect();
                    return Err(Error::new(ErrorCode::WatchListFull)
                        .about(given.join(","))
                        .text(format!("you may watch at most {MAX_MONITOR} names")));
                }
                for key in &fresh {
                    self.watches.add(user, key);
                }
                self.monitor_status(conn, valid.into_iter(), out);
            }
            MonitorOp::Remove(names) => {
                for name in names {
                    self.watches.remove(user, &name.to_ascii_lowercase());
                }
            }
            MonitorOp::Clear => self.watches.forget(user),
            MonitorOp::List => send(
                out,
                conn,
                Event::MonList {
                    names: self.watches.list(user),
                },
            ),
            MonitorOp::Status => {
                let names = self.watches.list(user);
                self.monitor_status(conn, names.iter().map(|n| &**n), out);
            }
        }
        Ok(())
    }

    /// Tells `conn` which of `names` are online (with their masks) and
    /// which are not.
    fn monitor_status<'a>(
        &self,
        conn: ConnId,
        names: impl Iterator<Item = &'a str>,
        out: &mut Vec<Action>,
    ) {
        let (mut online, mut offline) = (Vec::new(), Vec::new());
        for name in names {
            match self.online(name) {
                Some(u) => online.push(u.mask.clone()),
                None => offline.push(Arc::from(name)),
            }
        }
        if !online.is_empty() {
            send(out, conn, Event::MonOnline { masks: online });
        }
        if !offline.is_empty() {
            send(out, conn, Event::MonOffline { names: offline });
        }
    }

    /// The user now online under `key` (lower-cased) is announced to its
    /// watchers.
    pub(super) fn monitor_online(&self, key: &str, out: &mut Vec<Action>) {
        let Some(u) = self.user_names.get(key).and_then(|id| self.users.get(id)) else {
            return;
        };
        for conn in self.watcher_conns(key) {
            let masks = vec![u.mask.clone()];
            send(out, conn, Event::MonOnline { masks });
        }
    }

    /// `name` (lower-cased: `key`) went offline or changed name: its
    /// watchers are told.
    pub(super) fn monitor_offline(&self, key: &str, name: &Arc<str>, out: &mut Vec<Action>) {
        for conn in self.watcher_conns(key) {
            let names = vec![name.clone()];
            send(out, conn, Event::MonOffline { names });
        }
    }

    /// The connections of the users watching `key`.
    fn watcher_conns(&self, key: &str) -> Vec<ConnId> {
        self.watches
            .of(key)
            .filter_map(|w| self.users.get(&w))
            .map(|w| w.conn)
            .collect()
    }

    /// Tells everyone sharing a room with `user` (and `user` itself if
    /// `me_too`) about a change of theirs: `event(false)`; and those who
    /// only watch the name, sharing no room: `event(true)`.
    pub(super) fn tell_peers_and_watchers(
        &self,
        user: UserId,
        me_too: bool,
        event: impl Fn(bool) -> Event,
        out: &mut Vec<Action>,
    ) {
        let Some(u) = self.users.get(&user) else {
            return;
        };
        let mut peers = Vec::new();
        if me_too {
            peers.push(u.conn);
        }
        for id in &u.rooms {
            let room = &self.rooms[id];
            if self.announces(room.members.len()) {
                let others = room.members.iter().filter(|(m, _)| **m != user);
                peers.extend(others.map(|(_, conn)| *conn));
            }
        }
        peers.sort_unstable();
        peers.dedup();
        let watchers: Vec<ConnId> = self
            .watches
            .of(&u.name.to_ascii_lowercase())
            .filter(|w| *w != user)
            .filter_map(|w| self.users.get(&w))
            .map(|w| w.conn)
            .filter(|conn| peers.binary_search(conn).is_err())
            .collect();
        if !peers.is_empty() {
            out.push(Action::Fanout {
                to: peers,
                event: event(false),
            });
        }
        if !watchers.is_empty() {
            out.push(Action::Fanout {
                to: watchers,
                event: event(true),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tests::{events_for, login_at, run_at};

    fn now() -> Timestamp {
        Timestamp(0)
    }

    fn login(chat: &mut Chat, conn: u64, name: &str) -> Vec<Action> {
        login_at(chat, conn, name, now())
    }

    fn run(chat: &mut Chat, conn: u64, cmd: Command) -> Vec<Action> {
        run_at(chat, conn, cmd, now())
    }

    fn add(names: &[&str]) -> Command {
        Command::Monitor {
            op: MonitorOp::Add(names.iter().map(|n| n.to_string()).collect()),
        }
    }

    fn op(op: MonitorOp) -> Command {
        Command::Monitor { op }
    }

    fn online(masks: &[&str]) -> Event {
        Event::MonOnline {
            masks: masks.iter().map(|m| Arc::from(*m)).collect(),
        }
    }

    fn offline(names: &[&str]) -> Event {
        Event::MonOffline {
            names: names.iter().map(|m| Arc::from(*m)).collect(),
        }
    }

    fn listed(chat: &mut Chat, conn: u64) -> Vec<Arc<str>> {
        let out = run(chat, conn, op(MonitorOp::List));
        match events_for(&out, conn).as_slice() {
            [Event::MonList { names }] => names.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn chat() -> Chat {
        Chat::new(CoreConfig {
            lobby: None,
            ..CoreConfig::default()
        })
    }

    #[test]
    fn adding_answers_who_is_online_and_who_is_not() {
        let mut chat = chat();
        login(&mut chat, 1, "foo");
        login(&mut chat, 2, "Bar");
        let out = run(&mut chat, 1, add(&["bar", "baz", "BAR"]));
        assert_eq!(
            events_for(&out, 1),
            [&online(&["Bar!Bar@192.0.2.7"]), &offline(&["baz"])]
        );
        assert_eq!(listed(&mut chat, 1), [Arc::from("bar"), Arc::from("baz")]);
        let out = run(&mut chat, 1, op(MonitorOp::Status));
        assert_eq!(
            events_for(&out, 1),
            [&online(&["Bar!Bar@192.0.2.7"]), &offline(&["baz"])]
        );
    }

    #[test]
    fn watchers_hear_logins_quits_and_renames() {
        let mut chat = chat();
        login(&mut chat, 1, "foo");
        run(&mut chat, 1, add(&["qux", "other"]));
        let out = login(&mut chat, 2, "Qux");
        assert_eq!(events_for(&out, 1), [&online(&["Qux!Qux@192.0.2.7"])]);
        // A change of case is no news.
        let out = run(&mut chat, 2, Command::Nick { name: "QUX".into() });
        assert!(
            events_for(&out, 1)
                .iter()
                .all(|e| !matches!(e, Event::MonOnline { .. } | Event::MonOffline { .. }))
        );
        let out = run(
            &mut chat,
            2,
            Command::Nick {
                name: "other".into(),
            },
        );
        assert_eq!(
            events_for(&out, 1),
            [&offline(&["QUX"]), &online(&["other!Qux@192.0.2.7"])]
        );
        let out = run(&mut chat, 2, Command::Quit { reason: None });
        assert_eq!(events_for(&out, 1), [&offline(&["other"])]);
        let out = chat.disconnect(ConnId(2), "gone", now());
        assert!(events_for(&out, 1).is_empty());
    }

    #[test]
    fn removing_and_clearing_stop_the_news() {
        let mut chat = chat();
        login(&mut chat, 1, "foo");
        login(&mut chat, 2, "bar");
        run(&mut chat, 1, add(&["qux", "baz"]));
        run(&mut chat, 2, add(&["qux"]));
        let out = run(
            &mut chat,
            1,
            op(MonitorOp::Remove(vec!["QUX".into(), "nobody".into()])),
        );
        assert!(out.is_empty());
        let out = login(&mut chat, 3, "qux");
        assert!(events_for(&out, 1).is_empty());
        assert_eq!(events_for(&out, 2), [&online(&["qux!qux@192.0.2.7"])]);
        let out = run(&mut chat, 1, op(MonitorOp::Clear));
        assert!(out.is_empty());
        assert!(listed(&mut chat, 1).is_empty());
        let out = login(&mut chat, 4, "baz");
        assert!(events_for(&out, 1).is_empty());
    }

    #[test]
    fn a_watch_list_goes_away_with_its_user() {
        let mut chat = chat();
        login(&mut chat, 1, "foo");
        run(&mut chat, 1, add(&["bar"]));
        run(&mut chat, 1, Command::Logout);
        chat.check_invariants().unwrap();
        assert!(chat.watches.lists.is_empty() && chat.watches.watchers.is_empty());
        run(
            &mut chat,
            1,
            Command::Login {
                name: "foo".into(),
                password: None,
            },
        );
        assert!(listed(&mut chat, 1).is_empty());
        let out = login(&mut chat, 2, "bar");
        assert!(events_for(&out, 1).is_empty());
    }

    #[test]
    fn a_full_list_takes_nothing_more() {
        let mut chat = chat();
        login(&mut chat, 1, "foo");
        let names: Vec<String> = (0..MAX_MONITOR - 1).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        run(&mut chat, 1, add(&refs));
        let before = listed(&mut chat, 1);
        assert_eq!(before.len(), MAX_MONITOR - 1);
        // Two new names do not fit: neither is added.
        let out = run(&mut chat, 1, add(&["n0", "x", "y"]));
        match events_for(&out, 1).as_slice() {
            [Event::Error(e)] => {
                assert_eq!(e.code, ErrorCode::WatchListFull);
                assert_eq!(e.arg.as_deref(), Some("n0,x,y"));
                assert_eq!(e.command, Some("monitor"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(listed(&mut chat, 1), before);
        let out = login(&mut chat, 2, "x");
        assert!(events_for(&out, 1).is_empty());
        // Names already watched take no room; one new one still fits.
        let out = run(&mut chat, 1, add(&["N1", "x"]));
        assert_eq!(
            events_for(&out, 1),
            [&online(&["x!x@192.0.2.7"]), &offline(&["N1"])]
        );
        assert_eq!(listed(&mut chat, 1).len(), MAX_MONITOR);
    }

    #[test]
    fn bad_names_are_refused_one_by_one() {
        let mut chat = chat();
        login(&mut chat, 1, "foo");
        let out = run(&mut chat, 1, add(&["*!user@host", "ok", "", "#room"]));
        let events = events_for(&out, 1);
        assert_eq!(events.len(), 3, "{events:?}");
        for (event, name) in events.iter().zip(["*!user@host", "#room"]) {
            match event {
                Event::Error(e) => {
                    assert_eq!(e.code, ErrorCode::BadName);
                    assert_eq!(e.arg.as_deref(), Some(name));
                    assert_eq!(e.command, Some("monitor"));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(events[2], &offline(&["ok"]));
        assert_eq!(listed(&mut chat, 1), [Arc::from("ok")]);
        // Only bad names: errors and no change.
        let out = run(&mut chat, 1, add(&["a b", "9lives"]));
        assert!(
            events_for(&out, 1)
                .iter()
                .all(|e| matches!(e, Event::Error(e) if e.code == ErrorCode::BadName))
        );
        assert_eq!(listed(&mut chat, 1), [Arc::from("ok")]);
    }

    #[test]
    fn away_reaches_room_peers_and_lone_watchers_once() {
        let mut chat = chat();
        login(&mut chat, 1, "bar");
        login(&mut chat, 2, "peer");
        login(&mut chat, 3, "watcher");
        login(&mut chat, 4, "both");
        login(&mut chat, 5, "stranger");
        for conn in [1, 2, 4] {
            run(
                &mut chat,
                conn,
                Command::Join {
                    room: "#c".into(),
                    key: None,
                },
            );
        }
        run(&mut chat, 3, add(&["bar"]));
        run(&mut chat, 4, add(&["bar"]));
        run(&mut chat, 1, add(&["bar"]));
        let out = run(
            &mut chat,
            1,
            Command::Away {
                text: Some("afk".into()),
            },
        );
        let away = |monitor| Event::AwayChanged {
            name: "bar".into(),
            mask: "bar!bar@192.0.2.7".into(),
            text: Some("afk".into()),
            monitor,
        };
        assert_eq!(
            events_for(&out, 1),
            [&Event::Ok(OkReply::Away { away: true })]
        );
        assert_eq!(events_for(&out, 2), [&away(false)]);
        assert_eq!(events_for(&out, 4), [&away(false)]);
        assert_eq!(events_for(&out, 3), [&away(true)]);
        assert!(events_for(&out, 5).is_empty());
        // The same message again is no change.
        let out = run(
            &mut chat,
            1,
            Command::Away {
                text: Some("afk".into()),
            },
        );
        assert_eq!(out.len(), 1);
        // A join while away tells the room.
        let out = run(
            &mut chat,
            5,
            Command::Join {
                room: "#c".into(),
                key: None,
            },
        );
        assert!(
            events_for(&out, 1)
                .iter()
                .all(|e| !matches!(e, Event::AwayChanged { .. }))
        );
        let out = run(
            &mut chat,
            1,
            Command::Leave {
                room: "#c".into(),
                reason: None,
            },
        );
        assert!(!events_for(&out, 2).contains(&&away(false)));
        let out = run(
            &mut chat,
            1,
            Command::Join {
                room: "#c".into(),
                key: None,
            },
        );
        for conn in [2, 4, 5] {
            assert!(events_for(&out, conn).contains(&&away(false)), "{conn}");
        }
        assert!(!events_for(&out, 1).contains(&&away(false)));
        let out = run(&mut chat, 1, Command::Away { text: None });
        let back = Event::AwayChanged {
            name: "bar".into(),
            mask: "bar!bar@192.0.2.7".into(),
            text: None,
            monitor: true,
        };
        assert_eq!(events_for(&out, 3), [&back]);
    }

    #[test]
    fn setname_checks_and_tells_itself_peers_and_watchers() {
        let mut chat = chat();
        login(&mut chat, 1, "bar");
        login(&mut chat, 2, "peer");
        login(&mut chat, 3, "watcher");
        for conn in [1, 2] {
            run(
                &mut chat,
                conn,
                Command::Join {
                    room: "#c".into(),
                    key: None,
                },
            );
        }
        run(&mut chat, 3, add(&["bar"]));
        let set = |realname: &str| Command::SetName {
            realname: realname.into(),
        };
        let out = run(&mut chat, 1, set("Bar Baz"));
        let event = |monitor| Event::RealName {
            name: "bar".into(),
            mask: "bar!bar@192.0.2.7".into(),
            realname: "Bar Baz".into(),
            monitor,
        };
        assert_eq!(events_for(&out, 1), [&event(false)]);
        assert_eq!(events_for(&out, 2), [&event(false)]);
        assert_eq!(events_for(&out, 3), [&event(true)]);
        for bad in ["", &"x".repeat(MAX_REALNAME + 1), "tab\there"] {
            let out = run(&mut chat, 1, set(bad));
            match events_for(&out, 1).as_slice() {
                [Event::Error(e)] => {
                    assert_eq!(e.code, ErrorCode::BadArgs);
                    assert_eq!(e.command, Some("setname"));
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(out.len(), 1);
        }
        let out = run(&mut chat, 2, Command::Whois { name: "bar".into() });
        match events_for(&out, 2).as_slice() {
            [Event::Whois(info)] => assert_eq!(&*info.realname, "Bar Baz"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_bot_is_marked_in_messages_whois_and_who() {
        let mut chat = chat();
        login(&mut chat, 1, "robo");
        login(&mut chat, 2, "human");
        for conn in [1, 2] {
            run(
                &mut chat,
                conn,
                Command::Join {
                    room: "#c".into(),
                    key: None,
                },
            );
        }
        run(
            &mut chat,
            1,
            Command::UserMode {
                changes: vec![UserModeChange {
                    add: true,
                    mode: UserMode::Bot,
                }],
            },
        );
        let tell = |target: &str| Command::Tell {
            target: target.into(),
            text: "beep".into(),
            extra: None,
        };
        for target in ["#c", "human"] {
            let out = run(&mut chat, 1, tell(target));
            let bot = events_for(&out, 2).iter().any(|e| match e {
                Event::Msg { extra, .. } | Event::Dm { extra, .. } => {
                    extra.as_ref().is_some_and(|x| x.bot)
                }
                _ => false,
            });
            assert!(bot, "{target}");
        }
        let out = run(
            &mut chat,
            2,
            Command::Whois {
                name: "robo".into(),
            },
        );
        assert!(matches!(events_for(&out, 2)[..], [Event::Whois(i)] if i.bot));
        let out = run(&mut chat, 2, Command::Who { mask: "#c".into() });
        match events_for(&out, 2).as_slice() {
            [Event::Who { rows, .. }] => {
                let bots: Vec<bool> = rows.iter().map(|r| r.bot).collect();
                assert_eq!(bots, [true, false]);
            }
            other => panic!("unexpected {other:?}"),
        }
        run(
            &mut chat,
            1,
            Command::UserMode {
                changes: vec![UserModeChange {
                    add: false,
                    mode: UserMode::Bot,
                }],
            },
        );
        let out = run(&mut chat, 2, tell("robo"));
        let plain = events_for(&out, 1).iter().all(|e| match e {
            Event::Dm { extra, .. } => extra.is_none(),
            _ => true,
        });
        assert!(plain);
        let out = run(&mut chat, 1, tell("#c"));
        assert!(events_for(&out, 2).iter().all(|e| match e {
            Event::Msg { extra, .. } => extra.is_none(),
            _ => true,
        }));
    }
}
