//! Measuring and reporting: a log-linear latency histogram, the per-stream
//! order check that finds lost, duplicated and reordered messages, and the
//! report (a human table, or one hand-written JSON object).

use std::fmt::{self, Write as _};

/// Values below this are counted exactly (one bucket each).
const EXACT: u64 = 128;
/// Buckets per power of two above [`EXACT`]: a bucket spans at most 1/64 of
/// its value, so every percentile is within 1.6 % (the exact maximum is kept
/// separately).
const SUB: u64 = 64;

/// A latency histogram in microseconds, log-linear like HdrHistogram: fixed
/// memory (about 30 KiB) whatever the number of samples.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    /// Sample counts per bucket, see [`bucket`].
    counts: Vec<u64>,
    /// How many samples.
    total: u64,
    /// Sum of all samples, for the mean.
    sum: u128,
    /// The largest sample, exactly.
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; bucket(u64::MAX) + 1],
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

/// The bucket of `v`: exact below [`EXACT`], then [`SUB`] buckets for each
/// power of two.
fn bucket(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let msb = 63 - u64::from(v.leading_zeros()); // >= 7
    let shift = msb - 6; // >= 1; v >> shift is in 64..128
    let sub = (v >> shift) - SUB;
    (EXACT + (shift - 1) * SUB + sub) as usize
}

/// The largest value that falls in bucket `i`.
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let shift = (i - EXACT) / SUB + 1;
    let sub = (i - EXACT) % SUB + SUB;
    // The top bucket's bound is 2^64 - 1: compute it in u128.
    ((u128::from(sub + 1) << shift) - 1).min(u128::from(u64::MAX)) as u64
}

impl Histogram {
    /// Counts one sample.
    pub(crate) fn record(&mut self, us: u64) {
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.sum += u128::from(us);
        self.max = self.max.max(us);
    }

    /// The value at quantile `q` (0..=1, nearest rank), as the top of its
    /// bucket but never above the exact maximum; 0 without samples.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(i).min(self.max);
            }
        }
        self.max
    }

    /// The mean, 0 without samples.
    pub(crate) fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The summary every report shows: count, mean, p50, p99, p999, max.
    pub(crate) fn summary(&self) -> Json {
        Json::obj([
            ("count", Json::from(self.total)),
            ("mean", Json::Float(self.mean())),
            ("p50", Json::from(self.quantile(0.5))),
            ("p99", Json::from(self.quantile(0.99))),
            ("p999", Json::from(self.quantile(0.999))),
            ("max", Json::from(self.max)),
        ])
    }
}

/// Order check of one stream (one source as seen by one receiver), where
/// the source numbers its messages 0, 1, 2, ... and TCP plus a correct
/// server deliver them in that order, each once.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqCheck {
    /// The next sequence number expected.
    next: u32,
    /// Numbers skipped over by a later arrival and not seen yet. Tiny: a
    /// source keeps at most a window of messages in flight.
    missing: Vec<u32>,
}

/// What one arrival was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The next one, in order.
    InOrder,
    /// A new one, but after a later one (something was skipped, or this one
    /// was).
    Reordered,
    /// Seen before.
    Duplicate,
}

impl SeqCheck {
    /// Checks an arrival of `seq`.
    pub(crate) fn arrive(&mut self, seq: u32) -> Arrival {
        if seq == self.next {
            self.next += 1;
            Arrival::InOrder
        } else if seq > self.next {
            self.missing.extend(self.next..seq);
            self.next = seq + 1;
            Arrival::Reordered
        } else if let Some(i) = self.missing.iter().position(|&m| m == seq) {
            self.missing.swap_remove(i);
            Arrival::Reordered
        } else {
            Arrival::Duplicate
        }
    }

    /// Messages skipped over by later ones and never seen: lost, since the
    /// server must keep one source's order.
    pub(crate) fn lost(&self) -> u64 {
        self.missing.len() as u64
    }

    /// How many distinct messages arrived.
    pub(crate) fn received(&self) -> u64 {
        u64::from(self.next) - self.lost()
    }
}

/// The integrity counters of a scenario, totalled or per source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Integrity {
    /// Skipped over by a later message of the same source and never seen.
    pub(crate) lost: u64,
    /// Seen twice or more.
    pub(crate) duplicated: u64,
    /// Seen after a later message of the same source.
    pub(crate) reordered: u64,
    /// Sent but not (yet) received when the run stopped, with nothing later
    /// from the source seen either: in flight. Zero in a complete run.
    pub(crate) undelivered: u64,
    /// Lines the server should not have sent us: a message for a room the
    /// receiver is not in, a reply from the wrong peer, a message number
    /// that was never sent.
    pub(crate) unexpected: u64,
}

impl Integrity {
    /// Counts one arrival.
    pub(crate) fn count(&mut self, arrival: Arrival) {
        match arrival {
            Arrival::InOrder => {}
            Arrival::Reordered => self.reordered += 1,
            Arrival::Duplicate => self.duplicated += 1,
        }
    }

    /// Adds another's counts.
    pub(crate) fn add(&mut self, other: &Integrity) {
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.undelivered += other.undelivered;
        self.unexpected += other.unexpected;
    }

    /// Whether anything went wrong (undelivered messages only mean the run
    /// was cut short, which is reported on its own).
    pub(crate) fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0 && self.unexpected == 0
    }

    /// The counters as JSON members.
    pub(crate) fn members(&self) -> Vec<(&'static str, Json)> {
        vec![
            ("lost", Json::from(self.lost)),
            ("duplicated", Json::from(self.duplicated)),
            ("reordered", Json::from(self.reordered)),
            ("undelivered", Json::from(self.undelivered)),
            ("unexpected", Json::from(self.unexpected)),
        ]
    }
}

/// A JSON value, written by hand (no serde in this project).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An unsigned integer.
    Int(u64),
    /// A number with a fraction, written with 3 decimals (`null` if not finite).
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, members in insertion order.
    Obj(Vec<(String, Json)>),
}

impl From<u64> for Json {
    fn from(v: u64) -> Self {
        Json::Int(v)
    }
}

impl From<usize> for Json {
    fn from(v: usize) -> Self {
        Json::Int(v as u64)
    }
}

impl From<u32> for Json {
    fn from(v: u32) -> Self {
        Json::Int(u64::from(v))
    }
}

impl From<bool> for Json {
    fn from(v: bool) -> Self {
        Json::Bool(v)
    }
}

impl From<&str> for Json {
    fn from(v: &str) -> Self {
        Json::Str(v.to_string())
    }
}

impl Json {
    /// An object from `(name, value)` pairs.
    pub(crate) fn obj<'a>(members: impl IntoIterator<Item = (&'a str, Json)>) -> Json {
        Json::Obj(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Int(i) => write!(f, "{i}"),
            Json::Float(x) if x.is_finite() => write!(f, "{x:.3}"),
            Json::Float(_) => f.write_str("null"),
            Json::Str(s) => write_json_str(f, s),
            Json::Arr(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Json::Obj(members) => {
                f.write_char('{')?;
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_json_str(f, k)?;
                    write!(f, ":{v}")?;
                }
                f.write_char('}')
            }
        }
    }
}

fn write_json_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// The outcome of one run: what every report has, then the scenario's own
/// figures.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// `connect`, `fanout`, `pairs` or `echo`.
    pub(crate) scenario: &'static str,
    /// The dialect's name.
    pub(crate) dialect: &'static str,
    /// The address loaded.
    pub(crate) server: String,
    /// Whether the run did everything it set out to.
    pub(crate) complete: bool,
    /// Why not, when it did not.
    pub(crate) reason: Option<String>,
    /// Wall time of the whole run, seconds.
    pub(crate) elapsed_s: f64,
    /// The scenario's figures, in order.
    pub(crate) figures: Vec<(&'static str, Json)>,
    /// Whether lost/duplicated/reordered/unexpected were all zero.
    pub(crate) clean: bool,
}

impl Report {
    /// The whole report as one JSON object on one line.
    pub(crate) fn json(&self) -> Json {
        let mut members = vec![
            ("scenario", Json::from(self.scenario)),
            ("dialect", Json::from(self.dialect)),
            ("server", Json::from(self.server.as_str())),
            ("complete", Json::from(self.complete)),
            ("ok", Json::from(self.ok())),
            (
                "reason",
                self.reason
                    .as_deref()
                    .map_or(Json::Null, |r| Json::Str(r.to_string())),
            ),
            ("elapsed_s", Json::Float(self.elapsed_s)),
        ];
        members.extend(self.figures.iter().cloned());
        Json::obj(members)
    }

    /// Complete and clean: the exit status is 0 exactly then.
    pub(crate) fn ok(&self) -> bool {
        self.complete && self.clean
    }

    /// A table for people: one figure a row, histograms spelled out.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let status = match (&self.reason, self.complete) {
            (_, true) => "complete".to_string(),
            (Some(r), false) => format!("INCOMPLETE: {r}"),
            (None, false) => "INCOMPLETE".to_string(),
        };
        let _ = writeln!(
            out,
            "chat-bench {} ({} dialect) against {}: {status}",
            self.scenario, self.dialect, self.server
        );
        let _ = writeln!(out, "  {:<28} {:.3}", "elapsed_s", self.elapsed_s);
        for (name, value) in &self.figures {
            match value {
                Json::Obj(members) => {
                    let cells: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("{k} {}", plain(v)))
                        .collect();
                    let _ = writeln!(out, "  {name:<28} {}", cells.join("  "));
                }
                Json::Arr(items) => {
                    // Per-source rows: only those with something to say;
                    // `--json` lists them all.
                    let shown: Vec<&Json> = items.iter().filter(|i| has_nonzero(i)).collect();
                    if items.is_empty() {
                        let _ = writeln!(out, "  {name:<28} none");
                    } else if shown.is_empty() {
                        let _ = writeln!(out, "  {name:<28} {} rows, all zero", items.len());
                    } else {
                        let _ = writeln!(out, "  {name}:");
                        for item in shown {
                            let _ = writeln!(out, "    {}", plain(item));
                        }
                    }
                }
                other => {
                    let _ = writeln!(out, "  {name:<28} {}", plain(other));
                }
            }
        }
        if !self.clean {
            let _ = writeln!(
                out,
                "!!! MESSAGES LOST, DUPLICATED, REORDERED OR UNEXPECTED: see the counts above !!!"
            );
        }
        out
    }
}

/// Whether a per-source row counts a problem: an integer member after its
/// first two (the index and the number sent) that is not 0; anything that
/// is not such a row (a failure text) always shows.
fn has_nonzero(row: &Json) -> bool {
    match row {
        Json::Obj(members) => members
            .iter()
            .skip(2)
            .any(|(_, v)| !matches!(v, Json::Int(0))),
        _ => true,
    }
}

/// A value for the table: strings unquoted, objects as `k v` pairs.
fn plain(v: &Json) -> String {
    match v {
        Json::Str(s) => s.clone(),
        Json::Obj(members) => members
            .iter()
            .map(|(k, v)| format!("{k} {}", plain(v)))
            .collect::<Vec<_>>()
            .join("  "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut prev_high = None;
        for i in 0..bucket(u64::from(u32::MAX)) {
            let high = bucket_high(i);
            if let Some(p) = prev_high {
                assert_eq!(bucket(p + 1), i, "value {} after bucket {}", p + 1, i - 1);
            }
            assert_eq!(bucket(high), i);
            prev_high = Some(high);
        }
        for v in [128u64, 1000, 123_456, 9_999_999] {
            let high = bucket_high(bucket(v));
            assert!(
                high >= v && (high - v) as f64 <= v as f64 / 64.0,
                "{v} -> {high}"
            );
        }
        assert_eq!(bucket_high(bucket(u64::MAX)), u64::MAX);
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000u64 {
            h.record(v);
        }
        assert_eq!(h.total, 1000);
        let p50 = h.quantile(0.5);
        assert!((500..=508).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990..=1000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1000);
        assert_eq!(h.quantile(0.999), 999);
        let mut top = Histogram::default();
        top.record(1001);
        assert_eq!(bucket_high(bucket(1001)), 1007);
        assert_eq!(top.quantile(0.5), 1001, "clamped to the exact max");
        assert!((h.mean() - 500.5).abs() < 1e-9);
        let mut small = Histogram::default();
        small.record(7);
        assert_eq!(small.quantile(0.5), 7);
        assert_eq!(small.quantile(0.999), 7);
    }

    #[test]
    fn seq_check_counts() {
        let mut c = SeqCheck::default();
        let mut i = Integrity::default();
        for seq in [0, 1, 3, 2, 2, 4, 6] {
            i.count(c.arrive(seq));
        }
        // 3 skipped 2 (reorder), 2 came late (reorder), 2 again (dup),
        // 6 skipped 5 (reorder, and 5 is lost).
        assert_eq!(i.reordered, 3);
        assert_eq!(i.duplicated, 1);
        assert_eq!(c.lost(), 1);
        assert_eq!(c.received(), 6);
    }

    #[test]
    fn json_writing() {
        let j = Json::obj([
            ("a", Json::from(1u64)),
            ("s", Json::from("q\"\\\n\u{1}")),
            ("f", Json::Float(1.5)),
            ("n", Json::Float(f64::NAN)),
            ("arr", Json::Arr(vec![Json::Null, Json::Bool(false)])),
        ]);
        assert_eq!(
            j.to_string(),
            r#"{"a":1,"s":"q\"\\\n\u0001","f":1.500,"n":null,"arr":[null,false]}"#
        );
    }
}
