//! End-to-end tests of the line protocol over real loopback sockets: several
//! clients at once against an in-process server, and the real `chatd` and
//! `chat` binaries.
//!
//! Synchronisation is by `/ping TOKEN` → `PONG TOKEN` round trips, never by
//! sleeping: the server handles every input in order on one thread, so once a
//! client has seen the effect of an action, a ping sent by any client after
//! that returns only after everything the action caused for it.

mod common;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Client, Msg, SILENCE, STOP_TIMEOUT, TestServer, parse_msg, spawn_daemon, start_server,
    wait_timeout,
};

fn server() -> TestServer {
    start_server(|_| {})
}

/// Logs every name in on its own connection, in order, and checks that each
/// earlier client was told exactly `JOIN #lobby` of each later one, so every
/// returned client starts with nothing pending.
fn logged_in(server: &TestServer, names: &[&str]) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut c = server.connect(name);
        let login = c.login(name);
        assert_eq!(login.users, names[..=i], "[{name}] USERS at login");
        assert_eq!(login.members, names[..=i], "[{name}] MEMBERS #lobby");
        clients.push(c);
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let want: Vec<String> = names[i + 1..]
            .iter()
            .map(|n| format!("JOIN #lobby {n}"))
            .collect();
        assert_eq!(c.ping(), want, "[{}] events from the later logins", c.label);
    }
    clients
}

#[test]
fn three_clients_see_every_message_in_the_same_total_order() {
    same_total_order(&server());
}

/// `--db off`: no database thread and nothing to wait for, the same
/// deliveries in the same order, and history served from memory.
#[test]
fn without_a_database_every_message_arrives_in_order() {
    same_total_order(&start_server(|c| c.db = chatd::store::OFF.into()));
}

fn same_total_order(server: &TestServer) {
    const EACH: usize = 6;
    let mut clients = logged_in(server, &["alice", "bob", "carol"]);
    // Everyone sends at once, from its own thread, then reads every message.
    let seen: Vec<Vec<Msg>> = thread::scope(|s| {
        let workers: Vec<_> = clients
            .iter_mut()
            .map(|c| {
                s.spawn(move || {
                    for k in 0..EACH {
                        let text = format!("{} says {k}: a b  c", c.label);
                        c.send(&text);
                    }
                    (0..3 * EACH).map(|_| parse_msg(&c.line())).collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("client thread"))
            .collect()
    });
    assert_eq!(seen[0], seen[1], "alice and bob saw different orders");
    assert_eq!(seen[0], seen[2], "alice and carol saw different orders");
    let order = &seen[0];
    for pair in order.windows(2) {
        assert!(pair[0].id < pair[1].id, "ids not increasing: {pair:?}");
        assert!(pair[0].at <= pair[1].at, "timestamps go back: {pair:?}");
    }
    for name in ["alice", "bob", "carol"] {
        let texts: Vec<&str> = order
            .iter()
            .filter(|m| m.sender == name)
            .map(|m| m.text.as_str())
            .collect();
        let want: Vec<String> = (0..EACH)
            .map(|k| format!("{name} says {k}: a b  c"))
            .collect();
        assert_eq!(texts, want, "{name}'s messages, in the order sent");
    }
    assert!(order.iter().all(|m| m.room == "#lobby"));
    for c in &mut clients {
        c.assert_quiet();
    }
    // The room's history holds the same messages in the same order.
    let alice = &mut clients[0];
    alice.send("/history #lobby 100");
    alice.expect_next(&format!("HISTORY #lobby {}", 3 * EACH));
    let history: Vec<Msg> = (0..3 * EACH).map(|_| parse_msg(&alice.line())).collect();
    assert_eq!(&history, order);
}

#[test]
fn direct_messages_reach_only_the_two_parties() {
    let server = server();
    let mut c = logged_in(&server, &["alice", "bob", "carol"]);
    c[0].send("/msg bob psst, only for you");
    let dm = c[1].line();
    let (kw, args) = chatd::dialect::line::split_server_line(&dm);
    assert_eq!((kw, args.len()), ("DM", 5), "{dm:?}");
    assert_eq!(
        (args[0], args[1], args[4]),
        ("alice", "bob", "psst, only for you")
    );
    args[2].parse::<u64>().expect("numeric DM id");
    common::assert_rfc3339_millis(args[3]);
    c[0].expect_next(&dm); // the sender's echo is the same line
    c[2].assert_quiet();
    c[2].expect_silence(SILENCE);

    // Names are matched without regard to case; the reply goes back the same way.
    c[1].send("/msg ALICE got it");
    let reply = c[0].expect("DM bob alice ");
    assert!(reply.ends_with(" :got it"), "{reply:?}");
    c[1].expect_next(&reply);
    // A DM to oneself arrives once.
    c[0].send("/msg alice note to self");
    let note = c[0].expect("DM alice alice ");
    assert!(note.ends_with(" :note to self"), "{note:?}");
    c[0].send("/msg nobody hello?");
    c[0].expect_next("ERR no-such-user nobody :no such user online");
    for client in &mut c {
        client.assert_quiet();
    }
}

#[test]
fn join_leave_and_offline_reach_the_right_members_only() {
    let server = server();
    let mut c = logged_in(&server, &["alice", "bob", "carol", "dave"]);
    let [alice, bob, carol, dave] = &mut c[..] else {
        unreachable!()
    };

    // dave moves to a room of his own: the lobby hears him leave, nothing else.
    dave.send("/leave #lobby");
    dave.expect_next("OK leave #lobby");
    for other in [&mut *alice, &mut *bob, &mut *carol] {
        other.expect_next("LEAVE #lobby dave");
    }
    let (members, history) = dave.join("#other");
    assert_eq!((members, history.len()), (vec!["dave".to_string()], 0));

    // alice and bob share #side (bob names it without '#').
    let (members, _) = alice.join("#side");
    assert_eq!(members, ["alice"]);
    bob.send("/join side");
    bob.expect_next("OK join #side");
    let (members, _) = bob.join_replies_after_ok("#side");
    assert_eq!(members, ["alice", "bob"]);
    alice.expect_next("JOIN #side bob");

    // carol passes through #side.
    carol.join("#side");
    carol.send("/leave #side see ya");
    carol.expect_next("OK leave #side");
    for member in [&mut *alice, &mut *bob] {
        member.expect_next("JOIN #side carol");
        member.expect_next("LEAVE #side carol :see ya");
    }
    for client in [&mut *alice, &mut *bob, &mut *carol, &mut *dave] {
        client.assert_quiet();
    }

    // bob quits: alice shares two rooms with him and hears it once, carol
    // shares the lobby and hears it once, dave shares nothing and hears nothing.
    bob.send("/quit gone fishing");
    bob.expect_next("BYE :gone fishing");
    bob.expect_eof();
    assert_eq!(alice.ping(), ["OFFLINE bob :gone fishing"]);
    assert_eq!(carol.ping(), ["OFFLINE bob :gone fishing"]);
    dave.assert_quiet();
    // Nobody left in either room mentions bob any more.
    alice.send("/whoami");
    alice.expect_next("YOU alice 1 127.0.0.1 :#lobby #side");
    alice.send("/users");
    alice.expect_next("USERS :alice carol dave");
    alice.expect_next("OK users 3");
    alice.send("/rooms");
    alice.expect_next("ROOM #lobby 1 2 :");
    alice.expect_next("ROOM #other 2 1 :");
    alice.expect_next("ROOM #side 3 1 :");
    alice.expect_next("OK rooms 3");
}

#[test]
fn dropping_the_socket_without_quit_sends_offline() {
    let server = server();
    let mut c = logged_in(&server, &["alice", "bob"]);
    let bob = c.pop().expect("bob");
    drop(bob);
    let alice = &mut c[0];
    let offline = alice.expect_next_matching("OFFLINE bob :");
    assert!(offline.len() > "OFFLINE bob :".len(), "{offline:?}");
    alice.assert_quiet();
    // The name is free again.
    let mut again = server.login("BOB");
    alice.expect_next("JOIN #lobby BOB");
    again.assert_quiet();
}

#[test]
fn two_hundred_clients_all_get_a_broadcast() {
    const N: usize = 200;
    let started = Instant::now();
    let server = server();
    let names: Vec<String> = (0..N).map(|i| format!("u{i:03}")).collect();
    let mut clients: Vec<Client> = Vec::with_capacity(N);
    for (i, name) in names.iter().enumerate() {
        let mut c = server.connect(name);
        let login = c.login(name);
        assert_eq!(login.users.len(), i + 1, "[{name}] USERS");
        assert_eq!(login.members.len(), i + 1, "[{name}] MEMBERS");
        clients.push(c);
    }
    let last = clients.last_mut().expect("clients");
    last.send("/broadcast hello, all 200");
    for (i, c) in clients.iter_mut().enumerate() {
        // First the joins of everyone who logged in later, in order...
        for later in &names[i + 1..] {
            c.expect_next(&format!("JOIN #lobby {later}"));
        }
        // ...then the broadcast.
        let line = c.line();
        let (kw, args) = chatd::dialect::line::split_server_line(&line);
        assert_eq!((kw, args.len()), ("BROADCAST", 4), "[{}] {line:?}", c.label);
        assert_eq!((args[0], args[3]), ("u199", "hello, all 200"), "{line:?}");
        common::assert_rfc3339_millis(args[2]);
    }
    for c in &mut clients {
        c.assert_quiet();
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(20),
        "200 clients took {elapsed:?}"
    );
}

#[test]
fn a_client_sending_one_byte_per_write_still_works() {
    let server = server();
    let mut alice = server.login("alice");
    let mut slow = server.connect("slowpoke");
    let trickle = |c: &mut Client, bytes: &[u8]| {
        for b in bytes {
            c.send_raw(std::slice::from_ref(b));
            c.stream().flush().expect("flush");
            // A tiny pause so each byte leaves in its own segment (bounded:
            // about 1 ms per byte, under 100 bytes in all).
            thread::sleep(Duration::from_millis(1));
        }
    };
    trickle(&mut slow, b"/login slowpoke\r\n");
    let login = slow.login_replies("slowpoke");
    assert_eq!(login.users, ["alice", "slowpoke"]);
    alice.expect_next("JOIN #lobby slowpoke");
    // The 'é' is two bytes, split across two writes.
    trickle(&mut slow, "héllo, one byte at a time\n".as_bytes());
    let msg = parse_msg(&alice.line());
    assert_eq!(
        (msg.sender.as_str(), msg.text.as_str()),
        ("slowpoke", "héllo, one byte at a time")
    );
    assert_eq!(parse_msg(&slow.line()), msg);
    alice.assert_quiet();
    slow.assert_quiet();
}

#[test]
fn an_over_long_line_is_refused_and_the_next_line_works() {
    let server = server();
    let mut c = logged_in(&server, &["alice", "bob"]);
    let [alice, bob] = &mut c[..] else {
        unreachable!()
    };
    let mut bytes = vec![b'x'; 5000];
    bytes.extend_from_slice(b"\nafter the long one\n");
    alice.send_raw(&bytes);
    alice.expect_next("ERR line-too-long :line too long (at most 4096 bytes)");
    let after = parse_msg(&alice.line());
    assert_eq!(after.text, "after the long one");
    assert_eq!(parse_msg(&bob.line()), after);
    bob.assert_quiet();
    alice.assert_quiet();

    // The limit itself: 4096 bytes pass (with or without \r), 4097 do not.
    let max = "m".repeat(4096);
    alice.send(&max);
    alice.send(&format!("{max}\r"));
    alice.send(&format!("{max}n"));
    alice.send("/ping done");
    for _ in 0..2 {
        assert_eq!(parse_msg(&alice.line()).text, max);
        assert_eq!(parse_msg(&bob.line()).text, max);
    }
    alice.expect_next("ERR line-too-long :line too long (at most 4096 bytes)");
    alice.expect_next("PONG done");
    bob.assert_quiet();
}

#[test]
fn invalid_utf8_is_refused_and_ignored() {
    let server = server();
    let mut c = logged_in(&server, &["alice", "bob"]);
    let [alice, bob] = &mut c[..] else {
        unreachable!()
    };
    alice.send_raw(b"caf\xe9 latin-1\n\xff\xfe\nstill fine\n");
    alice.expect_next("ERR bad-utf8 :line is not valid UTF-8");
    alice.expect_next("ERR bad-utf8 :line is not valid UTF-8");
    let msg = parse_msg(&alice.line());
    assert_eq!(msg.text, "still fine");
    assert_eq!(parse_msg(&bob.line()), msg);
    alice.assert_quiet();
    bob.assert_quiet();
}

#[test]
fn empty_lines_are_ignored() {
    let server = server();
    let mut c = logged_in(&server, &["alice", "bob"]);
    c[0].send_raw(b"\n\r\n\n\r\n");
    c[0].assert_quiet();
    c[1].assert_quiet();
}

#[test]
fn a_megabyte_without_newline_disturbs_nobody() {
    const FLOOD: usize = 1 << 20;
    let server = server();
    let mut c = logged_in(&server, &["alice", "bob"]);
    let [alice, bob] = &mut c[..] else {
        unreachable!()
    };
    let mut writer = alice.stream().try_clone().expect("clone alice's socket");
    let flood = thread::spawn(move || {
        let chunk = [b'a'; 16 * 1024];
        for _ in 0..FLOOD / chunk.len() {
            writer.write_all(&chunk)?;
        }
        writer.flush()
    });
    // bob's round trips go on while alice floods.
    for _ in 0..20 {
        bob.assert_quiet();
    }
    bob.send("still here");
    let bobs = parse_msg(&bob.line());
    assert_eq!(bobs.text, "still here");
    flood
        .join()
        .expect("flood thread")
        .expect("writing the flood");
    bob.assert_quiet();

    // alice got one line-too-long (however the megabyte was split into reads)
    // and bob's message, in some order; nothing else while her line is open.
    let mut got = vec![alice.line(), alice.line()];
    got.sort();
    assert_eq!(
        got,
        [
            "ERR line-too-long :line too long (at most 4096 bytes)".to_string(),
            format!("MSG #lobby bob {} {} :still here", bobs.id, bobs.at),
        ]
    );
    alice.expect_silence(SILENCE);
    // The newline ends the discarded line; the next complete line works.
    alice.send_raw(b"\n/ping after-flood\nrecovered\n");
    alice.expect_next("PONG after-flood");
    let msg = parse_msg(&alice.line());
    assert_eq!(msg.text, "recovered");
    assert_eq!(parse_msg(&bob.line()), msg);
    alice.assert_quiet();
    bob.assert_quiet();
}

#[test]
fn quit_says_bye_then_closes() {
    let server = server();
    let mut c = logged_in(&server, &["alice", "bob"]);
    c[0].send("/quit going home");
    c[0].expect_next("BYE :going home");
    c[0].expect_eof();
    c[1].expect_next("OFFLINE alice :going home");
    c[1].assert_quiet();
    // Before login too, and without a reason.
    let mut guest = server.connect("guest");
    guest.send("/QUIT");
    guest.expect_next("BYE :bye");
    guest.expect_eof();
    c[1].assert_quiet();
}

#[test]
fn a_half_closed_client_still_gets_every_reply() {
    let server = server();
    let mut alice = server.login("alice");
    // Like `printf '/login x\n/users\n' | nc -N host port`.
    let mut x = server.connect("x");
    x.send_raw(b"/login x\n/users\n");
    x.shutdown_write();
    let login = x.login_replies("x");
    assert_eq!(login.users, ["alice", "x"]);
    assert_eq!(x.read_to_eof(), ["USERS :alice x", "OK users 2"]);
    alice.expect_next("JOIN #lobby x");
    let offline = alice.expect_next_matching("OFFLINE x");
    assert_eq!(offline, "OFFLINE x :connection closed");
    alice.assert_quiet();
}

#[test]
fn a_half_closed_client_gets_a_large_backlog_before_the_close() {
    // Megabytes of replies, so the queue is still full when the server reads
    // the client's EOF; the limits are raised so only that is tested.
    const HELPS: usize = 3000;
    let server = start_server(|c| {
        c.sendq = 64 << 20;
        c.close_grace = Duration::from_secs(30);
    });
    let mut x = server.connect("x");
    let mut input = b"/login x\n".to_vec();
    for _ in 0..HELPS {
        input.extend_from_slice(b"/help\n");
    }
    input.extend_from_slice(b"/users\n");
    x.send_raw(&input);
    x.shutdown_write();
    x.login_replies("x");
    let (first, _) = x.expect_after("OK help");
    assert!(first.len() > 5 && first.iter().all(|l| l.starts_with("HELP :")));
    for _ in 1..HELPS {
        for want in &first {
            x.expect_next(want);
        }
        x.expect_next("OK help");
    }
    assert_eq!(x.read_to_eof(), ["USERS :x", "OK users 1"]);
}

#[test]
fn reused_connection_slots_keep_events_straight() {
    const ROUNDS: usize = 40;
    let server = server();
    let mut alice = server.login("alice");
    for i in 0..ROUNDS {
        let name = format!("ghost{i}");
        let mut ghost = server.connect(&name);
        let login = ghost.login(&name);
        assert_eq!(login.users, ["alice", name.as_str()]);
        assert_eq!(login.members, ["alice", name.as_str()]);
        // Each earlier round left two messages in the lobby's history.
        assert_eq!(login.history.len(), (2 * i).min(20), "[{name}] history");
        alice.expect_next(&format!("JOIN #lobby {name}"));

        ghost.send(&format!("hi from {i}"));
        let hi = parse_msg(&alice.line());
        assert_eq!(
            (hi.sender.as_str(), hi.text.clone()),
            (name.as_str(), format!("hi from {i}"))
        );
        assert_eq!(parse_msg(&ghost.line()), hi);
        alice.send(&format!("hello {name}"));
        let hello = parse_msg(&ghost.line());
        assert_eq!(
            (hello.sender.as_str(), hello.text.clone()),
            ("alice", format!("hello {name}"))
        );
        assert_eq!(parse_msg(&alice.line()), hello);

        match i % 3 {
            0 => {
                ghost.send("/quit");
                ghost.expect_next("BYE :bye");
                ghost.expect_eof();
                alice.expect_next(&format!("OFFLINE {name} :quit"));
            }
            1 => {
                drop(ghost);
                alice.expect_next_matching(&format!("OFFLINE {name} :"));
            }
            _ => {
                ghost.send("/logout");
                ghost.expect_next("OK logout");
                alice.expect_next(&format!("OFFLINE {name} :logged out"));
                drop(ghost); // not logged in any more: no second OFFLINE
            }
        }
    }
    alice.assert_quiet();
    alice.send("/users");
    alice.expect_next("USERS :alice");
    alice.expect_next("OK users 1");
    alice.send("/rooms");
    alice.expect_next("ROOM #lobby 1 1 :");
    alice.expect_next("OK rooms 1");
}

#[test]
fn logout_then_login_again_on_the_same_connection() {
    let server = server();
    let mut c = logged_in(&server, &["alice", "bob"]);
    let [alice, bob] = &mut c[..] else {
        unreachable!()
    };
    bob.send("/login bob");
    bob.expect_next("ERR already-logged-in :already logged in");
    bob.send("/logout");
    bob.expect_next("OK logout");
    alice.expect_next("OFFLINE bob :logged out");
    bob.send("/users");
    bob.expect_next("ERR not-logged-in :log in first: /login NAME");
    bob.send("plain text");
    bob.expect_next("ERR not-logged-in :log in first: /login NAME");
    alice.assert_quiet();

    let first = bob.login("bob");
    assert_eq!(first.users, ["alice", "bob"]);
    assert_eq!(first.members, ["alice", "bob"]);
    assert_eq!(first.id, 3, "user ids are never reused");
    alice.expect_next("JOIN #lobby bob");
    bob.send("back again");
    let msg = parse_msg(&alice.line());
    assert_eq!(
        (msg.sender.as_str(), msg.text.as_str()),
        ("bob", "back again")
    );
    assert_eq!(parse_msg(&bob.line()), msg);

    // Another name on the same connection; the old one is free.
    bob.send("/logout");
    bob.expect_next("OK logout");
    let second = bob.login("robert");
    assert_eq!(second.users, ["alice", "robert"]);
    assert_eq!(
        second.history,
        [format!("MSG #lobby bob {} {} :back again", msg.id, msg.at)]
    );
    alice.expect_next("OFFLINE bob :logged out");
    alice.expect_next("JOIN #lobby robert");
    alice.send("/msg bob still there?");
    alice.expect_next("ERR no-such-user bob :no such user online");
    alice.assert_quiet();
    bob.assert_quiet();
}

#[test]
fn sigterm_shuts_the_daemon_down_cleanly() {
    let mut daemon = spawn_daemon(&[]);
    let mut alice = daemon.login("alice");
    let mut bob = daemon.login("bob");
    let mut guest = daemon.connect("guest"); // connected, never logged in
    assert_eq!(alice.ping(), ["JOIN #lobby bob"]);
    bob.assert_quiet();
    guest.assert_quiet();

    daemon.signal(libc::SIGTERM);
    for c in [&mut alice, &mut bob, &mut guest] {
        c.expect_next("BYE :server shutting down");
        c.expect_eof();
    }
    let status = daemon.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "chatd exit; log:\n{}", daemon.log());
}

// ---------------------------------------------------------------------------
// The `chat` client against the real daemon
// ---------------------------------------------------------------------------

/// A running `chat --server ADDR --name NAME` with piped stdio.
fn spawn_chat(addr: std::net::SocketAddr, name: &str) -> (Child, ChildStdin) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat"))
        .args(["--server", &addr.to_string(), "--name", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn chat: {e}"));
    let stdin = child.stdin.take().expect("stdin is piped");
    (child, stdin)
}

/// Waits (bounded) for `chat` to exit; returns its exit code, stdout and stderr.
fn finish_chat(mut child: Child) -> (Option<i32>, String, String) {
    let status = match wait_timeout(&mut child, STOP_TIMEOUT) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chat did not exit within {STOP_TIMEOUT:?}");
        }
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).expect("chat stdout");
    }
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).expect("chat stderr");
    }
    (status.code(), stdout, stderr)
}

#[test]
fn chat_client_talks_to_the_real_server() {
    let daemon = spawn_daemon(&[]);
    let mut bob = daemon.login("bob");
    let (child, mut stdin) = spawn_chat(daemon.addr, "alice");
    stdin.write_all(b"hi\n/quit\n").expect("write chat stdin");
    drop(stdin);

    bob.expect_next("JOIN #lobby alice");
    let msg = parse_msg(&bob.line());
    assert_eq!(
        (msg.room.as_str(), msg.sender.as_str(), msg.text.as_str()),
        ("#lobby", "alice", "hi")
    );
    bob.expect_next("OFFLINE alice :quit");
    let (code, stdout, stderr) = finish_chat(child);
    assert_eq!(
        code,
        Some(0),
        "chat exit; stderr:\n{stderr}\nstdout:\n{stdout}"
    );
    let rendered = stdout
        .lines()
        .find(|l| l.ends_with(" #lobby <alice> hi"))
        .unwrap_or_else(|| panic!("no rendered lobby line in:\n{stdout}"));
    // `HH:MM:SS #lobby <alice> hi`, in local time.
    let time = &rendered[..8];
    assert!(
        time.len() == 8
            && time.bytes().enumerate().all(|(i, b)| if i == 2 || i == 5 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }),
        "{rendered:?}"
    );
    assert!(stdout.contains("-- logged in as alice"), "{stdout}");
    assert!(stdout.contains("-- bye: bye"), "{stdout}");
    bob.assert_quiet();
}

/// Starts `chat --name alice` with stdin left open and waits until the
/// server has logged it in (bob, in the lobby, hears the join).
fn chat_logged_in(daemon: &common::Daemon) -> (Client, Child, ChildStdin) {
    let mut bob = daemon.login("bob");
    let (child, stdin) = spawn_chat(daemon.addr, "alice");
    bob.expect_next("JOIN #lobby alice");
    (bob, child, stdin)
}

#[test]
fn chat_client_when_the_server_shuts_down() {
    let mut daemon = spawn_daemon(&[]);
    let (mut bob, child, stdin) = chat_logged_in(&daemon);
    daemon.signal(libc::SIGTERM);
    bob.expect_next("BYE :server shutting down");
    bob.expect_eof();
    let (code, stdout, stderr) = finish_chat(child);
    drop(stdin);
    assert_eq!(daemon.wait(Duration::from_secs(5)).code(), Some(0));
    // The client shows the server's goodbye, says the server went away, and
    // exits non-zero: the user did not ask to leave.
    assert!(
        stdout.contains("-- bye: server shutting down"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        code,
        Some(1),
        "chat exit; stderr:\n{stderr}\nstdout:\n{stdout}"
    );
    assert!(
        stderr.contains("the server closed the connection"),
        "{stderr}"
    );
}

#[test]
fn chat_client_when_the_server_is_killed() {
    let daemon = spawn_daemon(&[]);
    let (_bob, child, stdin) = chat_logged_in(&daemon);
    daemon.signal(libc::SIGKILL);
    let (code, stdout, stderr) = finish_chat(child);
    drop(stdin);
    assert_ne!(
        code,
        Some(0),
        "chat exit; stderr:\n{stderr}\nstdout:\n{stdout}"
    );
    assert!(code.is_some(), "chat died of a signal; stderr:\n{stderr}");
    assert!(
        stderr.contains("-- connection to server lost"),
        "stderr:\n{stderr}\nstdout:\n{stdout}"
    );
    assert!(!stdout.contains("-- bye"), "{stdout}");
}
