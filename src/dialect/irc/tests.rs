//! The IRC message syntax: parsing, limits, tag escapes and writing. The public
//! ircdocs vectors run in `tests/irc_parser_vectors.rs`.

use super::*;
use proptest::prelude::*;

/// Writes one message and returns the line as text.
fn written(
    tags: &[(&str, Option<&str>)],
    source: Option<&str>,
    command: &str,
    params: &[&str],
) -> String {
    let mut out = Vec::new();
    write_message(&mut out, tags, source, command, params);
    String::from_utf8(out).expect("the writer keeps UTF-8")
}

/// Like [`written`], with the always-`:` writer.
fn written_trailing(source: Option<&str>, command: &str, params: &[&str]) -> String {
    let mut out = Vec::new();
    write_message_trailing(&mut out, &[], source, command, params);
    String::from_utf8(out).expect("the writer keeps UTF-8")
}

fn params(line: &str) -> Vec<&str> {
    parse(line).expect("valid line").params().to_vec()
}

#[test]
fn command_and_params() {
    let msg = parse("NICK alice").unwrap();
    assert!(msg.tags().is_empty());
    assert_eq!(msg.source(), None);
    assert_eq!(msg.command(), "NICK");
    assert_eq!(msg.params(), ["alice"]);
    assert_eq!(msg.param(0), Some("alice"));
    assert_eq!(msg.param(1), None);
}

#[test]
fn command_alone() {
    let msg = parse("QUIT").unwrap();
    assert_eq!(msg.command(), "QUIT");
    assert!(msg.params().is_empty());
}

#[test]
fn source_is_stripped_of_its_colon() {
    let msg = parse(":nick!user@host PRIVMSG #chan :hi").unwrap();
    assert_eq!(msg.source(), Some("nick!user@host"));
    assert_eq!(msg.params(), ["#chan", "hi"]);
}

#[test]
fn trailing_keeps_spaces_and_colons() {
    assert_eq!(params("PRIVMSG #c :a  b :c "), ["#c", "a  b :c "]);
    assert_eq!(params("PRIVMSG #c ::-)"), ["#c", ":-)"]);
    assert_eq!(params("PRIVMSG #c :"), ["#c", ""]);
    assert_eq!(params("PRIVMSG #c :  "), ["#c", "  "]);
}

#[test]
fn trailing_is_not_told_apart() {
    assert_eq!(parse("JOIN #chan").unwrap(), parse("JOIN :#chan").unwrap());
}

#[test]
fn colon_inside_a_middle_param_is_plain() {
    assert_eq!(params("MODE a:b c"), ["a:b", "c"]);
}

#[test]
fn many_spaces_separate_and_end_spaces_vanish() {
    let msg = parse("@a=1   :src   MODE   #chan   +o   x   ").unwrap();
    assert_eq!(msg.tags().raw(), "a=1");
    assert_eq!(msg.source(), Some("src"));
    assert_eq!(msg.params(), ["#chan", "+o", "x"]);
    assert!(parse("AWAY ").unwrap().params().is_empty());
    assert_eq!(params("AWAY :"), [""]);
}

#[test]
fn leading_spaces_are_skipped_before_the_command() {
    assert_eq!(parse("  PING x").unwrap().command(), "PING");
}

#[test]
fn tab_is_not_a_separator() {
    assert_eq!(params("PRIVMSG a\tb c"), ["a\tb", "c"]);
}

#[test]
fn line_ending_is_dropped() {
    assert_eq!(params("PING x\r\n"), ["x"]);
    assert_eq!(params("PING x\n"), ["x"]);
    assert_eq!(params("PING :x y\r"), ["x y"]);
}

#[test]
fn nul_cr_lf_inside_are_refused() {
    for line in [
        "PRIVMSG a :b\0c",
        "PRIVMSG a :b\rc",
        "PRIVMSG a :b\nc",
        "PING\r\r\n",
    ] {
        assert_eq!(parse(line), Err(IrcParseError::BadByte), "{line:?}");
    }
}

#[test]
fn empty_lines() {
    for line in ["", "   ", "\r\n", " \n"] {
        assert_eq!(parse(line), Err(IrcParseError::Empty), "{line:?}");
    }
}

#[test]
fn no_command() {
    for line in [":src", ":src ", ":src    ", "@a=b", "@a=b ", "@a=b :src"] {
        assert_eq!(parse(line), Err(IrcParseError::NoCommand), "{line:?}");
    }
}

#[test]
fn empty_source() {
    assert_eq!(parse(": PING"), Err(IrcParseError::EmptySource));
    assert_eq!(parse("@a : PING"), Err(IrcParseError::EmptySource));
}

#[test]
fn command_is_letters_or_three_digits() {
    for ok in ["privmsg", "PrivMsg", "X", "001", "432", "999"] {
        assert_eq!(parse(ok).map(|m| m.command()), Ok(ok), "{ok:?}");
    }
    for bad in ["PRIV$MSG", "01", "0001", "4a2", "NICK2", "é", "-"] {
        let line = format!("{bad} x");
        assert_eq!(parse(&line), Err(IrcParseError::BadCommand(bad)), "{bad:?}");
    }
}

#[test]
fn command_case() {
    let msg = parse("privMsg #c :x").unwrap();
    assert_eq!(msg.command(), "privMsg");
    assert!(msg.is_command("PRIVMSG"));
    assert!(msg.is_command("privmsg"));
    assert!(!msg.is_command("NOTICE"));
    assert_eq!(msg.command_upper(), "PRIVMSG");
    let upper = parse("PRIVMSG #c :x").unwrap();
    assert!(matches!(upper.command_upper(), Cow::Borrowed("PRIVMSG")));
}

#[test]
fn fifteen_params_and_no_more() {
    let fifteen = (1..=15).map(|i| i.to_string()).collect::<Vec<_>>();
    let line = format!("CMD {}", fifteen.join(" "));
    assert_eq!(params(&line), fifteen);
    let line = format!("CMD {} :last one", fifteen[..14].join(" "));
    assert_eq!(params(&line).last(), Some(&"last one"));

    let too_many = format!("CMD {} 16", fifteen.join(" "));
    assert_eq!(parse(&too_many), Err(IrcParseError::TooManyParams));
    let too_many = format!("CMD {} :16 and more", fifteen.join(" "));
    assert_eq!(parse(&too_many), Err(IrcParseError::TooManyParams));
    let with_end_spaces = format!("CMD {}    ", fifteen.join(" "));
    assert_eq!(params(&with_end_spaces).len(), 15);
}

#[test]
fn tags_in_order_with_values_unescaped() {
    let msg = parse("@a=b;c;+d=e\\sf;vendor.example/g=;h=x\\:y COMMAND").unwrap();
    let tags: Vec<_> = msg
        .tags()
        .iter()
        .map(|t| (t.key(), t.raw_value(), t.value().into_owned()))
        .collect();
    assert_eq!(
        tags,
        [
            ("a", Some("b"), "b".to_string()),
            ("c", None, String::new()),
            ("+d", Some("e\\sf"), "e f".to_string()),
            ("vendor.example/g", Some(""), String::new()),
            ("h", Some("x\\:y"), "x;y".to_string()),
        ]
    );
    assert!(msg.tags().get("+d").unwrap().is_client_only());
    assert!(!msg.tags().get("a").unwrap().is_client_only());
    assert_eq!(msg.tags().get("d"), None);
    assert_eq!(msg.tags().into_iter().count(), 5);
}

#[test]
fn repeated_tag_last_one_counts() {
    let msg = parse("@k=1;j=2;k=3 CMD").unwrap();
    assert_eq!(msg.tags().get("k").unwrap().value(), "3");
    assert_eq!(msg.tags().iter().count(), 3);
}

#[test]
fn tag_unescaping() {
    let cases = [
        ("plain", "plain"),
        ("a\\:b", "a;b"),
        ("a\\sb", "a b"),
        ("a\\\\b", "a\\b"),
        ("\\r\\n", "\r\n"),
        // One character at a time: `\\` then `n`, not `\` then `\n`.
        ("value\\\\ntest", "value\\ntest"),
        // Unknown escapes lose the backslash; a lone one at the end is dropped.
        ("value\\1", "value1"),
        ("value1\\", "value1"),
        ("\\é\\", "é"),
        ("\\", ""),
    ];
    for (raw, want) in cases {
        assert_eq!(unescape_tag_value(raw), want, "{raw:?}");
    }
    assert!(matches!(unescape_tag_value("no escapes"), Cow::Borrowed(_)));
}

#[test]
fn bad_tags() {
    for line in [
        "@ CMD",
        "@; CMD",
        "@a;;b CMD",
        "@a; CMD",
        "@=x CMD",
        "@+ CMD",
        "@a/ CMD",
        "@/a CMD",
        "@a_b CMD",
        "@a.b CMD",
        "@v/n/x CMD",
        "@+-=1;é CMD",
    ] {
        assert_eq!(parse(line), Err(IrcParseError::BadTags), "{line:?}");
    }
    // Anything goes in a value except `;`, space, NUL, CR, LF.
    let msg = parse("@a=é=b,c\\ CMD").unwrap();
    assert_eq!(msg.tags().get("a").unwrap().value(), "é=b,c");
}

#[test]
fn body_limit_is_510_bytes_without_crlf() {
    let fits = format!("PRIVMSG #c :{}", "x".repeat(510 - 12));
    assert_eq!(fits.len(), 510);
    assert!(parse(&fits).is_ok());
    assert!(parse(&format!("{fits}\r\n")).is_ok());
    assert_eq!(check_length(fits.as_bytes()), Ok(()));

    let over = format!("{fits}x");
    assert_eq!(
        parse(&over),
        Err(IrcParseError::InputTooLong(TooLong::Body { len: 511 }))
    );
    assert_eq!(
        check_length(format!("{over}\r\n").as_bytes()),
        Err(TooLong::Body { len: 511 })
    );
}

#[test]
fn tags_limit_is_8191_bytes_with_at_and_space() {
    // "@k=" + value + " " = 8191 bytes.
    let value = "v".repeat(MAX_TAGS - 4);
    let body = format!("PRIVMSG #c :{}", "x".repeat(510 - 12));
    let fits = format!("@k={value} {body}");
    assert_eq!(fits.len(), MAX_LINE);
    assert_eq!(check_length(fits.as_bytes()), Ok(()));
    let msg = parse(&fits).unwrap();
    assert_eq!(msg.tags().get("k").unwrap().value().len(), MAX_TAGS - 4);

    let over = format!("@k={value}v PING");
    assert_eq!(
        parse(&over),
        Err(IrcParseError::InputTooLong(TooLong::Tags {
            len: MAX_TAGS + 1
        }))
    );
    // A long tags part leaves the body's own limit as it is.
    let long_body = format!("@k=v {body}x");
    assert_eq!(
        check_length(long_body.as_bytes()),
        Err(TooLong::Body { len: 511 })
    );
}

#[test]
fn check_length_on_raw_bytes() {
    assert_eq!(check_length(b""), Ok(()));
    assert_eq!(check_length(b"@"), Ok(()));
    let no_space = [b'@'; MAX_TAGS + 1];
    assert_eq!(
        check_length(&no_space),
        Err(TooLong::Tags { len: MAX_TAGS + 1 })
    );
    // Not UTF-8: length only.
    let mut junk = vec![0xff; 510];
    assert_eq!(check_length(&junk), Ok(()));
    junk.push(0xfe);
    assert_eq!(check_length(&junk), Err(TooLong::Body { len: 511 }));
}

#[test]
fn errors_display() {
    let cases = [
        (IrcParseError::Empty, "empty line"),
        (IrcParseError::BadByte, "line contains NUL, CR or LF"),
        (
            IrcParseError::InputTooLong(TooLong::Body { len: 600 }),
            "input line too long: 600 bytes after the tags, at most 510",
        ),
        (
            IrcParseError::InputTooLong(TooLong::Tags { len: 9000 }),
            "input line too long: 9000 bytes of tags, at most 8191",
        ),
        (IrcParseError::BadTags, "malformed message tags"),
        (IrcParseError::EmptySource, "empty source after ':'"),
        (IrcParseError::NoCommand, "no command"),
        (
            IrcParseError::BadCommand("A1"),
            "bad command \"A1\": not letters or a 3-digit numeric",
        ),
        (IrcParseError::TooManyParams, "more than 15 parameters"),
    ];
    for (e, text) in cases {
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn write_plain() {
    assert_eq!(written(&[], None, "PING", &[]), "PING\r\n");
    assert_eq!(
        written(&[], Some("srv"), "PONG", &["srv", "tok"]),
        ":srv PONG srv tok\r\n"
    );
}

#[test]
fn write_colon_only_when_needed() {
    assert_eq!(written(&[], None, "X", &["a", "b c"]), "X a :b c\r\n");
    assert_eq!(written(&[], None, "X", &["a", ""]), "X a :\r\n");
    assert_eq!(written(&[], None, "X", &["a", ":)"]), "X a ::)\r\n");
    assert_eq!(written(&[], None, "X", &["a", "b:c"]), "X a b:c\r\n");
}

#[test]
fn write_trailing_always() {
    assert_eq!(
        written_trailing(Some("n!u@h"), "PRIVMSG", &["#c", "hi"]),
        ":n!u@h PRIVMSG #c :hi\r\n"
    );
    assert_eq!(
        written_trailing(Some("srv"), "001", &["nick", "Welcome to IRC"]),
        ":srv 001 nick :Welcome to IRC\r\n"
    );
    assert_eq!(written_trailing(None, "PING", &[]), "PING\r\n");
}

#[test]
fn write_tags() {
    assert_eq!(
        written(
            &[
                ("time", Some("2026-11-22T10:00:00.000Z")),
                ("+draft/reply", Some("a;b c\\d\r\n")),
                ("bare", None),
                ("empty", Some("")),
                ("nul", Some("a\0b")),
            ],
            None,
            "TAGMSG",
            &["#c"],
        ),
        "@time=2026-11-22T10:00:00.000Z;+draft/reply=a\\:b\\sc\\\\d\\r\\n;bare;empty;nul=ab TAGMSG #c\r\n"
    );
}

#[test]
fn write_cannot_break_the_line() {
    let line = written(&[], Some("n!u@h"), "PRIVMSG", &["#c", "hi\r\nQUIT :x\0"]);
    assert_eq!(line, ":n!u@h PRIVMSG #c :hi  QUIT :x \r\n");
    let msg = parse(&line).unwrap();
    assert_eq!(msg.params(), ["#c", "hi  QUIT :x "]);
}

#[test]
fn write_appends() {
    let mut out = b"PING a\r\n".to_vec();
    write_message(&mut out, &[], None, "PING", &["b"]);
    assert_eq!(out, b"PING a\r\nPING b\r\n");
}

/// A tag key of the spec's grammar.
fn tag_key() -> impl Strategy<Value = String> {
    "\\+?([a-z0-9.-]{1,6}/)?[A-Za-z0-9-]{1,6}"
}

/// Any middle parameter: not empty, no space, no leading `:`, no NUL/CR/LF.
fn middle() -> impl Strategy<Value = String> {
    "[^\0\r\n :][^\0\r\n ]{0,8}"
}

proptest! {
    /// Whatever the writer writes, the parser reads back as written.
    #[test]
    fn write_then_parse(
        tags in proptest::collection::vec((tag_key(), proptest::option::of("[^\0]{0,10}")), 0..4),
        source in proptest::option::of("[^\0\r\n ]{1,12}"),
        command in "[A-Za-z]{1,10}|[0-9]{3}",
        middles in proptest::collection::vec(middle(), 0..14),
        last in proptest::option::of("[^\0\r\n]{0,12}"),
        always in any::<bool>(),
    ) {
        let tag_refs: Vec<(&str, Option<&str>)> =
            tags.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let mut params: Vec<&str> = middles.iter().map(String::as_str).collect();
        params.extend(last.as_deref());
        let mut out = Vec::new();
        if always {
            write_message_trailing(&mut out, &tag_refs, source.as_deref(), &command, &params);
        } else {
            write_message(&mut out, &tag_refs, source.as_deref(), &command, &params);
        }
        let line = std::str::from_utf8(&out).expect("UTF-8");
        prop_assert!(line.ends_with("\r\n"));
        prop_assert_eq!(line.matches('\n').count(), 1);

        let msg = parse(line).expect("the writer writes valid lines");
        let got: Vec<(&str, String)> =
            msg.tags().iter().map(|t| (t.key(), t.value().into_owned())).collect();
        let want: Vec<(&str, String)> =
            tags.iter().map(|(k, v)| (k.as_str(), v.clone().unwrap_or_default())).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(msg.source(), source.as_deref());
        prop_assert_eq!(msg.command(), command.as_str());
        prop_assert_eq!(msg.params(), params.as_slice());
    }

    /// No line makes the parser panic, and what it accepts has at most
    /// fifteen parameters and fits the limits.
    #[test]
    fn parse_never_panics(line in "[@:; a-zA-Z0-9=\\\\/+\r\n\0é-]{0,64}") {
        if let Ok(msg) = parse(&line) {
            prop_assert!(msg.params().len() <= MAX_PARAMS);
            prop_assert!(check_length(line.as_bytes()).is_ok());
            for tag in msg.tags() {
                let _ = tag.value();
            }
        }
    }
}
