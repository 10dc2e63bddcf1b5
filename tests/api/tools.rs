//! The owners' tools: the OpenAPI document (served, covering the route table, held to by the
//! live server under schemathesis, linted by Redocly and openapi-spec-validator, and good for
//! generated Python and TypeScript clients that walk through the API) and the web console (served
//! with its policy, and walked through in Chromium). The scripts run against this build's binary.

use std::process::Command;

use serde_json::Value;

use crate::harness::{spawn, Backend};

const DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

#[test]
fn the_openapi_document_lists_every_route_of_the_table() {
    let document: Value = serde_json::from_str(&std::fs::read_to_string(DOCUMENT).unwrap()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for route in imgedge::http::router::ROUTES {
        let path = route.pattern.replace("?}", "}");
        let method = route.method.as_str().to_ascii_lowercase();
        assert!(paths.get(&path).is_some_and(|p| p.get(&method).is_some()), "{method} {path} is not documented");
    }
    let documented: usize =
        paths.values().map(|p| p.as_object().unwrap().keys().filter(|m| *m != "head").count()).sum();
    assert_eq!(documented, imgedge::http::router::ROUTES.len(), "every documented operation is a route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_and_the_console_are_served_from_the_binary() {
    let app = spawn(Backend::Sqlite).await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let etag = res.headers()["etag"].clone();
    assert_eq!(res.text().await.unwrap(), std::fs::read_to_string(DOCUMENT).unwrap(), "the file, verbatim");
    let again = app.client.get(app.url("/openapi.json")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);

    let page = app.get("/console").await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>") && !html.contains(" onclick="), "no inline script");
    for (file, mime) in [("console.js", "text/javascript"), ("console.css", "text/css")] {
        let res = app.get(&format!("/console/{file}")).await;
        assert_eq!(res.status(), 200, "{file}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with(mime), "{file}");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }
    crate::harness::assert_error(app.get("/console/secrets.txt").await, 404, "not_found").await;
}

/// Runs one of the repository's test scripts against this build's binary; its output is shown
/// when it fails.
fn run_script(script: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/").to_owned() + script;
    let out = Command::new("bash")
        .arg(&path)
        .arg(env!("CARGO_BIN_EXE_imgedge"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Tests that run tools nobody installs with cargo — Chromium, Go, Node.js, schemathesis, Redocly,
/// the client generators — (the `tools` tier of `tests/run`, which installs them).
mod needs_tools {
    use super::*;

    #[test]
    fn schemathesis_finds_every_answer_as_documented() {
        run_script("schemathesis/run.sh");
    }

    #[test]
    fn the_console_walk_through_passes_in_chromium() {
        run_script("browser/run.sh");
    }

    #[test]
    fn the_openapi_document_lints_clean_under_redocly_and_openapi_spec_validator() {
        run_script("openapi/lint.sh");
    }

    #[test]
    fn generated_python_and_typescript_clients_walk_through_the_api() {
        run_script("clients/run.sh");
    }
}
