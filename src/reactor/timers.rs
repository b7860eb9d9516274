//! Deadlines kept in one heap, so the loop knows how long it may sleep and
//! nothing is polled per connection.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::core::ConnId;

/// What to do when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// A closing connection that has not flushed by now is dropped.
    CloseDeadline(ConnId),
    /// Try accepting again after running out of file descriptors.
    ResumeAccept,
    /// A connection slowed down by flood control may be read again.
    Resume(ConnId),
    /// A connection that has not logged in by now is closed.
    LoginDeadline(ConnId),
    /// Time for the periodic stats log line.
    StatsLog,
    /// Check whether a connection has been idle too long (keepalive `PING`).
    Ping(ConnId),
}

/// A min-heap of deadlines. Timers are never cancelled: one whose subject is
/// gone is simply ignored when it fires.
#[derive(Debug)]
pub(crate) struct Timers {
    /// Deadlines are kept as nanoseconds since this instant: 8 bytes instead
    /// of an `Instant`'s 16, in a heap with one or two entries per connection.
    base: Instant,
    heap: BinaryHeap<Reverse<(u64, Timer)>>,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            base: Instant::now(),
            heap: BinaryHeap::new(),
        }
    }
}

impl Timers {
    /// Fires `timer` at `at`.
    pub(crate) fn add(&mut self, at: Instant, timer: Timer) {
        self.heap.push(Reverse((self.since_base(at), timer)));
    }

    /// How long until the next deadline (`None`: no timers).
    pub(crate) fn next_in(&self, now: Instant) -> Option<Duration> {
        let now = self.since_base(now);
        self.heap
            .peek()
            .map(|Reverse((at, _))| Duration::from_nanos(at.saturating_sub(now)))
    }

    /// The next timer due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let now = self.since_base(now);
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse((_, t))| t),
            _ => None,
        }
    }

    /// Nanoseconds from `base` to `at` (0 before it; 584 years fit).
    fn since_base(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.base).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_order() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.add(now + Duration::from_millis(20), Timer::ResumeAccept);
        t.add(
            now + Duration::from_millis(10),
            Timer::CloseDeadline(ConnId(7)),
        );
        assert_eq!(t.next_in(now), Some(Duration::from_millis(10)));
        assert_eq!(t.pop_due(now), None);
        let later = now + Duration::from_millis(30);
        assert_eq!(t.pop_due(later), Some(Timer::CloseDeadline(ConnId(7))));
        assert_eq!(t.pop_due(later), Some(Timer::ResumeAccept));
        assert_eq!(t.pop_due(later), None);
    }

    #[test]
    fn a_deadline_before_the_base_is_due_at_once() {
        let before = Instant::now();
        let mut t = Timers::default();
        t.add(before, Timer::StatsLog);
        assert_eq!(t.next_in(Instant::now()), Some(Duration::ZERO));
        assert_eq!(t.pop_due(Instant::now()), Some(Timer::StatsLog));
    }
}
