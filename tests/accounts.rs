//! End-to-end tests of accounts and durable history over real loopback
//! sockets: registration and password logins, remembered rooms and waiting
//! direct messages at login, the failed-login slow-down, commands held behind
//! a password check, and what the real `chatd` keeps in its SQLite file
//! across a clean stop, a `kill -9`, and what it refuses to open.
//!
//! Synchronisation is by `/ping TOKEN` → `PONG TOKEN` round trips, never by
//! sleeping (the one exception waits for the failed-login allowance to
//! refill, which is a matter of time passing). In-process servers hash with
//! a cheap argon2 cost; the daemon tests and the event-loop test use the
//! default cost.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chatd::config::ServerConfig;
use chatd::dialect::line::split_server_line;
use common::{
    Client, Daemon, Login, Next, STOP_TIMEOUT, TestServer, parse_msg, spawn_daemon, start_server,
    wait_timeout,
};

/// The exact answer to any failed password.
const AUTH_FAILED: &str = "ERR auth-failed :wrong name or password";

/// argon2id at a cost that takes well under a millisecond: these servers test
/// the plumbing, not the hash.
fn cheap_hashing(config: &mut ServerConfig) {
    config.argon2_memory_kib = 256;
    config.argon2_iterations = 1;
}

fn server() -> TestServer {
    start_server(cheap_hashing)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Reads what a successful login or register sends up to the lobby's history:
/// `OK KEYWORD NAME ID` (`keyword` is `login` or `register`), the `USERS`
/// lines and `OK users N`, `OK join #lobby` and its replies.
#[track_caller]
fn read_entry(c: &mut Client, keyword: &str, name: &str) -> Login {
    c.entry_replies(keyword, name)
}

/// `/register NAME PASSWORD` and its replies up to the lobby's history.
#[track_caller]
fn register(c: &mut Client, name: &str, password: &str) -> Login {
    c.send(&format!("/register {name} {password}"));
    read_entry(c, "register", name)
}

/// `/login NAME PASSWORD` and its replies up to the lobby's history; `name`
/// is the name the server answers with (the account's spelling).
#[track_caller]
fn login(c: &mut Client, typed: &str, password: &str, name: &str) -> Login {
    c.send(&format!("/login {typed} {password}"));
    read_entry(c, "login", name)
}

/// Sends `line` and checks the next line is exactly `want`.
#[track_caller]
fn answers(c: &mut Client, line: &str, want: &str) {
    c.send(line);
    c.expect_next(want);
}

/// `/quit`, then reads to EOF: the last line must be `BYE :bye`.
#[track_caller]
fn quit(c: &mut Client) {
    c.send("/quit");
    let rest = c.read_to_eof();
    if rest.last().map(String::as_str) != Some("BYE :bye") {
        c.fail(&format!("wanted `BYE :bye` last, got {rest:?}"));
    }
}

/// Sends `line` and checks the next line is `ERR CODE ...`; returns it.
#[track_caller]
fn refused(c: &mut Client, line: &str, code: &str) -> String {
    c.send(line);
    let got = c.line();
    if split_server_line(&got).0 != "ERR" || split_server_line(&got).1.first() != Some(&code) {
        c.fail(&format!("{line:?}: wanted `ERR {code} ...`, got {got:?}"));
    }
    got
}

/// Reads the replies of a rejoin at login: `OK join ROOM`, `MEMBERS` and the
/// replayed history. Returns the `MSG` lines.
#[track_caller]
fn rejoined(c: &mut Client, room: &str) -> Vec<String> {
    c.expect_next(&format!("OK join {room}"));
    c.join_replies_after_ok(room).1
}

/// `/history ROOM N`: the replayed `MSG` lines.
#[track_caller]
fn history(c: &mut Client, room: &str, n: usize) -> Vec<String> {
    c.send(&format!("/history {room} {n}"));
    let head = c.line();
    let count = match split_server_line(&head) {
        ("HISTORY", args) if args.len() == 2 && args[0] == room => args[1]
            .parse::<usize>()
            .unwrap_or_else(|e| c.fail(&format!("bad count in {head:?}: {e}"))),
        _ => c.fail(&format!("wanted `HISTORY {room} N`, got {head:?}")),
    };
    let lines: Vec<String> = (0..count).map(|_| c.line()).collect();
    for line in &lines {
        if !line.starts_with(&format!("MSG {room} ")) {
            c.fail(&format!("wanted a MSG of {room}, got {line:?}"));
        }
    }
    lines
}

/// A room as `/rooms` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RoomLine {
    name: String,
    id: u64,
    members: usize,
    topic: String,
}

/// `/rooms`, parsed, checked against its `OK rooms COUNT`.
#[track_caller]
fn rooms(c: &mut Client) -> Vec<RoomLine> {
    c.send("/rooms");
    let mut rooms = Vec::new();
    loop {
        let line = c.line();
        match split_server_line(&line) {
            ("ROOM", args) if args.len() == 4 => rooms.push(RoomLine {
                name: args[0].into(),
                id: args[1].parse().unwrap_or_else(|e| panic!("{line:?}: {e}")),
                members: args[2].parse().unwrap_or_else(|e| panic!("{line:?}: {e}")),
                topic: args[3].into(),
            }),
            ("OK", args) if args.len() == 2 && args[0] == "rooms" => {
                assert_eq!(args[1], rooms.len().to_string(), "{line:?} after {rooms:?}");
                return rooms;
            }
            _ => c.fail(&format!("wanted ROOM or `OK rooms N`, got {line:?}")),
        }
    }
}

/// The id of a `MSG`, `DM` or `BROADCAST` line.
#[track_caller]
fn message_id(line: &str) -> u64 {
    let (keyword, args) = split_server_line(line);
    let at = match keyword {
        "MSG" | "DM" => 2,
        "BROADCAST" => 1,
        _ => panic!("not a message line: {line:?}"),
    };
    args.get(at)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no message id in {line:?}"))
}

/// A fresh directory (removed on drop) and a database path inside it.
fn temp_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chatd.db");
    let path = path.to_str().expect("UTF-8 temp path").to_owned();
    (dir, path)
}

/// SIGTERM, then waits (bounded) for a clean exit with status 0.
#[track_caller]
fn stop_cleanly(d: &mut Daemon) {
    d.signal(libc::SIGTERM);
    let status = d.wait(STOP_TIMEOUT);
    assert!(
        status.success(),
        "chatd exited with {status}; log:\n{}",
        d.log()
    );
}

/// Reads until the server closes the connection and checks the last line is
/// the shutdown `BYE`.
#[track_caller]
fn expect_shutdown_bye(c: &mut Client) {
    let rest = c.read_to_eof();
    if rest.last().map(String::as_str) != Some("BYE :server shutting down") {
        c.fail(&format!("wanted the shutdown BYE last, got {rest:?}"));
    }
}

/// A connection to `server` from the loopback address `source` (any of
/// 127/8 works on Linux), with the `HELLO` read.
fn connect_from(server: SocketAddr, source: Ipv4Addr, label: &str) -> Client {
    let SocketAddr::V4(server) = server else {
        panic!("IPv4 server address expected, got {server}");
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the
    // addresses are valid sockaddr_in values that outlive the calls, and the
    // descriptor is handed to (and then owned by) exactly one TcpStream.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(source, 0);
        let rc = libc::bind(fd, (&raw const local).cast(), len);
        assert_eq!(rc, 0, "bind {source}: {}", std::io::Error::last_os_error());
        let remote = sockaddr(*server.ip(), server.port());
        let rc = libc::connect(fd, (&raw const remote).cast(), len);
        assert_eq!(
            rc,
            0,
            "connect {server}: {}",
            std::io::Error::last_os_error()
        );
        stream
    };
    stream.set_nodelay(true).expect("set_nodelay");
    stream
        .set_write_timeout(Some(common::TIMEOUT))
        .expect("set_write_timeout");
    Client::from_stream(stream, label)
}

// ---------------------------------------------------------------------------
// 1. Register and log in
// ---------------------------------------------------------------------------

#[test]
fn register_then_log_in_only_with_the_right_password() {
    // Many wrong passwords below: keep the slow-down out of the way.
    let server = start_server(|c| {
        cheap_hashing(c);
        c.core.login_failures = 1000;
    });
    let mut alice = server.connect("alice");
    let reg = register(&mut alice, "alice", "alice-password");
    assert_eq!(reg.users, ["alice"]);
    assert_eq!(reg.members, ["alice"]);
    let id = reg.id;
    alice.assert_quiet();
    refused(
        &mut alice,
        "/register alice2 another-password",
        "already-logged-in",
    );
    refused(
        &mut alice,
        "/login alice alice-password",
        "already-logged-in",
    );
    answers(&mut alice, "/logout", "OK logout");

    // Wrong, missing, right.
    answers(&mut alice, "/login alice alice-passwore", AUTH_FAILED);
    answers(&mut alice, "/login alice", AUTH_FAILED);
    let again = login(&mut alice, "alice", "alice-password", "alice");
    assert_eq!(again.id, id, "an account keeps its user id");
    alice.assert_quiet();
    answers(&mut alice, "/logout", "OK logout");
    // The name is matched without regard to case, and keeps its spelling.
    let again = login(&mut alice, "ALICE", "alice-password", "alice");
    assert_eq!(again.id, id);

    // Nobody else gets the name: not as a guest, not with a wrong password,
    // not by registering it again. While alice is online the right password
    // gets name-taken, but a wrong one still gets auth-failed.
    let mut other = server.connect("other");
    answers(&mut other, "/login alice", AUTH_FAILED);
    answers(&mut other, "/login Alice", AUTH_FAILED);
    answers(&mut other, "/login alice not-her-password", AUTH_FAILED);
    refused(&mut other, "/login alice alice-password", "name-taken");
    refused(&mut other, "/login 9alice alice-password", "bad-name");
    refused(&mut other, "/login al!ce", "bad-name");
    refused(&mut other, "/register alice another-password", "name-taken");
    refused(&mut other, "/register ALICE another-password", "name-taken");
    refused(&mut other, "/users", "not-logged-in");

    // Passwords are 8 to 256 bytes; the name is checked first.
    refused(&mut other, "/register bob 1234567", "bad-password");
    refused(
        &mut other,
        &format!("/register bob {}", "p".repeat(257)),
        "bad-password",
    );
    refused(&mut other, "/register 9bob 1234567", "bad-name");
    refused(&mut other, "/register bob", "bad-args");
    let bob = register(&mut other, "bob", "12345678");
    assert!(bob.id > id, "user ids grow: alice {id}, bob {}", bob.id);
    let mut carol = server.connect("carol");
    let long = "q".repeat(256);
    register(&mut carol, "carol", &long);
    answers(&mut carol, "/logout", "OK logout");
    answers(
        &mut carol,
        &format!("/login carol {}", &long[..255]),
        AUTH_FAILED,
    );
    login(&mut carol, "carol", &long, "carol");

    // A password is the rest of the line, inner spaces included.
    let mut dave = server.connect("dave");
    register(&mut dave, "dave", "pass word with spaces");
    answers(&mut dave, "/logout", "OK logout");
    answers(&mut dave, "/login dave pass", AUTH_FAILED);
    answers(&mut dave, "/login dave pass word", AUTH_FAILED);
    login(&mut dave, "dave", "pass word with spaces", "dave");

    // Guests still log in with any free name (a password is ignored), and a
    // name online as a guest cannot be registered.
    let mut guest = server.connect("guest");
    guest.send("/login visitor whatever-password");
    let visitor = read_entry(&mut guest, "login", "visitor");
    let mut late = server.connect("late");
    refused(&mut late, "/register visitor some-password", "name-taken");
    refused(&mut late, "/register VISITOR some-password", "name-taken");
    // A guest's name is free again once it logs out; it gets a new id.
    answers(&mut guest, "/logout", "OK logout");
    guest.send("/login visitor");
    let visitor2 = read_entry(&mut guest, "login", "visitor");
    assert!(
        visitor2.id > visitor.id,
        "{} then {}",
        visitor.id,
        visitor2.id
    );
    guest.assert_quiet();
}

/// Sends one line on each of two new connections at once; exactly one must
/// win (its first reply starts with `win`), the other get `name-taken`.
/// Returns both clients with the first reply each got.
fn race(server: &TestServer, lines: [&str; 2], win: &str) -> [(Client, String); 2] {
    let mut a = server.connect("a");
    let mut b = server.connect("b");
    a.send_raw(format!("{}\n/ping a\n", lines[0]).as_bytes());
    b.send_raw(format!("{}\n/ping b\n", lines[1]).as_bytes());
    let (a_lines, _) = a.expect_after(|l: &str| l == "PONG a");
    let (b_lines, _) = b.expect_after(|l: &str| l == "PONG b");
    let firsts = [first(&a_lines), first(&b_lines)];
    let wins = firsts.iter().filter(|l| l.starts_with(win)).count();
    let taken = firsts
        .iter()
        .filter(|l| l.starts_with("ERR name-taken"))
        .count();
    assert_eq!(
        (wins, taken),
        (1, 1),
        "a saw {a_lines:?}\nb saw {b_lines:?}"
    );
    let [fa, fb] = firsts;
    [(a, fa), (b, fb)]
}

#[test]
fn racing_logins_and_registrations_of_one_name_let_exactly_one_in() {
    let server = server();
    let mut setup = server.connect("setup");
    register(&mut setup, "alice", "alice-password");
    quit(&mut setup);

    // Two connections log in to one account at once.
    race(
        &server,
        ["/login alice alice-password", "/login alice alice-password"],
        "OK login alice ",
    );
    // Two connections register one new name at once.
    let [(mut c, c_first), (mut d, d_first)] = race(
        &server,
        [
            "/register bob bob-password-c",
            "/register BOB bob-password-d",
        ],
        "OK register ",
    );
    let firsts = [c_first, d_first];
    // The account keeps the winner's spelling, and only its password opens it.
    let (winner, name, password, other_password) = if firsts[0].starts_with("OK register ") {
        (&mut c, "bob", "bob-password-c", "bob-password-d")
    } else {
        (&mut d, "BOB", "bob-password-d", "bob-password-c")
    };
    assert!(
        firsts
            .iter()
            .any(|l| l.starts_with(&format!("OK register {name} "))),
        "{firsts:?}"
    );
    answers(winner, "/logout", "OK logout");
    let mut e = server.connect("e");
    answers(&mut e, &format!("/login bob {other_password}"), AUTH_FAILED);
    login(&mut e, "bob", password, name);
}

/// The first line of a list, or an empty string.
fn first(lines: &[String]) -> String {
    lines.first().cloned().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// 2. Restart
// ---------------------------------------------------------------------------

#[test]
fn accounts_rooms_history_and_waiting_dms_survive_a_restart() {
    let (_dir, db) = temp_db();

    // --- First run -------------------------------------------------------
    let mut d = spawn_daemon(&["--db", &db]);

    // carol creates #games first, so its id is lower than #books'.
    let mut carol = d.connect("carol");
    let carol_id = register(&mut carol, "carol", "carol-password").id;
    carol.send("/create #games");
    let created = carol.expect_next_matching("OK create #games ");
    let games_id: u64 = created["OK create #games ".len()..]
        .parse()
        .unwrap_or_else(|e| panic!("{created:?}: {e}"));
    rejoined(&mut carol, "#games");

    let mut alice = d.connect("alice");
    let alice_id = register(&mut alice, "alice", "alice-password").id;
    alice.send("/create #books");
    alice.expect_next_matching("OK create #books ");
    rejoined(&mut alice, "#books");
    alice.join("#games");
    alice.join("#chess");
    answers(&mut alice, "/leave #chess", "OK leave #chess");
    alice.send("/topic #games Board games, Fridays at 8");
    alice.expect_next("TOPIC #games alice :Board games, Fridays at 8");
    carol.expect("TOPIC #games alice :Board games, Fridays at 8");
    answers(
        &mut alice,
        "/topic #games",
        &format!("ROOM #games {games_id} 2 :Board games, Fridays at 8"),
    );

    carol.send("/say #games carol was here");
    let carol_said = carol.expect("MSG #games carol ");
    alice.expect_next(&carol_said);
    answers(&mut carol, "/quit", "BYE :bye");
    alice.expect("OFFLINE carol :quit");

    let mut sent = Vec::new();
    for (room, text) in [
        ("#games", "who brings the dice?"),
        ("#books", "reading: Dune"),
        ("#games", "me  (two spaces) and a : colon"),
        ("#lobby", "hello lobby"),
        ("#books", "chapter 3 tonight"),
    ] {
        alice.send(&format!("/say {room} {text}"));
        let line = alice.expect_next_matching(&format!("MSG {room} alice "));
        assert_eq!(parse_msg(&line).text, text);
        sent.push(line);
    }
    alice.send("/msg carol you missed the dice talk");
    let dm = alice.expect_next_matching("DM alice carol ");
    refused(&mut alice, "/msg nobody hello?", "no-such-user");

    // A guest talks and broadcasts last: its user id and the broadcast's
    // message id are the highest of this run.
    let mut gus = d.connect("gus");
    gus.send("/login gus");
    let gus_id = read_entry(&mut gus, "login", "gus").id;
    gus.send("hi from gus");
    let gus_said = gus.expect_next_matching("MSG #lobby gus ");
    gus.send("/broadcast last words before the restart");
    let broadcast = gus.expect_next_matching("BROADCAST gus ");
    alice.ping();

    let rooms_before = rooms(&mut alice);
    let names: Vec<&str> = rooms_before.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["#lobby", "#games", "#books", "#chess"]);
    let mut histories = BTreeMap::new();
    for room in ["#lobby", "#games", "#books", "#chess"] {
        histories.insert(room, history(&mut alice, room, 500));
    }
    assert_eq!(histories["#games"].len(), 3);
    assert_eq!(histories["#books"].len(), 2);
    assert_eq!(histories["#lobby"], [sent[3].clone(), gus_said.clone()]);
    assert_eq!(histories["#chess"].len(), 0);
    let max_user = alice_id.max(carol_id).max(gus_id);
    let max_msg = histories
        .values()
        .flatten()
        .chain([&dm, &broadcast])
        .map(|l| message_id(l))
        .max()
        .expect("messages");
    assert_eq!(max_user, gus_id);
    assert_eq!(max_msg, message_id(&broadcast));

    stop_cleanly(&mut d);
    expect_shutdown_bye(&mut alice);
    expect_shutdown_bye(&mut gus);

    // --- Second run ------------------------------------------------------
    let mut d = spawn_daemon(&["--db", &db]);
    let mut alice = d.connect("alice");
    answers(&mut alice, "/login alice wrong-password", AUTH_FAILED);
    let back = login(&mut alice, "alice", "alice-password", "alice");
    assert_eq!(back.id, alice_id, "alice's id after the restart");
    assert_eq!(back.users, ["alice"]);
    assert_eq!(
        back.history, histories["#lobby"],
        "#lobby replayed at login"
    );
    // Remembered rooms in join order (#books before #games, though #games
    // has the lower id), #chess (left) not among them.
    assert_eq!(rejoined(&mut alice, "#books"), histories["#books"]);
    assert_eq!(rejoined(&mut alice, "#games"), histories["#games"]);
    alice.assert_quiet();
    answers(
        &mut alice,
        "/whoami",
        &format!("YOU alice {alice_id} 127.0.0.1 :#lobby #books #games"),
    );
    let rooms_after = rooms(&mut alice);
    let strip = |rooms: &[RoomLine]| -> Vec<(String, u64, String)> {
        rooms
            .iter()
            .map(|r| (r.name.clone(), r.id, r.topic.clone()))
            .collect()
    };
    assert_eq!(
        strip(&rooms_after),
        strip(&rooms_before),
        "/rooms after the restart"
    );
    let counts: Vec<usize> = rooms_after.iter().map(|r| r.members).collect();
    assert_eq!(
        counts,
        [1, 1, 1, 0],
        "members after the restart: {rooms_after:?}"
    );
    answers(
        &mut alice,
        "/topic #games",
        &format!("ROOM #games {games_id} 1 :Board games, Fridays at 8"),
    );
    for (room, lines) in &histories {
        assert_eq!(
            &history(&mut alice, room, 500),
            lines,
            "/history {room} 500"
        );
    }

    // The lobby is current; ids go on from where they were.
    alice.send("back again");
    let back_again = alice.expect_next_matching("MSG #lobby alice ");
    assert!(
        message_id(&back_again) > max_msg,
        "message id {} after the restart, {max_msg} before",
        message_id(&back_again)
    );

    // carol gets #games back, then the DM that waited for her, once.
    let mut carol = d.connect("carol");
    let login_carol = login(&mut carol, "carol", "carol-password", "carol");
    assert_eq!(login_carol.id, carol_id);
    let mut games = histories["#games"].clone();
    assert_eq!(rejoined(&mut carol, "#games"), games);
    carol.expect_next(&dm);
    carol.assert_quiet();
    assert_eq!(alice.ping(), ["JOIN #lobby carol", "JOIN #games carol"]);
    answers(&mut carol, "/logout", "OK logout");
    login(&mut carol, "carol", "carol-password", "carol");
    assert_eq!(rejoined(&mut carol, "#games"), games);
    carol.assert_quiet();

    // A guest of an old guest's name gets a new id; so does a new account.
    let mut gus = d.connect("gus");
    gus.send("/login gus");
    let gus2 = read_entry(&mut gus, "login", "gus").id;
    assert!(
        gus2 > max_user,
        "guest id {gus2} after the restart, {max_user} before"
    );
    let mut dave = d.connect("dave");
    let dave_id = register(&mut dave, "dave", "dave-password").id;
    assert!(dave_id > gus2, "dave {dave_id}, gus {gus2}");
    alice.send("/say #games see you friday");
    let friday = alice.expect("MSG #games alice ");
    assert!(message_id(&friday) > message_id(&back_again));
    games.push(friday.clone());
    stop_cleanly(&mut d);

    // --- Third run: the DM stays delivered, the rest is still there --------
    let d = spawn_daemon(&["--db", &db]);
    let mut carol = d.connect("carol");
    login(&mut carol, "carol", "carol-password", "carol");
    assert_eq!(rejoined(&mut carol, "#games"), games);
    carol.assert_quiet();
    let mut dave = d.connect("dave");
    assert_eq!(
        login(&mut dave, "dave", "dave-password", "dave").id,
        dave_id
    );
    dave.assert_quiet();
    let mut gus = d.connect("gus");
    gus.send("/login gus");
    assert!(read_entry(&mut gus, "login", "gus").id > dave_id);
}

// ---------------------------------------------------------------------------
// 3. kill -9
// ---------------------------------------------------------------------------

/// A burst of `COUNT` messages into `#burst` from one client while another
/// reads them; the daemon is killed with SIGKILL once the reader has
/// `KILL_AFTER` of them. Everything the reader received must be in the
/// history after a restart, in order, with the same ids and timestamps.
fn every_received_message_survives_kill_9(sync: &str) {
    const COUNT: usize = 450;
    const KILL_AFTER: usize = 100;
    let (_dir, db) = temp_db();
    let mut d = spawn_daemon(&["--db", &db, "--sync", sync]);
    let mut reader = d.login("reader");
    reader.join("#burst");
    let mut writer = d.login("writer");
    writer.join("#burst");
    assert_eq!(reader.ping(), ["JOIN #lobby writer", "JOIN #burst writer"]);

    let mut out = writer
        .stream()
        .try_clone()
        .expect("clone the writer's socket");
    let received = thread::scope(|s| {
        s.spawn(move || {
            // One write per line, so the server sees them over many loop
            // iterations. Errors are expected once the daemon is killed.
            for i in 0..COUNT {
                if out
                    .write_all(format!("burst message {i}\n").as_bytes())
                    .is_err()
                {
                    return;
                }
            }
        });
        let mut received = Vec::new();
        while received.len() < KILL_AFTER {
            let line = reader.line();
            if line.starts_with("MSG #burst ") {
                received.push(line);
            }
        }
        d.kill();
        // Whatever the daemon wrote before it died was received too.
        loop {
            match reader.next_before(Instant::now() + common::TIMEOUT) {
                Next::Line(line) if line.starts_with("MSG #burst ") => received.push(line),
                Next::Line(line) => panic!("unexpected line {line:?}"),
                Next::Eof | Next::Error(_) => break,
                Next::Timeout => panic!("the reader's connection outlived the daemon"),
            }
        }
        received
    });
    eprintln!(
        "--sync {sync}: the reader had {} of {COUNT} messages when chatd died",
        received.len()
    );

    let d = spawn_daemon(&["--db", &db, "--sync", sync]);
    let mut checker = d.login("checker");
    let kept = history(&mut checker, "#burst", 500);
    assert!(
        kept.len() >= received.len(),
        "{} messages kept, {} received",
        kept.len(),
        received.len()
    );
    assert_eq!(kept[..received.len()], received[..], "the received prefix");
    for (i, line) in kept.iter().enumerate() {
        let msg = parse_msg(line);
        assert_eq!(
            (msg.sender.as_str(), msg.text.as_str()),
            ("writer", format!("burst message {i}").as_str()),
            "message {i} of the history"
        );
    }
    // The id sequence goes on after the last kept message.
    checker.send("/say #lobby after the crash");
    let after = checker.expect_next_matching("MSG #lobby checker ");
    let last = kept.last().map_or(0, |l| message_id(l));
    assert!(message_id(&after) > last, "{after:?} after id {last}");
}

#[test]
fn every_received_message_survives_kill_9_with_sync_normal() {
    every_received_message_survives_kill_9("normal");
}

#[test]
fn every_received_message_survives_kill_9_with_sync_full() {
    every_received_message_survives_kill_9("full");
}

// ---------------------------------------------------------------------------
// 4. Waiting direct messages and remembered rooms at login
// ---------------------------------------------------------------------------

#[test]
fn waiting_dms_arrive_once_after_the_remembered_rooms() {
    let server = server();
    let mut alice = server.connect("alice");
    register(&mut alice, "alice", "alice-password");
    // #alpha is created first (lower id); bob joins #zulu first.
    alice.join("#alpha");
    let mut bob = server.connect("bob");
    let bob_id = register(&mut bob, "bob", "bob-password").id;
    bob.join("#zulu");
    bob.join("#alpha");
    bob.join("#temp");
    answers(&mut bob, "/leave #temp", "OK leave #temp");
    // bob drops without a word: his rooms are remembered all the same.
    drop(bob);
    alice.expect("OFFLINE bob :connection closed");

    alice.send("/say #alpha said while bob was away");
    let said = alice.expect_next_matching("MSG #alpha alice ");
    alice.send("/msg bob first");
    let dm1 = alice.expect_next_matching("DM alice bob ");
    alice.send("/msg BOB second: with  two spaces");
    let dm2 = alice.expect_next_matching("DM alice bob ");
    assert!(message_id(&dm1) < message_id(&dm2));
    assert!(dm2.ends_with(" :second: with  two spaces"), "{dm2:?}");
    // An offline name without an account is nobody.
    refused(&mut alice, "/msg ghost are you there", "no-such-user");
    let mut guest = server.connect("guest");
    guest.login("guest");
    answers(&mut guest, "/logout", "OK logout");
    assert_eq!(
        alice.ping(),
        ["JOIN #lobby guest", "OFFLINE guest :logged out"]
    );
    refused(&mut alice, "/msg guest still there?", "no-such-user");

    // The order: lobby, remembered rooms in join order, then the DMs.
    let mut bob = server.connect("bob");
    let back = login(&mut bob, "bob", "bob-password", "bob");
    assert_eq!(back.id, bob_id);
    assert_eq!(back.members, ["alice", "bob"]);
    assert!(rejoined(&mut bob, "#zulu").is_empty());
    assert_eq!(rejoined(&mut bob, "#alpha"), [said]);
    bob.expect_next(&dm1);
    bob.expect_next(&dm2);
    bob.assert_quiet();
    assert_eq!(alice.ping(), ["JOIN #lobby bob", "JOIN #alpha bob"]);
    answers(
        &mut bob,
        "/whoami",
        &format!("YOU bob {bob_id} 127.0.0.1 :#lobby #zulu #alpha"),
    );
    // The lobby is current after the rejoins.
    bob.send("back");
    bob.expect_next_matching("MSG #lobby bob ");
    alice.expect("MSG #lobby bob ");

    // Once delivered, never again: not at the next login, not on another
    // connection.
    answers(&mut bob, "/logout", "OK logout");
    login(&mut bob, "bob", "bob-password", "bob");
    rejoined(&mut bob, "#zulu");
    rejoined(&mut bob, "#alpha");
    bob.assert_quiet();
    answers(&mut bob, "/quit", "BYE :bye");
    let mut bob = server.connect("bob2");
    login(&mut bob, "bob", "bob-password", "bob");
    rejoined(&mut bob, "#zulu");
    rejoined(&mut bob, "#alpha");
    bob.assert_quiet();

    // A DM to an online account is not kept for later.
    alice.ping();
    alice.send("/msg bob live one");
    let live = alice.expect_next_matching("DM alice bob ");
    bob.expect_next(&live);
    answers(&mut bob, "/logout", "OK logout");
    login(&mut bob, "bob", "bob-password", "bob");
    rejoined(&mut bob, "#zulu");
    rejoined(&mut bob, "#alpha");
    bob.assert_quiet();
}

// ---------------------------------------------------------------------------
// 5. Hashing stays off the event loop
// ---------------------------------------------------------------------------

#[test]
fn password_hashing_does_not_block_the_event_loop() {
    const CLIENTS: usize = 20;
    // The default argon2 cost.
    let server = start_server(|_| {});
    let defaults = ServerConfig::default();
    let mut pinger = server.login("pinger");
    let clients: Vec<Client> = (0..CLIENTS)
        .map(|i| server.connect(&format!("user{i}")))
        .collect();
    let start = Barrier::new(CLIENTS + 1);
    let registering = AtomicBool::new(true);
    let (window, pings) = thread::scope(|s| {
        let registrations: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let sent = Instant::now();
                    c.send(&format!("/register user{i} password-{i}"));
                    c.expect(format!("OK register user{i} "));
                    (sent, Instant::now())
                })
            })
            .collect();
        let pings = s.spawn(|| {
            let mut rtts = Vec::new();
            start.wait();
            while registering.load(Ordering::SeqCst) {
                let t = Instant::now();
                pinger.ping();
                rtts.push(t.elapsed());
            }
            rtts
        });
        let times: Vec<(Instant, Instant)> = registrations
            .into_iter()
            .map(|h| h.join().expect("a registering client failed"))
            .collect();
        registering.store(false, Ordering::SeqCst);
        let first = times.iter().map(|t| t.0).min().expect("clients");
        let last = times.iter().map(|t| t.1).max().expect("clients");
        (last - first, pings.join().expect("the pinger failed"))
    });
    let mut sorted = pings.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let max = *sorted.last().expect("at least one ping");
    eprintln!(
        "{CLIENTS} registrations (argon2id {} KiB, {} passes, {} threads) took {window:?}; \
         {} pings meanwhile: median {median:?}, max {max:?}",
        defaults.argon2_memory_kib,
        defaults.argon2_iterations,
        defaults.auth_threads,
        pings.len()
    );
    assert!(
        median * 10 < window,
        "median ping {median:?} is not well under the hashing time {window:?}"
    );
    assert!(
        max * 4 < window,
        "slowest ping {max:?} is not well under the hashing time {window:?}"
    );
    assert!(pings.len() >= 5, "only {} pings in {window:?}", pings.len());
}

// ---------------------------------------------------------------------------
// 6. Bad databases at start-up
// ---------------------------------------------------------------------------

/// Runs `chatd --db PATH` expecting it to refuse to start; returns its exit
/// status and stderr.
#[track_caller]
fn refused_start(db: &str) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--irc-listen",
            "off",
            "--log-level",
            "info",
        ])
        .args(["--db", db])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn chatd: {e}"));
    let status = wait_timeout(&mut child, STOP_TIMEOUT);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    match status {
        Some(status) if !status.success() => (status, stderr),
        Some(status) => panic!("chatd --db {db} exited with {status}; stderr:\n{stderr}"),
        None => {
            panic!("chatd --db {db} started (killed after {STOP_TIMEOUT:?}); stderr:\n{stderr}")
        }
    }
}

/// The names in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Checks that `chatd --db PATH` refuses to start, says why on stderr in
/// words containing `path` and one of `words`, and leaves the directory
/// exactly as it was.
#[track_caller]
fn refuses_and_leaves_alone(path: &Path, words: &[&str]) -> String {
    let dir = path.parent().expect("a parent");
    let before = listing(dir);
    let content = fs::read(path).ok();
    let db = path.to_str().expect("UTF-8 path");
    let (status, stderr) = refused_start(db);
    assert!(stderr.contains(db), "stderr does not name {db}:\n{stderr}");
    let lower = stderr.to_ascii_lowercase();
    assert!(
        words.iter().any(|w| lower.contains(w)),
        "stderr says none of {words:?}:\n{stderr}"
    );
    assert!(!stderr.contains("listening on"), "it listened:\n{stderr}");
    assert_eq!(fs::read(path).ok(), content, "{db} changed");
    assert_eq!(listing(dir), before, "files next to {db} changed");
    eprintln!("--db {db}: {status}, {}", stderr.trim());
    stderr
}

#[test]
fn refuses_to_start_on_a_bad_database_and_leaves_it_alone() {
    let dir = tempfile::tempdir().expect("temp dir");

    // A text file.
    let text = dir.path().join("notes.txt");
    fs::write(&text, "these are my notes, not a database\n").expect("write");
    refuses_and_leaves_alone(&text, &["not an sqlite database", "not a database"]);

    // A file shorter than the SQLite header.
    let short = dir.path().join("short.db");
    fs::write(&short, "SQLite").expect("write");
    refuses_and_leaves_alone(&short, &["not an sqlite database", "not a database"]);

    // A directory.
    let sub = dir.path().join("a-directory");
    fs::create_dir(&sub).expect("mkdir");
    let (_, stderr) = refused_start(sub.to_str().expect("UTF-8"));
    assert!(stderr.contains(sub.to_str().expect("UTF-8")), "{stderr}");

    // A missing directory: refused, and not created.
    let missing = dir.path().join("no-such-dir").join("chatd.db");
    let db = missing.to_str().expect("UTF-8");
    let (_, stderr) = refused_start(db);
    assert!(stderr.contains(db), "stderr does not name {db}:\n{stderr}");
    assert!(
        !dir.path().join("no-such-dir").exists(),
        "the directory was created"
    );

    // An SQLite database that chatd did not make.
    let foreign = dir.path().join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).expect("create foreign db");
        conn.execute_batch("CREATE TABLE mine (x INTEGER); INSERT INTO mine VALUES (42);")
            .expect("fill foreign db");
    }
    refuses_and_leaves_alone(&foreign, &["not created by chatd", "foreign"]);

    // A database from a newer chatd.
    let newer = dir.path().join("newer.db");
    {
        let conn = rusqlite::Connection::open(&newer).expect("create db");
        conn.execute_batch("CREATE TABLE t (x INTEGER); PRAGMA user_version = 99;")
            .expect("fill db");
    }
    let before = fs::read(&newer).expect("read");
    let (_, stderr) = refused_start(newer.to_str().expect("UTF-8"));
    assert!(stderr.contains("newer"), "{stderr}");
    assert_eq!(fs::read(&newer).expect("read"), before, "newer.db changed");
}

#[test]
fn refuses_a_read_only_database_and_opens_it_once_writable() {
    let (_dir, db) = temp_db();
    let path = PathBuf::from(&db);
    let mut d = spawn_daemon(&["--db", &db]);
    let mut alice = d.connect("alice");
    register(&mut alice, "alice", "alice-password");
    alice.send("kept");
    let kept = alice.expect_next_matching("MSG #lobby alice ");
    stop_cleanly(&mut d);

    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).expect("chmod 0444");
    refuses_and_leaves_alone(&path, &["read-only", "read only", "readonly"]);

    // Nothing was harmed: writable again, it opens with everything in it.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod 0644");
    let d = spawn_daemon(&["--db", &db]);
    let mut alice = d.connect("alice");
    let back = login(&mut alice, "alice", "alice-password", "alice");
    assert_eq!(back.history, [kept]);
}

// ---------------------------------------------------------------------------
// 7. Commands held behind a password check
// ---------------------------------------------------------------------------

#[test]
fn commands_pipelined_behind_a_login_run_after_it_in_order() {
    let server = server();
    let mut setup = server.connect("setup");
    register(&mut setup, "alice", "alice-password");
    quit(&mut setup);
    let mut bob = server.login("bob");

    // Right password: the login replies, then the held commands.
    let mut alice = server.connect("alice");
    alice.send_raw(b"/login alice alice-password\nhello\n/ping z\n");
    read_entry(&mut alice, "login", "alice");
    let hello = alice.expect_next_matching("MSG #lobby alice ");
    assert_eq!(parse_msg(&hello).text, "hello");
    alice.expect_next("PONG z");
    alice.assert_quiet();
    bob.expect_next("JOIN #lobby alice");
    bob.expect_next(&hello);

    // Wrong password: the error, then the held commands, as a guest would.
    let mut mallory = server.connect("mallory");
    mallory.send_raw(b"/login alice not-the-password\nhello\n/whoami\n/ping y\n");
    mallory.expect_next(AUTH_FAILED);
    mallory.expect_next_matching("ERR not-logged-in");
    mallory.expect_next_matching("ERR not-logged-in");
    mallory.expect_next("PONG y");

    // Register with a join and a message behind it.
    let mut carol = server.connect("carol");
    carol.send_raw(b"/register carol carol-password\n/join #den\nin the den\n/ping x\n");
    read_entry(&mut carol, "register", "carol");
    carol.expect_next("OK join #den");
    carol.join_replies_after_ok("#den");
    let den = carol.expect_next_matching("MSG #den carol ");
    assert_eq!(parse_msg(&den).text, "in the den");
    carol.expect_next("PONG x");

    // A second login behind a pending one is answered after it.
    let mut dup = server.connect("dup");
    dup.send_raw(b"/login carol carol-password\n/login bob\n/ping w\n");
    dup.expect_next_matching("ERR name-taken");
    let bob_again = dup.line();
    assert!(bob_again.starts_with("ERR name-taken"), "{bob_again:?}");
    dup.expect_next("PONG w");
    bob.expect("JOIN #lobby carol");
    bob.assert_quiet();
}

// ---------------------------------------------------------------------------
// 8. The failed-login slow-down
// ---------------------------------------------------------------------------

#[test]
fn five_failed_logins_from_an_address_slow_it_down() {
    let server = server();
    let mut setup = server.connect("setup");
    register(&mut setup, "alice", "alice-password");
    quit(&mut setup);
    let mut setup = server.connect("setup2");
    register(&mut setup, "bob", "bob-password");
    quit(&mut setup);

    let mut x = server.connect("x");
    for i in 0..5 {
        answers(&mut x, &format!("/login alice guess-{i}"), AUTH_FAILED);
    }
    // Now even the right password waits, for any account, from this address.
    let limited = refused(&mut x, "/login alice alice-password", "rate-limited");
    let secs: u64 = limited
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no wait time in {limited:?}"));
    assert!((1..=12).contains(&secs), "{limited:?}");
    refused(&mut x, "/login alice", "rate-limited");
    refused(&mut x, "/login BOB bob-password", "rate-limited");
    let mut y = server.connect("y");
    refused(&mut y, "/login alice alice-password", "rate-limited");
    // Guests are not slowed down, nor is registering.
    x.send("/login guest1");
    read_entry(&mut x, "login", "guest1");
    register(&mut y, "carol", "carol-password");

    // Another address is not affected.
    let mut z = connect_from(server.addr, Ipv4Addr::new(127, 0, 0, 2), "z");
    let alice = login(&mut z, "alice", "alice-password", "alice");
    answers(
        &mut z,
        "/whoami",
        &format!("YOU alice {} 127.0.0.2 :#lobby", alice.id),
    );
}

#[test]
fn the_failed_login_allowance_refills_with_time() {
    const REFILL: Duration = Duration::from_millis(1000);
    let server = start_server(|c| {
        cheap_hashing(c);
        c.core.login_failures = 2;
        c.core.login_failure_refill_ms = REFILL.as_millis() as u64;
    });
    let mut setup = server.connect("setup");
    register(&mut setup, "alice", "alice-password");
    quit(&mut setup);

    let mut x = server.connect("x");
    let first_failure = Instant::now();
    answers(&mut x, "/login alice guess-1", AUTH_FAILED);
    answers(&mut x, "/login alice guess-2", AUTH_FAILED);
    refused(&mut x, "/login alice alice-password", "rate-limited");
    // Waiting for time to pass, not for the server: retry until let in.
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        x.send("/login alice alice-password");
        let line = x.line();
        if line.starts_with("OK login alice ") {
            break;
        }
        assert!(line.starts_with("ERR rate-limited"), "{line:?}");
        assert!(
            Instant::now() < deadline,
            "still rate-limited after {:?}",
            common::TIMEOUT
        );
        thread::sleep(Duration::from_millis(50));
    }
    let waited = first_failure.elapsed();
    assert!(
        waited >= REFILL - Duration::from_millis(100),
        "let in after {waited:?}, before the {REFILL:?} refill"
    );
    // The rest of that login's replies.
    x.expect_next_matching("USERS ");
}

// ---------------------------------------------------------------------------
// 9. Half-closed scripts and failed commits
// ---------------------------------------------------------------------------

/// `printf '/login alice PASSWORD\n/msg bob hi\n' | nc -N host port`: the
/// peer closes its side right after its lines. As for a guest login
/// (docs/protocol.md, "Closing"), every reply must still arrive.
#[test]
fn a_pipelined_login_then_half_close_still_runs_everything() {
    let server = server();
    let mut setup = server.connect("setup");
    register(&mut setup, "alice", "alice-password");
    quit(&mut setup);
    let mut bob = server.login("bob");

    let mut alice = server.connect("alice");
    alice.send_raw(b"/login alice alice-password\n/msg bob hi from a script\n/ping z\n");
    alice.shutdown_write();
    read_entry(&mut alice, "login", "alice");
    let dm = alice.expect_next_matching("DM alice bob ");
    alice.expect_next("PONG z");
    alice.expect_eof();
    bob.expect_next("JOIN #lobby alice");
    bob.expect_next(&dm);
    bob.expect_next("OFFLINE alice :connection closed");

    // The same for a registration, and the account exists afterwards.
    let mut carol = server.connect("carol");
    carol.send_raw(b"/register carol carol-password\n/ping y\n");
    carol.shutdown_write();
    read_entry(&mut carol, "register", "carol");
    carol.expect_next("PONG y");
    carol.expect_eof();
    let mut again = server.connect("again");
    login(&mut again, "carol", "carol-password", "carol");
}

/// Holds SQLite's write lock from another connection, so the daemon's
/// commits fail after its busy timeout, as on a full disk or an I/O error.
fn lock_db(db: &str) -> rusqlite::Connection {
    let lock = rusqlite::Connection::open(db).expect("open the db");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    lock
}

fn unlock_db(lock: rusqlite::Connection) {
    lock.execute_batch("ROLLBACK").expect("release the lock");
}

/// While commits fail, nothing is delivered (so nothing a client saw can be
/// lost) and input waits; once the database works again, everything arrives,
/// is durable, and no id is given out twice across a restart.
#[test]
fn a_failing_database_holds_deliveries_until_it_works() {
    let (_dir, db) = temp_db();
    let mut d = spawn_daemon(&["--db", &db]);
    let mut alice = d.login("alice");
    alice.send("stored");
    alice.expect_next_matching("MSG #lobby alice ");
    let lock = lock_db(&db);
    alice.send("said while the database was locked");
    alice.send("/ping held");
    alice.expect_silence(Duration::from_millis(400));
    unlock_db(lock);
    let held = alice.expect_next_matching("MSG #lobby alice ");
    assert!(
        held.ends_with(":said while the database was locked"),
        "{held}"
    );
    alice.expect_next("PONG held");
    stop_cleanly(&mut d);
    let log = d.log();
    assert!(log.contains("holding deliveries"), "{log}");

    let d = spawn_daemon(&["--db", &db]);
    let mut bob = d.login("bob");
    assert!(
        history(&mut bob, "#lobby", 10).contains(&held),
        "{held} not in the history after a restart"
    );
    bob.send("after the restart");
    let after = bob.expect_next_matching("MSG #lobby bob ");
    assert!(message_id(&after) > message_id(&held), "{held}\n{after}");
}

/// A registration is confirmed only once the account is on disk.
#[test]
fn a_registration_is_confirmed_only_once_it_is_stored() {
    let (_dir, db) = temp_db();
    let mut d = spawn_daemon(&["--db", &db]);
    let mut dave = d.connect("dave");
    let lock = lock_db(&db);
    dave.send("/register dave dave-password");
    dave.expect_silence(Duration::from_millis(400));
    unlock_db(lock);
    read_entry(&mut dave, "register", "dave");
    stop_cleanly(&mut d);

    let d = spawn_daemon(&["--db", &db]);
    let mut eve = d.connect("eve");
    eve.send("/login dave");
    assert_eq!(eve.line(), AUTH_FAILED);
}
