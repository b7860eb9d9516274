//! The event sources: one thread each for server lines, user input and signals.
//!
//! Every thread only sends [`Event`]s to the main thread, which owns the
//! socket's write half and all output, so nothing here writes anywhere.

use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::Sender;
use std::thread;

/// What the main loop reacts to.
#[derive(Debug)]
pub enum Event {
    ServerLine(String),
    /// The server closed the connection (`None`) or reading failed.
    ServerClosed(Option<String>),
    UserLine(String),
    UserEof,
    Interrupt,
}

/// Whether a user line is the `/quit` command (command words are case-insensitive).
pub fn is_quit(line: &str) -> bool {
    line.split(' ')
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("/quit"))
}

/// Reads `\n`-terminated lines (one `\r` before it dropped) until EOF or error.
pub fn spawn_server_reader(stream: impl Read + Send + 'static, tx: Sender<Event>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        loop {
            match read_line(&mut reader) {
                Ok(Some(line)) => {
                    if tx.send(Event::ServerLine(line)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Event::ServerClosed(Some(e.to_string())));
                    return;
                }
            }
        }
        let _ = tx.send(Event::ServerClosed(None));
    });
}

/// One line without its terminator; `None` at EOF. Bytes that are not UTF-8
/// are replaced rather than failing the whole connection.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    if reader.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// SIGINT and SIGTERM become [`Event::Interrupt`] so we can say goodbye to the server.
pub fn spawn_signals(tx: Sender<Event>) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    thread::spawn(move || {
        for _ in signals.forever() {
            if tx.send(Event::Interrupt).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Line editing on a terminal. Returns the printer that puts server lines
/// above the prompt, or `None` if rustyline cannot make one (stdout is not a
/// terminal), in which case the caller prints plainly.
pub fn spawn_tty(tx: Sender<Event>) -> Result<Option<impl ExternalPrinter + Send>, ReadlineError> {
    let mut editor = DefaultEditor::new()?;
    let printer = editor.create_external_printer().ok();
    thread::spawn(move || {
        loop {
            let event = match editor.readline("> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Event::UserLine(line)
                }
                Err(ReadlineError::Interrupted) => Event::Interrupt,
                Err(ReadlineError::Eof) => Event::UserEof,
                Err(e) => {
                    log::warn!("readline failed: {e}");
                    Event::UserEof
                }
            };
            if !forward(&tx, event) {
                return;
            }
        }
    });
    Ok(printer)
}

/// Piped (non-terminal) stdin: plain lines, `\r\n` tolerated.
pub fn spawn_plain(tx: Sender<Event>) {
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let event = match read_line(&mut stdin) {
                Ok(Some(line)) => Event::UserLine(line),
                Ok(None) => Event::UserEof,
                Err(e) => {
                    log::warn!("reading stdin failed: {e}");
                    Event::UserEof
                }
            };
            if !forward(&tx, event) {
                return;
            }
        }
    });
}

/// Sends `event`; says whether to keep reading. Input stops after the session's
/// last word (`/quit`, EOF, Ctrl-C) so the terminal leaves raw mode while we
/// wait for the server's goodbye.
fn forward(tx: &Sender<Event>, event: Event) -> bool {
    let more = matches!(&event, Event::UserLine(l) if !is_quit(l));
    tx.send(event).is_ok() && more
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_detection() {
        assert!(is_quit("/quit"));
        assert!(is_quit("/QUIT going home"));
        assert!(!is_quit("/quitter"));
        assert!(!is_quit("quit"));
        assert!(!is_quit("//quit"));
    }

    #[test]
    fn line_framing() {
        let mut r = io::Cursor::new(b"a\r\nb\n\r\r\nlast".to_vec());
        let mut lines = Vec::new();
        while let Ok(Some(l)) = read_line(&mut r) {
            lines.push(l);
        }
        assert_eq!(lines, ["a", "b", "\r", "last"]);
    }
}
