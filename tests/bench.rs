//! End-to-end tests of the `chat-bench` load generator: the real binary,
//! small runs against the real server started in-process, a tiny echo
//! server, and listeners that misbehave on purpose (one never answers, one
//! loses and repeats a line), each run with `--json` and checked through
//! its JSON, its exit status and its bounded running time.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{start_server, wait_timeout};

/// The longest one bench run may take here; every run also has its own
/// `--duration`, so this only catches a bench that ignores it.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// What one run of the binary produced.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The top-level value of JSON member `name` (the first occurrence: the
    /// totals come before the per-source arrays), as written.
    #[track_caller]
    fn field(&self, name: &str) -> &str {
        let key = format!("\"{name}\":");
        let Some(at) = self.stdout.find(&key) else {
            self.fail(&format!("no {key} in the JSON"));
        };
        let rest = &self.stdout[at + key.len()..];
        let end = if rest.starts_with('{') {
            rest.find('}').map_or(rest.len(), |i| i + 1)
        } else {
            rest.find([',', '}']).unwrap_or(rest.len())
        };
        &rest[..end]
    }

    /// Member `name` as an integer.
    #[track_caller]
    fn int(&self, name: &str) -> u64 {
        let v = self.field(name);
        v.parse()
            .unwrap_or_else(|_| self.fail(&format!("{name} is {v}, not an integer")))
    }

    /// Asserts the run was complete, clean and exited 0.
    #[track_caller]
    fn assert_ok(&self) {
        if !self.status.success() || !self.stdout.contains("\"complete\":true,\"ok\":true") {
            self.fail("expected a complete, clean run with exit status 0");
        }
        for counter in [
            "lost",
            "duplicated",
            "reordered",
            "undelivered",
            "unexpected",
        ] {
            if self.stdout.contains(&format!("\"{counter}\":")) {
                assert_eq!(self.int(counter), 0, "{counter}\n{}", self.stdout);
            }
        }
    }

    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\nstatus: {:?}, took {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.took, self.stdout, self.stderr
        );
    }
}

/// Runs `chat-bench ARGS --json --quiet`, bounded by [`RUN_TIMEOUT`].
fn bench(args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(args)
        .args(["--json", "--quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn chat-bench: {e}"));
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let status = match wait_timeout(&mut child, RUN_TIMEOUT) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chat-bench {args:?} still ran after {RUN_TIMEOUT:?}");
        }
    };
    Run {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        took: started.elapsed(),
    }
}

/// Reads a pipe to its end on a thread (so a full pipe never blocks the
/// child).
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

/// A test listener on `127.0.0.1:0` served by `serve` on one thread per
/// connection until dropped.
struct Listener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Listener {
        let serve = Arc::new(serve);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(RUN_TIMEOUT));
                            let serve = serve.clone();
                            thread::spawn(move || serve(stream));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Listener {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// RFC 862: every line back as it came.
fn echo(stream: TcpStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        if out.write_all(format!("{line}\n").as_bytes()).is_err() {
            return;
        }
    }
}

/// An echo server that loses the third line and repeats the fifth.
fn faulty_echo(stream: TcpStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    for (i, line) in BufReader::new(stream).lines().enumerate() {
        let Ok(line) = line else { return };
        let copies = match i {
            2 => 0,
            4 => 2,
            _ => 1,
        };
        for _ in 0..copies {
            if out.write_all(format!("{line}\n").as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Accepts and then says nothing, reading and dropping what comes.
fn silent(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

/// Just enough of an IRC server for the bench: registration (`001`),
/// `JOIN` (`366`), `PRIVMSG` to channels (not echoed to the sender) and
/// nicks, `PING`. Writes happen under one lock, so every recipient gets
/// lines in the order the server handled them, as from a real server.
#[derive(Default)]
struct FakeIrc {
    state: Mutex<IrcState>,
}

#[derive(Default)]
struct IrcState {
    /// Registered nicks and a handle to write to each.
    nicks: HashMap<String, TcpStream>,
    /// Channel members, by channel.
    channels: HashMap<String, Vec<String>>,
}

impl FakeIrc {
    fn serve(&self, stream: TcpStream) {
        let Ok(mut out) = stream.try_clone() else {
            return;
        };
        let mut nick = String::new();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let line = line.trim_end_matches('\r');
            let (command, params) = line.split_once(' ').unwrap_or((line, ""));
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let sent = match command {
                "NICK" => {
                    nick = params.to_string();
                    Ok(())
                }
                "USER" => match out.try_clone() {
                    Ok(handle) => {
                        state.nicks.insert(nick.clone(), handle);
                        out.write_all(format!(":fake 001 {nick} :Welcome\r\n").as_bytes())
                    }
                    Err(e) => Err(e),
                },
                "JOIN" => {
                    state
                        .channels
                        .entry(params.to_string())
                        .or_default()
                        .push(nick.clone());
                    out.write_all(
                        format!(":fake 366 {nick} {params} :End of NAMES list\r\n").as_bytes(),
                    )
                }
                "PRIVMSG" => {
                    let (target, _) = params.split_once(' ').unwrap_or((params, ""));
                    let relayed = format!(":{nick}!u@fake {line}\r\n");
                    let to: Vec<String> = match state.channels.get(target) {
                        Some(members) => members.iter().filter(|m| **m != nick).cloned().collect(),
                        None => vec![target.to_string()],
                    };
                    for member in to {
                        if let Some(s) = state.nicks.get_mut(&member) {
                            let _ = s.write_all(relayed.as_bytes());
                        }
                    }
                    Ok(())
                }
                "PING" => out.write_all(format!(":fake PONG fake {params}\r\n").as_bytes()),
                _ => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.nicks.remove(&nick);
    }
}

#[test]
fn connect_logs_in_every_client() {
    let server = start_server(|_| {});
    let addr = server.addr.to_string();
    // The server runs in this process, so its memory is ours.
    let pid = std::process::id().to_string();
    let run = bench(&[
        "connect",
        "--server",
        &addr,
        "--clients",
        "50",
        "--concurrency",
        "10",
        "--server-pid",
        &pid,
        "--duration",
        "15",
    ]);
    run.assert_ok();
    assert_eq!(run.int("logged_in"), 50);
    assert_eq!(run.int("failed"), 0);
    assert!(run.int("rss_before_kib") > 0, "{}", run.stdout);
    assert!(run.int("rss_after_kib") > 0, "{}", run.stdout);
    assert_ne!(run.field("rss_per_conn_bytes"), "null");
    assert_ne!(run.field("time_to_all_logged_in_s"), "null");
    assert!(run.field("handshake_us").starts_with("{\"count\":50,"));
}

#[test]
fn fanout_delivers_everything_once_in_order() {
    let server = start_server(|_| {});
    let addr = server.addr.to_string();
    let run = bench(&[
        "fanout",
        "--server",
        &addr,
        "--clients",
        "20",
        "--rooms",
        "2",
        "--senders",
        "4",
        "--messages",
        "50",
        "--window",
        "8",
        "--size",
        "120",
        "--duration",
        "15",
    ]);
    run.assert_ok();
    // Two rooms of 10; each of 4 senders reaches the 9 others 50 times.
    assert_eq!(run.int("messages_sent"), 200);
    assert_eq!(run.int("deliveries"), 4 * 50 * 9);
    assert_eq!(run.int("expected_deliveries"), 4 * 50 * 9);
    assert!(run.field("latency_us").starts_with("{\"count\":1800,"));
    assert_ne!(run.field("deliveries_per_s"), "null");
}

#[test]
fn fanout_with_a_rate_cap_still_delivers_everything() {
    let server = start_server(|_| {});
    let addr = server.addr.to_string();
    let run = bench(&[
        "fanout",
        "--server",
        &addr,
        "--clients",
        "6",
        "--rooms",
        "3",
        "--senders",
        "3",
        "--messages",
        "20",
        "--rate",
        "200",
        "--duration",
        "15",
    ]);
    run.assert_ok();
    assert_eq!(run.int("deliveries"), 3 * 20);
    // 60 messages at 200/s take about 0.3 s.
    let send_s: f64 = run.field("send_s").parse().unwrap_or(0.0);
    assert!(send_s >= 0.25, "sent too fast for the cap: {send_s} s");
}

#[test]
fn pairs_complete_every_round_trip() {
    let server = start_server(|_| {});
    let addr = server.addr.to_string();
    let run = bench(&[
        "pairs",
        "--server",
        &addr,
        "--clients",
        "10",
        "--messages",
        "100",
        "--duration",
        "15",
    ]);
    run.assert_ok();
    assert_eq!(run.int("pairs"), 5);
    assert_eq!(run.int("round_trips"), 500);
    assert!(run.field("latency_us").starts_with("{\"count\":500,"));
}

#[test]
fn irc_fanout_and_pairs_against_a_fake_irc_server() {
    let irc = Arc::new(FakeIrc::default());
    let listener = {
        let irc = irc.clone();
        Listener::start(move |stream| irc.serve(stream))
    };
    let addr = listener.addr();
    let run = bench(&[
        "fanout",
        "--dialect",
        "irc",
        "--server",
        &addr,
        "--clients",
        "12",
        "--rooms",
        "3",
        "--senders",
        "6",
        "--messages",
        "30",
        "--duration",
        "15",
    ]);
    run.assert_ok();
    // Three rooms of 4; two senders each, reaching 3 others 30 times.
    assert_eq!(run.int("deliveries"), 6 * 30 * 3);
    let run = bench(&[
        "pairs",
        "--dialect",
        "irc",
        "--server",
        &addr,
        "--clients",
        "6",
        "--messages",
        "50",
        "--window",
        "4",
        "--duration",
        "15",
    ]);
    run.assert_ok();
    assert_eq!(run.int("round_trips"), 3 * 50);
}

#[test]
fn echo_against_a_tiny_echo_server() {
    let listener = Listener::start(echo);
    let run = bench(&[
        "echo",
        "--server",
        &listener.addr(),
        "--clients",
        "10",
        "--messages",
        "200",
        "--window",
        "4",
        "--duration",
        "15",
    ]);
    run.assert_ok();
    assert_eq!(run.int("round_trips"), 2000);
    assert_ne!(run.field("round_trips_per_s"), "null");
}

#[test]
fn echo_counts_a_lost_and_a_repeated_line() {
    let listener = Listener::start(faulty_echo);
    let run = bench(&[
        "echo",
        "--server",
        &listener.addr(),
        "--clients",
        "1",
        "--messages",
        "10",
        "--duration",
        "1",
    ]);
    assert!(!run.status.success(), "a faulty run must fail");
    assert!(run.stdout.contains("\"complete\":false,\"ok\":false"));
    assert_eq!(run.int("lost"), 1, "line 2 never came back");
    assert_eq!(run.int("duplicated"), 1, "line 4 came back twice");
    assert_eq!(run.int("reordered"), 1, "line 3 came right after line 1");
    assert_eq!(run.int("round_trips"), 9);
    assert!(run.stderr.contains("MESSAGES LOST"), "{}", run.stderr);
}

#[test]
fn a_silent_server_ends_the_run_by_duration() {
    let listener = Listener::start(silent);
    let addr = listener.addr();
    for (scenario, extra) in [("connect", None), ("fanout", Some(["--senders", "1"]))] {
        let mut args = vec![scenario, "--server", &addr, "--clients", "5"];
        args.extend(extra.iter().flatten());
        args.extend(["--duration", "1"]);
        let run = bench(&args);
        assert!(!run.status.success(), "{scenario}: exit status 0");
        assert!(
            run.took < Duration::from_secs(5),
            "{scenario} took {:?}",
            run.took
        );
        assert!(run.stdout.contains("\"complete\":false"), "{}", run.stdout);
        assert!(
            run.field("reason").contains("stopped by --duration"),
            "{}",
            run.stdout
        );
        assert!(run.stderr.contains("RUN INCOMPLETE"), "{}", run.stderr);
    }
}

#[test]
fn a_refused_connection_fails_fast() {
    // Bind and drop: nothing listens on that port any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0");
    let run = bench(&[
        "connect",
        "--server",
        &addr.to_string(),
        "--clients",
        "3",
        "--duration",
        "10",
    ]);
    assert!(!run.status.success());
    assert!(run.took < Duration::from_secs(5), "took {:?}", run.took);
    assert_eq!(run.int("failed"), 3);
    assert!(run.stdout.contains("Connection refused") || run.stdout.contains("refused"));
}
