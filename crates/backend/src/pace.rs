//! Bandwidth limits (`--limit-upload`, `--limit-download`): each transfer
//! books its share of the line after those before it and waits until its
//! share has elapsed, so the average rate over all threads stays under the
//! limit, even for a single large transfer.
//!
//! OpenDAL's throttle layer limits writes only and refuses a single write
//! larger than its burst (a whole pack), hence this small scheduler.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate limit shared by all threads of one direction.
#[derive(Debug)]
pub struct Pacer {
    bytes_per_second: u64,
    /// When the line is free again after the transfers booked so far.
    free_at: Mutex<Instant>,
}

impl Pacer {
    /// A limit of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Self {
        Self { bytes_per_second: bytes_per_second.max(1), free_at: Mutex::new(Instant::now()) }
    }

    /// Books `bytes` and returns how long to wait before sending them.
    fn book(&self, bytes: u64, now: Instant) -> Duration {
        let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let start = (*free_at).max(now);
        *free_at = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        *free_at - now
    }

    /// Waits for the slot of a transfer of `bytes`.
    pub fn wait(&self, bytes: u64) {
        let d = self.book(bytes, Instant::now());
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_queue_behind_each_other_at_the_rate() {
        let p = Pacer::new(1000);
        let t = Instant::now();
        assert_eq!(p.book(500, t), Duration::from_millis(500));
        assert_eq!(p.book(1000, t), Duration::from_millis(1500));
        assert_eq!(p.book(10, t), Duration::from_millis(1510));
        // An idle line does not bank credit.
        let later = t + Duration::from_secs(10);
        assert_eq!(p.book(10, later), Duration::from_millis(10));
    }
}
