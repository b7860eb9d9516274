//! `dialect::line::parse` on arbitrary UTF-8.
//!
//! Checks: parsing never panics, whatever the string; a refused line is
//! answered with one `ERR` line, ending in its only `\n`, and, for a line
//! framing can hand out (1 to [`MAX_LINE`] bytes, no `\n`), at most
//! [`MAX_SERVER_LINE`] bytes before the `\n`.
#![no_main]

use chatd::config::{MAX_LINE, MAX_SERVER_LINE};
use chatd::core::Event;
use chatd::dialect::line::{parse, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Err(error) = parse(line) else {
        return;
    };
    let mut out = Vec::new();
    render(&Event::Error(error), &mut out);
    let text = std::str::from_utf8(&out).expect("rendered error is not UTF-8");
    let body = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("rendered error does not end in \\n: {text:?}"));
    assert!(
        !body.contains('\n'),
        "rendered error is several lines: {text:?}"
    );
    assert!(body.starts_with("ERR "), "not an ERR line: {text:?}");
    let framed = !line.is_empty() && line.len() <= MAX_LINE && !line.contains('\n');
    if framed {
        assert!(
            body.len() <= MAX_SERVER_LINE,
            "rendered error of {} bytes",
            body.len()
        );
    }
});
