//! `echo`: load an RFC 862 echo server (chatd's `--echo-listen`, or any
//! other). Every client sends K lines, keeping at most W unanswered, and
//! checks each comes back, in order, once. Reports round trips per second
//! and latency: the cost of the reactor and the kernel alone, the floor
//! that fan-out is compared to. There is no login, so `--dialect` does not
//! apply.

use std::time::Instant;

use crate::net::{ConnError, Driver, Net};
use crate::proto::{Incoming, Payload, Proto};
use crate::stats::{Arrival, Histogram, Integrity, Json, Report, SeqCheck};
use crate::{Error, Run, roundtrip, span_s};

/// Flags of `echo`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How many connections.
    #[arg(long, default_value_t = 100, value_parser = crate::parse_positive)]
    clients: usize,
    /// Lines each client sends.
    #[arg(long, default_value_t = 1000)]
    messages: u32,
    /// Lines each client keeps unanswered at most.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    window: u32,
    /// Line size in bytes, without the newline.
    #[arg(long, default_value_t = 80)]
    size: usize,
}

/// One client's stream of lines.
#[derive(Debug, Default)]
struct Stream {
    /// Lines sent.
    sent: u32,
    /// Lines back (each once).
    back: u32,
    /// Order check of what comes back.
    check: SeqCheck,
    /// What went wrong.
    integrity: Integrity,
}

/// The `echo` driver.
#[derive(Debug)]
struct Echo {
    /// Payload tag of this run.
    tag: String,
    /// Lines per client.
    messages: u32,
    /// Unanswered lines per client, at most.
    window: u32,
    /// Line size.
    size: usize,
    /// Per client.
    streams: Vec<Stream>,
    /// When sending started (every client connected).
    started: Option<Instant>,
    /// When the last line came back.
    last_back_ns: u64,
    /// Round-trip latency, µs.
    latency: Histogram,
    /// Clients whose window opened since the last tick.
    dirty: Vec<usize>,
    /// Round trips, all clients.
    round_trips: u64,
    /// Lines that are not this run's payloads.
    stray: u64,
    /// Payload buffer.
    text: String,
}

impl Echo {
    fn fill(&mut self, net: &mut Net, c: usize) {
        loop {
            let stream = &mut self.streams[c];
            if stream.sent >= self.messages || stream.sent - stream.back >= self.window {
                return;
            }
            let payload = Payload {
                source: c as u32,
                seq: stream.sent,
                sent_ns: net.clock().ns(),
            };
            payload.write(&mut self.text, &self.tag, self.size);
            if let Some(out) = net.out(c) {
                Proto::Echo.say(out, "", &self.text);
            }
            stream.sent += 1;
        }
    }

    fn total(&self) -> u64 {
        self.streams.len() as u64 * u64::from(self.messages)
    }
}

impl Driver for Echo {
    fn line(&mut self, net: &mut Net, client: usize, msg: Incoming<'_>) {
        let Incoming::Echo(line) = msg else {
            return;
        };
        let Some(payload) = Payload::parse(line, &self.tag) else {
            self.stray += 1;
            return;
        };
        let stream = &mut self.streams[client];
        if payload.source as usize != client || payload.seq >= stream.sent {
            stream.integrity.unexpected += 1;
            return;
        }
        let arrival = stream.check.arrive(payload.seq);
        stream.integrity.count(arrival);
        if arrival == Arrival::Duplicate {
            return;
        }
        stream.back += 1;
        self.round_trips += 1;
        self.latency
            .record(net.read_ns().saturating_sub(payload.sent_ns) / 1000);
        self.last_back_ns = net.read_ns();
        self.dirty.push(client);
    }

    fn closed(&mut self, net: &mut Net, client: usize, why: &ConnError) {
        net.abort(format!("echo client {client} lost: {why}"));
    }

    fn tick(&mut self, net: &mut Net) -> Option<Instant> {
        let streams = self.streams.len();
        if !roundtrip::ready_to_send(&mut self.started, &mut self.dirty, net, streams) {
            return None;
        }
        while let Some(c) = self.dirty.pop() {
            self.fill(net, c);
        }
        None
    }

    fn finished(&self, _net: &Net) -> bool {
        self.started.is_some() && self.round_trips == self.total()
    }

    fn progress(&self) -> String {
        roundtrip::progress(self.round_trips, self.total(), &self.latency)
    }
}

/// Runs `echo`.
pub(crate) fn run(run: &Run, args: &Args) -> Result<Report, Error> {
    if args.size > Proto::Echo.max_payload() {
        return Err(Error::Usage(format!(
            "--size {} is over {} bytes",
            args.size,
            Proto::Echo.max_payload()
        )));
    }
    let mut driver = Echo {
        tag: run.tag.clone(),
        messages: args.messages,
        window: args.window,
        size: args.size,
        streams: (0..args.clients).map(|_| Stream::default()).collect(),
        started: None,
        last_back_ns: 0,
        latency: Histogram::default(),
        dirty: Vec::new(),
        round_trips: 0,
        stray: 0,
        text: String::with_capacity(args.size + 64),
    };
    let setup = run.setup(Proto::Echo, args.clients, 0);
    let (outcome, _net) = run.execute(setup, &mut driver)?;
    let mut report = run.report("echo", Proto::Echo, &outcome);
    let mut total = Integrity {
        unexpected: driver.stray,
        ..Integrity::default()
    };
    let per: Vec<Json> = driver
        .streams
        .iter_mut()
        .enumerate()
        .map(|(c, s)| {
            s.integrity.lost += s.check.lost();
            s.integrity.undelivered += u64::from(s.sent - s.back);
            total.add(&s.integrity);
            let mut members = vec![("client", Json::from(c)), ("sent", Json::from(s.sent))];
            members.extend(s.integrity.members());
            Json::obj(members)
        })
        .collect();
    let span = span_s(run, driver.started, driver.last_back_ns);
    report.figures = vec![
        ("clients", Json::from(args.clients)),
        ("messages_per_client", Json::from(args.messages)),
        ("window", Json::from(args.window)),
        ("size", Json::from(args.size)),
    ];
    report.figures.extend(roundtrip::figures(
        span,
        driver.round_trips,
        driver.total(),
        &driver.latency,
    ));
    report.figures.extend(total.members());
    report.figures.push(("per_client", Json::Arr(per)));
    report.clean = total.is_clean();
    Ok(report)
}
