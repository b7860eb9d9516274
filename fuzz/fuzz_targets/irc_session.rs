//! IRC sessions over the real core: a few connections, arbitrary lines.
//!
//! The input is split into lines; each line's first byte picks one of three
//! IRC connections, the rest is what that client sends. Every line goes
//! through the session (registration, CAP, commands) and the core, and every
//! event is rendered for its recipients as the reactor would.
//!
//! Checks: nothing panics; every byte string a session produces is whole IRC
//! lines, each ending in `\r\n` with no NUL, CR or LF inside, and each line's
//! body (after any tags) fits IRC's 512 bytes when the client's own lines did.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use chatd::config::CoreConfig;
use chatd::core::{Action, Chat, ConnId, Timestamp};
use chatd::dialect::irc::{Session, Settings};
use chatd::dialect::Input;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("IRC output is not UTF-8");
    if text.is_empty() {
        return;
    }
    let body = text
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("output does not end in CRLF: {text:?}"));
    for line in body.split("\r\n") {
        assert!(!line.is_empty(), "empty line in {text:?}");
        assert!(
            !line.contains(['\0', '\r', '\n']),
            "NUL, CR or LF inside {line:?}"
        );
        let main = match line.strip_prefix('@') {
            Some(tagged) => tagged.split_once(' ').map_or("", |(_, rest)| rest),
            None => line,
        };
        assert!(main.len() <= 510, "{} byte body: {line:?}", main.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let settings = Arc::new(Settings {
        server: "irc.test".into(),
        network: "test".into(),
        created: "now".into(),
        motd: vec!["hello".into()],
        chanlimit: 10,
    });
    let mut chat = Chat::new(CoreConfig::default());
    let mut sessions: HashMap<ConnId, Session> = HashMap::new();
    let ip = "127.0.0.1".parse().expect("an address");
    for i in 0..3 {
        let id = ConnId(i);
        sessions.insert(id, Session::new(settings.clone(), ip));
        chat.connect(id, ip, Timestamp(0));
    }
    for (n, raw) in data.split(|&b| b == b'\n').enumerate().take(200) {
        let Some((&pick, rest)) = raw.split_first() else {
            continue;
        };
        let id = ConnId(u64::from(pick % 3));
        let Ok(line) = std::str::from_utf8(rest) else {
            continue;
        };
        if line.len() > 400 || line.contains(['\r', '\0']) {
            continue;
        }
        let now = Timestamp(n as u64 * 1000);
        let mut actions = Vec::new();
        let Some(session) = sessions.get_mut(&id) else {
            continue;
        };
        session.input(Ok(line), &mut |input| match input {
            Input::Command(cmd) => actions.extend(chat.handle(id, cmd, now)),
            Input::Raw(bytes) => actions.push(Action::Raw { to: id, bytes }),
            Input::Event(event) => actions.push(Action::Send { to: id, event }),
            Input::Group(start) => actions.push(Action::Group { to: id, start }),
        });
        // As the reactor does: a group's bytes are held, then wrapped.
        let mut group: Option<Vec<u8>> = None;
        let deliver = |to: ConnId, out: Vec<u8>, group: &mut Option<Vec<u8>>| match group {
            Some(held) if to == id => held.extend_from_slice(&out),
            _ => check(&out),
        };
        for action in actions {
            match action {
                Action::Send { to, event } => {
                    if let Some(s) = sessions.get_mut(&to) {
                        let mut out = Vec::new();
                        s.render(&event, &mut out);
                        deliver(to, out, &mut group);
                    }
                }
                Action::Fanout { to, event } => {
                    for conn in to {
                        if let Some(s) = sessions.get_mut(&conn) {
                            if s.wants(&event) {
                                let mut out = Vec::new();
                                s.render_shared(&event, &mut out);
                                deliver(conn, out, &mut group);
                            }
                        }
                    }
                }
                Action::Raw { to, bytes } => deliver(to, bytes, &mut group),
                Action::Group { start: true, .. } => group = Some(Vec::new()),
                Action::Group { start: false, to } => {
                    if let (Some(held), Some(s)) = (group.take(), sessions.get_mut(&to)) {
                        let mut out = Vec::new();
                        s.finish_group(&held, &mut out);
                        check(&out);
                    }
                }
                Action::Close { conn } => {
                    sessions.remove(&conn);
                }
                Action::Store(_) | Action::Auth { .. } | Action::Stats { .. } => {}
            }
        }
    }
});
