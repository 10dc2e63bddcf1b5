//! Operations: health, readiness, metrics, request ids, routing errors, graceful shutdown.

use serde_json::Value;

use crate::harness::TestApp;
use crate::on_every_backend;

on_every_backend!(health_readiness_and_metrics, request_ids_and_routing_errors);

async fn health_readiness_and_metrics(app: TestApp) {
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["storage"], "ok");
    let alice = app.register("alice").await;
    let image = app.upload(&alice, crate::fixtures::halves_jpeg(40, 20)).await;
    let id = image["id"].as_str().unwrap();
    app.variant(&alice, id, "w_10").await;
    app.variant(&alice, id, "w_10").await;
    app.get("/v1/me").await;
    let metrics = app.get("/metrics").await;
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    for needle in [
        "imgedge_http_requests_total{route=\"deliver_variant\",status=\"200\"} 2",
        "imgedge_http_requests_total{route=\"me\",status=\"401\"} 1",
        "imgedge_http_request_duration_seconds_bucket{route=\"deliver_variant\",le=\"+Inf\"} 2",
        "imgedge_cache_requests_total{tier=\"hit-memory\"} 1",
        "imgedge_cache_requests_total{tier=\"miss\"} 1",
        "imgedge_transforms_total{outcome=\"ok\"} 1",
        "imgedge_transform_duration_seconds_count 1",
        "imgedge_quota_rejections_total 0",
        "imgedge_transform_queue_depth 0",
    ] {
        assert!(text.contains(needle), "missing {needle}\n{text}");
    }
}

async fn request_ids_and_routing_errors(app: TestApp) {
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = app.client.get(app.url("/healthz")).header("x-request-id", "bad id with spaces").send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32, "a fresh id replaces an unsafe one: {id}");
    let res = app.get("/nope").await;
    assert_eq!(res.status(), 404);
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let res = app.client.put(app.url("/v1/images")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD, POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_store_is_gone() {
    let app = crate::harness::spawn(crate::harness::Backend::Sqlite).await;
    std::fs::remove_dir_all(app.env.dir.path().join("blobs")).unwrap();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["storage"], "unavailable");
    assert_eq!(body["database"], "ok");
    assert_eq!(app.get("/healthz").await.status(), 200, "alive, just not ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let app = crate::harness::spawn(crate::harness::Backend::Sqlite).await;
    let alice = app.register("alice").await;
    let image = app.upload(&alice, crate::fixtures::halves_jpeg(1200, 800)).await;
    let url = app.url(&app.signed(&alice, &format!("/i/{}/fmt_avif,q_90", image["id"].as_str().unwrap())));
    let client = app.client.clone();
    let in_flight = tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let addr = app.addr;
    app.stop().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), 200, "the slow request completed");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::harness::spawn_with(crate::harness::Backend::Sqlite, |c| {
        c.server.header_read_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // The head never completes: the server answers 408 or closes, well before the 10 s guard.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was left open");
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // A complete request on a new connection still works.
    assert_eq!(app.get("/healthz").await.status(), 200);
}
