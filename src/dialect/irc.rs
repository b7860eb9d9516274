//! The IRC wire format: one client line → [`Message`], and message parts →
//! one server line ([`write_message`]).
//!
//! This is only the message syntax, as RFC 1459/2812 define it and the modern
//! client protocol (<https://modern.ircdocs.horse>, "Message Format") and
//! IRCv3 message tags (<https://ircv3.net/specs/extensions/message-tags>)
//! update it:
//!
//! ```text
//! message ::= ['@' tags SPACE] [':' source SPACE] command params
//! tags    ::= key ['=' escaped-value] *( ';' key ['=' escaped-value] )
//! params  ::= *( SPACE middle ) [ SPACE ':' trailing ]
//! ```
//!
//! No server behaviour lives here: which commands exist, registration and
//! numeric replies belong to the layer that turns a [`Message`] into a core
//! command.
//!
//! # Parsing
//! [`parse`] takes one framed line and borrows every part from it; it
//! allocates nothing (a tag value is unescaped only when asked for, by
//! [`Tag::value`]). Where the specs leave room, it decides so:
//! - Parts and parameters are separated by one or more spaces (RFC 1459, and
//!   what every parser does); spaces at the end of the line are ignored, so
//!   `AWAY ` has no parameter while `AWAY :` has one empty parameter.
//! - A `\r\n` or `\n` at the end is dropped; NUL, CR or LF anywhere else is an
//!   error.
//! - At most [`MAX_PARAMS`] (15) parameters; a 16th is
//!   [`IrcParseError::TooManyParams`]. (RFC 2812 instead reads everything after
//!   the 14th middle parameter as the 15th; the modern spec asks clients to
//!   parse any number.)
//! - The command is letters or a three-digit numeric, kept as sent. Callers
//!   compare it case-insensitively: [`Message::is_command`], or
//!   [`Message::command_upper`] for a table lookup.
//! - A tag without a value and a tag with an empty value are the same; when a
//!   key repeats, the last one counts ([`Tags::get`]). Keys are checked
//!   against the spec's grammar (`[+][vendor/]name`); a malformed tags part
//!   is [`IrcParseError::BadTags`].
//!
//! # Limits
//! The body (everything after the tags part) may have 512 bytes with its
//! `\r\n`; the tags part, from `@` through the space after it, 8191 bytes
//! ([`MAX_BODY`], [`MAX_TAGS`]). [`check_length`] tells whether a line fits,
//! so the server can answer `417 ERR_INPUTTOOLONG`; [`parse`] checks it too.
//! The framer ([`crate::framing::LineBuffer`]) bounds the whole line: give it
//! at least [`MAX_LINE`], the longest line that can fit both limits.
//!
//! # Writing
//! [`write_message`] appends one line ending in `\r\n`. It escapes tag values
//! and puts `:` before the last parameter only when the syntax needs it
//! (empty, starts with `:`, or has a space); [`write_message_trailing`] always
//! does, as servers do for free text such as a `PRIVMSG`'s. Neither checks the
//! 512-byte limit: cutting text to fit is the renderer's decision.

use std::borrow::Cow;
use std::fmt;

mod help;
mod session;

pub use session::{PROFILES, Session, Settings};

/// The most bytes of a message body (everything after the tags part),
/// counting its `\r\n`.
pub const MAX_BODY: usize = 512;

/// The most bytes of the tags part, counting the leading `@` and the space
/// after it (IRCv3 message tags; the spec's separate 4094-byte budget for
/// client-only tags is not enforced).
pub const MAX_TAGS: usize = 8191;

/// The longest line, without its `\r\n`, that can pass [`check_length`]: a
/// full tags part plus a full body. The framer's limit should be at least this;
/// any line the framer rejects as too long is too long for IRC too.
pub const MAX_LINE: usize = MAX_TAGS + MAX_BODY - 2;

/// The most parameters a message may have.
pub const MAX_PARAMS: usize = 15;

/// Which part of a line is over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLong {
    /// The tags part is over [`MAX_TAGS`] bytes.
    Tags {
        /// Its length, from `@` through the space after it.
        len: usize,
    },
    /// The body is over [`MAX_BODY`] bytes.
    Body {
        /// Its length without the `\r\n` (so at most `MAX_BODY - 2` fits).
        len: usize,
    },
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TooLong::Tags { len } => write!(
                f,
                "input line too long: {len} bytes of tags, at most {MAX_TAGS}"
            ),
            TooLong::Body { len } => write!(
                f,
                "input line too long: {len} bytes after the tags, at most {}",
                MAX_BODY - 2
            ),
        }
    }
}

impl std::error::Error for TooLong {}

/// Why a line is not an IRC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrcParseError<'a> {
    /// The line is empty or only spaces; the spec says to ignore it silently.
    Empty,
    /// The line has a NUL, or a CR or LF before its end.
    BadByte,
    /// The line is over a length limit (answer `417 ERR_INPUTTOOLONG`).
    InputTooLong(TooLong),
    /// The tags part is empty or has an empty or malformed key.
    BadTags,
    /// A `:` that starts a source is followed by nothing.
    EmptySource,
    /// Tags or a source, but no command after them.
    NoCommand,
    /// The command is neither letters nor a three-digit numeric (it is kept,
    /// for a `421 ERR_UNKNOWNCOMMAND` reply).
    BadCommand(&'a str),
    /// More than [`MAX_PARAMS`] parameters.
    TooManyParams,
}

impl fmt::Display for IrcParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrcParseError::Empty => f.write_str("empty line"),
            IrcParseError::BadByte => f.write_str("line contains NUL, CR or LF"),
            IrcParseError::InputTooLong(e) => e.fmt(f),
            IrcParseError::BadTags => f.write_str("malformed message tags"),
            IrcParseError::EmptySource => f.write_str("empty source after ':'"),
            IrcParseError::NoCommand => f.write_str("no command"),
            IrcParseError::BadCommand(c) => {
                write!(f, "bad command {c:?}: not letters or a 3-digit numeric")
            }
            IrcParseError::TooManyParams => {
                write!(f, "more than {MAX_PARAMS} parameters")
            }
        }
    }
}

impl std::error::Error for IrcParseError<'_> {}

/// One parsed IRC message, borrowing from its line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The tags part without `@` (empty when there is none), already checked.
    tags: Tags<'a>,
    /// The source without its `:`.
    source: Option<&'a str>,
    /// The command as sent.
    command: &'a str,
    /// The parameters in `params[..param_count]`, trailing `:` stripped; the
    /// rest are `""`. A fixed array, so parsing never allocates.
    params: [&'a str; MAX_PARAMS],
    /// How many of `params` are used.
    param_count: usize,
}

impl<'a> Message<'a> {
    /// The message tags (empty when the line had none).
    pub fn tags(&self) -> Tags<'a> {
        self.tags
    }

    /// The source (prefix) without its `:`, e.g. `nick!user@host`.
    pub fn source(&self) -> Option<&'a str> {
        self.source
    }

    /// The command as sent, in whatever case the peer used.
    pub fn command(&self) -> &'a str {
        self.command
    }

    /// Whether the command is `name`, ignoring ASCII case (`privmsg` is
    /// `PRIVMSG`).
    pub fn is_command(&self, name: &str) -> bool {
        self.command.eq_ignore_ascii_case(name)
    }

    /// The command in upper case, for looking it up in a table; borrowed
    /// unless the peer sent lower-case letters.
    pub fn command_upper(&self) -> Cow<'a, str> {
        if self.command.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(self.command.to_ascii_uppercase())
        } else {
            Cow::Borrowed(self.command)
        }
    }

    /// The parameters in order; a trailing one has its `:` stripped and is
    /// not told apart from the others (as the spec requires).
    pub fn params(&self) -> &[&'a str] {
        self.params.get(..self.param_count).unwrap_or_default()
    }

    /// Parameter `i` (from 0), if there is one.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params().get(i).copied()
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("tags", &self.tags.raw())
            .field("source", &self.source)
            .field("command", &self.command)
            .field("params", &self.params())
            .finish()
    }
}

/// The tags of a [`Message`]: a view of the raw tags part, walked on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tags<'a> {
    /// The tags part without `@` and the space, values still escaped.
    raw: &'a str,
}

impl<'a> Tags<'a> {
    /// The tags part as sent, without `@` and the space after it.
    pub fn raw(self) -> &'a str {
        self.raw
    }

    /// Whether the message had no tags.
    pub fn is_empty(self) -> bool {
        self.raw.is_empty()
    }

    /// Every tag in the order sent, repeated keys included.
    pub fn iter(self) -> TagIter<'a> {
        TagIter { rest: self.raw }
    }

    /// The tag with this key (client-only keys with their `+`); when the key
    /// repeats, the last one, as the spec says.
    pub fn get(self, key: &str) -> Option<Tag<'a>> {
        self.iter().filter(|t| t.key == key).last()
    }
}

impl<'a> IntoIterator for Tags<'a> {
    type Item = Tag<'a>;
    type IntoIter = TagIter<'a>;

    fn into_iter(self) -> TagIter<'a> {
        self.iter()
    }
}

/// The tags of a message in order ([`Tags::iter`]).
#[derive(Debug, Clone)]
pub struct TagIter<'a> {
    /// The tags not yet handed out.
    rest: &'a str,
}

impl<'a> Iterator for TagIter<'a> {
    type Item = Tag<'a>;

    fn next(&mut self) -> Option<Tag<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (tag, rest) = self.rest.split_once(';').unwrap_or((self.rest, ""));
        self.rest = rest;
        Some(match tag.split_once('=') {
            Some((key, value)) => Tag {
                key,
                raw_value: Some(value),
            },
            None => Tag {
                key: tag,
                raw_value: None,
            },
        })
    }
}

/// One message tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    /// The key, with its `+` and vendor if any.
    key: &'a str,
    /// The value as sent (still escaped); `None` when there was no `=`.
    raw_value: Option<&'a str>,
}

impl<'a> Tag<'a> {
    /// The key, with its client-only `+` and `vendor/` if any.
    pub fn key(self) -> &'a str {
        self.key
    }

    /// Whether this is a client-only tag (its key starts with `+`).
    pub fn is_client_only(self) -> bool {
        self.key.starts_with('+')
    }

    /// The value as sent, still escaped; `None` when the tag had no `=`.
    pub fn raw_value(self) -> Option<&'a str> {
        self.raw_value
    }

    /// The unescaped value; empty when the tag had none. Borrowed unless it
    /// had escapes.
    pub fn value(self) -> Cow<'a, str> {
        unescape_tag_value(self.raw_value.unwrap_or(""))
    }
}

/// Checks the two length limits on one line, with or without its `\r\n` or
/// `\n`; bytes, so it can run before any UTF-8 check.
pub fn check_length(line: &[u8]) -> Result<(), TooLong> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let tags_len = match line.first() {
        Some(b'@') => line
            .iter()
            .position(|&b| b == b' ')
            .map_or(line.len(), |space| space + 1),
        _ => 0,
    };
    if tags_len > MAX_TAGS {
        return Err(TooLong::Tags { len: tags_len });
    }
    let body_len = line.len() - tags_len;
    if body_len > MAX_BODY - 2 {
        return Err(TooLong::Body { len: body_len });
    }
    Ok(())
}

/// Parses one line (a `\r\n` or `\n` at its end is dropped) into a message.
///
/// ```
/// use chatd::dialect::irc::parse;
///
/// let msg = parse("@time=12:00 :nick!u@host privmsg #chan :hi there").unwrap();
/// assert_eq!(msg.tags().get("time").unwrap().value(), "12:00");
/// assert_eq!(msg.source(), Some("nick!u@host"));
/// assert!(msg.is_command("PRIVMSG"));
/// assert_eq!(msg.params(), ["#chan", "hi there"]);
/// ```
pub fn parse(line: &str) -> Result<Message<'_>, IrcParseError<'_>> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.bytes().all(|b| b == b' ') {
        return Err(IrcParseError::Empty);
    }
    if line.bytes().any(is_line_break) {
        return Err(IrcParseError::BadByte);
    }
    check_length(line.as_bytes()).map_err(IrcParseError::InputTooLong)?;

    let mut rest = line;
    let mut tags = "";
    if let Some(after) = rest.strip_prefix('@') {
        let (raw, tail) = after.split_once(' ').ok_or(IrcParseError::NoCommand)?;
        if !valid_tags(raw) {
            return Err(IrcParseError::BadTags);
        }
        tags = raw;
        rest = tail.trim_start_matches(' ');
    }
    let mut source = None;
    if let Some(after) = rest.strip_prefix(':') {
        let (src, tail) = after.split_once(' ').ok_or(IrcParseError::NoCommand)?;
        if src.is_empty() {
            return Err(IrcParseError::EmptySource);
        }
        source = Some(src);
        rest = tail;
    }
    let (command, mut rest) = next_word(rest.trim_start_matches(' '));
    if command.is_empty() {
        return Err(IrcParseError::NoCommand);
    }
    if !valid_command(command) {
        return Err(IrcParseError::BadCommand(command));
    }

    let mut params = [""; MAX_PARAMS];
    let mut param_count = 0;
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        let Some(slot) = params.get_mut(param_count) else {
            return Err(IrcParseError::TooManyParams);
        };
        param_count += 1;
        if let Some(trailing) = rest.strip_prefix(':') {
            *slot = trailing;
            break;
        }
        let (word, tail) = next_word(rest);
        *slot = word;
        rest = tail;
    }
    Ok(Message {
        tags: Tags { raw: tags },
        source,
        command,
        params,
        param_count,
    })
}

/// Appends one message line, ending in `\r\n`, to `out`. A `:` goes before the
/// last parameter only when it is needed (empty, starts with `:`, or has a
/// space).
///
/// Tags are `(key, value)` pairs; values are escaped here, and an empty value
/// is written like a missing one (`key`, no `=`), which the spec allows.
/// Callers pass well-formed keys, source and command (checked in debug
/// builds only); a middle parameter that is not one is repaired (see
/// `put_middle`), and a NUL, CR or LF in any part is written as a space, so
/// no text can end the line early or smuggle in a second one.
///
/// ```
/// use chatd::dialect::irc::write_message;
///
/// let mut out = Vec::new();
/// write_message(&mut out, &[("msgid", Some("a b"))], Some("irc.example"), "NOTICE", &["*", "hi"]);
/// assert_eq!(out, b"@msgid=a\\sb :irc.example NOTICE * hi\r\n");
/// ```
pub fn write_message(
    out: &mut Vec<u8>,
    tags: &[(&str, Option<&str>)],
    source: Option<&str>,
    command: &str,
    params: &[&str],
) {
    write(out, tags, source, command, params, false);
}

/// Like [`write_message`], but always puts `:` before the last parameter, as
/// servers do for free text (`PRIVMSG #chan :hi`, `001 nick :Welcome`).
///
/// ```
/// use chatd::dialect::irc::write_message_trailing;
///
/// let mut out = Vec::new();
/// write_message_trailing(&mut out, &[], Some("n!u@h"), "PRIVMSG", &["#chan", "hi"]);
/// assert_eq!(out, b":n!u@h PRIVMSG #chan :hi\r\n");
/// ```
pub fn write_message_trailing(
    out: &mut Vec<u8>,
    tags: &[(&str, Option<&str>)],
    source: Option<&str>,
    command: &str,
    params: &[&str],
) {
    write(out, tags, source, command, params, true);
}

fn write(
    out: &mut Vec<u8>,
    tags: &[(&str, Option<&str>)],
    source: Option<&str>,
    command: &str,
    params: &[&str],
    always_trailing: bool,
) {
    if !tags.is_empty() {
        out.push(b'@');
        for (i, (key, value)) in tags.iter().enumerate() {
            debug_assert!(valid_tag_key(key), "bad tag key {key:?}");
            if i > 0 {
                out.push(b';');
            }
            out.extend_from_slice(key.as_bytes());
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                out.push(b'=');
                escape_tag_value(value, out);
            }
        }
        out.push(b' ');
    }
    if let Some(source) = source {
        debug_assert!(
            !source.is_empty() && !source.contains(' '),
            "bad source {source:?}"
        );
        out.push(b':');
        put_text(out, source);
        out.push(b' ');
    }
    debug_assert!(valid_command(command), "bad command {command:?}");
    put_text(out, command);
    if let Some((last, middle)) = params.split_last() {
        for param in middle {
            out.push(b' ');
            put_middle(out, param);
        }
        out.push(b' ');
        if always_trailing || !is_middle(last) {
            out.push(b':');
        }
        put_text(out, last);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a middle parameter, made one if it is not (a client's word echoed
/// in a numeric can be anything): empty becomes `*`, a leading `:` becomes
/// `*`, spaces become `_`. The line stays well-formed whatever the input.
fn put_middle(out: &mut Vec<u8>, param: &str) {
    if param.is_empty() {
        out.push(b'*');
        return;
    }
    let start = out.len();
    put_text(out, param);
    for b in &mut out[start..] {
        if *b == b' ' {
            *b = b'_';
        }
    }
    if out[start] == b':' {
        out[start] = b'*';
    }
}

/// NUL, CR and LF: the bytes no part of a message may hold.
fn is_line_break(b: u8) -> bool {
    matches!(b, b'\0' | b'\r' | b'\n')
}

/// Writes `text` with every NUL, CR and LF turned into a space.
fn put_text(out: &mut Vec<u8>, text: &str) {
    // The common case, checked without branching per byte (it vectorises).
    if !text.bytes().fold(false, |hit, b| hit | is_line_break(b)) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for (i, part) in text.as_bytes().split(|&b| is_line_break(b)).enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(part);
    }
}

/// Whether `param` can be sent without a `:` (a `middle` in the grammar).
fn is_middle(param: &str) -> bool {
    !param.is_empty()
        && !param.starts_with(':')
        && !param
            .bytes()
            .fold(false, |hit, b| hit | (b == b' ') | is_line_break(b))
}

/// The text up to the next space, and the rest from that space on.
fn next_word(s: &str) -> (&str, &str) {
    s.split_at(s.find(' ').unwrap_or(s.len()))
}

/// Letters, or exactly three digits.
fn valid_command(command: &str) -> bool {
    let bytes = command.as_bytes();
    (!bytes.is_empty() && bytes.iter().all(u8::is_ascii_alphabetic))
        || (bytes.len() == 3 && bytes.iter().all(u8::is_ascii_digit))
}

/// Whether a tags part (without `@`) is one or more `key[=value]` separated by
/// `;`, every key well-formed. Values need no check: the split on `;` and
/// space, and the line's NUL/CR/LF check, leave only allowed bytes.
fn valid_tags(raw: &str) -> bool {
    !raw.is_empty()
        && raw.split(';').all(|tag| {
            let key = tag.split_once('=').map_or(tag, |(key, _)| key);
            valid_tag_key(key)
        })
}

/// `['+'] [vendor '/'] name`: the name is letters, digits and `-`; the vendor
/// a host name (letters, digits, `-`, `.`).
fn valid_tag_key(key: &str) -> bool {
    let key = key.strip_prefix('+').unwrap_or(key);
    let (vendor, name) = match key.split_once('/') {
        Some((vendor, name)) => (Some(vendor), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let vendor_ok = vendor.is_none_or(|v| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    });
    name_ok && vendor_ok
}

/// Appends a tag value escaped: `;` `\:`, space `\s`, `\` `\\`, CR `\r`,
/// LF `\n`. A NUL cannot be escaped and is dropped.
fn escape_tag_value(value: &str, out: &mut Vec<u8>) {
    for &b in value.as_bytes() {
        match b {
            b';' => out.extend_from_slice(b"\\:"),
            b' ' => out.extend_from_slice(b"\\s"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\0' => {}
            _ => out.push(b),
        }
    }
}

/// Undoes [`escape_tag_value`] one character at a time, as the spec says: an
/// unknown escape `\x` is `x`, and a lone `\` at the end is dropped.
fn unescape_tag_value(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
