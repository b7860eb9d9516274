//! Line in, lines out: every command, event and error code of the baseline,
//! driven through the parser, the state machine and the renderer.

use super::*;
use crate::config::CoreConfig;
use crate::core::{AuthOutcome, AuthRequest, Record};

const T0: u64 = 1_795_341_600_123; // 2026-11-22T10:00:00.123Z

/// A chat with numbered connections and a clock that moves 1 ms per line.
struct Harness {
    chat: Chat,
    now: u64,
}

impl Harness {
    fn new() -> Self {
        Self::with(CoreConfig::default())
    }

    fn with(config: CoreConfig) -> Self {
        Harness {
            chat: Chat::new(config),
            now: T0,
        }
    }

    fn connect(&mut self, conn: u64) -> Vec<String> {
        let out = self.chat.connect(
            ConnId(conn),
            "127.0.0.1".parse().unwrap(),
            Timestamp(self.now),
        );
        render_actions(&out).into_iter().map(|(_, l)| l).collect()
    }

    /// All lines the line causes, as `conn: line`.
    fn all(&mut self, conn: u64, line: &str) -> Vec<String> {
        let now = Timestamp(self.now);
        let mut actions = match parse(line) {
            Ok(cmd) => self.chat.handle(ConnId(conn), cmd, now),
            Err(e) => vec![Action::Send {
                to: ConnId(conn),
                event: e.into(),
            }],
        };
        answer_auth(&mut self.chat, &mut actions, now);
        let out = render_actions(&actions);
        self.now += 1;
        self.chat.check_invariants().unwrap();
        out.into_iter()
            .map(|(c, l)| format!("{}: {l}", c.0))
            .collect()
    }

    /// Lines the line causes for the sender only.
    fn send(&mut self, conn: u64, line: &str) -> Vec<String> {
        let me = format!("{conn}: ");
        self.all(conn, line)
            .into_iter()
            .filter_map(|l| l.strip_prefix(&me).map(str::to_string))
            .collect()
    }

    /// Connects and logs in, returning nothing.
    fn login(&mut self, conn: u64, name: &str) {
        self.connect(conn);
        let out = self.send(conn, &format!("/login {name}"));
        assert!(out[0].starts_with("OK login"), "{out:?}");
    }
}

/// Plays the password workers at once: a "hash" is the password behind a
/// marker, and a password matches its own "hash".
fn answer_auth(chat: &mut Chat, actions: &mut Vec<Action>, now: Timestamp) {
    let mut i = 0;
    while i < actions.len() {
        if let Action::Auth { conn, request } = actions[i].clone() {
            let outcome = match request {
                AuthRequest::Hash { password } => {
                    AuthOutcome::Hashed(format!("fake${}", password.expose()).into())
                }
                AuthRequest::Verify { hash, password } => AuthOutcome::Verified(matches!(
                    (hash, password),
                    (Some(h), Some(p)) if *h == *format!("fake${}", p.expose())
                )),
            };
            let more = chat.auth_done(conn, outcome, now);
            actions.extend(more);
        }
        i += 1;
    }
}

#[test]
fn hello_on_connect() {
    let mut h = Harness::new();
    assert_eq!(
        h.connect(1),
        [format!(
            "HELLO chat.local {} :welcome, type /help",
            crate::VERSION
        )]
    );
}

#[test]
fn login_lists_users_and_joins_the_lobby() {
    let mut h = Harness::new();
    h.login(1, "bob");
    h.connect(2);
    assert_eq!(
        h.all(2, "/login alice"),
        [
            "2: OK login alice 2",
            "2: USERS :bob alice",
            "2: OK users 2",
            "1: JOIN #lobby alice",
            "2: OK join #lobby",
            "2: MEMBERS #lobby :bob alice",
            "2: HISTORY #lobby 0",
        ]
    );
}

#[test]
fn login_errors_in_precedence_order() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.connect(2);
    assert_eq!(
        h.send(2, "/login 1x"),
        [
            "ERR bad-name 1x :a name is 1-32 of A-Z a-z 0-9 _ - starting with a letter; a room is # and 1-32 of them"
        ]
    );
    assert_eq!(
        h.send(2, &format!("/login {}", "a".repeat(33)))[0]
            .split(' ')
            .nth(1),
        Some("bad-name")
    );
    assert_eq!(
        h.send(2, "/login ALICE"),
        ["ERR name-taken ALICE :that name is online already"]
    );
    assert_eq!(
        h.send(2, "/login"),
        ["ERR bad-args login :usage: /login NAME [PASSWORD]"]
    );
    assert_eq!(
        h.send(1, "/login carol"),
        ["ERR already-logged-in :already logged in"]
    );
    // A guest may give a password: no name is registered yet.
    assert_eq!(h.send(2, "/login carol secret")[0], "OK login carol 2");
}

#[test]
fn commands_before_login() {
    let mut h = Harness::new();
    h.connect(1);
    for cmd in [
        "/logout",
        "/join #a",
        "/create #a",
        "/leave #a",
        "/switch #a",
        "/say #a hi",
        "/msg bob hi",
        "/broadcast hi",
        "/users",
        "/rooms",
        "/history #lobby",
        "/whoami",
        "plain text",
    ] {
        assert_eq!(
            h.send(1, cmd),
            ["ERR not-logged-in :log in first: /login NAME"],
            "{cmd}"
        );
    }
    assert_eq!(h.send(1, "/ping"), ["PONG"]);
    assert_eq!(h.send(1, "/PING abc"), ["PONG abc"]);
    assert_eq!(h.send(1, "/ping two words"), ["PONG :two words"]);
    let help = h.send(1, "/help");
    assert!(
        help.len() > 10
            && help[..help.len() - 1]
                .iter()
                .all(|l| l.starts_with("HELP :"))
    );
    assert_eq!(help.last().map(String::as_str), Some("OK help"));
    assert_eq!(h.send(1, "/quit"), ["BYE :bye"]);
}

#[test]
fn register_creates_an_account_and_logs_in() {
    let mut h = Harness::new();
    h.login(1, "bob");
    h.connect(2);
    assert_eq!(
        h.all(2, "/register Alice sekrit-pw"),
        [
            "2: OK register Alice 2",
            "2: USERS :bob Alice",
            "2: OK users 2",
            "1: JOIN #lobby Alice",
            "2: OK join #lobby",
            "2: MEMBERS #lobby :bob Alice",
            "2: HISTORY #lobby 0",
        ]
    );
    assert_eq!(
        h.send(2, "/register carol sekrit-pw"),
        ["ERR already-logged-in :already logged in"]
    );
}

#[test]
fn register_errors() {
    let mut h = Harness::new();
    h.login(1, "bob");
    h.connect(2);
    assert_eq!(
        h.send(2, "/register 1x sekrit-pw")[0].split(' ').nth(1),
        Some("bad-name")
    );
    assert_eq!(
        h.send(2, "/register alice short"),
        ["ERR bad-password :a password is 8-256 bytes"]
    );
    let long = "p".repeat(257);
    assert_eq!(
        h.send(2, &format!("/register alice {long}")),
        ["ERR bad-password :a password is 8-256 bytes"]
    );
    assert_eq!(
        h.send(2, "/register BOB sekrit-pw"),
        ["ERR name-taken BOB :that name is online already"]
    );
    assert_eq!(
        h.send(2, "/register alice"),
        ["ERR bad-args register :usage: /register NAME PASSWORD"]
    );
    assert!(
        h.send(2, &format!("/register alice {}", "p".repeat(256)))[0]
            .starts_with("OK register alice")
    );
    h.send(2, "/logout");
    assert_eq!(
        h.send(2, "/register ALICE sekrit-pw"),
        ["ERR name-taken ALICE :that name is online already"]
    );
}

#[test]
fn registered_names_need_their_password() {
    let mut h = Harness::new();
    h.connect(1);
    h.send(1, "/register alice sekrit-pw");
    h.connect(2);
    // Precedence: bad-name, then auth-failed, then name-taken.
    assert_eq!(
        h.send(2, "/login al!ce sekrit-pw")[0].split(' ').nth(1),
        Some("bad-name")
    );
    assert_eq!(
        h.send(2, "/login alice"),
        ["ERR auth-failed :wrong name or password"]
    );
    assert_eq!(
        h.send(2, "/login alice wrong-pw"),
        ["ERR auth-failed :wrong name or password"]
    );
    assert_eq!(
        h.send(2, "/login ALICE sekrit-pw"),
        ["ERR name-taken alice :that name is online already"]
    );
    h.send(1, "/quit");
    let out = h.send(2, "/login ALICE sekrit-pw");
    assert_eq!(out[0], "OK login alice 1");
}

#[test]
fn failed_logins_from_one_address_are_slowed_down() {
    let mut h = Harness::with(CoreConfig {
        login_failures: 3,
        login_failure_refill_ms: 10_000,
        ..CoreConfig::default()
    });
    h.connect(1);
    h.send(1, "/register alice sekrit-pw");
    h.connect(2);
    for _ in 0..3 {
        assert_eq!(
            h.send(2, "/login alice nope-nope"),
            ["ERR auth-failed :wrong name or password"]
        );
    }
    let limited = h.send(2, "/login alice sekrit-pw");
    assert_eq!(limited.len(), 1);
    assert!(
        limited[0].starts_with("ERR rate-limited :too many failed logins"),
        "{limited:?}"
    );
    // Guests are not held up.
    h.connect(3);
    assert_eq!(h.send(3, "/login carol")[0], "OK login carol 2");
    h.send(1, "/quit");
    h.now += 10_000;
    assert_eq!(h.send(2, "/login alice sekrit-pw")[0], "OK login alice 1");
}

#[test]
fn accounts_are_rejoined_to_their_rooms_after_the_lobby() {
    let mut h = Harness::new();
    h.connect(1);
    h.send(1, "/register alice sekrit-pw");
    h.send(1, "/join #b");
    h.send(1, "/join #a");
    h.send(1, "/join #c");
    h.send(1, "/leave #c");
    h.send(1, "/logout");
    let out = h.send(1, "/login alice sekrit-pw");
    let joins: Vec<&str> = out
        .iter()
        .filter(|l| l.starts_with("OK join"))
        .map(String::as_str)
        .collect();
    assert_eq!(joins, ["OK join #lobby", "OK join #b", "OK join #a"]);
    // The lobby stays current.
    assert!(h.send(1, "hello")[0].starts_with("MSG #lobby alice"));
    assert_eq!(
        h.send(1, "/whoami"),
        ["YOU alice 1 127.0.0.1 :#lobby #b #a"]
    );
}

#[test]
fn direct_messages_wait_for_an_offline_account() {
    let mut h = Harness::new();
    h.connect(1);
    h.send(1, "/register bob sekrit-pw");
    h.send(1, "/join #x");
    h.send(1, "/quit");
    h.login(2, "alice");
    assert_eq!(
        h.all(2, "/msg BOB are you there?"),
        ["2: DM alice bob 1 2026-11-22T10:00:00.127Z :are you there?"]
    );
    h.send(2, "/msg bob second");
    assert_eq!(
        h.send(2, "/msg carol hi"),
        ["ERR no-such-user carol :no such user online"]
    );
    h.connect(3);
    let out = h.send(3, "/login bob sekrit-pw");
    let tail: Vec<&str> = out.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "HISTORY #x 0",
            "DM alice bob 1 2026-11-22T10:00:00.127Z :are you there?",
            "DM alice bob 2 2026-11-22T10:00:00.128Z :second",
        ]
    );
    h.send(3, "/logout");
    assert!(
        !h.send(3, "/login bob sekrit-pw")
            .iter()
            .any(|l| l.starts_with("DM "))
    );
}

#[test]
fn a_full_mailbox_is_refused() {
    let mut h = Harness::with(CoreConfig {
        inbox_limit: 2,
        ..CoreConfig::default()
    });
    h.connect(1);
    h.send(1, "/register bob sekrit-pw");
    h.send(1, "/quit");
    h.login(2, "alice");
    h.send(2, "/msg bob 1");
    h.send(2, "/msg bob 2");
    assert_eq!(
        h.send(2, "/msg bob 3"),
        ["ERR mailbox-full bob :that user has too many unread messages"]
    );
}

#[test]
fn topics_are_shown_and_set_by_members() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    h.send(2, "/join #side");
    assert_eq!(
        h.all(1, "/topic lobby all things chat"),
        [
            "1: TOPIC #lobby alice :all things chat",
            "2: TOPIC #lobby alice :all things chat",
        ]
    );
    assert_eq!(
        h.send(1, "/topic #lobby"),
        ["ROOM #lobby 1 2 :all things chat"]
    );
    assert_eq!(h.send(1, "/rooms")[0], "ROOM #lobby 1 2 :all things chat");
    assert_eq!(
        h.send(1, "/topic #side mine"),
        ["ERR not-in-room #side :you are not in that room"]
    );
    assert_eq!(
        h.send(1, &format!("/topic #lobby {}", "t".repeat(391))),
        ["ERR bad-args topic :a topic is at most 390 bytes"]
    );
    assert_eq!(
        h.send(1, "/topic #nope x"),
        ["ERR no-such-room #nope :no such room"]
    );
    assert_eq!(
        h.send(1, "/topic"),
        ["ERR bad-args topic :usage: /topic ROOM [text]"]
    );
}

#[test]
fn commands_wait_for_a_password_check() {
    let mut h = Harness::new();
    h.connect(1);
    h.send(1, "/register alice sekrit-pw");
    h.send(1, "/quit");
    h.login(3, "bob");
    h.connect(2);
    let now = Timestamp(h.now);
    let login = h
        .chat
        .handle(ConnId(2), parse("/login alice sekrit-pw").unwrap(), now);
    let [
        Action::Auth {
            request: AuthRequest::Verify { .. },
            ..
        },
    ] = &login[..]
    else {
        panic!("{login:?}");
    };
    // Typed before the answer: held, then run in order.
    assert!(
        h.chat
            .handle(ConnId(2), parse("hello after login").unwrap(), now)
            .is_empty()
    );
    assert!(
        h.chat
            .handle(ConnId(2), parse("/ping 1").unwrap(), now)
            .is_empty()
    );
    let out = render_actions(
        &h.chat
            .auth_done(ConnId(2), AuthOutcome::Verified(true), now),
    );
    let mine: Vec<&str> = out
        .iter()
        .filter(|(c, _)| *c == ConnId(2))
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(mine.first(), Some(&"OK login alice 1"));
    assert_eq!(
        &mine[mine.len() - 2..],
        [
            "MSG #lobby alice 1 2026-11-22T10:00:00.126Z :hello after login",
            "PONG 1"
        ]
    );
    // A late answer for a connection that is gone is ignored.
    assert!(
        h.chat
            .auth_done(ConnId(99), AuthOutcome::Verified(true), now)
            .is_empty()
    );
}

#[test]
fn durable_changes_are_recorded() {
    let mut h = Harness::new();
    h.connect(1);
    let now = Timestamp(h.now);
    let mut out = h
        .chat
        .handle(ConnId(1), parse("/register alice sekrit-pw").unwrap(), now);
    answer_auth(&mut h.chat, &mut out, now);
    for line in [
        "/join #new",
        "hi",
        "/topic #new t",
        "/leave #new",
        "/broadcast b",
    ] {
        out.extend(h.chat.handle(ConnId(1), parse(line).unwrap(), now));
    }
    let records: Vec<String> = out
        .iter()
        .filter_map(|a| match a {
            Action::Store(r) => Some(match r {
                Record::Account { name, hash, .. } => format!("account {name} {hash}"),
                Record::Room { name, .. } => format!("room {name}"),
                Record::Joined { room, .. } => format!("joined {room}"),
                Record::Left { room, .. } => format!("left {room}"),
                Record::Message(m) => format!("message {}", m.text),
                Record::Topic { topic, .. } => format!("topic {topic}"),
                Record::Counters {
                    next_user,
                    next_msg,
                } => format!("counters {next_user} {next_msg}"),
                other => format!("{other:?}"),
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        records,
        [
            "account alice fake$sekrit-pw",
            "joined 1",
            "room #new",
            "joined 2",
            "message hi",
            "topic t",
            "left 2",
            "counters 2 3",
        ]
    );
}

#[test]
fn unknown_commands_and_case() {
    let mut h = Harness::new();
    h.login(1, "alice");
    assert_eq!(
        h.send(1, "/frobnicate x"),
        ["ERR unknown-command frobnicate :unknown command, type /help"]
    );
    assert_eq!(h.send(1, "/WHOAMI"), ["YOU alice 1 127.0.0.1 :#lobby"]);
    assert_eq!(
        h.send(1, "/users now"),
        ["ERR bad-args users :usage: /users"]
    );
}

#[test]
fn plain_text_and_double_slash_go_to_the_current_room() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    assert_eq!(
        h.all(1, "hello everyone"),
        [
            "1: MSG #lobby alice 1 2026-11-22T10:00:00.125Z :hello everyone",
            "2: MSG #lobby alice 1 2026-11-22T10:00:00.125Z :hello everyone",
        ]
    );
    assert_eq!(
        h.send(2, "//me waves"),
        ["MSG #lobby bob 2 2026-11-22T10:00:00.126Z :/me waves"]
    );
}

#[test]
fn join_creates_replays_and_announces() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    assert_eq!(
        h.all(1, "/join games"),
        [
            "1: OK join #games",
            "1: MEMBERS #games :alice",
            "1: HISTORY #games 0",
        ]
    );
    h.send(1, "first");
    h.send(1, "/say #games second");
    assert_eq!(
        h.all(2, "/join #GAMES"),
        [
            "1: JOIN #games bob",
            "2: OK join #games",
            "2: MEMBERS #games :alice bob",
            "2: HISTORY #games 2",
            "2: MSG #games alice 1 2026-11-22T10:00:00.126Z :first",
            "2: MSG #games alice 2 2026-11-22T10:00:00.127Z :second",
        ]
    );
    // Joining again repeats the replies but announces nothing.
    assert!(
        h.all(2, "/join #games")
            .iter()
            .all(|l| l.starts_with("2: "))
    );
    assert_eq!(
        h.send(1, "/join #bad!name"),
        [
            "ERR bad-name #bad!name :a name is 1-32 of A-Z a-z 0-9 _ - starting with a letter; a room is # and 1-32 of them"
        ]
    );
    assert_eq!(
        h.send(1, "/join a b c"),
        ["ERR bad-args join :usage: /join ROOM [KEY]"]
    );
}

#[test]
fn join_replays_the_last_twenty() {
    let mut h = Harness::new();
    h.login(1, "alice");
    for i in 0..25 {
        h.send(1, &format!("m{i}"));
    }
    h.login(2, "bob");
    let out = h.send(2, "/join #lobby");
    assert_eq!(out[2], "HISTORY #lobby 20");
    assert!(out[3].ends_with(":m5"));
    assert!(out[22].ends_with(":m24"));
}

#[test]
fn create_requires_a_new_room() {
    let mut h = Harness::new();
    h.login(1, "alice");
    assert_eq!(
        h.send(1, "/create #new"),
        [
            "OK create #new 2",
            "OK join #new",
            "MEMBERS #new :alice",
            "HISTORY #new 0",
        ]
    );
    assert_eq!(
        h.send(1, "/create new"),
        ["ERR room-exists #new :that room exists already"]
    );
    assert_eq!(
        h.send(1, "/create #LOBBY"),
        ["ERR room-exists #LOBBY :that room exists already"]
    );
}

#[test]
fn leave_announces_and_falls_back_to_the_last_joined_room() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    h.send(1, "/join #a");
    h.send(1, "/join #b");
    h.send(2, "/join #b");
    assert_eq!(
        h.all(1, "/leave #b see you"),
        ["2: LEAVE #b alice :see you", "1: OK leave #b"]
    );
    // #a was joined most recently among the rooms left.
    assert_eq!(
        h.send(1, "now in a"),
        ["MSG #a alice 1 2026-11-22T10:00:00.129Z :now in a"]
    );
    assert_eq!(h.all(1, "/leave a"), ["1: OK leave #a"]);
    assert_eq!(h.all(2, "/leave #b"), ["2: OK leave #b"]);
    assert_eq!(
        h.send(1, "/leave #b"),
        ["ERR not-in-room #b :you are not in that room"]
    );
    assert_eq!(
        h.send(1, "/leave #nowhere"),
        ["ERR no-such-room #nowhere :no such room"]
    );
    assert_eq!(
        h.send(1, "/leave"),
        ["ERR bad-args leave :usage: /leave ROOM [reason]"]
    );
    h.send(1, "/leave #lobby");
    assert_eq!(
        h.send(1, "anyone?"),
        ["ERR not-in-room :you are in no room: /join ROOM first"]
    );
}

#[test]
fn switch_changes_where_text_goes() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.send(1, "/join #a");
    assert_eq!(h.send(1, "/switch lobby"), ["OK switch #lobby"]);
    assert!(h.send(1, "hi")[0].starts_with("MSG #lobby alice"));
    assert_eq!(
        h.send(1, "/switch #zzz"),
        ["ERR no-such-room #zzz :no such room"]
    );
    h.login(2, "bob");
    assert_eq!(
        h.send(2, "/switch #a"),
        ["ERR not-in-room #a :you are not in that room"]
    );
    assert_eq!(
        h.send(2, "/switch"),
        ["ERR bad-args switch :usage: /switch ROOM"]
    );
}

#[test]
fn say_needs_membership_and_text() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    h.send(1, "/join #a");
    assert_eq!(
        h.send(2, "/say #a hi"),
        ["ERR not-in-room #a :you are not in that room"]
    );
    assert_eq!(
        h.send(2, "/say #nope hi"),
        ["ERR no-such-room #nope :no such room"]
    );
    assert_eq!(
        h.send(2, "/say #a"),
        ["ERR bad-args say :usage: /say ROOM text"]
    );
    assert_eq!(
        h.all(1, "/say a  spaced  out "),
        ["1: MSG #a alice 1 2026-11-22T10:00:00.129Z :spaced  out "]
    );
}

#[test]
fn direct_messages_reach_both_parties_only() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    h.login(3, "carol");
    assert_eq!(
        h.all(1, "/msg BOB psst"),
        [
            "2: DM alice bob 1 2026-11-22T10:00:00.126Z :psst",
            "1: DM alice bob 1 2026-11-22T10:00:00.126Z :psst",
        ]
    );
    assert_eq!(
        h.all(1, "/msg alice note to self"),
        ["1: DM alice alice 2 2026-11-22T10:00:00.127Z :note to self"]
    );
    assert_eq!(
        h.send(1, "/msg dave hi"),
        ["ERR no-such-user dave :no such user online"]
    );
    assert_eq!(
        h.send(1, "/msg 9x hi")[0].split(' ').nth(1),
        Some("bad-name")
    );
    assert_eq!(
        h.send(1, "/msg bob"),
        ["ERR bad-args msg :usage: /msg NAME text"]
    );
}

#[test]
fn broadcast_reaches_everyone_logged_in() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    h.send(2, "/leave #lobby");
    h.connect(3); // not logged in
    assert_eq!(
        h.all(1, "/broadcast hear ye"),
        [
            "1: BROADCAST alice 1 2026-11-22T10:00:00.126Z :hear ye",
            "2: BROADCAST alice 1 2026-11-22T10:00:00.126Z :hear ye",
        ]
    );
    assert_eq!(
        h.send(1, "/broadcast"),
        ["ERR bad-args broadcast :usage: /broadcast text"]
    );
}

#[test]
fn users_and_rooms_listings() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    h.send(2, "/join #z");
    assert_eq!(h.send(1, "/users"), ["USERS :alice bob", "OK users 2"]);
    assert_eq!(
        h.send(1, "/rooms"),
        ["ROOM #lobby 1 2 :", "ROOM #z 2 1 :", "OK rooms 2"]
    );
    assert_eq!(h.send(1, "/rooms x"), ["ERR bad-args rooms :usage: /rooms"]);
}

#[test]
fn long_user_lists_are_split_under_the_line_limit() {
    let mut h = Harness::new();
    for i in 0..600 {
        h.login(i, &format!("user{i:04}_{}", "x".repeat(20)));
    }
    let out = h.send(0, "/users");
    assert!(out.len() > 2);
    assert_eq!(out.last().map(String::as_str), Some("OK users 600"));
    let mut names = 0;
    for line in &out[..out.len() - 1] {
        assert!(line.len() <= crate::config::MAX_SERVER_LINE && line.starts_with("USERS :"));
        names += line["USERS :".len()..].split(' ').count();
    }
    assert_eq!(names, 600);
    let members = h.send(0, "/join #lobby");
    assert!(
        members
            .iter()
            .filter(|l| l.starts_with("MEMBERS #lobby :"))
            .count()
            > 1
    );
}

#[test]
fn history_replays_any_room_bounded() {
    let mut h = Harness::with(CoreConfig {
        history_len: 600,
        ..CoreConfig::default()
    });
    h.login(1, "alice");
    for i in 0..700 {
        h.send(1, &format!("m{i}"));
    }
    h.login(2, "bob");
    h.send(2, "/leave #lobby");
    let out = h.send(2, "/history lobby 3");
    assert_eq!(out.len(), 4);
    assert_eq!(out[0], "HISTORY #lobby 3");
    assert!(out[1].ends_with(":m697") && out[3].ends_with(":m699"));
    assert_eq!(h.send(2, "/history #lobby").len(), 21);
    assert_eq!(h.send(2, "/history #lobby 9999")[0], "HISTORY #lobby 500");
    assert_eq!(h.send(2, "/history #lobby 0"), ["HISTORY #lobby 0"]);
    assert_eq!(
        h.send(2, "/history #none"),
        ["ERR no-such-room #none :no such room"]
    );
    assert_eq!(
        h.send(2, "/history #lobby x"),
        ["ERR bad-args history :usage: /history ROOM [N]"]
    );
    assert_eq!(
        h.send(2, "/history"),
        ["ERR bad-args history :usage: /history ROOM [N]"]
    );
}

#[test]
fn whoami_lists_rooms_in_join_order() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.send(1, "/join #b");
    h.send(1, "/join #a");
    assert_eq!(
        h.send(1, "/whoami"),
        ["YOU alice 1 127.0.0.1 :#lobby #b #a"]
    );
}

#[test]
fn logout_tells_peers_and_allows_a_new_login() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    h.send(1, "/join #x");
    h.send(2, "/join #x");
    // OFFLINE once, though they share two rooms.
    assert_eq!(
        h.all(1, "/logout"),
        ["2: OFFLINE alice :logged out", "1: OK logout"]
    );
    assert_eq!(
        h.send(1, "/whoami"),
        ["ERR not-logged-in :log in first: /login NAME"]
    );
    assert_eq!(h.send(1, "/login alice")[0], "OK login alice 3");
    assert_eq!(h.send(2, "/logout"), ["OK logout"]);
    assert_eq!(
        h.send(2, "/logout"),
        ["ERR not-logged-in :log in first: /login NAME"]
    );
}

#[test]
fn quit_says_bye_and_closes() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    let out = h.chat.handle(
        ConnId(1),
        parse("/quit gone fishing").unwrap(),
        Timestamp(h.now),
    );
    assert_eq!(
        render_actions(&out),
        [
            (ConnId(2), "OFFLINE alice :gone fishing".to_string()),
            (ConnId(1), "BYE :gone fishing".to_string()),
        ]
    );
    assert_eq!(out.last(), Some(&Action::Close { conn: ConnId(1) }));
    // The connection is gone: later lines are ignored.
    assert!(h.all(1, "/ping").is_empty());
    assert_eq!(h.send(2, "/users"), ["USERS :bob", "OK users 1"]);
}

#[test]
fn disconnect_sends_offline_to_room_peers_only() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    h.login(3, "carol");
    h.send(3, "/leave #lobby");
    let out = h
        .chat
        .disconnect(ConnId(1), "connection reset", Timestamp(h.now));
    assert_eq!(
        render_actions(&out),
        [(ConnId(2), "OFFLINE alice :connection reset".to_string())]
    );
    assert!(
        h.chat
            .disconnect(ConnId(1), "again", Timestamp(h.now))
            .is_empty()
    );
}

#[test]
fn shutdown_says_bye_to_everyone() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.connect(2);
    let out = h.chat.shutdown(Timestamp(h.now));
    assert_eq!(
        render_actions(&out),
        [
            (ConnId(1), "BYE :server shutting down".to_string()),
            (ConnId(2), "BYE :server shutting down".to_string()),
        ]
    );
    assert_eq!(
        out.iter()
            .filter(|a| matches!(a, Action::Close { .. }))
            .count(),
        2
    );
    assert_eq!(h.chat.user_count(), 0);
}

#[test]
fn framing_errors_are_answered() {
    let e = frame_error(FrameError::LineTooLong);
    let mut buf = Vec::new();
    render(&Event::Error(e), &mut buf);
    assert_eq!(
        buf,
        b"ERR line-too-long :line too long (at most 4096 bytes)\n"
    );
    buf.clear();
    render(&Event::Error(frame_error(FrameError::BadUtf8)), &mut buf);
    assert_eq!(buf, b"ERR bad-utf8 :line is not valid UTF-8\n");
}

#[test]
fn lobby_can_be_renamed_or_off() {
    let mut h = Harness::with(CoreConfig {
        lobby: None,
        ..CoreConfig::default()
    });
    h.connect(1);
    assert_eq!(
        h.send(1, "/login alice"),
        ["OK login alice 1", "USERS :alice", "OK users 1"]
    );
    assert_eq!(
        h.send(1, "hi"),
        ["ERR not-in-room :you are in no room: /join ROOM first"]
    );
    let mut h = Harness::with(CoreConfig {
        lobby: Some("#hall".into()),
        ..CoreConfig::default()
    });
    h.connect(1);
    assert_eq!(h.send(1, "/login alice")[3], "OK join #hall");
}

#[test]
fn room_limits_are_enforced() {
    let mut h = Harness::with(CoreConfig {
        max_rooms: 3,
        max_rooms_per_user: 2,
        ..CoreConfig::default()
    });
    h.login(1, "alice");
    h.send(1, "/join #a");
    assert_eq!(
        h.send(1, "/join #b"),
        ["ERR too-many-rooms :you are in 2 rooms, the most allowed"]
    );
    h.login(2, "bob");
    h.send(2, "/leave #lobby");
    h.send(2, "/join #b");
    assert_eq!(
        h.send(2, "/create #c"),
        ["ERR too-many-rooms :the server holds as many rooms as it may"]
    );
    assert_eq!(
        h.send(1, "/rooms").last().map(String::as_str),
        Some("OK rooms 3")
    );
}

#[test]
fn server_lines_split_into_keyword_and_args() {
    assert_eq!(
        split_server_line("MSG #a bob 1 TS :hi there\n"),
        ("MSG", vec!["#a", "bob", "1", "TS", "hi there"])
    );
    assert_eq!(split_server_line("OK users 2"), ("OK", vec!["users", "2"]));
    assert_eq!(split_server_line("PONG"), ("PONG", vec![]));
    assert_eq!(
        split_server_line("ROOM #a 1 0 :"),
        ("ROOM", vec!["#a", "1", "0", ""])
    );
}

#[test]
fn ipv6_addresses_never_look_like_a_trailing_argument() {
    assert_eq!(wire_ip("::1".parse().unwrap()), "0::1");
    assert_eq!(wire_ip("2001:db8::1".parse().unwrap()), "2001:db8::1");
    assert_eq!(wire_ip("10.0.0.1".parse().unwrap()), "10.0.0.1");
}

#[test]
fn unsafe_error_arguments_are_left_out() {
    let mut h = Harness::new();
    h.login(1, "alice");
    assert_eq!(
        h.send(1, "/msg :bob hi")[0],
        "ERR bad-name :a name is 1-32 of A-Z a-z 0-9 _ - starting with a letter; a room is # and 1-32 of them"
    );
}

#[test]
fn stats_are_asked_of_the_reactor_and_rendered_as_lines() {
    let mut h = Harness::new();
    h.connect(1);
    assert_eq!(
        h.send(1, "/stats"),
        ["ERR not-logged-in :log in first: /login NAME"]
    );
    h.send(1, "/login alice");
    let out = h
        .chat
        .handle(ConnId(1), parse("/stats").unwrap(), Timestamp(h.now));
    assert_eq!(out, [Action::Stats { conn: ConnId(1) }]);
    let mut buf = Vec::new();
    render(
        &Event::Stats {
            counters: vec![
                ("users".into(), 1),
                ("disconnects:sendq-exceeded".into(), 2),
            ],
        },
        &mut buf,
    );
    assert_eq!(buf, b"STATS users 1\nSTATS disconnects:sendq-exceeded 2\n");
    assert_eq!(
        h.send(1, "/stats now"),
        ["ERR bad-args stats :usage: /stats"]
    );
}

#[test]
fn connections_that_never_log_in_are_closed_at_their_deadline() {
    let mut h = Harness::new();
    h.connect(1);
    h.login(2, "bob");
    let now = Timestamp(h.now);
    let out = h.chat.login_deadline(ConnId(1), now);
    assert_eq!(
        render_actions(&out),
        [(ConnId(1), "BYE :login timeout".to_string())]
    );
    assert_eq!(out.last(), Some(&Action::Close { conn: ConnId(1) }));
    assert!(h.chat.login_deadline(ConnId(2), now).is_empty());
    assert!(h.chat.login_deadline(ConnId(1), now).is_empty());
    assert_eq!(h.chat.connection_count(), 1);
}

#[test]
fn counts_follow_messages_and_deliveries() {
    let mut h = Harness::new();
    h.login(1, "alice");
    h.login(2, "bob");
    h.send(1, "hello both");
    h.send(1, "/msg bob psst");
    h.send(1, "/broadcast all");
    let counts = h.chat.counts();
    assert_eq!((counts.messages_in, counts.deliveries_out), (3, 6));
    assert_eq!((counts.users, counts.connections, counts.rooms), (2, 2, 1));
}

#[test]
fn big_rooms_stop_announcing_comings_and_goings() {
    let mut h = Harness::with(CoreConfig {
        presence_limit: 2,
        ..CoreConfig::default()
    });
    h.login(1, "alice");
    // The second member is still announced: the room has 2.
    h.connect(2);
    assert!(
        h.all(2, "/login bob")
            .contains(&"1: JOIN #lobby bob".to_string())
    );
    // A third makes the room bigger than the limit: nobody else is told.
    h.connect(3);
    let out = h.all(3, "/login carol");
    assert!(out.iter().all(|l| l.starts_with("3: ")), "{out:?}");
    // MEMBERS stays exact.
    assert!(out.contains(&"3: MEMBERS #lobby :alice bob carol".to_string()));
    assert_eq!(h.all(3, "/leave #lobby"), ["3: OK leave #lobby"]);
    // Back at the limit: announced again.
    assert_eq!(h.all(2, "/quit"), ["1: OFFLINE bob :quit", "2: BYE :bye"]);
}
