//! The state machine driven by four connections at once, through the line
//! dialect's parser and renderer.
//!
//! The input is read as lines (at most [`MAX_STEPS`]; empty ones skipped).
//! Each line's first byte is an op; the rest is what the client sent. Bits
//! 0–1 of the op byte pick the connection slot (0–3), bits 2–4 what happens,
//! bit 7 (`0x80`) lets 13 s pass first (more than a failed login's refill);
//! bits 5–6 are ignored. In ASCII, with `N` the slot:
//!
//! | op byte | bits 2–4 | what happens |
//! |---|---|---|
//! | `'0' + N` | 4 | the rest is a client line |
//! | `'4' + N` | 5 | the connection drops (reset) |
//! | `'8' + N` | 6 | it drops and the slot reconnects with a fresh id |
//! | `'<' + N` | 7 | its input ends (`nc -N`) |
//! | `'@' + N` | 0 | a client line, and the password answers it asks for are held until the next op of another kind |
//! | `'D' + N` | 1 | its login deadline passes |
//! | `'H' + N` | 2 | a client line, and the password answers given now are `Failed` |
//! | `'L' + N` | 3 | a client line (same as `'0' + N`) |
//!
//! Password work is answered at once (but for `'@'`) by a fake: `Hash` gives
//! `h:` + the password and `Verify` matches it, so registrations and logins
//! succeed. `/stats` is answered as the reactor does, from the core's counts.
//!
//! Checks after every call into the core: [`Chat::check_invariants`]; every
//! action is addressed to a connection the core knows (a closed one only up
//! to its `Close`, which comes once); the core knows exactly the connections
//! this harness believes open; inputs for gone connections do nothing; a
//! connection never has two password jobs out; every event renders to
//! `\n`-terminated UTF-8 lines of at most [`MAX_SERVER_LINE`] bytes. At the
//! end, shutdown closes everyone.
#![no_main]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::OnceLock;

use chatd::config::{CoreConfig, MAX_LINE, MAX_SERVER_LINE};
use chatd::core::{Action, AuthOutcome, AuthRequest, Chat, ConnId, Event, OkReply, Timestamp};
use chatd::dialect::line::{frame_error, parse, render};
use chatd::framing::FrameError;
use libfuzzer_sys::fuzz_target;

/// Lines of input acted on; the rest is ignored, so one input stays fast.
const MAX_STEPS: usize = 256;

/// Connection slots.
const SLOTS: usize = 4;

/// Where each slot connects from: two share an address (the failed-login
/// budget is per address), and two are IPv6 (one renders with a leading `0`).
const ADDRESSES: [&str; SLOTS] = ["192.0.2.1", "192.0.2.1", "::1", "2001:db8::7"];

/// Names of the op kinds (bits 2–4 of the op byte), for the trace.
const KINDS: [&str; 8] = [
    "line, answer held",
    "login deadline",
    "line, answer failed",
    "line",
    "line",
    "drop",
    "reconnect",
    "input ended",
];

fuzz_target!(|data: &[u8]| {
    let mut h = Harness::new();
    for raw in data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .take(MAX_STEPS)
    {
        h.step(raw[0], &raw[1..]);
    }
    h.finish();
});

/// What the harness believes of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// The peer may still send.
    Open,
    /// The peer stopped sending; the core may hold the connection until its
    /// password answer is in.
    Ended,
}

/// The chat, the connections and the password answers not yet given.
struct Harness {
    chat: Chat,
    now: Timestamp,
    /// Each slot's current connection id and whether its input is open.
    slots: [(ConnId, Input); SLOTS],
    next_id: u64,
    /// Connections the core should know.
    live: BTreeSet<ConnId>,
    /// Password jobs asked for and not answered yet, oldest first.
    held: Vec<(ConnId, AuthRequest)>,
    /// Answer the password jobs of this step with `Failed`.
    fail_auth: bool,
    /// Scratch space for rendering.
    buf: Vec<u8>,
    /// Print every step and rendered line to stderr (`CHATD_FUZZ_TRACE` set),
    /// to read what a crashing input does.
    trace: bool,
}

impl Harness {
    /// A chat with small limits (so history rings, room limits, inboxes,
    /// the presence limit and the failed-login budget are reached in short
    /// inputs) and every slot connected.
    fn new() -> Self {
        let config = CoreConfig {
            history_len: 4,
            join_history: 3,
            max_rooms: 6,
            max_rooms_per_user: 3,
            inbox_limit: 2,
            presence_limit: 2,
            login_failures: 2,
            ..CoreConfig::default()
        };
        let mut h = Harness {
            chat: Chat::new(config),
            now: Timestamp::from_millis(1_800_000_000_000),
            slots: [(ConnId(0), Input::Open); SLOTS],
            next_id: 1,
            live: BTreeSet::new(),
            held: Vec::new(),
            fail_auth: false,
            buf: Vec::new(),
            trace: trace(),
        };
        h.check_state();
        for slot in 0..SLOTS {
            h.connect(slot);
        }
        h
    }

    /// One line of input.
    fn step(&mut self, op: u8, rest: &[u8]) {
        let slot = usize::from(op & 3);
        let kind = (op >> 2) & 7;
        self.fail_auth = kind == 2;
        self.now = Timestamp::from_millis(
            self.now.as_millis() + 1 + if op & 0x80 != 0 { 13_000 } else { 0 },
        );
        let (id, input) = self.slots[slot];
        let alive = self.live.contains(&id);
        if self.trace {
            let (what, text) = (KINDS[usize::from(kind)], String::from_utf8_lossy(rest));
            eprintln!("-- slot {slot} {id:?} {what}: {text:?}");
        }
        match kind {
            0 | 2 | 3 | 4 => self.command(slot, rest),
            5 if alive => self.drop_conn(id),
            5 => {}
            6 => {
                if alive {
                    self.drop_conn(id);
                }
                self.connect(slot);
            }
            7 if alive && input == Input::Open => {
                self.slots[slot].1 = Input::Ended;
                let actions = self.chat.input_ended(id, "end of input", self.now);
                self.apply(actions);
            }
            7 => {}
            _ => {
                let actions = self.chat.login_deadline(id, self.now);
                if !alive {
                    assert!(actions.is_empty(), "deadline of gone {id:?}: {actions:?}");
                }
                self.apply(actions);
            }
        }
        if kind != 0 {
            self.answer_held();
        }
    }

    /// A client line on `slot`, framed as the reactor frames it (one `\r`
    /// dropped, empty lines skipped, over-long and non-UTF-8 lines refused).
    fn command(&mut self, slot: usize, raw: &[u8]) {
        let (id, input) = self.slots[slot];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            return;
        }
        let parsed = if raw.len() > MAX_LINE {
            Err(frame_error(FrameError::LineTooLong))
        } else {
            match std::str::from_utf8(raw) {
                Ok(line) => parse(line),
                Err(_) => Err(frame_error(FrameError::BadUtf8)),
            }
        };
        if !self.live.contains(&id) {
            // A gone connection: the reactor reads nothing more from it, but
            // the core must ignore a command that slips through.
            if let Ok(cmd) = parsed {
                let actions = self.chat.handle(id, cmd, self.now);
                assert!(actions.is_empty(), "command for gone {id:?}: {actions:?}");
                self.check_state();
            }
            return;
        }
        if input == Input::Ended {
            return;
        }
        let actions = match parsed {
            Ok(cmd) => self.chat.handle(id, cmd, self.now),
            Err(e) => vec![Action::Send {
                to: id,
                event: Event::Error(e),
            }],
        };
        self.apply(actions);
    }

    /// A fresh connection id in `slot`.
    fn connect(&mut self, slot: usize) {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.slots[slot] = (id, Input::Open);
        self.live.insert(id);
        let ip: IpAddr = ADDRESSES[slot].parse().expect("address");
        let actions = self.chat.connect(id, ip, self.now);
        assert!(
            matches!(
                actions.as_slice(),
                [Action::Send { to, event: Event::Hello { .. } }] if *to == id
            ),
            "connect gave {actions:?}"
        );
        self.apply(actions);
    }

    /// The connection went away (reset, or dropped by the reactor).
    fn drop_conn(&mut self, id: ConnId) {
        self.live.remove(&id);
        let actions = self.chat.disconnect(id, "connection reset", self.now);
        self.apply(actions);
    }

    /// Gives every held password answer, and those the answers lead to.
    fn answer_held(&mut self) {
        while !self.held.is_empty() {
            let (conn, request) = self.held.remove(0);
            let outcome = if self.fail_auth {
                AuthOutcome::Failed
            } else {
                fake_auth(&request)
            };
            let actions = self.chat.auth_done(conn, outcome, self.now);
            if !self.live.contains(&conn) {
                assert!(actions.is_empty(), "answer for gone {conn:?}: {actions:?}");
            }
            self.apply(actions);
        }
    }

    /// Checks one call's actions, renders their events, holds their password
    /// jobs and forgets the connections they close.
    fn apply(&mut self, actions: Vec<Action>) {
        let mut closed = BTreeSet::new();
        for action in &actions {
            match action {
                Action::Send { to, event } => {
                    self.check_to(*to, &closed, action);
                    self.check_render(event);
                }
                Action::Fanout { to, event } => {
                    let mut seen = BTreeSet::new();
                    for conn in to {
                        self.check_to(*conn, &closed, action);
                        assert!(
                            seen.insert(*conn),
                            "fan-out names {conn:?} twice: {action:?}"
                        );
                    }
                    self.check_render(event);
                }
                Action::Raw { to, .. } | Action::Group { to, .. } => {
                    self.check_to(*to, &closed, action)
                }
                Action::Store(_) => {}
                Action::Auth { conn, request } => {
                    self.check_to(*conn, &closed, action);
                    assert!(
                        self.held.iter().all(|(c, _)| c != conn),
                        "second password job for {conn:?}"
                    );
                    self.held.push((*conn, request.clone()));
                }
                Action::Stats { conn } => {
                    self.check_to(*conn, &closed, action);
                    // What the reactor sends back, with the core's counts.
                    let c = self.chat.counts();
                    let counters = [
                        ("connections", c.connections as u64),
                        ("users", c.users as u64),
                        ("rooms", c.rooms as u64),
                        ("accounts", c.accounts as u64),
                        ("messages_in", c.messages_in),
                        ("deliveries_out", c.deliveries_out),
                    ];
                    self.check_render(&Event::Stats {
                        counters: counters.map(|(k, v)| (k.to_owned(), v)).into(),
                    });
                    self.check_render(&Event::Ok(OkReply::Stats));
                }
                Action::Close { conn } => {
                    self.check_to(*conn, &closed, action);
                    closed.insert(*conn);
                }
            }
        }
        for conn in closed {
            self.live.remove(&conn);
        }
        self.check_state();
    }

    /// `conn` may be addressed: the core knows it and has not closed it.
    fn check_to(&self, conn: ConnId, closed: &BTreeSet<ConnId>, action: &Action) {
        assert!(
            self.live.contains(&conn),
            "action for unknown {conn:?}: {action:?}"
        );
        assert!(
            !closed.contains(&conn),
            "action after close of {conn:?}: {action:?}"
        );
    }

    /// `event` renders to whole UTF-8 lines within the server line limit.
    fn check_render(&mut self, event: &Event) {
        self.buf.clear();
        render(event, &mut self.buf);
        let text = std::str::from_utf8(&self.buf).expect("rendered event is not UTF-8");
        if self.trace {
            eprint!("{text}");
        }
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "rendered event does not end in \\n: {text:?}"
        );
        for line in text.split_terminator('\n') {
            assert!(
                line.len() <= MAX_SERVER_LINE,
                "server line of {} bytes: {:?}",
                line.len(),
                &line[..line.floor_char_boundary(200)]
            );
        }
    }

    /// The core's own invariants, and it knows exactly the live connections.
    fn check_state(&self) {
        if let Err(broken) = self.chat.check_invariants() {
            panic!("invariant broken: {broken}");
        }
        assert_eq!(
            self.chat.connection_count(),
            self.live.len(),
            "the core and the harness disagree on open connections: {:?}",
            self.live
        );
    }

    /// The server stops: everyone gets `BYE` and is closed, once.
    fn finish(mut self) {
        let actions = self.chat.shutdown(self.now);
        let mut expect = self.live.clone();
        for action in &actions {
            if let Action::Close { conn } = action {
                assert!(
                    expect.remove(conn),
                    "shutdown closes {conn:?} twice or unknown"
                );
            }
        }
        assert!(expect.is_empty(), "shutdown left {expect:?} open");
        self.apply(actions);
        assert!(self.live.is_empty());
        // Answers arriving after shutdown are ignored.
        self.answer_held();
    }
}

/// Whether `CHATD_FUZZ_TRACE` is set (read once).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("CHATD_FUZZ_TRACE").is_some())
}

/// The fake password worker: a "hash" is `h:` + the password.
fn fake_auth(request: &AuthRequest) -> AuthOutcome {
    match request {
        AuthRequest::Hash { password } => {
            AuthOutcome::Hashed(format!("h:{}", password.expose()).into())
        }
        AuthRequest::Verify { hash, password } => AuthOutcome::Verified(match (hash, password) {
            (Some(hash), Some(password)) => **hash == *format!("h:{}", password.expose()),
            _ => false,
        }),
    }
}
