//! End-to-end tests: the real binary against a scripted fake server on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const TS: &str = "2026-11-22T10:00:01.000Z";

/// The server side of one connection; remembers every line the client sent.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    got: Vec<String>,
}

impl Conn {
    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
    }

    /// Next client line, `None` at EOF; panics after the read timeout.
    fn recv(&mut self) -> Option<String> {
        let mut line = String::new();
        match self
            .reader
            .read_line(&mut line)
            .expect("client line in time")
        {
            0 => None,
            _ => {
                let line = line.trim_end_matches('\n').to_string();
                self.got.push(line.clone());
                Some(line)
            }
        }
    }

    fn expect(&mut self, want: &str) {
        assert_eq!(self.recv().as_deref(), Some(want));
    }

    fn greet_and_login(&mut self, name: &str) {
        self.send("HELLO fake 0.1.0 :welcome, type /help");
        self.expect(&format!("/login {name}"));
        self.send(&format!("OK login {name} 1"));
        self.send("OK join #lobby");
    }
}

/// Runs `script` on the first connection, then collects what the client sends
/// until it hangs up; the handle yields every line received.
fn fake_server(
    script: impl FnOnce(&mut Conn) + Send + 'static,
) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let writer = sock.try_clone().expect("clone");
        let mut conn = Conn {
            reader: BufReader::new(sock),
            writer,
            got: Vec::new(),
        };
        script(&mut conn);
        while conn.recv().is_some() {}
        conn.got
    });
    (addr, handle)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn spawn(addr: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chat"))
        .args(["--server", addr])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client")
}

/// Feeds `input` on stdin, closing it afterwards unless `keep_open`, and waits (bounded).
fn run(addr: &str, args: &[&str], input: &str, keep_open: bool) -> Run {
    let mut child = spawn(addr, args);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    let _open: Option<ChildStdin> = keep_open.then_some(stdin);
    finish(child)
}

fn finish(mut child: Child) -> Run {
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("client did not exit in time");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).expect("read");
    }
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

#[test]
fn piped_session_sends_lines_in_order_and_quits_once() {
    let (addr, server) = fake_server(|c| {
        c.greet_and_login("alice");
        c.expect("hi");
        c.send(&format!("MSG #lobby alice 7 {TS} :hi"));
        c.expect("/quit");
        c.send("BYE :bye");
    });
    let out = run(
        &addr.to_string(),
        &["--name", "alice"],
        "hi\n\n/quit\n",
        false,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        server.join().expect("server"),
        ["/login alice", "hi", "/quit"]
    );
    for want in [
        "-- connected to fake 0.1.0: welcome, type /help",
        "-- logged in as alice",
        "-- joined #lobby",
        "#lobby <alice> hi",
        "-- bye: bye",
    ] {
        assert!(out.stdout.contains(want), "{want:?} in {}", out.stdout);
    }
}

#[test]
fn stdin_eof_sends_quit() {
    let (addr, server) = fake_server(|c| {
        c.greet_and_login("alice");
        c.expect("hi");
        c.expect("/quit");
        c.send("BYE :bye");
    });
    let out = run(&addr.to_string(), &["--name", "alice"], "hi\n", false);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        server.join().expect("server"),
        ["/login alice", "hi", "/quit"]
    );
}

#[test]
fn login_by_command_and_dm_echo() {
    let (addr, server) = fake_server(|c| {
        c.send("HELLO fake 0.1.0 :hi");
        c.expect("/login bob");
        c.send("OK login bob 2");
        c.expect("/msg carol psst");
        c.send(&format!("DM bob carol 3 {TS} :psst"));
        c.send(&format!("DM carol bob 4 {TS} :what"));
        c.expect("/quit");
        c.send("BYE :bye");
    });
    let out = run(
        &addr.to_string(),
        &[],
        "/login bob\n/msg carol psst\n",
        false,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    server.join().expect("server");
    assert!(out.stdout.contains("-> *carol* psst"), "{}", out.stdout);
    assert!(out.stdout.contains("*carol* what"), "{}", out.stdout);
}

#[test]
fn server_going_away_is_an_error_and_lines_arrive_unprompted() {
    let (addr, server) = fake_server(|c| {
        c.greet_and_login("alice");
        c.send(&format!("MSG #lobby bob 7 {TS} :are you there?"));
        let _ = c.writer.shutdown(std::net::Shutdown::Both);
    });
    // stdin stays open: the user never types anything.
    let out = run(&addr.to_string(), &["--name", "alice"], "", true);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("-- connection to server lost"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("#lobby <bob> are you there?"),
        "{}",
        out.stdout
    );
    server.join().expect("server");
}

#[test]
fn refused_login_exits_1_without_sending_input() {
    let (addr, server) = fake_server(|c| {
        c.send("HELLO fake 0.1.0 :hi");
        c.expect("/login alice");
        c.send("ERR name-taken alice :name is taken");
    });
    let out = run(&addr.to_string(), &["--name", "alice"], "hi\n", false);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("login failed: !! name is taken (name-taken)"),
        "{}",
        out.stderr
    );
    assert_eq!(server.join().expect("server"), ["/login alice"]);
}

#[test]
fn sigint_quits_politely_and_raw_shows_lines_as_is() {
    let (logged_in, wait_login) = mpsc::channel();
    let (addr, server) = fake_server(move |c| {
        c.greet_and_login("alice");
        let _ = logged_in.send(());
        c.expect("/quit");
        c.send("BYE :bye");
    });
    let mut child = spawn(&addr.to_string(), &["--name", "alice", "--raw"]);
    let _stdin = child.stdin.take();
    wait_login
        .recv_timeout(Duration::from_secs(5))
        .expect("login");
    // Once the client has printed the line after OK login, its login wait is over.
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    while !seen.ends_with("OK join #lobby\n") {
        assert!(stdout.read_line(&mut seen).expect("stdout") > 0, "{seen}");
    }
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = finish(child);
    stdout.read_to_string(&mut seen).expect("stdout");
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(server.join().expect("server"), ["/login alice", "/quit"]);
    assert!(
        seen.contains("OK login alice 1\nOK join #lobby\nBYE :bye"),
        "{seen}"
    );
}

#[test]
fn unreachable_server_exits_1() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let out = run(&addr.to_string(), &["--name", "alice"], "", false);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("cannot connect to"), "{}", out.stderr);
}
