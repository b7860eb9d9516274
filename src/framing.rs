//! The bounded line splitter: bytes in arbitrary chunks → complete lines.
//!
//! Rules (from the line protocol's framing section): a line ends with `\n`, one
//! `\r` right before it is dropped, empty lines are skipped, a line longer than
//! the limit is reported once and discarded up to its next `\n`, and a line that
//! is not UTF-8 is reported and skipped.
//!
//! The splitter keeps only the unfinished tail of the stream, never more than
//! `max_line + 1` bytes, so a peer that sends endless bytes without `\n` cannot
//! grow it. Complete lines inside a chunk are handed out straight from the
//! chunk: on the common path nothing is copied or allocated.

use std::fmt;
use std::ops::ControlFlow;

/// Why a line could not be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The line was longer than the limit; the rest of it up to `\n` is dropped.
    LineTooLong,
    /// The line was not valid UTF-8; it is dropped.
    BadUtf8,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::LineTooLong => f.write_str("line too long"),
            FrameError::BadUtf8 => f.write_str("line is not valid UTF-8"),
        }
    }
}

/// A pending capacity above this is released once the partial line completes,
/// so that an idle connection holds no buffer at all.
const KEEP_CAPACITY: usize = 256;

/// Splits a byte stream into lines of at most `max_line` bytes.
#[derive(Debug)]
pub struct LineBuffer {
    /// The start of a line whose `\n` has not arrived yet (at most `max_line + 1`
    /// bytes: the line and a possible `\r`).
    pending: Vec<u8>,
    /// True while skipping the rest of an over-long line (already reported).
    discarding: bool,
    /// The longest line accepted, not counting `\r\n` (`u32`: one of these
    /// lives in every connection).
    max_line: u32,
    /// Lines that are not UTF-8 are decoded with U+FFFD replacements instead
    /// of being rejected (IRC, where old clients send Latin-1).
    lossy: bool,
}

impl LineBuffer {
    /// A splitter for lines of at most `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            pending: Vec::new(),
            discarding: false,
            max_line: u32::try_from(max_line).unwrap_or(u32::MAX),
            lossy: false,
        }
    }

    /// The same splitter, but lines that are not UTF-8 are passed on decoded
    /// with U+FFFD replacement characters instead of as [`FrameError::BadUtf8`].
    pub fn lossy(mut self, lossy: bool) -> Self {
        self.lossy = lossy;
        self
    }

    /// Bytes held for an unfinished line.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds one chunk, calling `on_line` for each complete line or framing error,
    /// in stream order. Stops early when `on_line` breaks; returns how many bytes
    /// of `chunk` were consumed (all of them unless it broke).
    pub fn feed<F>(&mut self, chunk: &[u8], mut on_line: F) -> usize
    where
        F: FnMut(Result<&str, FrameError>) -> ControlFlow<()>,
    {
        let max_line = self.max_line as usize;
        let mut pos = 0;
        while pos < chunk.len() {
            let rest = &chunk[pos..];
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                pos = chunk.len();
                if self.discarding {
                    break;
                }
                if self.pending.len() + rest.len() > max_line + 1 {
                    self.release();
                    self.discarding = true;
                    if on_line(Err(FrameError::LineTooLong)).is_break() {
                        return pos;
                    }
                } else {
                    self.pending.extend_from_slice(rest);
                }
                break;
            };
            pos += nl + 1;
            let part = &rest[..nl];
            if self.discarding {
                self.discarding = false;
                continue;
            }
            let flow = if self.pending.is_empty() {
                emit(part, max_line, self.lossy, &mut on_line)
            } else if self.pending.len() + part.len() > max_line + 1 {
                self.release();
                on_line(Err(FrameError::LineTooLong))
            } else {
                self.pending.extend_from_slice(part);
                let flow = emit(&self.pending, max_line, self.lossy, &mut on_line);
                self.release();
                flow
            };
            if flow.is_break() {
                return pos;
            }
        }
        pos
    }

    /// Forgets the pending bytes, dropping a large allocation.
    fn release(&mut self) {
        if self.pending.capacity() > KEEP_CAPACITY {
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
    }
}

/// Checks one raw line (without its `\n`) and hands it on; empty lines are skipped.
fn emit<F>(raw: &[u8], max_line: usize, lossy: bool, on_line: &mut F) -> ControlFlow<()>
where
    F: FnMut(Result<&str, FrameError>) -> ControlFlow<()>,
{
    let line = raw.strip_suffix(b"\r").unwrap_or(raw);
    if line.len() > max_line {
        return on_line(Err(FrameError::LineTooLong));
    }
    if line.is_empty() {
        return ControlFlow::Continue(());
    }
    match std::str::from_utf8(line) {
        Ok(text) => on_line(Ok(text)),
        Err(_) if lossy => on_line(Ok(&String::from_utf8_lossy(line))),
        Err(_) => on_line(Err(FrameError::BadUtf8)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds every chunk and collects what came out, errors as `!error`.
    fn split(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut buf = LineBuffer::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            let used = buf.feed(chunk, |item| {
                out.push(match item {
                    Ok(line) => line.to_string(),
                    Err(e) => format!("!{e}"),
                });
                ControlFlow::Continue(())
            });
            assert_eq!(used, chunk.len());
        }
        out
    }

    #[test]
    fn splits_lines_in_one_chunk() {
        assert_eq!(split(4096, &[b"a\nbb\nccc\n"]), ["a", "bb", "ccc"]);
    }

    #[test]
    fn joins_a_line_over_many_chunks() {
        assert_eq!(
            split(4096, &[b"hel", b"lo wo", b"rld\nnext", b"\n"]),
            ["hello world", "next"]
        );
    }

    #[test]
    fn byte_at_a_time() {
        let text = b"/login alice\r\nhello\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(split(4096, &chunks), ["/login alice", "hello"]);
    }

    #[test]
    fn drops_one_cr_and_skips_empty_lines() {
        assert_eq!(split(4096, &[b"a\r\n\r\n\nb\r\r\n"]), ["a", "b\r"]);
    }

    #[test]
    fn keeps_a_partial_line_until_its_newline() {
        let mut buf = LineBuffer::new(4096);
        let mut seen = 0;
        buf.feed(b"no newline yet", |_| {
            seen += 1;
            ControlFlow::Continue(())
        });
        assert_eq!(seen, 0);
        assert_eq!(buf.pending_len(), 14);
    }

    #[test]
    fn over_long_line_is_reported_once_then_resyncs() {
        let long = vec![b'x'; 5000];
        assert_eq!(
            split(4096, &[&long, &long, b"tail\nok\n"]),
            ["!line too long", "ok"]
        );
    }

    #[test]
    fn over_long_line_inside_one_chunk() {
        let mut chunk = vec![b'y'; 4097];
        chunk.extend_from_slice(b"\nafter\n");
        assert_eq!(split(4096, &[&chunk]), ["!line too long", "after"]);
    }

    #[test]
    fn exactly_the_limit_is_accepted_with_or_without_cr() {
        let line = "z".repeat(4096);
        let crlf = format!("{line}\r\n");
        let lf = format!("{line}\n");
        // Split so the `\r` is pending alone at the limit.
        let (a, b) = crlf.as_bytes().split_at(4097);
        assert_eq!(split(4096, &[a, b]), std::slice::from_ref(&line));
        assert_eq!(split(4096, &[lf.as_bytes()]), [line]);
    }

    #[test]
    fn one_past_the_limit_is_too_long() {
        let over = format!("{}\n", "z".repeat(4097));
        let (a, b) = over.as_bytes().split_at(100);
        assert_eq!(split(4096, &[a, b]), ["!line too long"]);
    }

    #[test]
    fn invalid_utf8_is_reported_and_skipped() {
        assert_eq!(
            split(4096, &[b"ok\n\xff\xfe\nfine \xc3\xa9\n"]),
            ["ok", "!line is not valid UTF-8", "fine é"]
        );
    }

    #[test]
    fn endless_bytes_without_newline_stay_bounded() {
        let mut buf = LineBuffer::new(4096);
        let chunk = [b'a'; 1000];
        let mut errors = 0;
        for _ in 0..10_000 {
            buf.feed(&chunk, |_| {
                errors += 1;
                ControlFlow::Continue(())
            });
            assert!(buf.pending_len() <= 4097);
        }
        assert_eq!(errors, 1);
    }

    #[test]
    fn break_stops_and_reports_consumed_bytes() {
        let mut buf = LineBuffer::new(4096);
        let used = buf.feed(b"one\ntwo\nthree\n", |_| ControlFlow::Break(()));
        assert_eq!(used, 4);
    }

    proptest! {
        /// Any split of a stream into chunks gives the same lines and errors.
        #[test]
        fn any_split_gives_the_same_lines(
            data in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(0xff), b'a'..=b'z'], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..20),
        ) {
            let whole = split(16, &[&data]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for c in cuts {
                chunks.push(&data[last..c]);
                last = c;
            }
            chunks.push(&data[last..]);
            prop_assert_eq!(split(16, &chunks), whole);
        }
    }
}
