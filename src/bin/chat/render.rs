//! Turns raw server lines into text for a person.
//!
//! Pure: the clock and the time zone are parameters, so tests are deterministic.
//! Anything it does not understand (unknown keyword, missing arguments, bad
//! timestamp) is shown as the raw line rather than guessed at.

use chrono::{DateTime, Local, TimeZone, Utc};
use std::fmt::Display;

/// Renders `line` in the local time zone; `me` is the logged-in name, used to
/// tell our own DM echoes from DMs sent to us.
pub fn render(line: &str, me: Option<&str>) -> String {
    render_in(line, me, &Local, Utc::now())
}

/// Like [`render`] with an explicit time zone and "now" (used for events
/// that carry no timestamp).
pub fn render_in<Tz: TimeZone>(line: &str, me: Option<&str>, tz: &Tz, now: DateTime<Utc>) -> String
where
    Tz::Offset: Display,
{
    pretty(line, me, tz, now).unwrap_or_else(|| line.to_string())
}

/// Replaces control characters (escape sequences another user could send to
/// move the cursor or recolour the terminal) with U+FFFD; tabs stay.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(|c| c.is_control() && c != '\t') {
        text.chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    '\u{FFFD}'
                } else {
                    c
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// The first word of a line, upper-cased (keywords are matched without regard to case).
pub fn keyword(line: &str) -> String {
    line.split(' ').next().unwrap_or("").to_ascii_uppercase()
}

fn pretty<Tz: TimeZone>(line: &str, me: Option<&str>, tz: &Tz, now: DateTime<Utc>) -> Option<String>
where
    Tz::Offset: Display,
{
    let hms = |t: DateTime<Utc>| t.with_timezone(tz).format("%H:%M:%S").to_string();
    let at = |ts: &str| {
        DateTime::parse_from_rfc3339(ts)
            .ok()
            .map(|t| hms(t.to_utc()))
    };
    let now = hms(now);
    let rest = line.split_once(' ').map_or("", |(_, r)| r);
    Some(match keyword(line).as_str() {
        "MSG" => {
            let (w, text) = fields(rest, 4)?;
            format!("{} {} <{}> {text}", at(w[3])?, w[0], w[1])
        }
        "DM" => {
            let (w, text) = fields(rest, 4)?;
            let (t, from, to) = (at(w[3])?, w[0], w[1]);
            if me.is_some_and(|m| m.eq_ignore_ascii_case(from)) {
                format!("{t} -> *{to}* {text}")
            } else {
                format!("{t} *{from}* {text}")
            }
        }
        "BROADCAST" => {
            let (w, text) = fields(rest, 3)?;
            format!("{} [broadcast] <{}> {text}", at(w[2])?, w[0])
        }
        "JOIN" => {
            let (w, _) = fields(rest, 2)?;
            format!("{now} -- {} joined {}", w[1], w[0])
        }
        "LEAVE" => {
            let (w, reason) = fields(rest, 2)?;
            format!("{now} -- {} left {}{}", w[1], w[0], paren(reason))
        }
        "OFFLINE" => {
            let (w, reason) = fields(rest, 1)?;
            format!("{now} -- {} is offline{}", w[0], paren(reason))
        }
        "HISTORY" => {
            let (w, _) = fields(rest, 2)?;
            match w[1].parse::<u64>().ok()? {
                0 => format!("-- {}: no history", w[0]),
                1 => format!("-- {}: last message", w[0]),
                n => format!("-- {}: last {n} messages", w[0]),
            }
        }
        "ERR" => err(rest)?,
        "OK" => ok(rest)?,
        "MEMBERS" => {
            let (w, names) = fields(rest, 1)?;
            format!("-- {} members: {names}", w[0])
        }
        "USERS" => format!("-- online: {}", trailing(rest)),
        "ROOM" => {
            let (w, topic) = fields(rest, 3)?;
            let n: u64 = w[2].parse().ok()?;
            let s = if n == 1 { "" } else { "s" };
            format!("-- {} ({n} member{s}){}", w[0], colon(topic))
        }
        "YOU" => {
            // The address is a word even when it starts with ':' (IPv6).
            let (w, after) = words(rest, 2)?;
            let (ip, rooms) = after.split_once(' ').unwrap_or((after, ""));
            if ip.is_empty() {
                return None;
            }
            let rooms = trailing(rooms);
            let rooms = if rooms.is_empty() { "no rooms" } else { rooms };
            format!("-- you are {} (id {}) from {ip}, in {rooms}", w[0], w[1])
        }
        "PONG" => format!("-- pong {}", trailing(rest)).trim_end().to_string(),
        "HELP" => trailing(rest).to_string(),
        "HELLO" => {
            let (w, text) = fields(rest, 2)?;
            format!("-- connected to {} {}{}", w[0], w[1], colon(text))
        }
        "BYE" => format!("-- bye{}", colon(trailing(rest))),
        "TOPIC" => {
            let (w, topic) = fields(rest, 2)?;
            format!(
                "{now} -- {} set the topic of {}{}",
                w[1],
                w[0],
                colon(topic)
            )
        }
        "STATS" => {
            let (w, _) = fields(rest, 2)?;
            format!("-- {}: {}", w[0], w[1])
        }
        "INVITE" => {
            let (w, _) = fields(rest, 2)?;
            format!("{now} -- {} invites you to {} (/join {})", w[1], w[0], w[0])
        }
        _ => return None,
    })
}

/// `ERR CODE [args] :text` → `!! text (code)`.
fn err(rest: &str) -> Option<String> {
    let (code, after) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.is_empty() || code.starts_with(':') {
        return None;
    }
    let text = match after.strip_prefix(':') {
        Some(t) => t,
        None => match after.split_once(" :") {
            Some((_, t)) => t,
            // No `:` trailing: the last word is the text.
            None => after.rsplit(' ').next().unwrap_or(""),
        },
    };
    Some(if text.is_empty() {
        format!("!! {code}")
    } else {
        format!("!! {text} ({code})")
    })
}

/// `OK COMMAND args...`: the replies a person cares about get words, the rest a generic line.
fn ok(rest: &str) -> Option<String> {
    let (cmd, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let first = || fields(args, 1).map(|(w, _)| w[0]);
    Some(match cmd.to_ascii_lowercase().as_str() {
        "" => "-- ok".to_string(),
        "login" => format!("-- logged in as {}", first()?),
        "register" => format!("-- registered and logged in as {}", first()?),
        "logout" => "-- logged out".to_string(),
        "join" => format!("-- joined {}", first()?),
        "leave" => format!("-- left {}", first()?),
        "switch" => format!("-- now talking in {}", first()?),
        "create" => format!("-- created {}", first()?),
        "invite" => {
            let (w, _) = fields(args, 2)?;
            format!("-- invited {} to {}", w[0], w[1])
        }
        _ => format!("-- ok: {rest}"),
    })
}

/// Splits `n` words off `rest`; what remains is the trailing text with one
/// leading `:` dropped (so a one-word trailing may come with or without it).
/// `None` when fewer than `n` words are there.
fn fields(rest: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    words(rest, n).map(|(w, rest)| (w, trailing(rest)))
}

/// Splits `n` words off `rest` and returns them with the unparsed remainder.
fn words(mut rest: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut words = Vec::with_capacity(n);
    for _ in 0..n {
        let (w, r) = rest.split_once(' ').unwrap_or((rest, ""));
        if w.is_empty() || w.starts_with(':') {
            return None;
        }
        words.push(w);
        rest = r;
    }
    Some((words, rest))
}

fn trailing(rest: &str) -> &str {
    rest.strip_prefix(':').unwrap_or(rest)
}

fn paren(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" ({s})")
    }
}

fn colon(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(printable("a\x1b[2Jb\tc"), "a\u{FFFD}[2Jb\tc");
        assert_eq!(printable("plain"), "plain");
    }

    #[test]
    fn topics_and_stats() {
        assert_eq!(
            r("TOPIC #dev alice :all about dev", None),
            "10:00:02 -- alice set the topic of #dev: all about dev"
        );
        assert_eq!(r("STATS users 3", None), "-- users: 3");
        assert_eq!(r("STATS users", None), "STATS users");
    }

    const TS: &str = "2026-11-22T10:00:01.000Z";

    /// Renders in UTC with "now" = 10:00:02Z.
    fn r(line: &str, me: Option<&str>) -> String {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:02.000Z").expect("valid");
        let utc = FixedOffset::east_opt(0).expect("valid offset");
        render_in(line, me, &utc, now.to_utc())
    }

    #[test]
    fn messages() {
        let msg = format!("MSG #lobby alice 7 {TS} :hello there");
        assert_eq!(r(&msg, None), "10:00:01 #lobby <alice> hello there");
        assert_eq!(
            r(&format!("BROADCAST alice 9 {TS} :text"), None),
            "10:00:01 [broadcast] <alice> text"
        );
    }

    #[test]
    fn dm_to_me_and_my_echo() {
        let dm = format!("DM alice bob 8 {TS} :hi");
        assert_eq!(r(&dm, Some("bob")), "10:00:01 *alice* hi");
        assert_eq!(r(&dm, Some("alice")), "10:00:01 -> *bob* hi");
        assert_eq!(r(&dm, Some("ALICE")), "10:00:01 -> *bob* hi");
        assert_eq!(r(&dm, None), "10:00:01 *alice* hi");
    }

    #[test]
    fn timestamps_follow_the_time_zone() {
        let plus_two = FixedOffset::east_opt(2 * 3600).expect("valid offset");
        let msg = format!("MSG #lobby alice 7 {TS} :x");
        assert_eq!(
            render_in(&msg, None, &plus_two, Utc::now()),
            "12:00:01 #lobby <alice> x"
        );
        let minus_half = FixedOffset::west_opt(1800).expect("valid offset");
        let line = "MSG #a b 1 2026-11-22T00:10:00.999+00:00 :x";
        assert_eq!(
            render_in(line, None, &minus_half, Utc::now()),
            "23:40:00 #a <b> x"
        );
    }

    #[test]
    fn presence_uses_now() {
        assert_eq!(r("JOIN #room bob", None), "10:00:02 -- bob joined #room");
        assert_eq!(
            r("LEAVE #room bob :gone home", None),
            "10:00:02 -- bob left #room (gone home)"
        );
        assert_eq!(r("LEAVE #room bob", None), "10:00:02 -- bob left #room");
        assert_eq!(
            r("OFFLINE bob :quit", None),
            "10:00:02 -- bob is offline (quit)"
        );
        assert_eq!(r("OFFLINE bob", None), "10:00:02 -- bob is offline");
    }

    #[test]
    fn invitations() {
        assert_eq!(
            r("INVITE #room alice", None),
            "10:00:02 -- alice invites you to #room (/join #room)"
        );
        assert_eq!(r("OK invite bob #room", None), "-- invited bob to #room");
    }

    #[test]
    fn history() {
        assert_eq!(r("HISTORY #room 3", None), "-- #room: last 3 messages");
        assert_eq!(r("HISTORY #room 1", None), "-- #room: last message");
        assert_eq!(r("HISTORY #room 0", None), "-- #room: no history");
    }

    #[test]
    fn errors() {
        assert_eq!(
            r("ERR name-taken alice :name is taken", None),
            "!! name is taken (name-taken)"
        );
        assert_eq!(
            r("ERR bad-args :usage: /join ROOM", None),
            "!! usage: /join ROOM (bad-args)"
        );
        assert_eq!(r("ERR not-in-room", None), "!! not-in-room");
        assert_eq!(
            r("ERR no-such-user bob nope", None),
            "!! nope (no-such-user)"
        );
    }

    #[test]
    fn ok_replies() {
        assert_eq!(r("OK join #room", None), "-- joined #room");
        assert_eq!(r("OK leave #room", None), "-- left #room");
        assert_eq!(r("OK switch #room", None), "-- now talking in #room");
        assert_eq!(r("OK login alice 1", None), "-- logged in as alice");
        assert_eq!(
            r("OK register alice 1", None),
            "-- registered and logged in as alice"
        );
        assert_eq!(r("OK logout", None), "-- logged out");
        assert_eq!(r("OK create #r 5", None), "-- created #r");
        assert_eq!(r("OK users 3", None), "-- ok: users 3");
        assert_eq!(r("OK", None), "-- ok");
    }

    #[test]
    fn info_lines() {
        assert_eq!(r("MEMBERS #room :a b c", None), "-- #room members: a b c");
        assert_eq!(r("USERS :a b", None), "-- online: a b");
        assert_eq!(
            r("ROOM #name 3 2 :topic", None),
            "-- #name (2 members): topic"
        );
        assert_eq!(r("ROOM #name 3 1", None), "-- #name (1 member)");
        assert_eq!(
            r("YOU alice 1 127.0.0.1 :#lobby #x", None),
            "-- you are alice (id 1) from 127.0.0.1, in #lobby #x"
        );
        assert_eq!(
            r("YOU alice 1 ::1 :#a", None),
            "-- you are alice (id 1) from ::1, in #a"
        );
        assert_eq!(
            r("YOU alice 1 ::1", None),
            "-- you are alice (id 1) from ::1, in no rooms"
        );
        assert_eq!(r("PONG tok", None), "-- pong tok");
        assert_eq!(r("PONG", None), "-- pong");
        assert_eq!(
            r("HELP :/join ROOM  joins a room", None),
            "/join ROOM  joins a room"
        );
        assert_eq!(
            r("HELLO srv 0.1.0 :welcome", None),
            "-- connected to srv 0.1.0: welcome"
        );
        assert_eq!(r("BYE :reason", None), "-- bye: reason");
        assert_eq!(r("BYE", None), "-- bye");
    }

    #[test]
    fn trailing_with_or_without_colon() {
        assert_eq!(r("MEMBERS #room alice", None), "-- #room members: alice");
        assert_eq!(r("USERS alice", None), "-- online: alice");
        assert_eq!(
            r("LEAVE #room bob bye", None),
            "10:00:02 -- bob left #room (bye)"
        );
        assert_eq!(
            r(&format!("MSG #lobby alice 7 {TS} hello"), None),
            "10:00:01 #lobby <alice> hello"
        );
        assert_eq!(r("BYE bye", None), "-- bye: bye");
        assert_eq!(r("PONG :tok", None), "-- pong tok");
        // A trailing keeps its inner and extra spaces and a second colon.
        assert_eq!(
            r(&format!("MSG #a b 1 {TS} ::-)  x "), None),
            "10:00:01 #a <b> :-)  x "
        );
    }

    #[test]
    fn malformed_lines_are_shown_raw() {
        for line in [
            "",
            " ",
            "MSG",
            "MSG #lobby alice 7",
            "MSG #lobby alice 7 :no timestamp",
            "MSG #lobby alice 7 not-a-time :hi",
            "DM alice",
            "BROADCAST alice 9",
            "JOIN #room",
            "JOIN :#room bob",
            "LEAVE",
            "OFFLINE",
            "HISTORY #room",
            "HISTORY #room many",
            "ERR",
            "ERR :no code",
            "OK join",
            "OK login",
            "MEMBERS",
            "ROOM #name 3",
            "ROOM #name 3 x :t",
            "YOU alice 1",
            "HELLO srv",
            "MSG  #lobby alice 7 2026-11-22T10:00:01.000Z :double space",
            "NOTICE something new",
            "\u{1F600} ünïcode",
        ] {
            assert_eq!(r(line, Some("me")), line, "{line:?}");
        }
    }

    #[test]
    fn keyword_is_case_insensitive() {
        assert_eq!(keyword("bye :x"), "BYE");
        assert_eq!(r("join #r bob", None), "10:00:02 -- bob joined #r");
    }
}
