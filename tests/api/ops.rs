//! Operations: health, readiness, metrics, request ids, routing errors, graceful shutdown.

use serde_json::Value;

use std::time::Duration;

use crate::harness::{assert_error, spawn, spawn_with, Backend};

crate::for_backends!(health_readiness_and_metrics, request_ids_and_routing_errors);

async fn health_readiness_and_metrics(backend: Backend) {
    let app = spawn(backend).await;
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

async fn request_ids_and_routing_errors(backend: Backend) {
    let app = spawn(backend).await;
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
    assert_eq!(res.headers()["allow"], "GET, HEAD, POST");
    assert_error(res, 405, "method_not_allowed").await;
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

/// The real binary in a child process: SIGTERM closes the listener at once, lets a request
/// that is still arriving finish, then exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_refuses_new_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = crate::harness::Child::start(&[("SHUTDOWN_GRACE_SECS", "20")]);
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let session: Value = client
        .post(format!("{base}/v1/auth/register"))
        .json(&serde_json::json!({"username": "alice", "password": "password123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap();
    // An upload whose body is only half sent.
    let jpeg = crate::fixtures::halves_jpeg(300, 200);
    let (first, rest) = jpeg.split_at(jpeg.len() / 2);
    let mut upload = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(first).await.unwrap();
    // The upload is being handled (the metrics request itself is the other one in flight).
    let metrics = format!("{base}/metrics");
    let mut waited = 0;
    while !client
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("imgedge_http_requests_in_flight 2")
    {
        waited += 1;
        assert!(waited < 500, "the upload never reached the server");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal(libc::SIGTERM);
    // The listener closes while the process is still alive, serving the upload.
    let mut refused = false;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(server.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "new connections are still accepted after SIGTERM");
    assert!(server.is_running(), "the process waits for the in-flight upload");
    upload.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), upload.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(server.wait(Duration::from_secs(20)), Some(0), "a clean exit after the drain");
}

/// PostgreSQL stops taking connections: requests that need it answer 503 `unavailable` quickly,
/// readiness says which part is down, and everything works again when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_unavailable_until_it_heals() {
    let app = spawn_with(Backend::Postgres, |c| c.database.pool_timeout = Duration::from_secs(1)).await;
    let alice = app.register("alice").await;
    let name = app.env.pg_name.clone().unwrap();
    let admin = crate::harness::admin_client().await.unwrap();
    admin.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false")).await.unwrap();
    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&name]).await.unwrap();
    for _ in 0..2 {
        let res = app.get_auth("/v1/me", &alice.token).await;
        assert_eq!(res.headers()["retry-after"], "1");
        assert_error(res, 503, "unavailable").await;
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!((body["database"].as_str(), body["storage"].as_str()), (Some("unavailable"), Some("ok")));
    assert_eq!(app.get("/healthz").await.status(), 200, "alive, just not ready");
    admin.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await.unwrap();
    assert_eq!(app.get_auth("/v1/me", &alice.token).await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
}

/// Replicas starting together on an empty database: the migration lock lets one apply the
/// migrations while the other waits, and both serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let env = crate::harness::Env::new(Backend::Postgres).await;
    let config = env.config();
    let (a, b) = tokio::join!(imgedge::App::build(config.clone()), imgedge::App::build(config));
    let (a, b) = (a.expect("first replica starts"), b.expect("second replica starts"));
    assert_ne!(a.addr(), b.addr());
    let imgedge::config::DatabaseBackend::Postgres(url) = &env.database else { unreachable!() };
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let applied: i64 = client.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(applied, imgedge::db::migrate::POSTGRES.len() as i64);
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
