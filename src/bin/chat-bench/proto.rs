//! The wire formats chat-bench speaks: building client lines and parsing
//! server lines for chatd's line protocol, IRC (RFC 2812) and a plain echo
//! stream, plus the benchmark payload every scenario sends.
//!
//! Parsing borrows from the line and allocates nothing: at a million
//! deliveries a second, the tool must stay cheaper than the server it loads.

use std::fmt::Write as _;

/// The protocol one connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    /// chatd's line protocol (`/login NAME`, `MSG ...`).
    Line,
    /// RFC 2812 (`NICK`/`USER`, `PRIVMSG`).
    Irc,
    /// RFC 862 echo: no login, every line comes back as it was sent.
    Echo,
}

impl Proto {
    /// A short name for reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::Line => "line",
            Proto::Irc => "irc",
            Proto::Echo => "echo",
        }
    }

    /// Whether a connection must log in before it counts as connected.
    pub(crate) fn has_login(self) -> bool {
        self != Proto::Echo
    }

    /// The line ending this protocol's clients send (IRC requires `\r\n`).
    fn eol(self) -> &'static str {
        match self {
            Proto::Irc => "\r\n",
            Proto::Line | Proto::Echo => "\n",
        }
    }

    /// The largest payload that fits in one client line of this protocol,
    /// with room for the command and, for IRC, the prefix the server adds
    /// when it relays the line (512 bytes in all, RFC 2812 2.3).
    pub(crate) fn max_payload(self) -> usize {
        match self {
            Proto::Irc => 400,
            // chatd refuses client lines over 4096 bytes.
            Proto::Line | Proto::Echo => 4000,
        }
    }

    /// Appends the lines that log in as `name`.
    pub(crate) fn login(self, out: &mut Vec<u8>, name: &str) {
        match self {
            Proto::Line => push(out, format_args!("/login {name}\n")),
            Proto::Irc => push(
                out,
                format_args!("NICK {name}\r\nUSER {name} 0 * :chat-bench\r\n"),
            ),
            Proto::Echo => {}
        }
    }

    /// Appends the line that joins `room`.
    pub(crate) fn join(self, out: &mut Vec<u8>, room: &str) {
        match self {
            Proto::Line => push(out, format_args!("/join {room}\n")),
            Proto::Irc => push(out, format_args!("JOIN {room}\r\n")),
            Proto::Echo => {}
        }
    }

    /// Appends a message for `room`.
    pub(crate) fn say(self, out: &mut Vec<u8>, room: &str, text: &str) {
        match self {
            Proto::Line => push(out, format_args!("/say {room} {text}\n")),
            Proto::Irc => push(out, format_args!("PRIVMSG {room} :{text}\r\n")),
            Proto::Echo => push(out, format_args!("{text}\n")),
        }
    }

    /// Appends a direct message to `peer`.
    pub(crate) fn dm(self, out: &mut Vec<u8>, peer: &str, text: &str) {
        match self {
            Proto::Line => push(out, format_args!("/msg {peer} {text}\n")),
            Proto::Irc => push(out, format_args!("PRIVMSG {peer} :{text}\r\n")),
            Proto::Echo => push(out, format_args!("{text}\n")),
        }
    }

    /// Appends a ping the server answers with a pong carrying `token`.
    pub(crate) fn ping(self, out: &mut Vec<u8>, token: &str) {
        match self {
            Proto::Line => push(out, format_args!("/ping {token}\n")),
            Proto::Irc => push(out, format_args!("PING :{token}\r\n")),
            Proto::Echo => push(out, format_args!("{token}\n")),
        }
    }

    /// Appends the answer to a server `PING`.
    pub(crate) fn pong(self, out: &mut Vec<u8>, token: &str) {
        let eol = self.eol();
        match self {
            Proto::Irc => push(out, format_args!("PONG :{token}{eol}")),
            // chatd does not ping line clients; nothing to answer.
            Proto::Line | Proto::Echo => {}
        }
    }

    /// Classifies one server line (without its `\n`; a trailing `\r` is
    /// dropped here).
    pub(crate) fn parse(self, line: &str) -> Incoming<'_> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match self {
            Proto::Line => parse_line(line),
            Proto::Irc => parse_irc(line),
            Proto::Echo => Incoming::Echo(line),
        }
    }
}

fn push(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    // Writing to a Vec cannot fail; `io::Write` keeps this allocation-free
    // beyond the Vec's own growth.
    let _ = std::io::Write::write_fmt(out, args);
}

/// What one server line means to the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    /// The login was accepted (`OK login NAME ID`, IRC `001`).
    LoggedIn,
    /// A join finished (`OK join ROOM`, IRC `366` end of NAMES).
    Joined(&'a str),
    /// `HISTORY ROOM COUNT`: this many replayed `MSG` lines follow.
    History(u32),
    /// A message said in a room.
    Room {
        /// The room.
        room: &'a str,
        /// Who said it.
        from: &'a str,
        /// What was said.
        text: &'a str,
    },
    /// A direct message.
    Direct {
        /// The sender.
        from: &'a str,
        /// The recipient.
        to: &'a str,
        /// What was said.
        text: &'a str,
    },
    /// The server pings us; answer with [`Proto::pong`].
    Ping(&'a str),
    /// The answer to our own ping.
    Pong(&'a str),
    /// The server refused something or is closing us: an `ERR` line, an IRC
    /// error numeric or `ERROR`. Holds the whole line.
    Refused(&'a str),
    /// A line from an echo server.
    Echo(&'a str),
    /// Anything else (`HELLO`, `JOIN`, MOTD, ...).
    Other,
}

/// Splits at the first space; `None` without one. Searches byte by byte:
/// server words are a few bytes long, too short for `memchr` to pay off.
fn word(s: &str) -> Option<(&str, &str)> {
    // A space is ASCII, so both indices are char boundaries.
    let i = s.bytes().position(|b| b == b' ')?;
    Some((&s[..i], &s[i + 1..]))
}

/// Like [`word`], but the whole of `s` is the word when it has no space.
fn word_or_all(s: &str) -> (&str, &str) {
    word(s).unwrap_or((s, ""))
}

/// Drops the `:` that starts a trailing argument.
fn trailing(s: &str) -> &str {
    s.strip_prefix(':').unwrap_or(s)
}

/// chatd's line protocol: `KEYWORD args... [:trailing]`.
fn parse_line(line: &str) -> Incoming<'_> {
    let (keyword, rest) = word_or_all(line);
    match keyword {
        // MSG ROOM SENDER ID TIMESTAMP :text
        "MSG" => {
            let parsed = (|| {
                let (room, rest) = word(rest)?;
                let (from, rest) = word(rest)?;
                let (_id, rest) = word(rest)?;
                let (_ts, text) = word(rest)?;
                Some(Incoming::Room {
                    room,
                    from,
                    text: trailing(text),
                })
            })();
            parsed.unwrap_or(Incoming::Other)
        }
        // DM FROM TO ID TIMESTAMP :text
        "DM" => {
            let parsed = (|| {
                let (from, rest) = word(rest)?;
                let (to, rest) = word(rest)?;
                let (_id, rest) = word(rest)?;
                let (_ts, text) = word(rest)?;
                Some(Incoming::Direct {
                    from,
                    to,
                    text: trailing(text),
                })
            })();
            parsed.unwrap_or(Incoming::Other)
        }
        "OK" => {
            let (what, rest) = word_or_all(rest);
            let (arg, _) = word_or_all(rest);
            match what {
                "login" | "register" => Incoming::LoggedIn,
                "join" | "create" if !arg.is_empty() => Incoming::Joined(arg),
                _ => Incoming::Other,
            }
        }
        "HISTORY" => match word_or_all(word_or_all(rest).1).0.parse() {
            Ok(count) => Incoming::History(count),
            Err(_) => Incoming::Other,
        },
        "PONG" => Incoming::Pong(trailing(rest)),
        "ERR" => Incoming::Refused(line),
        _ => Incoming::Other,
    }
}

/// An IRC message: `[@tags ][:prefix ]COMMAND params... [:trailing]`.
fn parse_irc(line: &str) -> Incoming<'_> {
    let mut rest = line;
    if let Some(tagged) = rest.strip_prefix('@') {
        rest = word_or_all(tagged).1;
    }
    let mut from = "";
    if let Some(prefixed) = rest.strip_prefix(':') {
        let (prefix, r) = word_or_all(prefixed);
        // Byte by byte: a nick is too short for `memchr` to pay off.
        from = prefix
            .bytes()
            .position(|b| b == b'!')
            .map_or(prefix, |i| &prefix[..i]);
        rest = r;
    }
    let rest = rest.trim_start_matches(' ');
    let (command, params) = word_or_all(rest);
    let mut params = IrcParams(params);
    match command {
        "001" => Incoming::LoggedIn,
        // 366 NICK #room :End of NAMES list
        "366" => match (params.next(), params.next()) {
            (Some(_nick), Some(room)) => Incoming::Joined(room),
            _ => Incoming::Other,
        },
        "PRIVMSG" => match (params.next(), params.next()) {
            (Some(target), Some(text)) if target.starts_with(['#', '&']) => Incoming::Room {
                room: target,
                from,
                text,
            },
            (Some(to), Some(text)) => Incoming::Direct { from, to, text },
            _ => Incoming::Other,
        },
        "PING" => Incoming::Ping(params.last().unwrap_or("")),
        "PONG" => Incoming::Pong(params.last().unwrap_or("")),
        "ERROR" => Incoming::Refused(line),
        // 422 is "MOTD file is missing": not a failure.
        "422" => Incoming::Other,
        numeric if is_error_numeric(numeric) => Incoming::Refused(line),
        _ => Incoming::Other,
    }
}

/// Numerics 400–599 are errors (RFC 2812 5.2).
fn is_error_numeric(command: &str) -> bool {
    command.len() == 3
        && command.bytes().all(|b| b.is_ascii_digit())
        && matches!(command.as_bytes()[0], b'4' | b'5')
}

/// The parameters of an IRC message, the trailing one (after ` :`) whole.
struct IrcParams<'a>(&'a str);

impl<'a> Iterator for IrcParams<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0.trim_start_matches(' ');
        if rest.is_empty() {
            return None;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            self.0 = "";
            return Some(trailing);
        }
        let (param, tail) = word_or_all(rest);
        self.0 = tail;
        Some(param)
    }
}

/// The benchmark payload: `TAG SOURCE SEQ SENT_NS [padding]`.
///
/// `TAG` is unique to one run, so lines from another run (or replayed
/// history) are told apart; `SOURCE` is the sender's (or pair's, or
/// client's) index; `SENT_NS` is nanoseconds on the bench's monotonic clock,
/// comparable because sender and receiver are one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Payload {
    /// The sending source's index.
    pub(crate) source: u32,
    /// Sequence number within that source, from 0.
    pub(crate) seq: u32,
    /// When it was sent, ns since the bench started.
    pub(crate) sent_ns: u64,
}

impl Payload {
    /// Writes the payload for `tag` into `out` (cleared first), padded with
    /// `x` to at least `size` bytes.
    pub(crate) fn write(&self, out: &mut String, tag: &str, size: usize) {
        out.clear();
        let _ = write!(out, "{tag} {} {} {}", self.source, self.seq, self.sent_ns);
        if out.len() + 1 < size {
            out.push(' ');
            let pad = size - out.len();
            out.extend(std::iter::repeat_n('x', pad));
        }
    }

    /// Parses a payload carrying `tag`; `None` for anything else.
    /// Every delivery is parsed here, so each number is read in one pass
    /// over its digits rather than found and then parsed.
    pub(crate) fn parse(text: &str, tag: &str) -> Option<Payload> {
        let rest = text.strip_prefix(tag)?.as_bytes();
        let (source, rest) = number(rest.strip_prefix(b" ")?)?;
        let (seq, rest) = number(rest.strip_prefix(b" ")?)?;
        let (sent_ns, rest) = number(rest.strip_prefix(b" ")?)?;
        if rest.first().is_some_and(|&b| b != b' ') {
            return None;
        }
        Some(Payload {
            source: u32::try_from(source).ok()?,
            seq: u32::try_from(seq).ok()?,
            sent_ns,
        })
    }
}

/// The decimal number `s` starts with (at least one digit, no overflow),
/// and what follows it.
fn number(s: &[u8]) -> Option<(u64, &[u8])> {
    let end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let mut n: u64 = 0;
    for &digit in &s[..end] {
        n = n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    Some((n, &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn line_commands() {
        let p = Proto::Line;
        assert_eq!(built(|o| p.login(o, "b1x0")), "/login b1x0\n");
        assert_eq!(built(|o| p.join(o, "#bench0")), "/join #bench0\n");
        assert_eq!(
            built(|o| p.say(o, "#bench0", "hi there")),
            "/say #bench0 hi there\n"
        );
        assert_eq!(built(|o| p.dm(o, "b1x1", "yo")), "/msg b1x1 yo\n");
        assert_eq!(built(|o| p.ping(o, "t1")), "/ping t1\n");
        assert_eq!(built(|o| p.pong(o, "t1")), "");
    }

    #[test]
    fn irc_commands() {
        let p = Proto::Irc;
        assert_eq!(
            built(|o| p.login(o, "b1x0")),
            "NICK b1x0\r\nUSER b1x0 0 * :chat-bench\r\n"
        );
        assert_eq!(built(|o| p.join(o, "#bench0")), "JOIN #bench0\r\n");
        assert_eq!(built(|o| p.say(o, "#b", "a b")), "PRIVMSG #b :a b\r\n");
        assert_eq!(built(|o| p.dm(o, "bob", "a b")), "PRIVMSG bob :a b\r\n");
        assert_eq!(built(|o| p.pong(o, "x y")), "PONG :x y\r\n");
    }

    #[test]
    fn line_parsing() {
        let p = Proto::Line;
        assert_eq!(
            p.parse("MSG #bench0 alice 7 2026-11-22T10:00:00.123Z :hello you"),
            Incoming::Room {
                room: "#bench0",
                from: "alice",
                text: "hello you"
            }
        );
        assert_eq!(
            p.parse("DM alice bob 8 2026-11-22T10:00:01.456Z :hi"),
            Incoming::Direct {
                from: "alice",
                to: "bob",
                text: "hi"
            }
        );
        assert_eq!(p.parse("OK login alice 1"), Incoming::LoggedIn);
        assert_eq!(p.parse("OK join #bench3"), Incoming::Joined("#bench3"));
        assert_eq!(p.parse("HISTORY #bench3 20"), Incoming::History(20));
        assert_eq!(p.parse("PONG tok"), Incoming::Pong("tok"));
        assert_eq!(
            p.parse("ERR name-taken :taken"),
            Incoming::Refused("ERR name-taken :taken")
        );
        assert_eq!(p.parse("HELLO chat.local 0.1.0 :welcome"), Incoming::Other);
        assert_eq!(p.parse("MSG #short"), Incoming::Other);
        assert_eq!(p.parse(""), Incoming::Other);
    }

    #[test]
    fn irc_parsing() {
        let p = Proto::Irc;
        assert_eq!(
            p.parse(":srv 001 b1x0 :Welcome to the network\r"),
            Incoming::LoggedIn
        );
        assert_eq!(
            p.parse(":srv 366 b1x0 #bench1 :End of NAMES list"),
            Incoming::Joined("#bench1")
        );
        assert_eq!(
            p.parse(":b1x0!~b1x0@localhost PRIVMSG #bench1 :a b c"),
            Incoming::Room {
                room: "#bench1",
                from: "b1x0",
                text: "a b c"
            }
        );
        assert_eq!(
            p.parse(":b1x0!~u@h PRIVMSG b1x1 :hey"),
            Incoming::Direct {
                from: "b1x0",
                to: "b1x1",
                text: "hey"
            }
        );
        assert_eq!(p.parse("PING :srv.local"), Incoming::Ping("srv.local"));
        assert_eq!(p.parse("PING srv.local"), Incoming::Ping("srv.local"));
        assert_eq!(p.parse(":srv PONG srv :t1"), Incoming::Pong("t1"));
        assert_eq!(
            p.parse(":srv 433 * b1x0 :Nickname already in use"),
            Incoming::Refused(":srv 433 * b1x0 :Nickname already in use")
        );
        assert_eq!(
            p.parse(":srv 422 b1x0 :MOTD File is missing"),
            Incoming::Other
        );
        assert_eq!(
            p.parse("ERROR :Closing link"),
            Incoming::Refused("ERROR :Closing link")
        );
        assert_eq!(
            p.parse("@time=x :srv 001 me :hi"),
            Incoming::LoggedIn,
            "IRCv3 tags are skipped"
        );
        assert_eq!(p.parse(":srv 375 me :- motd"), Incoming::Other);
        assert_eq!(p.parse(""), Incoming::Other);
    }

    #[test]
    fn payload_round_trip_and_padding() {
        let mut s = String::new();
        let p = Payload {
            source: 3,
            seq: 17,
            sent_ns: 123_456_789,
        };
        p.write(&mut s, "r1a2b", 80);
        assert_eq!(s.len(), 80);
        assert!(s.starts_with("r1a2b 3 17 123456789 xxx"));
        assert_eq!(Payload::parse(&s, "r1a2b"), Some(p));
        assert_eq!(Payload::parse(&s, "other"), None);
        p.write(&mut s, "r1a2b", 0);
        assert_eq!(s, "r1a2b 3 17 123456789");
        assert_eq!(Payload::parse(&s, "r1a2b"), Some(p));
        assert_eq!(Payload::parse("r1a2b 3 x 5", "r1a2b"), None);
        assert_eq!(Payload::parse("r1a2b 3", "r1a2b"), None);
    }

    #[test]
    fn payload_rejects_what_is_not_one_of_ours() {
        let ok = |text: &str| Payload::parse(text, "r1").is_some();
        assert!(ok("r1 0 0 0"));
        assert!(ok("r1 4294967295 1 18446744073709551615 pad"));
        assert!(!ok("r1x 0 0 0"), "a longer tag");
        assert!(!ok("r1 4294967296 0 0"), "source past u32");
        assert!(!ok("r1 0 0 18446744073709551616"), "sent_ns past u64");
        assert!(!ok("r1 0 0 5x"), "junk after a number");
        assert!(!ok("r1 0  0 0"), "an empty number");
        assert!(!ok("r1 -1 0 0"), "a sign");
        assert!(!ok("r1 0 0 "), "no sent_ns");
    }
}
