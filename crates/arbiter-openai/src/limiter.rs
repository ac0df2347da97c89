//! Adaptive concurrency: first-come first-served admission, halve on 429, grow by one after a
//! limit's worth of successes (AIMD, as inspect_ai and promptfoo do).
//!
//! Admission is strictly in ticket order, so requests leave in the order they were queued: a
//! sample's propositions stay back to back, which keeps the server's prefix cache warm.

use std::sync::Mutex;

use tokio::sync::Notify;

struct State {
    limit: usize,
    in_flight: usize,
    successes: usize,
    next_ticket: u64,
    issued: u64,
}

/// The limiter. Share it behind an `Arc`.
pub struct AdaptiveLimiter {
    state: Mutex<State>,
    max: usize,
    notify: Notify,
}

/// Holding one means a request may be in flight; dropping it frees the slot.
pub struct Permit<'a> {
    limiter: &'a AdaptiveLimiter,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.limiter.state.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.limiter.notify.notify_waiters();
    }
}

impl AdaptiveLimiter {
    /// Start at `initial` concurrent requests, never above `max` (both at least 1).
    pub fn new(initial: usize, max: usize) -> Self {
        let max = max.max(1);
        AdaptiveLimiter {
            state: Mutex::new(State {
                limit: initial.clamp(1, max),
                in_flight: 0,
                successes: 0,
                next_ticket: 0,
                issued: 0,
            }),
            max,
            notify: Notify::new(),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.state.lock().map(|s| s.limit).unwrap_or(1)
    }

    /// Reserve `n` consecutive tickets and return the first. Every reserved ticket must later be
    /// passed to [`AdaptiveLimiter::acquire`], or later tickets wait for ever.
    pub fn reserve(&self, n: usize) -> u64 {
        match self.state.lock() {
            Ok(mut s) => {
                let first = s.issued;
                s.issued += n as u64;
                first
            }
            Err(_) => 0,
        }
    }

    /// Wait for a slot. Tickets come from [`AdaptiveLimiter::reserve`]; each is admitted in order.
    pub async fn acquire(&self, ticket: u64) -> Permit<'_> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Ok(mut s) = self.state.lock()
                && s.next_ticket == ticket
                && s.in_flight < s.limit
            {
                s.in_flight += 1;
                s.next_ticket += 1;
                drop(s);
                self.notify.notify_waiters();
                return Permit { limiter: self };
            }
            notified.await;
        }
    }

    /// A request succeeded: after `limit` successes in a row, allow one more in flight.
    pub fn on_success(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.successes += 1;
            if s.successes >= s.limit && s.limit < self.max {
                s.limit += 1;
                s.successes = 0;
                drop(s);
                self.notify.notify_waiters();
            }
        }
    }

    /// The server said 429: halve the limit (at least 1).
    pub fn on_throttle(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.limit = (s.limit / 2).max(1);
            s.successes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_throttle_and_grows_back() {
        let l = AdaptiveLimiter::new(8, 10);
        l.on_throttle();
        assert_eq!(l.limit(), 4);
        l.on_throttle();
        l.on_throttle();
        l.on_throttle();
        assert_eq!(l.limit(), 1);
        l.on_success();
        assert_eq!(l.limit(), 2);
        for _ in 0..100 {
            l.on_success();
        }
        assert_eq!(l.limit(), 10);
    }

    #[test]
    fn admits_in_ticket_order_within_the_limit() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = std::sync::Arc::new(AdaptiveLimiter::new(2, 2));
            let order = std::sync::Arc::new(Mutex::new(Vec::new()));
            let mut tasks = tokio::task::JoinSet::new();
            // Spawn in reverse so spawn order differs from ticket order.
            assert_eq!(l.reserve(6), 0);
            for ticket in (0..6u64).rev() {
                let (l, order) = (l.clone(), order.clone());
                tasks.spawn(async move {
                    let _p = l.acquire(ticket).await;
                    order.lock().unwrap().push(ticket);
                    let in_flight = l.state.lock().unwrap().in_flight;
                    assert!(in_flight <= 2);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                });
            }
            while let Some(joined) = tasks.join_next().await {
                joined.unwrap();
            }
            assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
            // A second batch continues the numbering.
            assert_eq!(l.reserve(1), 6);
            drop(l.acquire(6).await);
        });
    }
}
