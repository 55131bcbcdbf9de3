//! `OrZSet`: a Redis sorted set as an [`OrMap`] from member to score — an
//! observed-remove map of last-write-wins registers, the way Redis
//! Enterprise's Active-Active databases merge sorted sets (a member added
//! concurrently with its removal stays; concurrent `ZADD`s of one member
//! keep the later score by `(timestamp, dot)`).
//!
//! A score is an `f64` (never NaN, as in Redis), stored as its 8 bytes.
//! Members rank by score, then by their bytes, as Redis orders ties.

use super::map::{Field, FieldValue, OrMap};
use super::CrdtError;
use crate::version::Dot;
use crate::Millis;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrZSet {
    scores: OrMap,
}

impl OrZSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The member's score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        let (field, _, _) = self.scores.get(member)?;
        Some(decode(&field))
    }

    /// Every member and its score, lowest score first.
    pub fn ranked(&self) -> Vec<(Vec<u8>, f64)> {
        let mut all: Vec<(Vec<u8>, f64)> = self
            .scores
            .iter()
            .map(|(member, field)| (member.to_vec(), decode(&field)))
            .collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        all
    }

    /// Set the scores as the one write `dot` made at `now`; how many
    /// members were new.
    pub fn add(
        &mut self,
        dot: &Dot,
        now: Millis,
        members: &[(f64, Vec<u8>)],
    ) -> Result<usize, CrdtError> {
        let writes = members
            .iter()
            .map(|(score, member)| {
                assert!(!score.is_nan(), "scores are checked where parsed");
                let bytes = score.to_be_bytes().to_vec();
                (member.clone(), FieldValue::Bytes(now, bytes))
            })
            .collect();
        self.scores.put(dot, writes)
    }

    /// Remove `member` as observed here; true when it was present.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.scores.remove(member)
    }

    /// Remove the `count` lowest (`min`) or highest members as observed
    /// here; them and their scores, in the order popped.
    pub fn pop(&mut self, min: bool, count: usize) -> Vec<(Vec<u8>, f64)> {
        let mut ranked = self.ranked();
        if !min {
            ranked.reverse();
        }
        ranked.truncate(count);
        for (member, _) in &ranked {
            self.scores.remove(member);
        }
        ranked
    }

    /// Record `dot`, the write that carries a removal.
    pub fn witness(&mut self, dot: &Dot) -> Result<(), CrdtError> {
        self.scores.witness(dot)
    }

    pub fn clear(&mut self) {
        self.scores.clear();
    }

    pub fn merge(&mut self, other: &OrZSet) {
        self.scores.merge(&other.scores);
    }
}

fn decode(field: &Field) -> f64 {
    match field {
        Field::Bytes(b) => b
            .as_slice()
            .try_into()
            .map(f64::from_be_bytes)
            .unwrap_or(0.0),
        // Sorted sets never write counters.
        Field::Counter(c) => c.value() as f64,
    }
}

/// A score as Redis reads one (`ZADD`, C's `strtod`): a float, `inf`,
/// `+inf`, `-inf`, a hexadecimal integer (`0x10`); never NaN, and not a
/// number too large or too small for a double (`1e309`, `1e-400`: `strtod`
/// reports a range error, Redis refuses it).
pub fn parse_score(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        t if t.is_empty() || t.trim() != t || t.contains("inf") || t.contains("nan") => {
            return None
        }
        _ => {}
    }
    let (negative, unsigned) = match lower.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, lower.strip_prefix('+').unwrap_or(&lower)),
    };
    if let Some(hex) = unsigned.strip_prefix("0x") {
        let value = u64::from_str_radix(hex, 16).ok()? as f64;
        return Some(if negative { -value } else { value });
    }
    let score: f64 = lower.parse().ok()?;
    let mantissa = unsigned.split('e').next().unwrap_or("");
    let underflow = score == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b));
    (score.is_finite() && !underflow).then_some(score)
}

/// A score as Redis writes one: `inf` and `-inf`; integers below 10^17
/// without a fraction; otherwise the shortest text that reads back the
/// same (Redis 7.2's `fpconv_dtoa`), in `%g`'s exponent form (`1e+308`,
/// `1e-05`) below 10^-4 and from 10^17 on. Redis 7.0's `%.17g` writes 17
/// significant digits where fewer read back the same (`0.1` is
/// `0.10000000000000001` there).
pub fn format_score(score: f64) -> String {
    if score.is_infinite() {
        return if score > 0.0 { "inf" } else { "-inf" }.into();
    }
    let abs = score.abs();
    if abs != 0.0 && !(1e-4..1e17).contains(&abs) {
        let text = format!("{score:e}");
        let (mantissa, exponent) = text.split_once('e').expect("{:e} has an exponent");
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    if score == score.trunc() {
        return format!("{}", score as i64);
    }
    format!("{score}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_and_format_as_redis() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"nan"), None);
        assert_eq!(parse_score(b" 1"), None);
        assert_eq!(parse_score(b""), None);
        assert_eq!(parse_score(b"abc"), None);
        assert_eq!(format_score(3.0), "3");
        assert_eq!(format_score(-0.5), "-0.5");
        assert_eq!(format_score(f64::INFINITY), "inf");
        assert_eq!(parse_score(b"1e309"), None);
        assert_eq!(parse_score(b"-1e309"), None);
        assert_eq!(parse_score(b"1e-400"), None);
        assert_eq!(parse_score(b"0e5"), Some(0.0));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b"-0x10"), Some(-16.0));
        assert_eq!(format_score(1e308), "1e+308");
        assert_eq!(format_score(-2.5e-7), "-2.5e-07");
        assert_eq!(format_score(4.9e-324), "5e-324");
        assert_eq!(format_score(1e16), "10000000000000000");
        assert_eq!(format_score(0.0001), "0.0001");
        assert_eq!(format_score(0.1), "0.1");
    }

    #[test]
    fn members_rank_by_score_then_bytes_and_pop_from_either_end() {
        let mut z = OrZSet::new();
        let m = |s: &str| s.as_bytes().to_vec();
        z.add(
            &Dot::new("n1", 1),
            1,
            &[(2.0, m("b")), (1.0, m("z")), (2.0, m("a"))],
        )
        .unwrap();
        let names: Vec<_> = z.ranked().into_iter().map(|(m, _)| m).collect();
        assert_eq!(names, [m("z"), m("a"), m("b")]);
        assert_eq!(z.pop(false, 1), [(m("b"), 2.0)]);
        assert_eq!(z.pop(true, 5), [(m("z"), 1.0), (m("a"), 2.0)]);
        assert!(z.is_empty());
    }
}
