//! Pacing of work whose cost grows with the number of Services.
//!
//! Handing the plan to the drivers and comparing the status objects wanted with those
//! observed both walk every Service. Run once per watch event, that is O(Services) per
//! event: 10,000 Services arriving one by one cost O(Services²) on every node, and the
//! speakers' CPU is taken from the API server they share a machine with. A [`Pacer`] lets
//! such work run at once when it has been quiet, and otherwise not before its last run's
//! duration times `factor` has passed since that run ended: while events keep coming, the
//! work takes at most 1/(1 + factor) of a core, and each run takes every event that came
//! meanwhile. Small clusters see no delay (a run over a few hundred Services takes well
//! under a millisecond); a large one trades a delay of `factor` runs for the CPU.

use std::time::Duration;

use tokio::time::Instant;

/// Paces one kind of work (see the module comment).
#[derive(Debug, Clone)]
pub struct Pacer {
    factor: u32,
    /// At most this long between runs while work is pending, however long a run took.
    max_pause: Duration,
    not_before: Option<Instant>,
    last_run: Duration,
}

impl Pacer {
    /// Pauses `factor` times the last run's duration, at most `max_pause`.
    pub fn new(factor: u32, max_pause: Duration) -> Self {
        Pacer {
            factor,
            max_pause,
            not_before: None,
            last_run: Duration::ZERO,
        }
    }

    /// The earliest the next run may start; `None`: now.
    pub fn not_before(&self) -> Option<Instant> {
        self.not_before
    }

    /// Whether a run may start at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// Records a run that began at `started` and ended at `ended`.
    pub fn ran(&mut self, started: Instant, ended: Instant) {
        let took = ended.saturating_duration_since(started);
        self.last_run = took;
        let pause = took.saturating_mul(self.factor).min(self.max_pause);
        self.not_before = Some(ended + pause);
    }

    /// How long the last run took.
    pub fn last_run(&self) -> Duration {
        self.last_run
    }
}

/// Sleeps until `at`; never returns for `None` (a `select!` branch that is off).
pub async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_run_is_due_at_once() {
        let p = Pacer::new(4, Duration::from_secs(1));
        assert!(p.due(Instant::now()));
        assert_eq!(p.not_before(), None);
    }

    #[test]
    fn the_pause_is_the_run_times_the_factor_after_its_end() {
        let mut p = Pacer::new(4, Duration::from_secs(1));
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(10);
        p.ran(t0, end);
        assert_eq!(p.last_run(), Duration::from_millis(10));
        assert_eq!(p.not_before(), Some(end + Duration::from_millis(40)));
        assert!(!p.due(end + Duration::from_millis(39)));
        assert!(p.due(end + Duration::from_millis(40)));
    }

    #[test]
    fn the_pause_is_bounded() {
        let mut p = Pacer::new(4, Duration::from_millis(250));
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(1);
        p.ran(t0, end);
        assert_eq!(p.not_before(), Some(end + Duration::from_millis(250)));
    }

    #[test]
    fn a_quick_run_leaves_the_next_due_almost_at_once() {
        let mut p = Pacer::new(4, Duration::from_secs(1));
        let t0 = Instant::now();
        p.ran(t0, t0 + Duration::from_micros(50));
        assert!(p.due(t0 + Duration::from_micros(250)));
    }
}
