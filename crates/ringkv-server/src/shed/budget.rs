//! The one way every queue is bounded: a [`Budget`] of items and bytes,
//! taken by each item as it enters (a [`Permit`]) and given back when the
//! permit is dropped — when the item has been handled, written or thrown
//! away. The queue itself may be any channel; the budget is what bounds it.

use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A queue's limit: at most `count` items of at most `bytes` bytes
/// together — except that one item alone always fits an empty queue, so an
/// item larger than `bytes` (a big value, a full frame) is slowed to one at
/// a time, never refused for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bound {
    pub count: usize,
    pub bytes: usize,
}

impl Bound {
    /// This bound `times` over (for [`Priority::Reserved`]).
    fn scaled(self, times: usize) -> Bound {
        Bound {
            count: self.count.saturating_mul(times),
            bytes: self.bytes.saturating_mul(times),
        }
    }
}

/// Which limit a refused item hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    Count,
    Bytes,
}

/// How much of a queue an item may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// New work: only up to the bound, so it is shed first.
    Normal,
    /// What completes work already taken on (an answer to this node's own
    /// request): up to twice the bound, so it still gets in while new work
    /// is being shed, and is still bounded.
    Reserved,
}

/// What a queue holds now: items and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Held {
    pub count: usize,
    pub bytes: usize,
}

/// The room left in one queue. Shared by everything that adds to the
/// queue and every permit taken from it; lock-free.
#[derive(Debug)]
pub struct Budget {
    bound: Bound,
    count: AtomicUsize,
    bytes: AtomicUsize,
}

impl Budget {
    pub fn new(bound: Bound) -> Arc<Budget> {
        assert!(bound.count >= 1, "a queue must hold one item");
        Arc::new(Budget {
            bound,
            count: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        })
    }

    pub fn bound(&self) -> Bound {
        self.bound
    }

    /// Room for one item of `bytes`, or which limit it would cross. Never
    /// lets the queue exceed its bound (times two for
    /// [`Priority::Reserved`]), however many threads take at once: each
    /// checks the total its own addition made, and takes it back if over.
    pub fn try_take(self: &Arc<Self>, bytes: usize, priority: Priority) -> Result<Permit, Full> {
        let limit = match priority {
            Priority::Normal => self.bound,
            Priority::Reserved => self.bound.scaled(2),
        };
        if self.count.fetch_add(1, Ordering::AcqRel) >= limit.count {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Count);
        }
        let before = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before.saturating_add(bytes) > limit.bytes {
            self.release(bytes);
            return Err(Full::Bytes);
        }
        Ok(self.permit(bytes))
    }

    /// Room for one item already read, whatever the queue holds: for a
    /// queue whose producer waits for [`Budget::has_room`] before it reads
    /// (backpressure), so it exceeds its bound by one item at most.
    pub fn take(self: &Arc<Self>, bytes: usize) -> Permit {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.permit(bytes)
    }

    /// Whether another item may come in now (below both limits).
    pub fn has_room(&self) -> bool {
        let held = self.held();
        held.count < self.bound.count && held.bytes < self.bound.bytes
    }

    /// What the queue holds now.
    pub fn held(&self) -> Held {
        Held {
            count: self.count.load(Ordering::Acquire),
            bytes: self.bytes.load(Ordering::Acquire),
        }
    }

    fn permit(self: &Arc<Self>, bytes: usize) -> Permit {
        Permit {
            budget: Arc::clone(self),
            bytes,
        }
    }

    fn release(&self, bytes: usize) {
        let count = self.count.fetch_sub(1, Ordering::AcqRel);
        let held = self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(
            count >= 1 && held >= bytes,
            "a budget gave back more than it lent"
        );
    }
}

/// One item's share of a [`Budget`], given back on drop.
#[derive(Debug)]
pub struct Permit {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(count: usize, bytes: usize) -> Arc<Budget> {
        Budget::new(Bound { count, bytes })
    }

    #[test]
    fn a_budget_refuses_beyond_either_limit_and_takes_back_on_drop() {
        let b = budget(2, 100);
        let first = b.try_take(60, Priority::Normal).unwrap();
        assert_eq!(b.try_take(41, Priority::Normal).unwrap_err(), Full::Bytes);
        let second = b.try_take(40, Priority::Normal).unwrap();
        assert_eq!(b.try_take(0, Priority::Normal).unwrap_err(), Full::Count);
        assert_eq!(
            b.held(),
            Held {
                count: 2,
                bytes: 100
            }
        );
        drop(first);
        assert_eq!(
            b.held(),
            Held {
                count: 1,
                bytes: 40
            }
        );
        drop(second);
        assert_eq!(b.held(), Held::default());
    }

    #[test]
    fn one_item_larger_than_the_byte_limit_fits_an_empty_queue_alone() {
        let b = budget(10, 100);
        let big = b.try_take(1000, Priority::Normal).unwrap();
        assert_eq!(b.try_take(1, Priority::Normal).unwrap_err(), Full::Bytes);
        drop(big);
        assert!(b.try_take(1000, Priority::Normal).is_ok());
    }

    #[test]
    fn reserved_items_get_in_up_to_twice_the_bound() {
        let b = budget(2, 100);
        let _normal: Vec<Permit> = (0..2)
            .map(|_| b.try_take(10, Priority::Normal).unwrap())
            .collect();
        assert_eq!(b.try_take(10, Priority::Normal).unwrap_err(), Full::Count);
        let _reserved: Vec<Permit> = (0..2)
            .map(|_| b.try_take(10, Priority::Reserved).unwrap())
            .collect();
        assert_eq!(b.try_take(10, Priority::Reserved).unwrap_err(), Full::Count);
        assert_eq!(b.held().count, 4);
    }

    #[test]
    fn backpressure_takes_what_was_read_and_says_when_full() {
        let b = budget(2, 100);
        let _a = b.take(150);
        assert!(!b.has_room(), "over the byte limit");
        let c = budget(2, 100);
        let _a = c.take(1);
        assert!(c.has_room());
        let _b = c.take(1);
        assert!(!c.has_room(), "at the count limit");
    }

    #[test]
    fn racing_takers_never_hold_more_permits_than_the_bound() {
        let b = budget(8, 1 << 20);
        let (outstanding, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        if let Ok(permit) = b.try_take(1, Priority::Normal) {
                            let now = outstanding.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            outstanding.fetch_sub(1, Ordering::SeqCst);
                            drop(permit);
                        }
                    }
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 8);
        assert_eq!(b.held(), Held::default());
    }
}
