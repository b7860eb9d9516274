//! `chat`: the terminal client for chatd's line protocol.
//!
//! The main thread owns the socket's write half and all output and reacts to
//! [`Event`]s from the reader, input and signal threads (see `input.rs`), so
//! server lines show up while the user is still typing.

mod input;
mod render;
mod term;

use clap::Parser;
use input::Event;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use term::Output;

const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
const BYE_TIMEOUT: Duration = Duration::from_secs(3);
/// The environment variable that holds the password for `--name`.
const PASSWORD_ENV: &str = "CHAT_PASSWORD";

/// Terminal client for a chatd server.
#[derive(Parser, Debug)]
#[command(name = "chat", version, about = "Terminal client for a chatd server")]
struct Args {
    /// Server address, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:7070")]
    server: String,
    /// Log in with this name on connect (otherwise type `/login NAME`); the
    /// password of a registered name is read from $CHAT_PASSWORD.
    #[arg(long, value_parser = parse_name)]
    name: Option<String>,
    /// Print server lines exactly as received.
    #[arg(long)]
    raw: bool,
}

/// A name with a space would smuggle a password into `/login`; the server checks the rest.
fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(char::is_whitespace) {
        Err("a name is one word".into())
    } else {
        Ok(s.to_string())
    }
}

#[derive(Debug)]
enum Error {
    Connect(String, io::Error),
    Io(io::Error),
    Readline(rustyline::error::ReadlineError),
    LoginRefused(String),
    LoginTimeout,
    Interrupted,
    /// The connection ended without a BYE we asked for.
    Lost(Option<String>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(addr, e) => write!(f, "cannot connect to {addr}: {e}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Readline(e) => write!(f, "terminal: {e}"),
            Error::LoginRefused(why) => write!(f, "login failed: {why}"),
            Error::LoginTimeout => write!(f, "login failed: no answer from the server"),
            Error::Interrupted => write!(f, "interrupted"),
            Error::Lost(None) => write!(f, "-- connection to server lost"),
            Error::Lost(Some(e)) => write!(f, "-- connection to server lost: {e}"),
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut out = Output::new();
    let code = match run(&args, &mut out) {
        Ok(code) => code,
        Err(e) => {
            out.finish();
            match e {
                Error::Lost(_) => eprintln!("{e}"),
                _ => eprintln!("chat: {e}"),
            }
            1
        }
    };
    out.finish();
    ExitCode::from(code)
}

fn run(args: &Args, out: &mut Output) -> Result<u8, Error> {
    let sock =
        TcpStream::connect(&args.server).map_err(|e| Error::Connect(args.server.clone(), e))?;
    let (tx, rx) = mpsc::channel();
    input::spawn_server_reader(sock.try_clone()?, tx.clone());
    input::spawn_signals(tx.clone())?;
    let mut session = Session {
        sock,
        rx,
        out,
        me: None,
        raw: args.raw,
    };
    if let Some(name) = &args.name {
        // From the environment, not a flag: flags show up in `ps`.
        let password = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
        session.login(name, password.as_deref())?;
    }
    // Input starts only now, so piped lines go to the logged-in session.
    if io::stdin().is_terminal() {
        if let Some(printer) = input::spawn_tty(tx).map_err(Error::Readline)? {
            session.out.set_printer(Box::new(printer));
        }
    } else {
        input::spawn_plain(tx);
    }
    session.chat()
}

struct Session<'a> {
    sock: TcpStream,
    rx: Receiver<Event>,
    out: &'a mut Output,
    /// Logged-in name, to recognise our own DM echoes.
    me: Option<String>,
    raw: bool,
}

impl Session<'_> {
    fn send(&mut self, line: &str) -> Result<(), Error> {
        self.sock
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| Error::Lost(Some(e.to_string())))
    }

    fn show(&mut self, line: &str) {
        // Track who we are, for rendering DMs.
        let mut words = line.split(' ');
        if render::keyword(line) == "OK" {
            let _ = words.next();
            match (
                words.next().map(str::to_ascii_lowercase).as_deref(),
                words.next(),
            ) {
                (Some("login" | "register"), Some(name)) => self.me = Some(name.to_string()),
                (Some("logout"), _) => self.me = None,
                _ => {}
            }
        }
        let text = if self.raw {
            line.to_string()
        } else {
            render::render(line, self.me.as_deref())
        };
        self.out.line(&render::printable(&text));
    }

    /// Sends `/login NAME` and waits for its answer, showing what comes before it.
    fn login(&mut self, name: &str, password: Option<&str>) -> Result<(), Error> {
        match password {
            Some(password) => self.send(&format!("/login {name} {password}"))?,
            None => self.send(&format!("/login {name}"))?,
        }
        let deadline = Instant::now() + LOGIN_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .rx
                .recv_timeout(left)
                .map_err(|_| Error::LoginTimeout)?
            {
                Event::ServerLine(line) => match render::keyword(&line).as_str() {
                    "ERR" => return Err(Error::LoginRefused(render::render(&line, None))),
                    "OK" if line
                        .split(' ')
                        .nth(1)
                        .is_some_and(|w| w.eq_ignore_ascii_case("login")) =>
                    {
                        self.show(&line);
                        return Ok(());
                    }
                    _ => self.show(&line),
                },
                Event::ServerClosed(e) => return Err(Error::Lost(e)),
                Event::Interrupt => return Err(Error::Interrupted),
                Event::UserLine(_) | Event::UserEof => {}
            }
        }
    }

    /// The session proper; returns the exit code.
    fn chat(&mut self) -> Result<u8, Error> {
        // Set once we have sent `/quit`: how long we still wait for BYE.
        let mut quitting: Option<Instant> = None;
        loop {
            let event = match quitting {
                None => self.rx.recv().map_err(|_| Error::Lost(None))?,
                Some(deadline) => match self
                    .rx
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    Ok(event) => event,
                    Err(RecvTimeoutError::Timeout) => {
                        self.out.finish();
                        eprintln!("-- no goodbye from the server, leaving anyway");
                        return Ok(0);
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(0),
                },
            };
            match event {
                Event::ServerLine(line) => {
                    let bye = render::keyword(&line) == "BYE";
                    if bye {
                        self.out.finish();
                    }
                    self.show(&line);
                    if bye && quitting.is_some() {
                        return Ok(0);
                    }
                    if bye {
                        // A goodbye we did not ask for: the server went away.
                        eprintln!("-- the server closed the connection");
                        return Ok(1);
                    }
                }
                // We asked to leave and the server hung up: that is a goodbye too.
                Event::ServerClosed(_) if quitting.is_some() => return Ok(0),
                Event::ServerClosed(e) => return Err(Error::Lost(e)),
                Event::UserLine(_) | Event::UserEof if quitting.is_some() => {}
                Event::UserLine(line) if line.trim().is_empty() => {}
                Event::UserLine(line) => {
                    self.send(&line)?;
                    if input::is_quit(&line) {
                        quitting = Some(Instant::now() + BYE_TIMEOUT);
                    }
                }
                // A second Ctrl-C while waiting for BYE: stop waiting.
                Event::Interrupt if quitting.is_some() => return Ok(130),
                Event::UserEof | Event::Interrupt => {
                    self.send("/quit")?;
                    quitting = Some(Instant::now() + BYE_TIMEOUT);
                }
            }
        }
    }
}
