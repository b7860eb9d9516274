//! Per-connection flood control: a token bucket on lines. A connection that
//! runs out is not answered with an error and loses nothing: the reactor
//! stops reading it until the next token is due (fake lag, as IRC daemons do),
//! so TCP flow control pushes back on the sender.

use std::time::{Duration, Instant};

use crate::config::Rate;

/// Thousandths of a line, so refills need no floating point.
const MILLI: u64 = 1000;

/// One connection's allowance of lines.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    rate: Rate,
    /// Allowance in thousandths of a line (at most `burst * MILLI`).
    milli: u64,
    /// When `milli` was last brought up to date.
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(rate: Rate, now: Instant) -> Self {
        Bucket {
            rate,
            milli: u64::from(rate.burst) * MILLI,
            last: now,
        }
    }

    /// Takes one line's allowance; false when there is none left.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.milli >= MILLI {
            self.milli -= MILLI;
            true
        } else {
            false
        }
    }

    /// Whether a line could be taken now.
    pub(crate) fn has_token(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.milli >= MILLI
    }

    /// How long until the next whole line is allowed.
    pub(crate) fn next_token_in(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let missing = MILLI.saturating_sub(self.milli);
        // `per_sec` thousandths arrive per millisecond.
        Duration::from_millis(missing.div_ceil(u64::from(self.rate.per_sec)))
    }

    fn refill(&mut self, now: Instant) {
        let ms = now.saturating_duration_since(self.last).as_millis() as u64;
        if ms == 0 {
            return;
        }
        let cap = u64::from(self.rate.burst) * MILLI;
        self.milli = (self.milli + ms.saturating_mul(u64::from(self.rate.per_sec))).min(cap);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            Rate {
                per_sec: 10,
                burst: 3,
            },
            t0,
        );
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert_eq!(b.next_token_in(t0), Duration::from_millis(100));
        assert!(!b.take(t0 + Duration::from_millis(99)));
        assert!(b.take(t0 + Duration::from_millis(100)));
        // A long quiet spell refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| b.take(later)));
        assert!(!b.has_token(later));
    }
}
