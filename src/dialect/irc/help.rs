//! `HELP` texts for IRC clients: one short entry per command chatd knows.

/// The topics and their lines; the first line is the summary (704), the
/// rest follow as 705.
const TOPICS: &[(&str, &[&str])] = &[
    (
        "index",
        &[
            "chatd: IRC and plain-text clients share these rooms.",
            "Commands: AWAY CAP HELP INVITE ISON JOIN KICK LIST LUSERS MODE MOTD",
            "NAMES NICK NOTICE PART PASS PING PRIVMSG QUIT TAGMSG TIME TOPIC",
            "USER USERHOST VERSION WHO WHOIS. HELP <command> tells more.",
        ],
    ),
    (
        "away",
        &[
            "AWAY [:message]",
            "Marks you away, or back without a message.",
        ],
    ),
    (
        "cap",
        &["CAP LS|REQ|LIST|END", "Negotiates IRCv3 capabilities."],
    ),
    ("help", &["HELP [command]", "Shows help on a command."]),
    (
        "ison",
        &[
            "ISON nick [nick ...]",
            "Tells which of the nicks are online.",
        ],
    ),
    (
        "join",
        &[
            "JOIN #room[,#room...] [keys] | JOIN 0",
            "Joins rooms; 0 leaves all.",
        ],
    ),
    (
        "kick",
        &[
            "KICK #room nick [:reason]",
            "Puts someone out (operators only).",
        ],
    ),
    (
        "list",
        &["LIST [#room,...]", "Lists the rooms with members."],
    ),
    ("lusers", &["LUSERS", "Counts users and rooms."]),
    (
        "mode",
        &[
            "MODE #room [+|-modes args] | MODE nick [+|-i]",
            "Shows or sets modes.",
        ],
    ),
    ("motd", &["MOTD", "Shows the message of the day."]),
    ("names", &["NAMES #room", "Lists a room's members."]),
    (
        "nick",
        &["NICK newnick", "Changes your nick (guests only)."],
    ),
    (
        "notice",
        &[
            "NOTICE target :text",
            "Like PRIVMSG, never answered automatically.",
        ],
    ),
    (
        "part",
        &["PART #room[,#room...] [:reason]", "Leaves rooms."],
    ),
    (
        "pass",
        &[
            "PASS password",
            "Before NICK: the password of a registered name.",
        ],
    ),
    ("ping", &["PING token", "The server answers PONG token."]),
    (
        "privmsg",
        &[
            "PRIVMSG target[,target...] :text",
            "Speaks in a room or to a user.",
        ],
    ),
    ("quit", &["QUIT [:reason]", "Leaves the server."]),
    (
        "tagmsg",
        &["TAGMSG target", "Sends only message tags (message-tags)."],
    ),
    ("time", &["TIME", "Shows the server's time."]),
    (
        "topic",
        &["TOPIC #room [:text]", "Shows or sets a room's topic."],
    ),
    (
        "userhost",
        &["USERHOST nick [nick ...]", "Shows users' addresses."],
    ),
    (
        "version",
        &["VERSION", "Shows the server's version and features."],
    ),
    (
        "who",
        &[
            "WHO mask [%fields[,token]]",
            "Lists users matching a mask (WHOX too).",
        ],
    ),
    ("whois", &["WHOIS nick", "Shows what is known of a user."]),
];

/// The lines for `subject` (any case; empty: the index), if there is such a
/// topic.
pub(super) fn topic(subject: &str) -> Option<&'static [&'static str]> {
    let subject = if subject.is_empty() { "index" } else { subject };
    TOPICS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(subject))
        .map(|(_, lines)| *lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_a_summary_and_lookups_ignore_case() {
        assert!(TOPICS.iter().all(|(_, lines)| !lines.is_empty()));
        assert_eq!(topic("PRIVMSG"), topic("privmsg"));
        assert!(topic("").is_some());
        assert!(topic("nonsense").is_none());
    }
}
