//! Token ranges: arcs of the ring between two consecutive vnode tokens.
//!
//! Every key in one range has the same preference list, so a range is the
//! unit in which replicas compare their data (anti-entropy).

use crate::ring::Token;
use serde::{Deserialize, Serialize};

/// The tokens after `start` up to and including `end`, wrapping past
/// `u64::MAX`. `start == end` is the whole circle (a ring with one vnode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenRange {
    pub start: Token,
    pub end: Token,
}

impl TokenRange {
    pub fn new(start: Token, end: Token) -> Self {
        TokenRange { start, end }
    }

    /// How many tokens the range holds (up to 2^64).
    pub fn len(&self) -> u128 {
        match self.end.wrapping_sub(self.start) {
            0 => 1u128 << 64,
            n => n as u128,
        }
    }

    /// Ranges are never empty; present for the usual `len`/`is_empty` pair.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Position of `token` within the range, `0..len()`; meaningful only
    /// when the range contains it.
    pub fn offset(&self, token: Token) -> u128 {
        token.wrapping_sub(self.start).wrapping_sub(1) as u128
    }

    pub fn contains(&self, token: Token) -> bool {
        self.offset(token) < self.len()
    }

    /// The range as at most two inclusive, non-wrapping intervals, in the
    /// order a clockwise walk visits them (what storage scans take).
    pub fn spans(&self) -> Vec<(Token, Token)> {
        let first = self.start.wrapping_add(1);
        if self.start == self.end {
            return if first == 0 {
                vec![(0, Token::MAX)]
            } else {
                vec![(first, Token::MAX), (0, self.end)]
            };
        }
        if first <= self.end && first != 0 {
            vec![(first, self.end)]
        } else if first == 0 {
            vec![(0, self.end)]
        } else {
            vec![(first, Token::MAX), (0, self.end)]
        }
    }

    /// Which of `parts` equal slices of the range `token` falls in.
    pub fn slice_of(&self, token: Token, parts: usize) -> usize {
        ((self.offset(token) * parts as u128) / self.len()) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_plain_range_holds_its_end_but_not_its_start() {
        let r = TokenRange::new(10, 20);
        assert!(!r.contains(10) && r.contains(11) && r.contains(20) && !r.contains(21));
        assert_eq!(r.len(), 10);
        assert_eq!(r.spans(), vec![(11, 20)]);
    }

    #[test]
    fn a_wrapping_range_splits_into_two_spans() {
        let r = TokenRange::new(u64::MAX - 1, 5);
        assert!(r.contains(u64::MAX) && r.contains(0) && r.contains(5) && !r.contains(6));
        assert_eq!(r.spans(), vec![(u64::MAX, u64::MAX), (0, 5)]);
        assert_eq!(TokenRange::new(u64::MAX, 5).spans(), vec![(0, 5)]);
    }

    #[test]
    fn start_equal_to_end_is_the_whole_circle() {
        let r = TokenRange::new(7, 7);
        assert_eq!(r.len(), 1 << 64);
        assert!(r.contains(7) && r.contains(8) && r.contains(6));
        assert_eq!(r.spans(), vec![(8, u64::MAX), (0, 7)]);
        assert_eq!(
            TokenRange::new(u64::MAX, u64::MAX).spans(),
            vec![(0, u64::MAX)]
        );
    }

    proptest! {
        #[test]
        fn spans_cover_exactly_the_range(start: u64, end: u64, t: u64) {
            let r = TokenRange::new(start, end);
            let in_spans = r.spans().iter().any(|&(a, b)| a <= t && t <= b);
            prop_assert_eq!(in_spans, r.contains(t));
            let total: u128 = r.spans().iter().map(|&(a, b)| (b - a) as u128 + 1).sum();
            prop_assert_eq!(total, r.len());
        }

        #[test]
        fn slices_are_in_bounds_and_ordered(start: u64, end: u64, a: u64, b: u64) {
            let r = TokenRange::new(start, end);
            prop_assume!(r.contains(a) && r.contains(b));
            prop_assert!(r.slice_of(a, 256) < 256);
            if r.offset(a) <= r.offset(b) {
                prop_assert!(r.slice_of(a, 256) <= r.slice_of(b, 256));
            }
        }
    }
}
