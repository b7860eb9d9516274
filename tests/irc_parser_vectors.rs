//! The public IRC parser test vectors (ircdocs/parser-tests, CC0) against
//! [`chatd::dialect::irc`]: `msg-split` parses lines into parts, `msg-join`
//! writes parts into lines. The vectors live in `tests/data/irc-parser-tests/`,
//! converted from their YAML by the `convert.py` there (see its README).

use std::collections::BTreeMap;

use chatd::dialect::irc::{self, Message};

/// The signature both writers share.
type Writer = fn(&mut Vec<u8>, &[(&str, Option<&str>)], Option<&str>, &str, &[&str]);

const SPLIT: &str = include_str!("data/irc-parser-tests/msg-split.txt");
const JOIN: &str = include_str!("data/irc-parser-tests/msg-join.txt");

/// One vector: its fields in file order.
#[derive(Debug, Default)]
struct Vector {
    desc: Option<String>,
    input: Option<String>,
    tags: Vec<(String, String)>,
    source: Option<String>,
    verb: String,
    params: Vec<String>,
    matches: Vec<String>,
}

impl Vector {
    /// What a test failure names the vector by.
    fn name(&self) -> &str {
        self.desc
            .as_deref()
            .or(self.input.as_deref())
            .unwrap_or(&self.verb)
    }
}

/// Reads the converted format (see `convert.py`).
fn load(text: &str) -> Vec<Vector> {
    let mut vectors = Vec::new();
    let mut current: Option<Vector> = None;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            vectors.extend(current.take());
            continue;
        }
        let v = current.get_or_insert_with(Vector::default);
        let (field, value) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("line {}: no tab: {line:?}", n + 1));
        match field {
            "desc" => v.desc = Some(unescape(value)),
            "input" => v.input = Some(unescape(value)),
            "tag" => {
                let (key, value) = value
                    .split_once('\t')
                    .unwrap_or_else(|| panic!("line {}: tag without value", n + 1));
                v.tags.push((unescape(key), unescape(value)));
            }
            "source" => v.source = Some(unescape(value)),
            "verb" => v.verb = unescape(value),
            "param" => v.params.push(unescape(value)),
            "match" => v.matches.push(unescape(value)),
            _ => panic!("line {}: unknown field {field:?}", n + 1),
        }
    }
    vectors.extend(current);
    vectors
}

/// Undoes the converter's escapes: `\\`, `\t`, `\r`, `\n`, `\xHH`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let code = u32::from_str_radix(&hex, 16).expect("two hex digits after \\x");
                out.push(char::from_u32(code).expect("a valid character"));
            }
            other => panic!("bad escape \\{other:?} in {s:?}"),
        }
    }
    out
}

/// A parsed message's tags as the vectors give them: unescaped, no value as
/// empty, the last of a repeated key winning.
fn tag_map(msg: &Message<'_>) -> BTreeMap<String, String> {
    msg.tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().into_owned()))
        .collect()
}

/// Checks a parsed message against a vector's parts; `Err` says what differs.
fn check_parts(msg: &Message<'_>, v: &Vector) -> Result<(), String> {
    let want_tags: BTreeMap<String, String> = v.tags.iter().cloned().collect();
    let got = (
        tag_map(msg),
        msg.source(),
        msg.command(),
        msg.params().to_vec(),
    );
    let want = (
        want_tags,
        v.source.as_deref(),
        v.verb.as_str(),
        v.params.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

#[test]
fn msg_split() {
    let vectors = load(SPLIT);
    assert_eq!(vectors.len(), 35, "vectors in msg-split.txt");
    let mut failures = Vec::new();
    for v in &vectors {
        let input = v.input.as_deref().expect("msg-split vectors have an input");
        let result = irc::parse(input)
            .map_err(|e| format!("parse error: {e}"))
            .and_then(|msg| check_parts(&msg, v));
        if let Err(why) = result {
            failures.push(format!("{:?}: {why}", v.name()));
        }
    }
    println!(
        "msg-split: {} of {} vectors pass",
        vectors.len() - failures.len(),
        vectors.len()
    );
    assert!(
        failures.is_empty(),
        "failing vectors:\n{}",
        failures.join("\n")
    );
}

#[test]
fn msg_join() {
    let vectors = load(JOIN);
    assert_eq!(vectors.len(), 17, "vectors in msg-join.txt");
    let mut failures = Vec::new();
    for v in &vectors {
        assert!(!v.matches.is_empty(), "{:?} has no match", v.name());
        let tags: Vec<(&str, Option<&str>)> = v
            .tags
            .iter()
            .map(|(k, val)| (k.as_str(), Some(val.as_str())))
            .collect();
        let params: Vec<&str> = v.params.iter().map(String::as_str).collect();
        // Both writers must give one of the accepted lines.
        for (name, write) in [
            ("write_message", irc::write_message as Writer),
            ("write_message_trailing", irc::write_message_trailing),
        ] {
            let mut out = Vec::new();
            write(&mut out, &tags, v.source.as_deref(), &v.verb, &params);
            let line = String::from_utf8(out).expect("UTF-8");
            match line.strip_suffix("\r\n") {
                Some(body) if v.matches.iter().any(|m| m == body) => {}
                _ => failures.push(format!(
                    "{:?}: {name} wrote {line:?}, want one of {:?}",
                    v.name(),
                    v.matches
                )),
            }
        }
        // And every accepted line parses back into the vector's parts.
        for m in &v.matches {
            let result = irc::parse(m)
                .map_err(|e| format!("parse error: {e}"))
                .and_then(|msg| check_parts(&msg, v));
            if let Err(why) = result {
                failures.push(format!("{:?}: parsing {m:?}: {why}", v.name()));
            }
        }
    }
    println!(
        "msg-join: {} vectors, {} failures",
        vectors.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failing vectors:\n{}",
        failures.join("\n")
    );
}

#[test]
fn converter_escapes_round_trip() {
    assert_eq!(unescape("a\\\\b\\t\\r\\n\\x03"), "a\\b\t\r\n\u{3}");
}
