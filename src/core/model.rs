//! The nouns of the chat: ids, time, users, rooms and messages.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// A connection as the core knows it. The reactor hands out ever-increasing
/// ids, so a reused socket slot never receives what was meant for the
/// connection that held it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A user, unique for the server's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub u64);

/// A room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub u64);

/// A message (room message, direct message or broadcast share one sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(pub u64);

macro_rules! display_id {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}
display_id!(ConnId, UserId, RoomId, MsgId);

/// Wall-clock time in milliseconds since the Unix epoch. The core never reads a
/// clock: the caller passes `now` in, so tests run on simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The time `ms` milliseconds after the epoch.
    pub fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds: `2026-11-22T10:00:00.123Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 % 1000;
        let secs = self.0 / 1000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(days as i64);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A password on its way to the hasher. Its `Debug` never shows it, so it
/// cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Secret(password.into())
    }

    /// The password itself, for the hasher.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A direct message kept for an account that was offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredDirect {
    pub(crate) id: MsgId,
    pub(crate) from: Arc<str>,
    pub(crate) at: Timestamp,
    pub(crate) text: Arc<str>,
}

/// A registered account, online or not.
#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) id: UserId,
    pub(crate) name: Arc<str>,
    /// argon2id PHC string.
    pub(crate) hash: Arc<str>,
    /// Rooms it is in, in join order; kept across logouts and restarts.
    pub(crate) rooms: Vec<RoomId>,
    /// Direct messages that arrived while it was offline, oldest first.
    pub(crate) inbox: VecDeque<StoredDirect>,
}

/// A message said in a room, shared between the room's history and the events
/// that deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id.
    pub id: MsgId,
    /// Who said it.
    pub sender: UserId,
    /// The sender's name at the time.
    pub sender_name: Arc<str>,
    /// The sender's `name!ident@host` at the time (IRC's source prefix).
    pub sender_mask: Arc<str>,
    /// Where it was said.
    pub room: RoomId,
    /// When the server took it.
    pub at: Timestamp,
    /// What was said.
    pub text: Arc<str>,
}

impl Message {
    /// The source prefix of a message loaded from the database, whose
    /// sender's address was not kept.
    pub fn stored_mask(name: &str) -> Arc<str> {
        format!("{name}!{name}@chatd").into()
    }
}

/// A logged-in user.
#[derive(Debug)]
pub(crate) struct User {
    pub(crate) name: Arc<str>,
    /// Logged in to a registered account (memberships are remembered).
    pub(crate) registered: bool,
    pub(crate) conn: ConnId,
    pub(crate) ip: IpAddr,
    /// The user name a client gave (IRC `USER`), or the name.
    pub(crate) ident: Arc<str>,
    /// The real name a client gave (IRC `USER`), or empty.
    pub(crate) realname: Arc<str>,
    /// `name!ident@ip`, IRC's source prefix, kept in step with renames.
    pub(crate) mask: Arc<str>,
    /// The away message, if the user is away.
    pub(crate) away: Option<Arc<str>>,
    /// A server operator (IRC user mode `+o`, granted by `OPER`).
    pub(crate) oper: bool,
    /// Hidden from WHO masks of those who share no room (IRC `+i`).
    pub(crate) invisible: bool,
    /// Receives WALLOPS (IRC `+w`).
    pub(crate) wallops: bool,
    pub(crate) logged_in_at: Timestamp,
    /// Rooms in the order they were joined; the last is the fallback current room.
    pub(crate) rooms: Vec<RoomId>,
    /// Where plain text goes.
    pub(crate) current: Option<RoomId>,
    /// Follows IRC conventions (an empty room does not exist for it).
    pub(crate) irc: bool,
    /// Marked as a bot (IRC user mode `+B`): its messages carry the `bot` tag.
    pub(crate) bot: bool,
}

/// A room and its recent history.
#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) name: Arc<str>,
    pub(crate) topic: Arc<str>,
    /// Members ordered by user id (login order), so listings are stable,
    /// each with its connection so a fan-out needs no user lookups.
    pub(crate) members: BTreeMap<UserId, ConnId>,
    /// Members who are room operators (IRC `+o`): the first into an empty
    /// room gets it. Not persisted.
    pub(crate) ops: BTreeSet<UserId>,
    /// Only operators may set the topic (IRC `+t`; off by default, so line
    /// users, who have no operator commands, keep setting topics).
    pub(crate) topic_lock: bool,
    /// Only members may speak (IRC `+n`, on by default).
    pub(crate) no_external: bool,
    /// Who set the topic, and when (IRC 333).
    pub(crate) topic_by: Arc<str>,
    pub(crate) topic_at: Timestamp,
    /// When the room was created or loaded (IRC 329).
    pub(crate) created: Timestamp,
    /// The most recent messages, oldest first, bounded by `history_len`.
    pub(crate) history: VecDeque<Arc<Message>>,
    /// The IRC channel modes beyond `+o`, `+t` and `+n` (not persisted).
    pub(crate) modes: Modes,
}

impl Room {
    /// Forgets the IRC state a room holds for its members (modes, lists,
    /// invitations), as an IRC channel that ceases to exist when its last
    /// member leaves: the next one in finds the defaults.
    pub(crate) fn reset_modes(&mut self) {
        self.ops.clear();
        self.topic_lock = false;
        self.no_external = true;
        self.modes = Modes::default();
    }
}

/// One entry of a room's ban, ban-exception or invite-exception list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskEntry {
    /// The `nick!user@host` mask, wildcards allowed.
    pub mask: Arc<str>,
    /// Who set it (their `name!ident@host`).
    pub by: Arc<str>,
    /// When.
    pub at: Timestamp,
}

/// A room's IRC channel modes beyond `+o`, `+t` and `+n`; all off by default.
#[derive(Debug, Default)]
pub(crate) struct Modes {
    /// `+i`: only the invited (or ones matching `invexes`) join.
    pub(crate) invite_only: bool,
    /// `+m`: only operators and voiced members speak.
    pub(crate) moderated: bool,
    /// `+s`: hidden from the listings and lookups of non-members.
    pub(crate) secret: bool,
    /// `+k`: the key joining needs.
    pub(crate) key: Option<Arc<str>>,
    /// `+l`: the most members.
    pub(crate) limit: Option<u32>,
    /// `+v` members.
    pub(crate) voiced: BTreeSet<UserId>,
    /// Users invited and not yet in, oldest first, at most
    /// [`crate::core::MAX_LIST`].
    pub(crate) invited: VecDeque<UserId>,
    /// `+b`, `+e`, `+I`, each at most [`crate::core::MAX_LIST`] entries.
    pub(crate) bans: Vec<MaskEntry>,
    pub(crate) excepts: Vec<MaskEntry>,
    pub(crate) invexes: Vec<MaskEntry>,
}

/// `name!ident@host`, the source prefix IRC clients see.
pub fn user_mask(name: &str, ident: &str, ip: IpAddr) -> Arc<str> {
    match ip {
        // An IPv6 host starting with ':' would break IRC's prefix parsing.
        IpAddr::V6(v6) if v6.to_string().starts_with(':') => format!("{name}!{ident}@0{v6}").into(),
        ip => format!("{name}!{ident}@{ip}").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_795_341_600_123).to_string(),
            "2026-11-22T10:00:00.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp(253_402_300_799_999).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
    }
}
