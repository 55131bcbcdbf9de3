//! What a read returns: a key's live versions and their causal context.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ringkv_core::version::Dot;
use ringkv_core::NodeId;
use serde::Deserialize;

/// The opaque causal context of a read or a write. Send a read's context
/// with the next write of that key: the write then supersedes exactly the
/// versions the read returned. [`Context::none`] makes a *blind* write,
/// concurrent with everything stored (it becomes one more sibling).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context(Option<String>);

impl Context {
    /// No context: a blind write.
    pub fn none() -> Context {
        Context(None)
    }

    /// The encoded context, as the `X-Ringkv-Context` header carries it.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// A context as printed by `ringkv get` or taken from a header; the node
/// checks it and refuses a malformed one with `400`.
impl From<String> for Context {
    fn from(text: String) -> Self {
        Context(Some(text))
    }
}

/// One version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub value: Vec<u8>,
    /// The coordinator's wall-clock milliseconds when it wrote this
    /// version: for last-write-wins, never for causality.
    pub timestamp: u64,
    /// The write event that made this version (coordinator and counter):
    /// unique per key, so it breaks timestamp ties deterministically.
    pub dot: Dot,
}

/// The result of a read: every live version (none when the key is missing
/// or deleted, several when writes were concurrent) and the context to
/// write back with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versions {
    pub context: Context,
    pub siblings: Vec<Version>,
}

impl Versions {
    /// True when the key is missing or deleted.
    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty()
    }

    /// The value when there is exactly one version.
    pub fn value(&self) -> Option<&[u8]> {
        match self.siblings.as_slice() {
            [one] => Some(&one.value),
            _ => None,
        }
    }

    /// True when concurrent writes left several versions to resolve.
    pub fn is_conflict(&self) -> bool {
        self.siblings.len() > 1
    }

    /// The node's JSON answer (`200`/`300` with `Accept: application/json`).
    pub(crate) fn from_json(body: &[u8]) -> Result<Versions, String> {
        let json: SiblingsJson =
            serde_json::from_slice(body).map_err(|e| format!("not the JSON of a read: {e}"))?;
        let siblings = json
            .siblings
            .into_iter()
            .map(|s| {
                Ok(Version {
                    value: BASE64
                        .decode(&s.value)
                        .map_err(|e| format!("a value is not base64: {e}"))?,
                    timestamp: s.timestamp,
                    dot: parse_dot(&s.dot)?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Versions {
            context: Context::from(json.context),
            siblings,
        })
    }
}

/// The body of a JSON read (mirrors the server's `SiblingsJson`).
#[derive(Deserialize)]
struct SiblingsJson {
    context: String,
    siblings: Vec<SiblingJson>,
}

#[derive(Deserialize)]
struct SiblingJson {
    value: String,
    timestamp: u64,
    dot: String,
}

/// `node:counter`; node ids may themselves contain colons.
fn parse_dot(text: &str) -> Result<Dot, String> {
    text.rsplit_once(':')
        .and_then(|(node, counter)| Some(Dot::new(NodeId::new(node), counter.parse().ok()?)))
        .ok_or_else(|| format!("{text:?} is not a dot (node:counter)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_decode_with_their_dots() {
        let body = br#"{"context":"AQ","siblings":[
            {"value":"aGk=","timestamp":7,"dot":"n2:3"},
            {"value":"","timestamp":9,"dot":"zone:a:n1:12"}]}"#;
        let versions = Versions::from_json(body).unwrap();
        assert_eq!(versions.context.as_str(), Some("AQ"));
        assert!(versions.is_conflict());
        assert_eq!(versions.siblings[0].value, b"hi");
        assert_eq!(versions.siblings[0].dot, Dot::new("n2", 3));
        assert_eq!(versions.siblings[1].dot, Dot::new("zone:a:n1", 12));
        assert_eq!(versions.value(), None);
    }

    #[test]
    fn malformed_reads_are_errors_not_panics() {
        for body in [
            &b"not json"[..],
            br#"{"context":"AQ","siblings":[{"value":"!!","timestamp":1,"dot":"n1:1"}]}"#,
            br#"{"context":"AQ","siblings":[{"value":"","timestamp":1,"dot":"n1"}]}"#,
            br#"{"context":"AQ","siblings":[{"value":"","timestamp":1,"dot":"n1:x"}]}"#,
        ] {
            assert!(Versions::from_json(body).is_err());
        }
    }
}
