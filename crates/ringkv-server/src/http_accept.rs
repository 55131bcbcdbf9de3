//! `Accept` negotiation for `/kv` reads (RFC 9110 §12.5.1): a value is
//! served in one of two forms, its raw bytes or the JSON document with
//! base64 siblings, and the header's quality values choose.
//!
//! The raw form has no media type of its own (it is whatever the client
//! stored), so any range other than `application/json` itself accepts
//! it: `text/plain`, `application/octet-stream`, `image/*`, `*/*`. JSON is
//! accepted by `application/json`, `application/*` and `*/*`, each with
//! the q of the most specific of those the header names. The ranges are
//! parsed by the `mime` crate; this module only weighs them. A range that
//! does not parse, or whose q is not a qvalue (`0` to `1`, at most three
//! decimals), is ignored, as RFC 9110 lets a server do.

use mime::Mime;

/// The form a single-version read is answered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    Raw,
    Json,
    /// The header accepts neither form (`406 Not Acceptable`).
    Neither,
}

/// The form `accept` (the header's value, `None` when absent) prefers:
/// JSON only when its q is above zero and above the raw form's, so `*/*`
/// and an absent header keep the raw bytes.
pub(crate) fn negotiate(accept: Option<&str>) -> Form {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Form::Raw;
    };
    let ranges: Vec<(Mime, f32)> = split_list(accept)
        .filter_map(|item| item.trim().parse::<Mime>().ok())
        .filter_map(|range| quality(&range).map(|q| (range, q)))
        .collect();
    let json = json_quality(&ranges);
    let raw = ranges
        .iter()
        .filter(|(range, _)| !is_json(range))
        .map(|(_, q)| *q)
        .fold(0.0, f32::max);
    match (json, raw) {
        (j, r) if j > 0.0 && j > r => Form::Json,
        (_, r) if r > 0.0 => Form::Raw,
        (j, _) if j > 0.0 => Form::Json,
        _ if ranges.is_empty() => Form::Raw,
        _ => Form::Neither,
    }
}

/// The q of the most specific range matching `application/json` (0 when
/// none does).
fn json_quality(ranges: &[(Mime, f32)]) -> f32 {
    let specificity = |range: &Mime| match (range.type_().as_str(), range.subtype().as_str()) {
        _ if is_json(range) => Some(2),
        ("application", "*") => Some(1),
        ("*", "*") => Some(0),
        _ => None,
    };
    ranges
        .iter()
        .filter_map(|(range, q)| specificity(range).map(|s| (s, *q)))
        .max_by_key(|(s, _)| *s)
        .map_or(0.0, |(_, q)| q)
}

fn is_json(range: &Mime) -> bool {
    range.type_() == mime::APPLICATION && range.subtype() == mime::JSON && range.suffix().is_none()
}

/// A range's `q` parameter: 1 when absent, `None` when it is not a
/// qvalue (RFC 9110 §12.4.2).
fn quality(range: &Mime) -> Option<f32> {
    let Some(q) = range.get_param("q") else {
        return Some(1.0);
    };
    let text = q.as_str();
    let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
    let q = text.parse::<f32>().ok()?;
    ((0.0..=1.0).contains(&q) && decimals <= 3 && !text.starts_with('+')).then_some(q)
}

/// The header's comma-separated items, commas inside quoted strings kept.
fn split_list(header: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in header.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&header[start..]);
    items.into_iter().filter(|item| !item.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_values_and_exact_types_choose_the_form() {
        let cases = [
            (None, Form::Raw),
            (Some(""), Form::Raw),
            (Some("*/*"), Form::Raw),
            (Some("application/json"), Form::Json),
            (Some("application/json, */*;q=0.5"), Form::Json),
            (Some("Application/JSON"), Form::Json),
            (Some("application/json;q=0, */*"), Form::Raw),
            (Some("text/plain, application/json;q=0.1"), Form::Raw),
            (Some("application/jsonx"), Form::Raw),
            (Some("application/octet-stream"), Form::Raw),
            (Some("application/problem+json"), Form::Raw),
            (Some("text/plain;q=0.5, application/json"), Form::Json),
            (Some("application/*;q=0.9, text/plain;q=0.2"), Form::Raw),
            (Some("application/json;q=0"), Form::Neither),
            (Some("application/json;q=garbage"), Form::Raw),
            (Some("application/json;q=1.5, text/plain;q=0.1"), Form::Raw),
            (Some("application/json;q=0.0001"), Form::Raw),
            (Some("application/json;q=0.001"), Form::Json),
            (Some("application/json;q=0.5, text/plain;q=0"), Form::Json),
            (
                Some("text/plain;charset=\"a,b\";q=0, application/json"),
                Form::Json,
            ),
            (Some("not a media type"), Form::Raw),
        ];
        for (accept, form) in cases {
            assert_eq!(negotiate(accept), form, "Accept: {accept:?}");
        }
    }
}
