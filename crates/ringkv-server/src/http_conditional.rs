//! Conditional requests on `/kv` (RFC 9110 §13): the entity tag of a read
//! is its causal context, so `If-Match` makes a write that applies only
//! when the key still holds what the client read, `If-None-Match: *` a
//! create-only write, and `If-None-Match` on a read a `304`.
//!
//! A value has two representations, its raw bytes and the JSON form, with
//! two tags (the JSON one ends in `.json`). A write's `If-Match` matches
//! either (strong comparison: a weak tag never matches); a read's
//! `If-None-Match` matches only the tag of the form it would answer in
//! (weak comparison), so a cache never revalidates one form with the
//! other's tag. A tag that does not parse matches nothing (tags are
//! opaque to clients). Preconditions are evaluated in RFC 9110 §13.2.2's
//! order: `If-Match`, then `If-None-Match`.
//!
//! The store is eventually consistent and has no compare-and-set: the
//! node checks a write's precondition with a quorum read (the request's
//! `r` and `pr`, default R) and then writes, as Riak's
//! `if_not_modified`/`if_none_match` do. So a precondition stops a writer
//! that *has been shown* a newer state — the read reached a replica
//! holding it — but two writers racing between check and write both
//! succeed, and their writes become siblings: nothing is lost, and nothing
//! is overwritten that the writer did not see (a tagged write supersedes
//! only the versions its tag names).

use crate::http::{bad_request, unexpected_reply, Api, ApiError};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use ringkv_core::context;
use ringkv_core::message::{ClientError, ClientOp, ClientReply};
use ringkv_core::siblings::SiblingSet;
use ringkv_core::version::{CausalContext, Causality};

/// Appended to the tag of the JSON form: it is another representation of
/// the same versions (`.` is outside base64url, so it cannot clash).
const JSON_SUFFIX: &str = ".json";

/// Before the count of versions a read shows as tombstones, when there
/// are any (`.` and `t` cannot end a base64url context).
const TOMBSTONES_MARK: &str = ".t";

/// The strong entity tag of a read of `visible` (as a client sees it:
/// expired versions shown as tombstones) answered in the raw (`json`
/// false) or JSON form: the versions' context and how many of them are
/// tombstones, quoted. For one context that count only grows, as versions
/// expire, so the tag changes whenever what a read shows does (with the
/// context alone, a sibling that expired left the tag as it was, and a
/// cache was told `304` for an answer that had lost it).
pub(crate) fn etag(visible: &SiblingSet, json: bool) -> HeaderValue {
    let mut tag = format!("\"{}", context::encode(&visible.context()));
    let tombstones = tombstones(visible);
    if tombstones > 0 {
        tag += &format!("{TOMBSTONES_MARK}{tombstones}");
    }
    if json {
        tag += JSON_SUFFIX;
    }
    tag.push('"');
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

fn tombstones(set: &SiblingSet) -> usize {
    set.iter().filter(|s| s.is_tombstone()).count()
}

/// One precondition header's value.
#[derive(Debug, PartialEq, Eq)]
enum Tags {
    /// `*`: any current version.
    Any,
    /// The listed tags, as sent.
    List(Vec<String>),
}

/// A request's preconditions, from its headers.
#[derive(Debug, PartialEq, Eq, Default)]
pub(crate) struct Preconditions {
    if_match: Option<Tags>,
    if_none_match: Option<Tags>,
}

/// The quorum of the read a conditional write makes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CheckRead {
    pub r: Option<usize>,
    pub pr: Option<usize>,
}

/// The preconditions `headers` carry; `400` only for a header that is not
/// text.
pub(crate) fn of(headers: &HeaderMap) -> Result<Preconditions, ApiError> {
    Ok(Preconditions {
        if_match: tags(headers, header::IF_MATCH)?,
        if_none_match: tags(headers, header::IF_NONE_MATCH)?,
    })
}

impl Preconditions {
    fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    /// Check a write's preconditions against the key's current state (a
    /// quorum read of `read`'s size) and give the context the write must
    /// carry: the current versions' for a matched `If-Match` or a create
    /// (so it supersedes the tombstones it found), the client's otherwise.
    /// `412` when one fails; `503` naming this read when it lacks replicas.
    pub(crate) async fn check_write(
        &self,
        api: &Api,
        key: &[u8],
        read: CheckRead,
        client_context: Option<CausalContext>,
    ) -> Result<Option<CausalContext>, ApiError> {
        if self.is_empty() {
            return Ok(client_context);
        }
        let op = ClientOp::Get {
            key: key.to_vec(),
            r: read.r,
            pr: read.pr,
        };
        let current = match api.node.request(op, api.request_limit).await {
            Ok(ClientReply::Value(set)) => set,
            Ok(_) => return Err(unexpected_reply()),
            Err(e) => return Err(ApiError::from(name_the_read(e))),
        };
        self.against_write(&current, client_context)
    }

    fn against_write(
        &self,
        current: &SiblingSet,
        client_context: Option<CausalContext>,
    ) -> Result<Option<CausalContext>, ApiError> {
        let exists = current.live().next().is_some();
        let now = current.context();
        let matches = |tags: &Tags, weak_ok: bool| tags.match_current(current, None, weak_ok);
        if let Some(tags) = &self.if_match {
            if !matches(tags, false) {
                return Err(failed(match (exists, tags.any_parses()) {
                    (_, false) => "If-Match names no tag this node gives (the ETag of a read)",
                    (true, true) => "the key changed since the read that gave this If-Match tag",
                    (false, true) => "the key holds no value (If-Match)",
                }));
            }
        }
        if let Some(tags) = &self.if_none_match {
            if matches(tags, true) {
                return Err(failed(match tags {
                    Tags::Any => "the key exists (If-None-Match: *)",
                    Tags::List(_) => "the key holds the versions If-None-Match names",
                }));
            }
        }
        let tagged = matches!(&self.if_match, Some(Tags::List(_)));
        let creating = matches!(&self.if_none_match, Some(Tags::Any));
        match client_context {
            Some(c) if tagged && c.compare(&now) != Causality::Equal => Err(bad_request(
                "X-Ringkv-Context and the If-Match tag name different versions",
            )),
            Some(c) => Ok(Some(c)),
            None if tagged || creating => Ok(Some(now)),
            None => Ok(None),
        }
    }

    /// A read's answer to its preconditions, in the form it answers in
    /// (`json`): `412` when `If-Match` fails, true (`304`) when
    /// `If-None-Match` names the current versions in that form.
    pub(crate) fn check_read(&self, current: &SiblingSet, json: bool) -> Result<bool, ApiError> {
        if let Some(tags) = &self.if_match {
            if !tags.match_current(current, Some(json), false) {
                return Err(failed("the key does not hold the versions If-Match names"));
            }
        }
        let not_modified = self.if_none_match.as_ref();
        Ok(not_modified.is_some_and(|tags| tags.match_current(current, Some(json), true)))
    }
}

impl Tags {
    /// Whether `*` or some listed tag has the shape of a tag this node
    /// gives: a garbage `If-Match` fails as any stale tag does (RFC 9110),
    /// but is not told "the key changed".
    fn any_parses(&self) -> bool {
        match self {
            Tags::Any => true,
            Tags::List(list) => list.iter().any(|t| Tag::parse(t).is_some()),
        }
    }

    /// Whether these tags name `current`'s live versions (never when it
    /// has none): `*` any, a listed tag as [`names`] says.
    fn match_current(&self, current: &SiblingSet, json: Option<bool>, weak_ok: bool) -> bool {
        if current.live().next().is_none() {
            return false;
        }
        match self {
            Tags::Any => true,
            Tags::List(list) => {
                let now = (current.context(), tombstones(current));
                list.iter().any(|t| names(t, &now, json, weak_ok))
            }
        }
    }
}

/// A tag as this node gives it (see [`etag`]), taken apart.
struct Tag {
    weak: bool,
    json: bool,
    /// How many of the versions it names are tombstones.
    tombstones: usize,
    context: CausalContext,
}

impl Tag {
    /// `None` for a tag this node never gives.
    fn parse(tag: &str) -> Option<Tag> {
        let (weak, tag) = match tag.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
        let (inner, json) = match inner.strip_suffix(JSON_SUFFIX) {
            Some(rest) => (rest, true),
            None => (inner, false),
        };
        let (inner, tombstones) = match inner.rsplit_once(TOMBSTONES_MARK) {
            Some((context, count)) => (context, count.parse().ok().filter(|&n| n > 0)?),
            None => (inner, 0),
        };
        let context = context::decode(inner).ok()?;
        Some(Tag {
            weak,
            json,
            tombstones,
            context,
        })
    }
}

/// Whether `tag` names the versions a read shows now — their context and
/// how many are tombstones (see [`etag`]): in the form `json` when given,
/// else in either; a weak tag (`W/`) only when `weak_ok`.
fn names(
    tag: &str,
    (context, tombstones): &(CausalContext, usize),
    json: Option<bool>,
    weak_ok: bool,
) -> bool {
    let Some(tag) = Tag::parse(tag) else {
        return false;
    };
    (weak_ok || !tag.weak)
        && json.is_none_or(|j| j == tag.json)
        && tag.tombstones == *tombstones
        && tag.context.compare(context) == Causality::Equal
}

/// The read behind a precondition lacked replicas: say so, not "get".
fn name_the_read(error: ClientError) -> ClientError {
    match error {
        ClientError::Unavailable {
            needed,
            answered,
            replicas,
            ..
        } => ClientError::Unavailable {
            op: "the read that checks If-Match/If-None-Match".into(),
            needed,
            answered,
            replicas,
            after: "; nothing was written: lower its r".into(),
        },
        other => other,
    }
}

fn failed(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        format!("precondition failed: {why}"),
    )
}

/// A precondition header's value, `None` when absent. `*` anywhere in it
/// is `*`.
fn tags(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<Tags>, ApiError> {
    let mut list = Vec::new();
    for value in headers.get_all(&name) {
        let text = value
            .to_str()
            .map_err(|_| bad_request(format!("{name} is not ASCII")))?;
        list.extend(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from),
        );
    }
    Ok(match list.is_empty() {
        true => None,
        false if list.iter().any(|t| t == "*") => Some(Tags::Any),
        false => Some(Tags::List(list)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::siblings::WriteLimits;

    const LIMITS: WriteLimits = WriteLimits {
        max_siblings: 64,
        max_clock_entries: 32,
        young_clock_ms: 20_000,
        min_counter: 0,
    };

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn pre(pairs: &[(&'static str, &str)]) -> Preconditions {
        of(&headers(pairs)).unwrap()
    }

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

    fn tag_of(set: &SiblingSet, json: bool) -> String {
        etag(set, json).to_str().unwrap().to_string()
    }

    fn status(result: Result<impl std::fmt::Debug, ApiError>) -> StatusCode {
        result.expect_err("refused").status()
    }

    /// A sibling that expires changes what a read shows, so the tag: the
    /// old one no longer revalidates it (no 304) nor matches (412).
    #[test]
    fn a_sibling_that_expires_changes_the_tag() {
        let both = write_on(written(b"a"), "n2", b"b");
        let one_expired = both.hiding(|s| s.value.as_deref() == Some(b"a".as_slice()));
        for json in [true, false] {
            let before = tag_of(&both, json);
            let after = tag_of(&one_expired, json);
            assert_ne!(before, after);
            let shown = |set: &SiblingSet| (set.context(), tombstones(set));
            assert!(names(&after, &shown(&one_expired), Some(json), false));
            assert!(!names(&before, &shown(&one_expired), Some(json), true));
            assert!(!names(&after, &shown(&both), Some(json), true));
        }
        let garbled = tag_of(&one_expired, false).replace(".t1", ".t0");
        let shown = (one_expired.context(), tombstones(&one_expired));
        assert!(!names(&garbled, &shown, None, false));
    }

    #[test]
    fn if_match_holds_only_for_a_strong_tag_of_the_current_versions() {
        let first = written(b"a");
        for json in [false, true] {
            let cond = pre(&[("if-match", &tag_of(&first, json))]);
            let context = cond.against_write(&first, None).unwrap();
            assert_eq!(context, Some(first.context()));
        }
        let list = format!("\"garbage\", {}", tag_of(&first, false));
        assert!(pre(&[("if-match", &list)])
            .against_write(&first, None)
            .is_ok());
        let weak = format!("W/{}", tag_of(&first, false));
        let cond = pre(&[("if-match", &weak)]);
        assert_eq!(
            status(cond.against_write(&first, None)),
            StatusCode::PRECONDITION_FAILED
        );

        let later = write_on(first.clone(), "n2", b"b");
        let cond = pre(&[("if-match", &tag_of(&first, false))]);
        assert_eq!(
            status(cond.against_write(&later, None)),
            StatusCode::PRECONDITION_FAILED
        );
        let none = SiblingSet::default();
        assert_eq!(
            status(cond.against_write(&none, None)),
            StatusCode::PRECONDITION_FAILED
        );
        for garbage in ["unquoted", "\"!!\""] {
            let cond = pre(&[("if-match", garbage)]);
            assert_eq!(
                status(cond.against_write(&first, None)),
                StatusCode::PRECONDITION_FAILED
            );
        }
    }

    #[test]
    fn if_none_match_creates_only_or_refuses_the_named_versions() {
        let cond = pre(&[("if-none-match", "*")]);
        assert!(cond.against_write(&SiblingSet::default(), None).is_ok());
        let set = written(b"a");
        assert_eq!(
            status(cond.against_write(&set, None)),
            StatusCode::PRECONDITION_FAILED
        );
        let named = pre(&[("if-none-match", &tag_of(&set, false))]);
        assert_eq!(
            status(named.against_write(&set, None)),
            StatusCode::PRECONDITION_FAILED
        );
        let other = write_on(SiblingSet::default(), "n2", b"b");
        assert!(named.against_write(&other, None).is_ok());
        // Both: If-Match first, then If-None-Match.
        let both = pre(&[("if-match", "*"), ("if-none-match", &tag_of(&other, false))]);
        assert!(both.against_write(&set, None).is_ok());
    }

    /// Whether a read of `set` in the `json` form with `If-None-Match: tag`
    /// is `304`.
    fn revalidates(tag: &str, set: &SiblingSet, json: bool) -> bool {
        pre(&[("if-none-match", tag)])
            .check_read(set, json)
            .unwrap()
    }

    #[test]
    fn a_read_is_not_modified_only_for_the_tag_of_its_own_form() {
        let set = written(b"a");
        let raw = tag_of(&set, false);
        assert!(revalidates(&raw, &set, false));
        assert!(revalidates(&format!("W/{raw}"), &set, false));
        assert!(!revalidates(&raw, &set, true));
        let json = tag_of(&set, true);
        assert!(revalidates(&json, &set, true));
        assert!(!revalidates(&json, &set, false));
        let other = write_on(SiblingSet::default(), "n2", b"b");
        assert!(!revalidates(&raw, &other, false));
        assert!(!pre(&[]).check_read(&set, false).unwrap());
        let stale = pre(&[("if-match", &tag_of(&other, false))]);
        assert_eq!(
            status(stale.check_read(&set, false)),
            StatusCode::PRECONDITION_FAILED
        );
    }
}
