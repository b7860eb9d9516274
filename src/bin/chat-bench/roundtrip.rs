//! What the round-trip scenarios (`pairs`, `echo`) share: waiting until every
//! client is ready before the first send, the progress line, and the
//! round-trip figures of the report.

use std::time::Instant;

use crate::net::Net;
use crate::stats::{Histogram, Json};

/// Starts the run once every client is ready: sets `started` and marks all
/// `streams` for a first fill. Returns whether sending may go on.
pub(crate) fn ready_to_send(
    started: &mut Option<Instant>,
    dirty: &mut Vec<usize>,
    net: &Net,
    streams: usize,
) -> bool {
    if started.is_none() {
        if net.counts().ready < net.len() {
            return false;
        }
        *started = Some(Instant::now());
        *dirty = (0..streams).collect();
    }
    true
}

/// The progress line.
pub(crate) fn progress(round_trips: u64, total: u64, latency: &Histogram) -> String {
    format!(
        "round trips {round_trips}/{total} p50 {} us p99 {} us",
        latency.quantile(0.5),
        latency.quantile(0.99)
    )
}

/// The report's round-trip figures over `span` seconds of sending.
pub(crate) fn figures(
    span: f64,
    round_trips: u64,
    total: u64,
    latency: &Histogram,
) -> Vec<(&'static str, Json)> {
    let per_s = if span > 0.0 {
        Json::Float(round_trips as f64 / span)
    } else {
        Json::Null
    };
    vec![
        ("send_s", Json::Float(span)),
        ("round_trips", Json::from(round_trips)),
        ("expected_round_trips", Json::from(total)),
        ("round_trips_per_s", per_s),
        ("latency_us", latency.summary()),
    ]
}
