//! `pairs`: N/2 pairs of clients play direct-message ping-pong. Client
//! `2p` sends a payload to client `2p + 1` (line: `/msg PEER payload`, IRC:
//! `PRIVMSG PEER :payload`), which sends the same payload back; one round
//! trip is one reply arriving. Each pair keeps at most W pings in flight
//! (default 1: strict ping-pong). Reports round trips per second and their
//! latency; both directions are checked for lost, duplicated and
//! reordered messages.

use std::time::Instant;

use crate::net::{ConnError, Driver, Net};
use crate::proto::{Incoming, Payload, Proto};
use crate::stats::{Arrival, Histogram, Integrity, Json, Report, SeqCheck};
use crate::{Error, Run, roundtrip, span_s};

/// Flags of `pairs`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How many clients; they make N/2 pairs (an odd one out stays idle).
    #[arg(long, default_value_t = 100, value_parser = crate::parse_positive)]
    clients: usize,
    /// Round trips per pair.
    #[arg(long, default_value_t = 1000)]
    messages: u32,
    /// Pings each pair keeps in flight at most.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    window: u32,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 80)]
    size: usize,
}

/// One pair: client `2p` pings, client `2p + 1` answers.
#[derive(Debug, Default)]
struct Pair {
    /// Pings sent.
    sent: u32,
    /// Replies received (each ping once).
    answered: u32,
    /// The answerer's view of the pings.
    pings: SeqCheck,
    /// The pinger's view of the replies.
    replies: SeqCheck,
    /// What went wrong.
    integrity: Integrity,
}

/// The `pairs` driver.
#[derive(Debug)]
struct Pairs {
    /// The clients' protocol.
    proto: Proto,
    /// Payload tag of this run.
    tag: String,
    /// Client names, by index.
    names: Vec<String>,
    /// Round trips per pair.
    messages: u32,
    /// Pings in flight per pair, at most.
    window: u32,
    /// Payload size.
    size: usize,
    /// The pairs.
    pairs: Vec<Pair>,
    /// When pinging started (every client ready).
    started: Option<Instant>,
    /// When the last reply arrived.
    last_reply_ns: u64,
    /// Round-trip latency, µs.
    latency: Histogram,
    /// Pairs whose window opened since the last tick.
    dirty: Vec<usize>,
    /// Round trips, all pairs.
    round_trips: u64,
    /// Lines with this run's tag naming a pair that does not exist.
    stray: u64,
    /// Payload buffer.
    text: String,
}

impl Pairs {
    fn fill(&mut self, net: &mut Net, p: usize) {
        loop {
            let pair = &mut self.pairs[p];
            if pair.sent >= self.messages || pair.sent - pair.answered >= self.window {
                return;
            }
            let payload = Payload {
                source: p as u32,
                seq: pair.sent,
                sent_ns: net.clock().ns(),
            };
            payload.write(&mut self.text, &self.tag, self.size);
            if let Some(out) = net.out(2 * p) {
                self.proto.dm(out, &self.names[2 * p + 1], &self.text);
            }
            pair.sent += 1;
        }
    }

    fn total(&self) -> u64 {
        self.pairs.len() as u64 * u64::from(self.messages)
    }
}

impl Driver for Pairs {
    fn line(&mut self, net: &mut Net, client: usize, msg: Incoming<'_>) {
        let Incoming::Direct { from, text, .. } = msg else {
            return;
        };
        let Some(payload) = Payload::parse(text, &self.tag) else {
            return;
        };
        let p = payload.source as usize;
        if p >= self.pairs.len() {
            self.stray += 1;
            return;
        }
        if from.eq_ignore_ascii_case(&self.names[client]) {
            // The line protocol's echo of our own direct message.
            return;
        }
        let pair = &mut self.pairs[p];
        let (pinger, answerer) = (2 * p, 2 * p + 1);
        let expected_from = if client == answerer { pinger } else { answerer };
        if (client != pinger && client != answerer)
            || !from.eq_ignore_ascii_case(&self.names[expected_from])
            || payload.seq >= pair.sent
        {
            pair.integrity.unexpected += 1;
            return;
        }
        if client == answerer {
            let arrival = pair.pings.arrive(payload.seq);
            pair.integrity.count(arrival);
            if arrival != Arrival::Duplicate
                && let Some(out) = net.out(answerer)
            {
                self.proto.dm(out, &self.names[pinger], text);
            }
            return;
        }
        let arrival = pair.replies.arrive(payload.seq);
        pair.integrity.count(arrival);
        if arrival == Arrival::Duplicate {
            return;
        }
        pair.answered += 1;
        self.round_trips += 1;
        self.latency
            .record(net.read_ns().saturating_sub(payload.sent_ns) / 1000);
        self.last_reply_ns = net.read_ns();
        self.dirty.push(p);
    }

    fn closed(&mut self, net: &mut Net, client: usize, why: &ConnError) {
        net.abort(format!("client {} lost: {why}", net.name(client)));
    }

    fn tick(&mut self, net: &mut Net) -> Option<Instant> {
        let streams = self.pairs.len();
        if !roundtrip::ready_to_send(&mut self.started, &mut self.dirty, net, streams) {
            return None;
        }
        while let Some(p) = self.dirty.pop() {
            self.fill(net, p);
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

/// Runs `pairs`.
pub(crate) fn run(run: &Run, args: &Args) -> Result<Report, Error> {
    if args.clients < 2 {
        return Err(Error::Usage("pairs needs --clients 2 or more".into()));
    }
    if args.size > run.proto.max_payload() {
        return Err(Error::Usage(format!(
            "--size {} is over {} bytes, the most one line of the {} dialect carries",
            args.size,
            run.proto.max_payload(),
            run.proto.name()
        )));
    }
    let mut driver = Pairs {
        proto: run.proto,
        tag: run.tag.clone(),
        names: (0..args.clients)
            .map(|i| format!("{}{i}", run.prefix))
            .collect(),
        messages: args.messages,
        window: args.window,
        size: args.size,
        pairs: (0..args.clients / 2).map(|_| Pair::default()).collect(),
        started: None,
        last_reply_ns: 0,
        latency: Histogram::default(),
        dirty: Vec::new(),
        round_trips: 0,
        stray: 0,
        text: String::with_capacity(args.size + 64),
    };
    let setup = run.setup(run.proto, args.clients, 0);
    let (outcome, _net) = run.execute(setup, &mut driver)?;
    let mut report = run.report("pairs", run.proto, &outcome);
    let mut total = Integrity {
        unexpected: driver.stray,
        ..Integrity::default()
    };
    let per: Vec<Json> = driver
        .pairs
        .iter_mut()
        .enumerate()
        .map(|(p, pair)| {
            pair.integrity.lost += pair.pings.lost() + pair.replies.lost();
            pair.integrity.undelivered += u64::from(pair.sent - pair.answered);
            total.add(&pair.integrity);
            let mut members = vec![("pair", Json::from(p)), ("sent", Json::from(pair.sent))];
            members.extend(pair.integrity.members());
            Json::obj(members)
        })
        .collect();
    let span = span_s(run, driver.started, driver.last_reply_ns);
    report.figures = vec![
        ("clients", Json::from(args.clients)),
        ("pairs", Json::from(driver.pairs.len())),
        ("messages_per_pair", Json::from(args.messages)),
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
    report.figures.push(("per_pair", Json::Arr(per)));
    report.clean = total.is_clean();
    Ok(report)
}
