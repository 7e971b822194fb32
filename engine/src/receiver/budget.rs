//! `[ingest] max_body_bytes_in_flight`: one budget for the bytes of request bodies that all the
//! receivers hold at once. A body takes its bytes from the budget as they arrive and gives them
//! back when its request has been answered; a request whose next bytes do not fit is refused
//! (429 with `Retry-After`, gRPC RESOURCE_EXHAUSTED with `RetryInfo`), so a crowd of large or
//! slow bodies cannot take more memory than the budget. Inflating and decoding a body happen
//! after it is complete, without waiting on the client.
//!
//! The gauge `tracebudget_ingest_body_bytes_in_flight` is the count itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::metrics::gauge::Gauge;

/// The shared budget.
#[derive(Debug)]
pub struct BodyBudget {
    limit: u64,
    in_flight: Gauge,
}

/// The next bytes of a body do not fit in the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    pub limit: u64,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request bodies in flight would exceed max_body_bytes_in_flight ({} bytes): retry after {}s",
            self.limit,
            super::refusal::RETRY_AFTER.as_secs()
        )
    }
}

impl std::error::Error for OverBudget {}

impl BodyBudget {
    /// A budget of `limit` bytes, counted in `in_flight`.
    pub fn new(limit: u64, in_flight: Gauge) -> Arc<BodyBudget> {
        Arc::new(BodyBudget { limit, in_flight })
    }

    /// The bytes held now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// An empty hold for one request's body.
    pub fn hold(self: &Arc<Self>) -> Hold {
        Hold {
            budget: self.clone(),
            held: AtomicI64::new(0),
        }
    }
}

/// The bytes one request holds; given back when dropped.
#[derive(Debug)]
pub struct Hold {
    budget: Arc<BodyBudget>,
    held: AtomicI64,
}

impl Hold {
    /// Takes `n` more bytes, or none when they do not fit.
    pub fn take(&self, n: usize) -> Result<(), OverBudget> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let limit = i64::try_from(self.budget.limit).unwrap_or(i64::MAX);
        let before = self.budget.in_flight.inc_by(n);
        if before.saturating_add(n) > limit {
            self.budget.in_flight.dec_by(n);
            return Err(OverBudget {
                limit: self.budget.limit,
            });
        }
        self.held.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.budget.in_flight.dec_by(*self.held.get_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_taken_while_they_fit_and_given_back_with_the_hold() {
        let budget = BodyBudget::new(100, Gauge::default());
        let a = budget.hold();
        let b = budget.hold();
        // (hold, bytes, fits, in flight after)
        let steps: [(&Hold, usize, bool, i64); 6] = [
            (&a, 60, true, 60),
            (&b, 30, true, 90),
            (&b, 11, false, 90),
            (&a, 10, true, 100),
            (&b, 1, false, 100),
            (&b, 0, true, 100),
        ];
        for (i, (hold, n, fits, after)) in steps.into_iter().enumerate() {
            assert_eq!(hold.take(n).is_ok(), fits, "step {i}");
            assert_eq!(budget.in_flight(), after, "step {i}");
        }
        drop(a);
        assert_eq!(budget.in_flight(), 30);
        drop(b);
        assert_eq!(budget.in_flight(), 0);
        assert_eq!(
            budget.hold().take(101).unwrap_err().to_string(),
            "request bodies in flight would exceed max_body_bytes_in_flight (100 bytes): retry after 1s"
        );
        assert_eq!(budget.in_flight(), 0);
    }
}
