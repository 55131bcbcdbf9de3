//! Conditional requests on `/kv` (RFC 9110 §13): the entity tag of a read
//! is its causal context, so `If-Match` makes a write that applies only
//! when the key still holds what the client read, `If-None-Match: *` a
//! create-only write, and `If-None-Match` on a read a `304`.
//!
//! The store is eventually consistent and has no compare-and-set: the
//! node checks a precondition with a quorum read (R replies) and then
//! writes, as Riak's `if_not_modified`/`if_none_match` do. So a
//! precondition stops a writer that *has been shown* a newer state — the
//! read reached a replica holding it — but two writers racing between
//! check and write both succeed, and their writes become siblings:
//! nothing is lost, and nothing is overwritten that the writer did not see
//! (a tagged write supersedes only the context its tag carries).

use crate::http::{bad_request, unexpected_reply, Api, ApiError};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use ringkv_core::context;
use ringkv_core::message::{ClientOp, ClientReply};
use ringkv_core::siblings::SiblingSet;
use ringkv_core::version::{CausalContext, Causality};

/// Appended to the tag of the JSON form: it is another representation of
/// the same versions (`.` is outside base64url, so it cannot clash).
const JSON_SUFFIX: &str = ".json";

/// The strong entity tag of a read answered in the raw (`json` false) or
/// JSON form: the versions' context, quoted.
pub(crate) fn etag(context: &CausalContext, json: bool) -> HeaderValue {
    let suffix = if json { JSON_SUFFIX } else { "" };
    let tag = format!("\"{}{suffix}\"", context::encode(context));
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// A write's preconditions, from its headers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Precondition {
    None,
    /// `If-Match: *`: the key must hold a live version.
    Exists,
    /// `If-Match` with tags: the key must hold exactly one of these
    /// contexts' versions.
    Unchanged(Vec<CausalContext>),
    /// `If-None-Match: *`: the key must hold no live version.
    Absent,
}

/// The precondition of a write's headers; `400` for one that does not
/// parse, or that combines both headers.
pub(crate) fn of_write(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let if_match = list(headers, header::IF_MATCH)?;
    let if_none_match = list(headers, header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (None, None) => Ok(Precondition::None),
        (Some(_), Some(_)) => Err(bad_request(
            "send If-Match or If-None-Match, not both, on a write",
        )),
        (Some(tags), None) if tags == ["*"] => Ok(Precondition::Exists),
        (Some(tags), None) => tags
            .iter()
            .map(|t| tag_context(t))
            .collect::<Result<_, _>>()
            .map(Precondition::Unchanged),
        (None, Some(tags)) if tags == ["*"] => Ok(Precondition::Absent),
        (None, Some(_)) => Err(bad_request(
            "a write takes If-None-Match: * (create only); tags only make sense on a read",
        )),
    }
}

impl Precondition {
    /// Check it against the key's current state (a read with the node's
    /// default R) and give the context the write must carry: the matched
    /// tag's for `If-Match`, the read's for a create (so it supersedes the
    /// tombstones it found), the client's otherwise. `412` when it fails.
    pub(crate) async fn check(
        &self,
        api: &Api,
        key: &[u8],
        client_context: Option<CausalContext>,
    ) -> Result<Option<CausalContext>, ApiError> {
        if *self == Precondition::None {
            return Ok(client_context);
        }
        let read = ClientOp::Get {
            key: key.to_vec(),
            r: None,
            pr: None,
        };
        let current = match api.node.request(read, api.request_limit).await? {
            ClientReply::Value(set) => set,
            _ => return Err(unexpected_reply()),
        };
        self.against(&current, client_context)
    }

    fn against(
        &self,
        current: &SiblingSet,
        client_context: Option<CausalContext>,
    ) -> Result<Option<CausalContext>, ApiError> {
        let exists = current.live().next().is_some();
        let now = current.context();
        match self {
            Precondition::None => Ok(client_context),
            Precondition::Exists if exists => Ok(client_context),
            Precondition::Absent if !exists => Ok(Some(client_context.unwrap_or(now))),
            Precondition::Unchanged(tags) if exists => {
                let Some(tag) = tags.iter().find(|t| t.compare(&now) == Causality::Equal) else {
                    return Err(failed(
                        "the key changed since the read that gave this If-Match tag",
                    ));
                };
                if client_context.is_some_and(|c| c.compare(tag) != Causality::Equal) {
                    return Err(bad_request(
                        "X-Ringkv-Context and the If-Match tag name different versions",
                    ));
                }
                Ok(Some(tag.clone()))
            }
            Precondition::Absent => Err(failed("the key exists (If-None-Match: *)")),
            Precondition::Exists | Precondition::Unchanged(_) => {
                Err(failed("the key holds no value (If-Match)"))
            }
        }
    }
}

/// Whether a read's `If-None-Match` names `context` (or is `*` with a live
/// version): the read is then answered `304 Not Modified`.
pub(crate) fn not_modified(headers: &HeaderMap, current: &SiblingSet) -> Result<bool, ApiError> {
    let Some(tags) = list(headers, header::IF_NONE_MATCH)? else {
        return Ok(false);
    };
    if current.live().next().is_none() {
        return Ok(false);
    }
    if tags == ["*"] {
        return Ok(true);
    }
    let now = current.context();
    // Weak comparison (RFC 9110 §13.1.2): W/ is ignored.
    Ok(tags
        .iter()
        .filter_map(|t| tag_context(t.trim_start_matches("W/")).ok())
        .any(|t| t.compare(&now) == Causality::Equal))
}

fn failed(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        format!("precondition failed: {why}"),
    )
}

/// The header's comma-separated entity tags (or `*`), `None` when absent.
fn list(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<Vec<String>>, ApiError> {
    let mut tags = Vec::new();
    for value in headers.get_all(&name) {
        let text = value
            .to_str()
            .map_err(|_| bad_request(format!("{name} is not ASCII")))?;
        tags.extend(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from),
        );
    }
    Ok((!tags.is_empty()).then_some(tags))
}

/// The context a quoted tag carries (either form's tag).
fn tag_context(tag: &str) -> Result<CausalContext, ApiError> {
    let inner = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| bad_request(format!("an entity tag is a quoted string, got {tag}")))?;
    let inner = inner.strip_suffix(JSON_SUFFIX).unwrap_or(inner);
    context::decode(inner).map_err(|e| bad_request(format!("entity tag {tag}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::siblings::WriteLimits;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const LIMITS: WriteLimits = WriteLimits {
        max_siblings: 64,
        max_clock_entries: 32,
        young_clock_ms: 20_000,
        min_counter: 0,
    };

    /// A blind write of `value` by `node` on top of `set`.
    fn write_on(mut set: SiblingSet, node: &str, value: &[u8]) -> SiblingSet {
        let value = Some(value.to_vec());
        set.write(&node.into(), &CausalContext::new(), value, 1, LIMITS)
            .unwrap();
        set
    }

    fn written(value: &[u8]) -> SiblingSet {
        write_on(SiblingSet::default(), "n1", value)
    }

    fn tag_of(set: &SiblingSet) -> String {
        etag(&set.context(), false).to_str().unwrap().to_string()
    }

    #[test]
    fn if_match_holds_only_for_the_tag_of_the_current_versions() {
        let first = written(b"a");
        let tag = tag_of(&first);
        let cond = of_write(&headers(&[("if-match", &tag)])).unwrap();
        let context = cond.against(&first, None).unwrap();
        assert_eq!(context, Some(first.context()));
        let json_tag = etag(&first.context(), true).to_str().unwrap().to_string();
        let cond = of_write(&headers(&[("if-match", &json_tag)])).unwrap();
        assert!(cond.against(&first, None).is_ok());

        let later = write_on(first.clone(), "n2", b"b");
        let cond = of_write(&headers(&[("if-match", &tag)])).unwrap();
        let err = cond.against(&later, None).expect_err("changed");
        assert_eq!(err.status(), StatusCode::PRECONDITION_FAILED);
        let err = cond
            .against(&SiblingSet::default(), None)
            .expect_err("absent");
        assert_eq!(err.status(), StatusCode::PRECONDITION_FAILED);
    }

    #[test]
    fn if_none_match_star_creates_only() {
        let cond = of_write(&headers(&[("if-none-match", "*")])).unwrap();
        assert_eq!(cond, Precondition::Absent);
        assert!(cond.against(&SiblingSet::default(), None).is_ok());
        let err = cond.against(&written(b"a"), None).expect_err("exists");
        assert_eq!(err.status(), StatusCode::PRECONDITION_FAILED);
    }

    #[test]
    fn malformed_or_combined_preconditions_are_bad_requests() {
        for pairs in [
            &[("if-match", "unquoted")][..],
            &[("if-match", "\"!!\"")],
            &[("if-match", "*"), ("if-none-match", "*")],
            &[("if-none-match", "\"abc\"")],
        ] {
            let err = of_write(&headers(pairs)).expect_err("refused");
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{pairs:?}");
        }
    }

    #[test]
    fn a_read_is_not_modified_only_for_its_own_tag() {
        let set = written(b"a");
        let tag = tag_of(&set);
        assert!(not_modified(&headers(&[("if-none-match", &tag)]), &set).unwrap());
        let weak = format!("W/{tag}");
        assert!(not_modified(&headers(&[("if-none-match", &weak)]), &set).unwrap());
        let other = write_on(SiblingSet::default(), "n2", b"b");
        assert!(!not_modified(&headers(&[("if-none-match", &tag)]), &other).unwrap());
        assert!(!not_modified(&headers(&[]), &set).unwrap());
    }
}
