//! The OpenAPI description a node serves at `/openapi.json` is true to
//! its answers: schemathesis (a property-based API tester) generates
//! requests from it, valid and invalid, and checks every answer's status,
//! content type, headers and body schema against it, that invalid input
//! is refused with a 4xx and that no request gets a 5xx (503/504 are
//! documented quorum answers, which a healthy cluster does not give).

mod common;

use common::redis::tool;
use common::Cluster;

const EXCLUDED: &str = "ignored_auth,object_level_authorization,positive_data_acceptance";

#[tokio::test]
async fn schemathesis_finds_every_answer_as_the_openapi_document_says() {
    if !tool("st", &["--version"], "pip3 install schemathesis") {
        return;
    }
    let c = Cluster::start(3).await;
    let schema = c.url(1, "/openapi.json");
    let report = std::env::temp_dir().join(format!("ringkv-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&report).expect("a scratch directory");
    let out = tokio::process::Command::new("st")
        .args(["run", &schema, "--checks", "all", "--max-examples", "50"])
        .args(["--seed", "1", "--generation-deterministic", "--no-color"])
        .args(["--request-timeout", "10", "--workers", "1"])
        // Not checked: authorization (this cluster has none), and that every
        // schema-valid request is accepted: rules across parameters (`pw`
        // at most `w`, a context that decodes) are beyond JSON Schema and
        // answered `400` with one sentence, which the negative checks hold
        // to.
        .args(["--exclude-checks", EXCLUDED])
        .arg("--report-dir")
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "")
        // Its caches land in the working directory: not the repository.
        .current_dir(&report)
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&report);
    assert!(
        out.status.success(),
        "schemathesis found answers the document does not describe:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("passed"), "{stdout}");
}
