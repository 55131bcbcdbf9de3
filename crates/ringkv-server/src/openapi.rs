//! The HTTP API's OpenAPI 3.0 description, served at `GET /openapi.json`
//! (open to anyone: it says nothing about the cluster). The document is
//! `openapi.json` next to this file, with this node's N filled in as the
//! bound of `r`, `pr`, `w` and `pw`; `tests/openapi.rs` runs schemathesis
//! against real nodes with it, so it stays true to their answers.

use crate::http::{shutting_down, Api, ApiError};
use axum::extract::State;
use axum::Json;
use serde_json::Value;

const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub(crate) async fn serve(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let view = api.node.ring_view().await.ok_or_else(shutting_down)?;
    Ok(Json(document(view.n)))
}

/// The description for a cluster of `n` replicas per key.
pub fn document(n: usize) -> Value {
    let mut doc: Value = serde_json::from_str(DOCUMENT).unwrap_or_default();
    for quorum in ["r", "pr", "w", "pw"] {
        doc["components"]["parameters"][quorum]["schema"]["maximum"] = Value::from(n);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_parses_and_bounds_quorums_by_n() {
        let doc = document(5);
        assert_eq!(doc["openapi"], "3.0.3");
        let w = &doc["components"]["parameters"]["w"]["schema"];
        assert_eq!(w["maximum"], 5);
        assert!(doc["paths"]["/kv/{key}"]["get"].is_object());
    }
}
