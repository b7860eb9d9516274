//! Scripted scenarios on the bare state machine (commands in, actions out)
//! and a property check over random command sequences.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::config::CoreConfig;

fn ip() -> std::net::IpAddr {
    "192.0.2.7".parse().unwrap()
}

fn login(chat: &mut Chat, conn: u64, name: &str) -> Vec<Action> {
    login_at(chat, conn, name, Timestamp(0))
}

/// Connects `conn` from 192.0.2.7 and logs `name` in as a guest at `now`
/// (shared with the chat modules' tests).
pub(super) fn login_at(chat: &mut Chat, conn: u64, name: &str, now: Timestamp) -> Vec<Action> {
    chat.connect(ConnId(conn), ip(), now);
    chat.handle(
        ConnId(conn),
        Command::Login {
            name: name.into(),
            password: None,
        },
        now,
    )
}

/// Runs `cmd` for `conn` at `now`, then checks the core's invariants.
pub(super) fn run_at(chat: &mut Chat, conn: u64, cmd: Command, now: Timestamp) -> Vec<Action> {
    let out = chat.handle(ConnId(conn), cmd, now);
    chat.check_invariants().unwrap();
    out
}

/// Every event delivered to `conn` (shared with the chat modules' tests).
pub(super) fn events_for(actions: &[Action], conn: u64) -> Vec<&Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, event } if *to == ConnId(conn) => Some(event),
            Action::Fanout { to, event } if to.contains(&ConnId(conn)) => Some(event),
            _ => None,
        })
        .collect()
}

fn say(room: Option<&str>, text: &str) -> Command {
    Command::Say {
        room: room.map(Into::into),
        text: text.into(),
    }
}

#[test]
fn messages_carry_the_time_they_were_handled() {
    let mut chat = Chat::new(CoreConfig::default());
    login(&mut chat, 1, "alice");
    let out = chat.handle(ConnId(1), say(None, "hi"), Timestamp(42_000));
    let [Event::Msg { room, msg, .. }] = events_for(&out, 1)[..] else {
        panic!("{out:?}");
    };
    assert_eq!(&**room, "#lobby");
    assert_eq!(msg.at, Timestamp(42_000));
    assert_eq!(msg.id, MsgId(1));
    assert_eq!(&*msg.text, "hi");
}

#[test]
fn a_fanout_names_every_member_once() {
    let mut chat = Chat::new(CoreConfig::default());
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        login(&mut chat, i as u64 + 1, name);
    }
    let out = chat.handle(ConnId(2), say(None, "x"), Timestamp(1));
    assert_eq!(out.len(), 2);
    assert!(matches!(&out[0], Action::Store(Record::Message(_))));
    let Action::Fanout { to, .. } = &out[1] else {
        panic!("{out:?}");
    };
    assert_eq!(to, &[ConnId(1), ConnId(2), ConnId(3)]);
}

#[test]
fn history_is_a_bounded_ring() {
    let mut chat = Chat::new(CoreConfig {
        history_len: 5,
        ..CoreConfig::default()
    });
    login(&mut chat, 1, "alice");
    for i in 0..12 {
        chat.handle(ConnId(1), say(None, &format!("m{i}")), Timestamp(i));
    }
    let out = chat.handle(
        ConnId(1),
        Command::History {
            room: "#lobby".into(),
            count: Some(100),
        },
        Timestamp(99),
    );
    let texts: Vec<Arc<str>> = events_for(&out, 1)
        .iter()
        .filter_map(|e| match e {
            Event::Msg { msg, .. } => Some(msg.text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["m7", "m8", "m9", "m10", "m11"].map(Arc::from));
    chat.check_invariants().unwrap();
}

#[test]
fn ids_keep_growing_across_logins() {
    let mut chat = Chat::new(CoreConfig::default());
    login(&mut chat, 1, "alice");
    chat.handle(ConnId(1), Command::Logout, Timestamp(1));
    let out = chat.handle(
        ConnId(1),
        Command::Login {
            name: "alice".into(),
            password: None,
        },
        Timestamp(2),
    );
    assert!(matches!(
        events_for(&out, 1)[0],
        Event::Ok(OkReply::Login { id: UserId(2), .. })
    ));
}

#[test]
fn a_name_frees_up_when_its_user_drops() {
    let mut chat = Chat::new(CoreConfig::default());
    login(&mut chat, 1, "alice");
    chat.disconnect(ConnId(1), "gone", Timestamp(1));
    let out = login(&mut chat, 2, "ALICE");
    assert!(matches!(
        events_for(&out, 2)[0],
        Event::Ok(OkReply::Login { .. })
    ));
    assert_eq!(chat.user_count(), 1);
    assert_eq!(chat.room_members("#LOBBY"), Some(vec!["ALICE".to_string()]));
}

#[test]
fn shutdown_forgets_everyone_online() {
    let mut chat = Chat::new(CoreConfig::default());
    login(&mut chat, 1, "alice");
    login(&mut chat, 2, "bob");
    chat.shutdown(Timestamp(1));
    chat.check_invariants().unwrap();
    assert_eq!(chat.user_count(), 0);
    // The names are free again, and /users lists only who is online now.
    login(&mut chat, 3, "alice");
    let out = chat.handle(ConnId(3), Command::Users, Timestamp(2));
    assert!(
        matches!(events_for(&out, 3)[0], Event::Users { names } if &**names == "alice"),
        "{out:?}"
    );
}

#[test]
fn restore_rebuilds_accounts_rooms_history_and_mail() {
    let msg = |id: u64, text: &str| Message {
        id: MsgId(id),
        sender: UserId(7),
        sender_name: "alice".into(),
        sender_mask: Message::stored_mask("alice"),
        room: RoomId(3),
        at: Timestamp(id),
        text: text.into(),
    };
    let snapshot = Snapshot {
        accounts: vec![StoredAccount {
            id: UserId(7),
            name: "alice".into(),
            hash: "h".into(),
            created: Timestamp(0),
            rooms: vec![RoomId(3), RoomId(99)],
        }],
        rooms: vec![StoredRoom {
            id: RoomId(3),
            name: "#old".into(),
            topic: "kept".into(),
            created: Timestamp(0),
            history: vec![msg(40, "one"), msg(41, "two")],
        }],
        pending_dms: vec![StoredDm {
            id: MsgId(42),
            from_name: "bob".into(),
            to: UserId(7),
            at: Timestamp(5),
            text: "waiting".into(),
        }],
        next_user: 8,
        next_room: 4,
        next_msg: 43,
    };
    let (mut chat, startup) = Chat::restore(CoreConfig::default(), snapshot);
    // The lobby is new: it is created (room id 4) and recorded.
    assert!(matches!(
        &startup[..],
        [Action::Store(Record::Room { id: RoomId(4), .. })]
    ));
    chat.connect(ConnId(1), ip(), Timestamp(0));
    let mut out = chat.handle(
        ConnId(1),
        Command::Login {
            name: "alice".into(),
            password: Some(Secret::new("pw")),
        },
        Timestamp(9),
    );
    assert!(matches!(&out[..], [Action::Auth { .. }]));
    out = chat.auth_done(ConnId(1), AuthOutcome::Verified(true), Timestamp(9));
    let seen: Vec<String> = events_for(&out, 1)
        .iter()
        .filter_map(|e| match e {
            Event::Ok(OkReply::Login { id, .. }) => Some(format!("login {id}")),
            Event::Ok(OkReply::Join { room }) => Some(format!("join {room}")),
            Event::History { room, count } => Some(format!("history {room} {count}")),
            Event::Dm { id, text, .. } => Some(format!("dm {id} {text}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        seen,
        [
            "login 7",
            "join #lobby",
            "history #lobby 0",
            "join #old",
            "history #old 2",
            "dm 42 waiting",
        ]
    );
    // Ids continue where the snapshot left off.
    let out = chat.handle(ConnId(1), say(None, "next"), Timestamp(10));
    assert!(matches!(&out[0], Action::Store(Record::Message(m)) if m.id == MsgId(43)));
}

#[test]
fn unknown_connections_are_ignored() {
    let mut chat = Chat::new(CoreConfig::default());
    assert!(
        chat.handle(ConnId(9), Command::Users, Timestamp(0))
            .is_empty()
    );
    assert!(chat.disconnect(ConnId(9), "x", Timestamp(0)).is_empty());
}

/// A command from a small vocabulary, so random sequences collide often.
fn arb_command() -> impl Strategy<Value = Command> {
    let name = prop::sample::select(vec!["al", "bo", "AL", "cy", "9x"]).prop_map(String::from);
    let room = prop::sample::select(vec!["#lobby", "#a", "#B", "#b", "bad"]).prop_map(String::from);
    prop_oneof![
        (
            name.clone(),
            prop::option::of(prop::sample::select(vec![
                "right-password",
                "wrong-password"
            ]))
        )
            .prop_map(|(name, pw)| Command::Login {
                name,
                password: pw.map(Secret::new)
            }),
        name.clone().prop_map(|name| Command::Register {
            name,
            password: Secret::new("right-password")
        }),
        Just(Command::Logout),
        Just(Command::Quit { reason: None }),
        room.clone()
            .prop_map(|room| Command::Join { room, key: None }),
        room.clone().prop_map(|room| Command::Create { room }),
        room.clone()
            .prop_map(|room| Command::Leave { room, reason: None }),
        room.clone().prop_map(|room| Command::Switch { room }),
        room.clone().prop_map(|room| say(Some(&room), "t")),
        Just(say(None, "t")),
        name.clone().prop_map(|to| Command::Msg {
            to,
            text: "t".into()
        }),
        name.prop_map(|name| Command::Nick { name }),
        Just(Command::Broadcast { text: "t".into() }),
        Just(Command::Users),
        Just(Command::Rooms),
        (room, 0usize..30).prop_map(|(room, n)| Command::History {
            room,
            count: Some(n)
        }),
        Just(Command::Whoami),
    ]
}

/// An input from one of four connections: a command, a drop or a (re)connect.
#[derive(Debug, Clone)]
enum Step {
    Cmd(u64, Command),
    Drop(u64),
    Connect(u64),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0u64..4, arb_command()).prop_map(|(c, cmd)| Step::Cmd(c, cmd)),
        1 => (0u64..4).prop_map(Step::Drop),
        1 => (0u64..4).prop_map(Step::Connect),
    ]
}

proptest! {
    /// Whatever several connections do, the core never panics, keeps its
    /// invariants, and only addresses connections it knows (or just closed).
    #[test]
    fn random_sessions_keep_the_invariants(steps in prop::collection::vec(arb_step(), 1..120)) {
        let mut chat = Chat::new(CoreConfig { history_len: 3, max_rooms: 4, ..CoreConfig::default() });
        // Connection ids are never reused, as the reactor guarantees.
        let mut generation = [0u64; 4];
        let id = |slot: u64, generation: &[u64; 4]| ConnId(generation[slot as usize] * 4 + slot);
        for slot in 0..4 {
            chat.connect(id(slot, &generation), ip(), Timestamp(0));
        }
        for (t, step) in steps.into_iter().enumerate() {
            let now = Timestamp(t as u64);
            let mut out = match step {
                Step::Cmd(slot, cmd) => chat.handle(id(slot, &generation), cmd, now),
                Step::Drop(slot) => chat.disconnect(id(slot, &generation), "drop", now),
                Step::Connect(slot) => {
                    let old = id(slot, &generation);
                    let mut out = chat.disconnect(old, "replaced", now);
                    generation[slot as usize] += 1;
                    out.extend(chat.connect(id(slot, &generation), ip(), now));
                    out
                }
            };
            // The password workers answer at once: hashes succeed, a
            // password is right when it is "right-password".
            let mut i = 0;
            while i < out.len() {
                if let Action::Auth { conn, request } = out[i].clone() {
                    let outcome = match request {
                        AuthRequest::Hash { password } => AuthOutcome::Hashed(format!("hash:{}", password.expose()).into()),
                        AuthRequest::Verify { hash, password } => AuthOutcome::Verified(
                            hash.as_deref() == Some("hash:right-password") && password.is_some_and(|p| p.expose() == "right-password"),
                        ),
                    };
                    out.extend(chat.auth_done(conn, outcome, now));
                }
                i += 1;
            }
            for action in &out {
                let to: &[ConnId] = match action {
                    Action::Send { to, .. } | Action::Raw { to, .. } | Action::Group { to, .. } => {
                        std::slice::from_ref(to)
                    }
                    Action::Fanout { to, .. } => to,
                    Action::Close { conn } | Action::Auth { conn, .. } | Action::Stats { conn } => std::slice::from_ref(conn),
                    Action::Store(_) => &[],
                };
                for conn in to {
                    prop_assert!((0..4).any(|s| id(s, &generation) == *conn), "event to a stale connection {conn:?}");
                }
            }
            if let Err(e) = chat.check_invariants() {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
