//! `fanout`: clients spread round-robin over rooms `#bench0..#bench{R-1}`,
//! every one reading everything; senders (clients `0..S`, so also spread
//! round-robin over the rooms) each send K messages to their room, keeping
//! at most W in flight. A message is in flight until every other member of
//! its room has it. Optionally `--rate` caps the aggregate send rate, for
//! latency at a fixed load.
//!
//! Deliveries count only members other than the sender: IRC does not echo
//! a message to its sender and the line protocol does, so the line
//! protocol's echo is ignored and both dialects measure the same thing.
//! Every receiver checks each sender's sequence numbers: lost, duplicated
//! and reordered messages are counted per sender and must be zero.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::net::{ConnError, Driver, Net};
use crate::proto::{Incoming, Payload, Proto};
use crate::stats::{Arrival, Histogram, Integrity, Json, Report, SeqCheck};
use crate::{Error, Run, span_s};

/// Flags of `fanout`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How many clients (all of them read).
    #[arg(long, default_value_t = 100, value_parser = crate::parse_positive)]
    clients: usize,
    /// How many rooms to spread them over (#bench0 ..).
    #[arg(long, default_value_t = 1, value_parser = crate::parse_positive)]
    rooms: usize,
    /// How many of the clients send (clients 0..S, spread over the rooms).
    #[arg(long, default_value_t = 10, value_parser = crate::parse_positive)]
    senders: usize,
    /// Messages each sender sends.
    #[arg(long, default_value_t = 1000)]
    messages: u32,
    /// Cap on the aggregate send rate, messages per second (default: as
    /// fast as the windows allow).
    #[arg(long)]
    rate: Option<f64>,
    /// Messages each sender keeps in flight at most.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    window: u32,
    /// Payload size in bytes (it carries sender, sequence number and send
    /// time, padded to this size).
    #[arg(long, default_value_t = 80)]
    size: usize,
}

/// One sender's state.
#[derive(Debug)]
struct Sender {
    /// Its room.
    room: usize,
    /// Members of its room other than itself: receivers of each message.
    others: u32,
    /// Messages sent.
    sent: u32,
    /// The oldest message still in flight.
    base: u32,
    /// Receivers still waiting for messages `base`, `base + 1`, ...
    pending: VecDeque<u32>,
    /// What the receivers saw wrong in its messages.
    integrity: Integrity,
}

/// The `fanout` driver.
#[derive(Debug)]
struct Fanout {
    /// The clients' protocol.
    proto: Proto,
    /// Payload tag of this run.
    tag: String,
    /// Clients.
    clients: usize,
    /// Rooms.
    rooms: usize,
    /// Messages per sender.
    messages: u32,
    /// In flight per sender, at most.
    window: u32,
    /// Payload size.
    size: usize,
    /// Aggregate send rate cap.
    rate: Option<f64>,
    /// `#bench0`, `#bench1`, ...
    room_names: Vec<String>,
    /// Sender `s` is client `s`.
    senders: Vec<Sender>,
    /// Per client, one check per sender of its room (sender `s` is slot
    /// `s / rooms` of room `s % rooms`).
    checks: Vec<Vec<SeqCheck>>,
    /// When sending started (every client ready).
    started: Option<Instant>,
    /// When the last delivery arrived, ns on the run's clock.
    last_delivery_ns: u64,
    /// Deliveries to members other than the sender, each message once.
    deliveries: u64,
    /// Send-to-delivery latency, µs.
    latency: Histogram,
    /// Senders whose window opened since the last tick.
    dirty: Vec<usize>,
    /// Whether a sender is in `dirty`.
    in_dirty: Vec<bool>,
    /// Messages sent, all senders.
    sent_total: u64,
    /// Messages every receiver has, all senders.
    done_total: u64,
    /// Messages to send, all senders.
    total: u64,
    /// Round-robin cursor for rate-limited sending.
    next_sender: usize,
    /// Lines carrying this run's tag from a sender index that does not
    /// exist.
    stray: u64,
    /// Payload buffer.
    text: String,
}

impl Fanout {
    /// Sends one message from sender `s`.
    fn send_one(&mut self, net: &mut Net, s: usize) {
        let sender = &mut self.senders[s];
        let payload = Payload {
            source: s as u32,
            seq: sender.sent,
            sent_ns: net.clock().ns(),
        };
        payload.write(&mut self.text, &self.tag, self.size);
        if let Some(out) = net.out(s) {
            self.proto
                .say(out, &self.room_names[sender.room], &self.text);
        }
        sender.sent += 1;
        sender.pending.push_back(sender.others);
        self.sent_total += 1;
        self.retire(s);
    }

    /// Whether sender `s` may send now.
    fn can_send(&self, s: usize) -> bool {
        let sender = &self.senders[s];
        sender.sent < self.messages && sender.sent - sender.base < self.window
    }

    /// Drops sender `s`'s finished messages from the front of its window.
    fn retire(&mut self, s: usize) {
        let sender = &mut self.senders[s];
        let mut freed = false;
        while sender.pending.front() == Some(&0) {
            sender.pending.pop_front();
            sender.base += 1;
            self.done_total += 1;
            freed = true;
        }
        if freed && !self.in_dirty[s] {
            self.in_dirty[s] = true;
            self.dirty.push(s);
        }
    }

    /// A message of this run arrived at `client`.
    fn arrive(&mut self, client: usize, p: Payload, now_ns: u64) {
        let s = p.source as usize;
        if s >= self.senders.len() {
            self.stray += 1;
            return;
        }
        if s == client {
            // The line protocol's echo to the sender.
            return;
        }
        if s % self.rooms != client % self.rooms || p.seq >= self.senders[s].sent {
            self.senders[s].integrity.unexpected += 1;
            return;
        }
        let arrival = self.checks[client][s / self.rooms].arrive(p.seq);
        self.senders[s].integrity.count(arrival);
        if arrival == Arrival::Duplicate {
            return;
        }
        self.deliveries += 1;
        self.last_delivery_ns = now_ns;
        self.latency.record(now_ns.saturating_sub(p.sent_ns) / 1000);
        let sender = &mut self.senders[s];
        let Some(left) = p
            .seq
            .checked_sub(sender.base)
            .and_then(|i| sender.pending.get_mut(i as usize))
        else {
            sender.integrity.unexpected += 1;
            return;
        };
        *left = left.saturating_sub(1);
        if p.seq == sender.base {
            self.retire(s);
        }
    }

    /// Starts sending once every client is ready.
    fn start(&mut self, net: &Net) -> bool {
        if self.started.is_some() {
            return true;
        }
        if net.counts().ready < self.clients {
            return false;
        }
        self.started = Some(Instant::now());
        for s in 0..self.senders.len() {
            self.in_dirty[s] = true;
            self.dirty.push(s);
        }
        true
    }

    /// Sends with `--rate`: due messages round-robin over the senders with
    /// room in their window. Returns when the next one is due.
    fn send_paced(&mut self, net: &mut Net, rate: f64, started: Instant) -> Option<Instant> {
        self.dirty.clear();
        self.in_dirty.fill(false);
        let elapsed = started.elapsed().as_secs_f64();
        let due = ((elapsed * rate) as u64 + 1).min(self.total);
        while self.sent_total < due {
            let n = self.senders.len();
            let Some(s) = (0..n)
                .map(|i| (self.next_sender + i) % n)
                .find(|&s| self.can_send(s))
            else {
                // Every window is full: a delivery will call us again.
                return None;
            };
            self.next_sender = (s + 1) % n;
            self.send_one(net, s);
        }
        (self.sent_total < self.total)
            .then(|| started + Duration::from_secs_f64(self.sent_total as f64 / rate))
    }

    /// The final integrity counts: per sender, and in total.
    fn integrity(&self) -> (Vec<Integrity>, Integrity) {
        let mut per: Vec<Integrity> = self.senders.iter().map(|s| s.integrity).collect();
        for (client, checks) in self.checks.iter().enumerate() {
            let room = client % self.rooms;
            for (slot, check) in checks.iter().enumerate() {
                let s = room + slot * self.rooms;
                if s == client {
                    continue;
                }
                per[s].lost += check.lost();
                per[s].undelivered +=
                    u64::from(self.senders[s].sent).saturating_sub(check.received() + check.lost());
            }
        }
        let mut total = Integrity {
            unexpected: self.stray,
            ..Integrity::default()
        };
        for i in &per {
            total.add(i);
        }
        (per, total)
    }
}

impl Driver for Fanout {
    fn line(&mut self, net: &mut Net, client: usize, msg: Incoming<'_>) {
        if let Incoming::Room { text, .. } = msg
            && let Some(p) = Payload::parse(text, &self.tag)
        {
            self.arrive(client, p, net.read_ns());
        }
    }

    fn closed(&mut self, net: &mut Net, client: usize, why: &ConnError) {
        net.abort(format!("client {} lost: {why}", net.name(client)));
    }

    fn tick(&mut self, net: &mut Net) -> Option<Instant> {
        if !self.start(net) {
            return None;
        }
        let started = self.started?;
        if let Some(rate) = self.rate {
            return self.send_paced(net, rate, started);
        }
        while let Some(s) = self.dirty.pop() {
            self.in_dirty[s] = false;
            while self.can_send(s) {
                self.send_one(net, s);
            }
        }
        None
    }

    fn finished(&self, _net: &Net) -> bool {
        self.started.is_some() && self.done_total == self.total
    }

    fn progress(&self) -> String {
        format!(
            "sent {}/{} deliveries {} p50 {} us p99 {} us",
            self.sent_total,
            self.total,
            self.deliveries,
            self.latency.quantile(0.5),
            self.latency.quantile(0.99)
        )
    }
}

/// Runs `fanout`.
pub(crate) fn run(run: &Run, args: &Args) -> Result<Report, Error> {
    if args.rooms > args.clients {
        return Err(Error::Usage(format!(
            "--rooms {} is more than --clients {}",
            args.rooms, args.clients
        )));
    }
    if args.senders > args.clients {
        return Err(Error::Usage(format!(
            "--senders {} is more than --clients {}",
            args.senders, args.clients
        )));
    }
    if args.size > run.proto.max_payload() {
        return Err(Error::Usage(format!(
            "--size {} is over {} bytes, the most one line of the {} dialect carries",
            args.size,
            run.proto.max_payload(),
            run.proto.name()
        )));
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(Error::Usage("--rate must be above 0".into()));
    }
    let (n, r) = (args.clients, args.rooms);
    let members = |room: usize| n / r + usize::from(room < n % r);
    let senders_in = |room: usize| args.senders / r + usize::from(room < args.senders % r);
    let senders = (0..args.senders)
        .map(|s| Sender {
            room: s % r,
            others: (members(s % r) - 1) as u32,
            sent: 0,
            base: 0,
            pending: VecDeque::with_capacity(args.window as usize),
            integrity: Integrity::default(),
        })
        .collect();
    let mut driver = Fanout {
        proto: run.proto,
        tag: run.tag.clone(),
        clients: n,
        rooms: r,
        messages: args.messages,
        window: args.window,
        size: args.size,
        rate: args.rate,
        room_names: (0..r).map(|i| format!("#bench{i}")).collect(),
        senders,
        checks: (0..n)
            .map(|c| vec![SeqCheck::default(); senders_in(c % r)])
            .collect(),
        started: None,
        last_delivery_ns: 0,
        deliveries: 0,
        latency: Histogram::default(),
        dirty: Vec::new(),
        in_dirty: vec![false; args.senders],
        sent_total: 0,
        done_total: 0,
        total: args.senders as u64 * u64::from(args.messages),
        next_sender: 0,
        stray: 0,
        text: String::with_capacity(args.size + 64),
    };
    let setup = run.setup(run.proto, n, r);
    let (outcome, _net) = run.execute(setup, &mut driver)?;
    let mut report = run.report("fanout", run.proto, &outcome);
    let (per, total) = driver.integrity();
    let expected: u64 = driver
        .senders
        .iter()
        .map(|s| u64::from(s.sent) * u64::from(s.others))
        .sum();
    let start = run.clock.start();
    let setup_s = driver.started.map(|t| (t - start).as_secs_f64());
    let span = span_s(run, driver.started, driver.last_delivery_ns);
    let per_s = |count: u64| {
        if span > 0.0 {
            Json::Float(count as f64 / span)
        } else {
            Json::Null
        }
    };
    report.figures = vec![
        ("clients", Json::from(n)),
        ("rooms", Json::from(r)),
        ("senders", Json::from(args.senders)),
        ("messages_per_sender", Json::from(args.messages)),
        ("window", Json::from(args.window)),
        ("size", Json::from(args.size)),
        ("rate_cap", args.rate.map_or(Json::Null, Json::Float)),
        ("setup_s", setup_s.map_or(Json::Null, Json::Float)),
        ("send_s", Json::Float(span)),
        ("messages_sent", Json::from(driver.sent_total)),
        ("messages_done", Json::from(driver.done_total)),
        ("deliveries", Json::from(driver.deliveries)),
        ("expected_deliveries", Json::from(expected)),
        ("messages_per_s", per_s(driver.done_total)),
        ("deliveries_per_s", per_s(driver.deliveries)),
        ("latency_us", driver.latency.summary()),
    ];
    report.figures.extend(total.members());
    report.figures.push((
        "per_sender",
        Json::Arr(
            per.iter()
                .enumerate()
                .map(|(s, i)| {
                    let mut members = vec![
                        ("sender", Json::from(s)),
                        ("sent", Json::from(driver.senders[s].sent)),
                    ];
                    members.extend(i.members());
                    Json::obj(members)
                })
                .collect(),
        ),
    ));
    report.clean = total.is_clean();
    Ok(report)
}
