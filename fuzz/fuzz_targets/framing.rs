//! `LineBuffer::feed` on arbitrary bytes cut into arbitrary chunks.
//!
//! Input layout (the header chooses how the rest is fed):
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | low 4 bits: how many cuts (0–15); bit 4: stop after every line and feed the rest again |
//! | 1 | the line limit (0–31) of a second, small splitter, so over-long lines are cheap to reach |
//! | 2 per cut | little-endian cut positions, taken modulo the stream length + 1 |
//! | the rest | the stream |
//!
//! Checks, for the real limit ([`MAX_LINE`]) and the small one: every split
//! gives the same lines and errors as the whole stream fed at once, and both
//! match a plain model of the framing rules; every line is at most the limit,
//! not empty and has no `\n` (it is a `&str`, so UTF-8 by type); the pending
//! tail never exceeds the limit + 1.
#![no_main]

use std::ops::ControlFlow;

use chatd::config::MAX_LINE;
use chatd::framing::{FrameError, LineBuffer};
use libfuzzer_sys::fuzz_target;

/// What the splitter hands out, owned.
type Item = Result<String, FrameError>;

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, small], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let cuts = usize::from(flags & 0x0f);
    let stop_each = flags & 0x10 != 0;
    let small = usize::from(small % 32);
    if rest.len() < 2 * cuts {
        return;
    }
    let (cut_bytes, stream) = rest.split_at(2 * cuts);
    let mut points: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])) % (stream.len() + 1))
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::with_capacity(cuts + 1);
    let mut last = 0;
    for p in points {
        chunks.push(&stream[last..p]);
        last = p;
    }
    chunks.push(&stream[last..]);

    for max_line in [MAX_LINE, small] {
        let whole = split(max_line, &[stream], false);
        assert_eq!(whole, model(max_line, stream), "whole stream vs model");
        let chunked = split(max_line, &chunks, stop_each);
        assert_eq!(chunked, whole, "chunked vs whole, cuts at {chunks:?}");
    }
});

/// Feeds `chunks` to a fresh splitter, checking the bounds after every call.
/// With `stop_each`, `on_line` breaks after every item and the unconsumed
/// rest of the chunk is fed again, as a caller that stops early would.
fn split(max_line: usize, chunks: &[&[u8]], stop_each: bool) -> Vec<Item> {
    let mut buf = LineBuffer::new(max_line);
    let mut out: Vec<Item> = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        loop {
            let before = out.len();
            let used = buf.feed(rest, |item| {
                if let Ok(line) = item {
                    assert!(line.len() <= max_line, "line of {} bytes", line.len());
                    assert!(!line.is_empty(), "empty line handed out");
                    assert!(!line.contains('\n'), "line holds a newline: {line:?}");
                }
                out.push(item.map(str::to_owned));
                if stop_each {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            assert!(
                buf.pending_len() <= max_line + 1,
                "pending {} bytes, limit {max_line}",
                buf.pending_len()
            );
            assert!(
                used <= rest.len(),
                "consumed {used} of {} bytes",
                rest.len()
            );
            if !stop_each {
                assert_eq!(used, rest.len(), "did not consume a chunk without a break");
            } else if used < rest.len() {
                assert_eq!(
                    out.len(),
                    before + 1,
                    "stopped without handing out one item"
                );
                assert!(used > 0, "stopped without consuming anything");
            }
            rest = &rest[used..];
            if rest.is_empty() {
                break;
            }
        }
    }
    out
}

/// The framing rules of `docs/protocol.md`, written plainly over the whole
/// stream: split at `\n`; drop one `\r` before it; a line over the limit is
/// one error; an empty line is skipped; a line that is not UTF-8 is one error.
/// An unfinished tail is held back, unless it is already over the limit + 1
/// (a possible `\r`), which is reported at once.
fn model(max_line: usize, stream: &[u8]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut parts: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let tail = parts.pop().unwrap_or_default();
    for raw in parts {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.len() > max_line {
            out.push(Err(FrameError::LineTooLong));
        } else if line.is_empty() {
        } else {
            out.push(
                std::str::from_utf8(line)
                    .map(str::to_owned)
                    .map_err(|_| FrameError::BadUtf8),
            );
        }
    }
    if tail.len() > max_line + 1 {
        out.push(Err(FrameError::LineTooLong));
    }
    out
}
