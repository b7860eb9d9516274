//! An IRC client for the integration tests: raw lines over a std
//! [`TcpStream`], every read bounded by [`TIMEOUT`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{TIMEOUT, is_transient};

/// An IRC connection that remembers every line it received.
pub struct IrcClient {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
    seen: Vec<String>,
    /// Shown in failure messages.
    pub label: String,
    syncs: u64,
}

impl IrcClient {
    /// Connects (bounded); sends nothing.
    #[track_caller]
    pub fn connect(addr: SocketAddr, label: &str) -> IrcClient {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
            .unwrap_or_else(|e| panic!("[{label}] connect to {addr}: {e}"));
        stream
            .set_write_timeout(Some(TIMEOUT))
            .unwrap_or_else(|e| panic!("[{label}] set_write_timeout: {e}"));
        IrcClient {
            stream,
            buf: Vec::new(),
            eof: false,
            seen: Vec::new(),
            label: label.into(),
            syncs: 0,
        }
    }

    /// Connects and registers as `nick` (user name `u-NICK`, real name
    /// `Real NICK`) with these capabilities; returns the welcome burst up to
    /// the end of the MOTD.
    #[track_caller]
    pub fn register(addr: SocketAddr, nick: &str, caps: &[&str]) -> (IrcClient, Vec<String>) {
        let mut c = IrcClient::connect(addr, nick);
        if !caps.is_empty() {
            c.send("CAP LS 302");
            c.expect(" CAP * LS ");
            c.send(&format!("CAP REQ :{}", caps.join(" ")));
            c.expect(" CAP * ACK ");
        }
        c.send(&format!("NICK {nick}"));
        c.send(&format!("USER u-{nick} 0 * :Real {nick}"));
        if !caps.is_empty() {
            c.send("CAP END");
        }
        let (mut burst, end) = c.expect_after(|l: &str| {
            l.contains(" 376 ") || l.contains(" 422 ") || l.starts_with("ERROR")
        });
        burst.push(end);
        (c, burst)
    }

    /// Sends one line (`\r\n` added).
    #[track_caller]
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends bytes as they are.
    #[track_caller]
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            self.fail(&format!("write failed: {e}"));
        }
    }

    /// The next line (without `\r\n`), `None` at EOF; panics on timeout.
    #[track_caller]
    pub fn next_line(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&raw).into_owned();
                if !text.ends_with("\r\n") {
                    self.fail(&format!("line does not end in \\r\\n: {text:?}"));
                }
                let line = text.trim_end_matches("\r\n").to_string();
                self.seen.push(line.clone());
                return Some(line);
            }
            if self.eof {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                self.fail(&format!("no line within {wait:?}"));
            }
            if let Err(e) = self.stream.set_read_timeout(Some(deadline - now)) {
                self.fail(&format!("set_read_timeout: {e}"));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_transient(&e) => {}
                Err(e) => self.fail(&format!("read failed: {e}")),
            }
        }
    }

    /// The next line; panics at EOF.
    #[track_caller]
    pub fn line(&mut self) -> String {
        match self.next_line(TIMEOUT) {
            Some(line) => line,
            None => self.fail("connection closed"),
        }
    }

    /// Reads until a line containing `want`; returns it.
    #[track_caller]
    pub fn expect(&mut self, want: &str) -> String {
        let want = want.to_string();
        self.expect_after(move |l: &str| l.contains(&want)).1
    }

    /// Reads until `pred` matches; returns the lines before and the match.
    #[track_caller]
    pub fn expect_after(&mut self, pred: impl Fn(&str) -> bool) -> (Vec<String>, String) {
        let mut skipped = Vec::new();
        loop {
            match self.next_line(TIMEOUT) {
                Some(line) if pred(&line) => return (skipped, line),
                Some(line) => skipped.push(line),
                None => self.fail(&format!("closed while waiting; skipped {skipped:?}")),
            }
        }
    }

    /// `PING` round trip: returns every line that arrived before the `PONG`.
    #[track_caller]
    pub fn sync(&mut self) -> Vec<String> {
        self.syncs += 1;
        let token = format!("sync{}", self.syncs);
        self.send(&format!("PING {token}"));
        let end = " PONG ".to_string();
        let tail = format!(" {token}");
        self.expect_after(move |l: &str| l.contains(&end) && l.ends_with(&tail))
            .0
    }

    /// The lines after the next command's replies, up to a sync.
    #[track_caller]
    pub fn ask(&mut self, line: &str) -> Vec<String> {
        self.send(line);
        self.sync()
    }

    /// Reads to EOF; returns the lines.
    #[track_caller]
    pub fn read_to_eof(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.next_line(TIMEOUT) {
            lines.push(line);
        }
        lines
    }

    /// Panics with what this client saw.
    #[track_caller]
    pub fn fail(&self, what: &str) -> ! {
        let from = self.seen.len().saturating_sub(40);
        panic!(
            "[{}] {what}\nlast lines seen:\n  {}",
            self.label,
            self.seen[from..].join("\n  ")
        );
    }
}
