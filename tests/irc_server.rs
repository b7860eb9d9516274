//! The IRC dialect over real sockets: IRC and line-protocol clients in the
//! same rooms, registration, capabilities, listings and keepalive.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chatd::config::ServerConfig;
use common::irc::IrcClient;
use common::{TestServer, start_server};

/// A server with an IRC listener as well.
fn irc_server(tweak: impl FnOnce(&mut ServerConfig)) -> (TestServer, SocketAddr) {
    let server = start_server(|c| {
        c.irc_listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        c.argon2_memory_kib = 64;
        c.argon2_iterations = 1;
        tweak(c);
    });
    let irc = server.irc.expect("an IRC listener");
    (server, irc)
}

/// The numeric (or command) of a server line: its second word.
fn command(line: &str) -> &str {
    let line = line
        .strip_prefix('@')
        .map_or(line, |l| l.split_once(' ').map_or("", |(_, rest)| rest));
    line.split(' ').nth(1).unwrap_or("")
}

fn commands(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| command(l)).collect()
}

#[test]
fn irc_and_line_users_talk_in_one_room_both_ways() {
    let (server, irc) = irc_server(|_| {});
    let (mut alice, burst) = IrcClient::register(irc, "alice", &[]);
    let burst_commands = commands(&burst);
    for numeric in [
        "001", "002", "003", "004", "005", "251", "375", "372", "376",
    ] {
        assert!(
            burst_commands.contains(&numeric),
            "{numeric} missing: {burst:?}"
        );
    }
    assert!(
        burst[0].starts_with(":chat.local 001 alice :Welcome"),
        "{burst:?}"
    );
    let joined = alice.ask("JOIN #lobby");
    assert_eq!(joined[0], ":alice!u-alice@127.0.0.1 JOIN #lobby");
    assert!(
        joined.iter().any(|l| l.contains(" 366 alice #lobby ")),
        "{joined:?}"
    );

    // A line user logs in (and into the lobby): the IRC user sees a JOIN.
    let mut bob = server.login("bob");
    alice.expect(":bob!bob@127.0.0.1 JOIN #lobby");

    // line → IRC, and IRC → line.
    bob.send("hello from the line side");
    alice.expect(":bob!bob@127.0.0.1 PRIVMSG #lobby :hello from the line side");
    alice.send("PRIVMSG #lobby :hello from irc");
    let msg = bob.expect("MSG #lobby alice ");
    assert!(msg.ends_with(" :hello from irc"), "{msg}");
    // The IRC sender did not ask for echo-message: no copy back.
    let after = alice.sync();
    assert!(after.iter().all(|l| !l.contains("PRIVMSG")), "{after:?}");

    // Direct messages both ways.
    bob.send("/msg alice psst");
    alice.expect(":bob!bob@127.0.0.1 PRIVMSG alice :psst");
    alice.send("PRIVMSG bob :hi bob");
    bob.expect("DM alice bob ");

    // A broadcast reaches IRC users as a server notice.
    bob.send("/broadcast maintenance at noon");
    alice.expect(":chat.local NOTICE * :[broadcast from bob] maintenance at noon");

    // A nick change is seen by the line user; a part and a quit map too.
    alice.send("NICK alicia");
    alice.expect(":alice!u-alice@127.0.0.1 NICK alicia");
    bob.expect("NICK alice alicia");
    alice.send("PART #lobby :bye room");
    alice.expect(":alicia!u-alice@127.0.0.1 PART #lobby :bye room");
    bob.expect("LEAVE #lobby alicia :bye room");
    alice.send("JOIN #lobby");
    bob.expect("JOIN #lobby alicia");
    alice.send("QUIT :gone");
    let last = alice.read_to_eof();
    assert!(last.iter().any(|l| l.starts_with("ERROR :")), "{last:?}");
    bob.expect("OFFLINE alicia :Quit: gone");
    // The line user's side carries on.
    bob.assert_quiet();
}

#[test]
fn registration_edge_cases_get_their_numerics() {
    let (_server, irc) = irc_server(|_| {});
    let (_taken, _) = IrcClient::register(irc, "carol", &[]);

    let mut c = IrcClient::connect(irc, "newcomer");
    // Commands before registration.
    c.send("JOIN #x");
    assert_eq!(c.line(), ":chat.local 451 * :You have not registered");
    c.send("FROBNICATE");
    assert_eq!(c.line(), ":chat.local 421 * FROBNICATE :Unknown command");
    // Missing parameters and bad nicks.
    c.send("USER onlyone");
    assert_eq!(c.line(), ":chat.local 461 * USER :Not enough parameters");
    c.send("NICK");
    assert_eq!(c.line(), ":chat.local 431 * :No nickname given");
    c.send("NICK 9lives");
    assert_eq!(c.line(), ":chat.local 432 * 9lives :Erroneous nickname");
    // A nick in use, then a free one: registration completes.
    c.send("NICK CAROL");
    c.send("USER u 0 * :Real Name");
    assert_eq!(
        c.line(),
        ":chat.local 433 * CAROL :Nickname is already in use"
    );
    c.send("NICK dave");
    assert_eq!(
        c.line(),
        ":chat.local 001 dave :Welcome to the chatd Network, dave!u@127.0.0.1"
    );
    c.expect(" 376 dave ");
    // After registration.
    c.send("USER again 0 * :x");
    assert_eq!(c.line(), ":chat.local 462 dave :You may not reregister");
    let reply = c.ask("PRIVMSG");
    assert_eq!(
        reply,
        [":chat.local 411 dave :No recipient given (PRIVMSG)"]
    );
    let reply = c.ask("PRIVMSG #nowhere :hi");
    assert_eq!(reply, [":chat.local 403 dave #nowhere :No such channel"]);
    let reply = c.ask("PRIVMSG nobody :hi");
    assert_eq!(reply, [":chat.local 401 dave nobody :No such nick/channel"]);
    // A NOTICE never gets an error back.
    assert!(c.ask("NOTICE nobody :hi").is_empty());
    // An over-long line: 417, and the connection goes on.
    let long = format!("PRIVMSG carol :{}", "x".repeat(600));
    let reply = c.ask(&long);
    assert_eq!(reply, [":chat.local 417 dave :Input line was too long"]);
}

/// Registers `name` with the password `correct-horse` over the line
/// protocol; the returned client is logged in as `name`.
fn line_account(server: &TestServer, name: &str) -> common::Client {
    let mut line = server.connect(&format!("{name}-line"));
    line.send(&format!("/register {name} correct-horse"));
    line.expect(format!("OK register {name} ").as_str());
    line
}

#[test]
fn a_registered_account_needs_its_password() {
    let (server, irc) = irc_server(|_| {});
    let mut line = line_account(&server, "erin");
    line.send("/quit");
    line.expect("BYE");

    let mut c = IrcClient::connect(irc, "erin-no-pass");
    c.send("NICK erin");
    c.send("USER e 0 * :Erin");
    c.expect(" 464 * :Password incorrect");

    let mut c = IrcClient::connect(irc, "erin-wrong");
    c.send("PASS wrong-password");
    c.send("NICK erin");
    c.send("USER e 0 * :Erin");
    c.expect(" 464 * :Password incorrect");

    let mut c = IrcClient::connect(irc, "erin");
    c.send("PASS correct-horse");
    c.send("NICK erin");
    c.send("USER e 0 * :Erin");
    c.expect(":chat.local 001 erin ");
    c.sync();
    // An account keeps its name.
    let reply = c.ask("NICK other");
    assert_eq!(commands(&reply), ["447"], "{reply:?}");
}

/// `PASS` and `USER`'s real name are kept until a login succeeds (then
/// dropped to keep the session small), so a retry after `433` needs neither
/// again.
#[test]
fn a_nick_in_use_keeps_the_password_and_real_name_for_the_retry() {
    let (server, irc) = irc_server(|_| {});
    let mut line = line_account(&server, "fay");

    let mut c = IrcClient::connect(irc, "fay");
    c.send("PASS correct-horse");
    c.send("NICK fay");
    c.send("USER f 0 * :Fay Real");
    c.expect(" 433 * fay :Nickname is already in use");
    line.send("/quit");
    line.expect("BYE");
    c.send("NICK fay");
    c.expect(":chat.local 001 fay ");
    c.sync();
    let whois = c.ask("WHOIS fay");
    assert!(
        whois
            .iter()
            .any(|l| l.contains(" 311 fay fay f 127.0.0.1 * :Fay Real")),
        "{whois:?}"
    );
}

#[test]
fn server_time_brings_tags_and_history_without_it_neither() {
    let (server, irc) = irc_server(|_| {});
    let mut bob = server.login("bob");
    bob.send("before anyone came");
    bob.expect("MSG #lobby bob ");

    let (mut timed, _) = IrcClient::register(irc, "timed", &["server-time"]);
    let joined = timed.ask("JOIN #lobby");
    let replayed: Vec<&String> = joined.iter().filter(|l| l.contains("PRIVMSG")).collect();
    assert_eq!(replayed.len(), 1, "{joined:?}");
    assert!(replayed[0].starts_with("@time=20"), "{replayed:?}");
    assert!(replayed[0].ends_with(":bob!bob@127.0.0.1 PRIVMSG #lobby :before anyone came"));

    let (mut plain, _) = IrcClient::register(irc, "plain", &[]);
    let joined = plain.ask("JOIN #lobby");
    assert!(joined.iter().all(|l| !l.contains("PRIVMSG")), "{joined:?}");

    bob.send("now");
    let line = timed.expect("PRIVMSG #lobby :now");
    assert!(line.starts_with("@time="), "{line}");
    let line = plain.expect("PRIVMSG #lobby :now");
    assert!(line.starts_with(":bob!"), "{line}");

    // CAP LIST shows what is on; an unknown capability is refused whole.
    let reply = timed.ask("CAP LIST");
    assert_eq!(reply, [":chat.local CAP timed LIST :server-time"]);
    let reply = timed.ask("CAP REQ :echo-message no-such-cap");
    assert_eq!(
        reply,
        [":chat.local CAP timed NAK :echo-message no-such-cap"]
    );
}

#[test]
fn echo_message_and_message_tags() {
    let (_server, irc) = irc_server(|_| {});
    let caps = ["echo-message", "message-tags"];
    let (mut a, _) = IrcClient::register(irc, "tagger", &caps);
    let (mut b, _) = IrcClient::register(irc, "reader", &["message-tags"]);
    let (mut c, _) = IrcClient::register(irc, "oldie", &[]);
    for x in [&mut a, &mut b, &mut c] {
        x.ask("JOIN #tags");
    }
    a.sync();
    a.send("@+draft/react=ok;notclient=1 PRIVMSG #tags :tagged");
    let echo = a.expect("PRIVMSG #tags :tagged");
    assert!(echo.starts_with("@msgid="), "{echo}");
    assert!(echo.contains(";+draft/react=ok "), "{echo}");
    let got = b.expect("PRIVMSG #tags :tagged");
    assert!(
        got.contains("+draft/react=ok") && !got.contains("notclient"),
        "{got}"
    );
    let got = c.expect("PRIVMSG #tags :tagged");
    assert!(
        got.starts_with(':'),
        "no tags for a client without caps: {got}"
    );
    // TAGMSG reaches only message-tags clients.
    a.send("@+typing=active TAGMSG #tags");
    b.expect(" TAGMSG #tags");
    let quiet = c.sync();
    assert!(quiet.is_empty(), "{quiet:?}");
}

#[test]
fn names_who_whois_list_topic_and_mode_shapes() {
    let (server, irc) = irc_server(|_| {});
    let (mut op, _) = IrcClient::register(irc, "opal", &[]);
    let (mut other, _) = IrcClient::register(irc, "otto", &[]);
    op.ask("JOIN #shapes");
    other.ask("JOIN #shapes");
    let mut liner = server.login("lina");
    liner.join("#shapes");
    op.sync();

    let names = op.ask("NAMES #shapes");
    assert_eq!(
        names,
        [
            ":chat.local 353 opal = #shapes :@opal otto lina",
            ":chat.local 366 opal #shapes :End of /NAMES list",
        ]
    );
    let who = op.ask("WHO #shapes");
    assert_eq!(
        who[0],
        ":chat.local 352 opal #shapes u-opal 127.0.0.1 chat.local opal H@ :0 Real opal"
    );
    assert_eq!(
        who[2],
        ":chat.local 352 opal #shapes lina 127.0.0.1 chat.local lina H :0 "
    );
    assert_eq!(who[3], ":chat.local 315 opal #shapes :End of WHO list");
    let whois = op.ask("WHOIS otto");
    assert_eq!(
        whois,
        [
            ":chat.local 311 opal otto u-otto 127.0.0.1 * :Real otto",
            ":chat.local 319 opal otto :#shapes",
            ":chat.local 312 opal otto chat.local :chatd",
            ":chat.local 318 opal otto :End of /WHOIS list",
        ]
    );
    let whois = op.ask("WHOIS ghost");
    assert_eq!(commands(&whois), ["401", "318"]);

    let topic = op.ask("TOPIC #shapes");
    assert_eq!(topic, [":chat.local 331 opal #shapes :No topic is set"]);
    op.ask("TOPIC #shapes :shapes and sizes");
    other.expect(":opal!u-opal@127.0.0.1 TOPIC #shapes :shapes and sizes");
    liner.expect("TOPIC #shapes opal :shapes and sizes");
    let topic = other.ask("TOPIC #shapes");
    assert_eq!(topic[0], ":chat.local 332 otto #shapes :shapes and sizes");
    assert!(
        topic[1].starts_with(":chat.local 333 otto #shapes opal "),
        "{topic:?}"
    );

    let list = op.ask("LIST");
    let entry = list
        .iter()
        .find(|l| l.contains(" 322 opal #shapes "))
        .expect("a 322");
    assert_eq!(entry, ":chat.local 322 opal #shapes 3 :shapes and sizes");
    assert_eq!(commands(&list)[0], "321");
    assert_eq!(*commands(&list).last().expect("lines"), "323");

    // Modes: +t keeps the topic to operators; only operators change modes.
    let modes = op.ask("MODE #shapes");
    assert_eq!(modes[0], ":chat.local 324 opal #shapes +n");
    assert!(
        modes[1].starts_with(":chat.local 329 opal #shapes "),
        "{modes:?}"
    );
    op.ask("MODE #shapes +t");
    other.expect(":opal!u-opal@127.0.0.1 MODE #shapes +t");
    let refused = other.ask("TOPIC #shapes :mine now");
    assert_eq!(
        refused,
        [":chat.local 482 otto #shapes :You're not channel operator"]
    );
    let refused = other.ask("MODE #shapes -t");
    assert_eq!(
        refused,
        [":chat.local 482 otto #shapes :You're not channel operator"]
    );
    op.send("MODE #shapes +o otto");
    other.expect(":opal!u-opal@127.0.0.1 MODE #shapes +o otto");
    other.send("KICK #shapes lina :out");
    liner.expect("KICK #shapes lina otto :out");
    op.expect(":otto!u-otto@127.0.0.1 KICK #shapes lina :out");
}

#[test]
fn an_idle_irc_client_is_pinged_then_dropped() {
    let (server, irc) = irc_server(|c| c.ping_interval = Some(Duration::from_millis(300)));
    let mut watcher = server.login("watcher");
    let (mut idle, _) = IrcClient::register(irc, "sleepy", &[]);
    idle.ask("JOIN #lobby");
    watcher.expect("JOIN #lobby sleepy");
    // It answers the first ping: it stays.
    let ping = idle.line();
    assert_eq!(ping, "PING chat.local");
    idle.send("PONG chat.local");
    let ping = idle.line();
    assert_eq!(ping, "PING chat.local");
    // It does not answer the next one: it is dropped.
    let rest = idle.read_to_eof();
    assert!(
        rest.iter().any(|l| l.starts_with("ERROR :Closing Link: ")),
        "{rest:?}"
    );
    let offline = watcher.expect("OFFLINE sleepy ");
    assert!(
        offline.starts_with("OFFLINE sleepy :Ping timeout: "),
        "{offline}"
    );
}

#[test]
fn several_irc_clients_at_once_see_every_message_in_order() {
    let (_server, irc) = irc_server(|_| {});
    let mut clients: Vec<IrcClient> = (0..8)
        .map(|i| IrcClient::register(irc, &format!("many{i}"), &[]).0)
        .collect();
    for c in &mut clients {
        c.ask("JOIN #many");
    }
    for c in &mut clients {
        c.sync();
    }
    for round in 0..20 {
        let sender = round % clients.len();
        clients[sender].send(&format!("PRIVMSG #many :message {round}"));
    }
    // Two rounds of syncs: after the first, every sender's lines were handled.
    let mut got = vec![Vec::new(); clients.len()];
    for _ in 0..2 {
        for (i, c) in clients.iter_mut().enumerate() {
            got[i].extend(c.sync().into_iter().filter(|l| l.contains(" PRIVMSG ")));
        }
    }
    // Each sender's messages arrive complete and in order (senders interleave).
    for (i, lines) in got.iter_mut().enumerate() {
        lines.sort_by_key(|l| l.split('!').next().map(str::to_string));
        let expected: Vec<String> = (0..20)
            .filter(|r| r % 8 != i)
            .map(|r| {
                format!(
                    ":many{}!u-many{}@127.0.0.1 PRIVMSG #many :message {r}",
                    r % 8,
                    r % 8
                )
            })
            .collect::<Vec<_>>();
        let mut expected = expected;
        expected.sort_by_key(|l| l.split('!').next().map(str::to_string));
        assert_eq!(lines, &expected, "[many{i}]");
    }
}

#[test]
fn labeled_responses_whox_and_help() {
    let (_server, irc) = irc_server(|_| {});
    let caps = ["batch", "labeled-response", "echo-message"];
    let (mut a, _) = IrcClient::register(irc, "labeller", &caps);
    let (mut b, _) = IrcClient::register(irc, "plainb", &[]);
    b.ask("JOIN #lab");
    // One reply: labelled. None: ACK. Several: a labeled-response batch.
    assert_eq!(
        a.ask("@label=one PING x"),
        ["@label=one :chat.local PONG chat.local x"]
    );
    assert_eq!(a.ask("@label=two PONG x"), ["@label=two :chat.local ACK"]);
    let joined = a.ask("@label=three JOIN #lab");
    assert_eq!(
        joined[0],
        "@label=three :chat.local BATCH +1 labeled-response"
    );
    assert_eq!(
        joined[1],
        "@batch=1 :labeller!u-labeller@127.0.0.1 JOIN #lab"
    );
    assert!(
        joined[2..joined.len() - 1]
            .iter()
            .all(|l| l.starts_with("@batch=1 "))
    );
    assert_eq!(
        joined.last().map(String::as_str),
        Some(":chat.local BATCH -1")
    );
    // The echo of a labelled message carries the label; others never see it.
    let echo = a.ask("@label=four PRIVMSG #lab :hi");
    assert_eq!(
        echo,
        ["@label=four :labeller!u-labeller@127.0.0.1 PRIVMSG #lab :hi"]
    );
    b.expect(":labeller!u-labeller@127.0.0.1 PRIVMSG #lab :hi");

    // WHOX fields come in the spec's order, with the token.
    let who = b.ask("WHO labeller %nuhtf,42");
    assert_eq!(
        who,
        [
            ":chat.local 354 plainb 42 u-labeller 127.0.0.1 labeller H",
            ":chat.local 315 plainb labeller :End of WHO list",
        ]
    );
    // HELP, and an unknown subject.
    let help = b.ask("HELP privmsg");
    assert_eq!(
        help[0],
        ":chat.local 704 plainb privmsg :PRIVMSG target[,target...] :text"
    );
    assert!(
        help.last()
            .is_some_and(|l| l.contains(" 706 plainb privmsg "))
    );
    assert_eq!(
        b.ask("HELP nonsense"),
        [":chat.local 524 plainb nonsense :No help available on this topic"]
    );
}

#[test]
fn operators_kill_and_monitor_watchers_hear_it() {
    let (server, irc) = irc_server(|c| c.core.opers = vec!["boss:s3cret".parse().unwrap()]);
    let (mut alice, _) = IrcClient::register(irc, "alice", &[]);
    let (mut carol, _) = IrcClient::register(irc, "carol", &[]);

    // Alice watches bob before he is online, then sees him arrive.
    let watch = alice.ask("MONITOR + bob");
    assert!(
        watch.iter().any(|l| l.contains(" 731 alice :bob")),
        "{watch:?}"
    );
    let mut bob = server.login("bob");
    alice.expect(" 730 alice :bob!bob@127.0.0.1");

    // Not an operator yet: KILL is refused and nobody is disturbed.
    let refused = carol.ask("KILL bob :spam");
    assert!(refused.iter().any(|l| command(l) == "481"), "{refused:?}");
    let wrong = carol.ask("OPER boss nope");
    assert!(wrong.iter().any(|l| command(l) == "464"), "{wrong:?}");
    bob.send("/ping still-here");
    bob.expect("PONG still-here");

    let granted = carol.ask("OPER boss s3cret");
    assert!(granted.iter().any(|l| command(l) == "381"), "{granted:?}");
    assert!(
        granted.iter().any(|l| l.ends_with("MODE carol :+o")),
        "{granted:?}"
    );
    carol.send("KILL bob :spam");
    let last = bob.read_to_eof();
    assert!(
        last.iter()
            .any(|l| l.starts_with("BYE :Killed (carol (spam))")),
        "{last:?}"
    );
    alice.expect(" 731 alice :bob");
    // WHOWAS remembers him; the others carry on.
    let was = carol.ask("WHOWAS bob");
    assert!(was.iter().any(|l| command(l) == "314"), "{was:?}");
    let list = alice.ask("MONITOR L");
    assert!(
        list.iter().any(|l| l.contains(" 732 alice :bob")),
        "{list:?}"
    );
}
