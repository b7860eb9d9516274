//! The reactor's counters, and the report `/stats` and the periodic log line
//! are made of (the core's counts plus these).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::core::Counts;

/// Distinct disconnect reasons counted; further ones go under "other".
const MAX_REASONS: usize = 32;

/// What the reactor counts.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) started: Instant,
    pub(crate) accepted: u64,
    /// Connections turned away by `--max-clients` or `--max-per-ip`.
    pub(crate) refused: u64,
    pub(crate) lines_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    /// Times a connection was slowed down by `--rate`.
    pub(crate) lagged: u64,
    pub(crate) disconnects: BTreeMap<&'static str, u64>,
}

impl Stats {
    pub(crate) fn new(now: Instant) -> Self {
        Stats {
            started: now,
            accepted: 0,
            refused: 0,
            lines_in: 0,
            bytes_in: 0,
            bytes_out: 0,
            lagged: 0,
            disconnects: BTreeMap::new(),
        }
    }

    /// Counts one disconnect.
    pub(crate) fn disconnected(&mut self, reason: &'static str) {
        let key = if self.disconnects.len() < MAX_REASONS || self.disconnects.contains_key(reason) {
            reason
        } else {
            "other"
        };
        *self.disconnects.entry(key).or_default() += 1;
    }

    /// Every counter by name, in a stable order.
    pub(crate) fn report(
        &self,
        now: Instant,
        core: Counts,
        bytes_queued: u64,
    ) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = [
            (
                "uptime-seconds",
                now.saturating_duration_since(self.started).as_secs(),
            ),
            ("connections", core.connections as u64),
            ("users", core.users as u64),
            ("accounts", core.accounts as u64),
            ("rooms", core.rooms as u64),
            ("messages-in", core.messages_in),
            ("deliveries-out", core.deliveries_out),
            ("lines-in", self.lines_in),
            ("bytes-in", self.bytes_in),
            ("bytes-out", self.bytes_out),
            ("bytes-queued", bytes_queued),
            ("connections-accepted", self.accepted),
            ("connections-refused", self.refused),
            ("rate-limited", self.lagged),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        out.extend(
            self.disconnects
                .iter()
                .map(|(reason, n)| (format!("disconnects:{}", reason.replace(' ', "-")), *n)),
        );
        out
    }
}

/// One log line: `key=value ...`.
pub(crate) fn log_line(report: &[(String, u64)]) -> String {
    report
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_bounded() {
        let mut stats = Stats::new(Instant::now());
        let reasons: Vec<&'static str> = (0..40).map(|i| &*format!("r{i}").leak()).collect();
        for r in &reasons {
            stats.disconnected(r);
        }
        stats.disconnected("r0");
        assert_eq!(stats.disconnects.len(), MAX_REASONS + 1);
        assert_eq!(stats.disconnects["r0"], 2);
        assert_eq!(stats.disconnects["other"], 8);
        let report = stats.report(stats.started, Counts::default(), 5);
        assert!(report.contains(&("bytes-queued".to_string(), 5)));
        assert!(log_line(&report).starts_with("uptime-seconds=0 connections=0"));
    }
}
