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
    let (base, client) = (server.base(), reqwest::Client::new());
    let alice = server.register("alice").await;
    let token = alice.token.as_str();
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

/// Reads one HTTP/1 response (head and `Content-Length` body) from `stream`; `None` when the
/// connection is closed first.
async fn read_response(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0usize);
            if got.len() >= end + 4 + len {
                return Some(String::from_utf8_lossy(&got[..end + 4 + len]).to_string());
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// True once the server has closed `stream` (EOF or a reset), within `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// 2,000 sockets that send nothing, half an HTTP/2 preface or half an HTTP/1 head are all cut
/// at the header timeout, and a normal request meanwhile is answered. Time is tokio's paused
/// clock: it moves only when every task waits, so "before the timeout" and "at the timeout"
/// are exact, however slow the machine.
#[tokio::test(start_paused = true)]
async fn idle_and_half_open_sockets_are_cut_at_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    crate::harness::raise_descriptor_limit(4200);
    // On the test's runtime, whose paused clock the sockets' deadlines then follow.
    let app = spawn_with(Backend::Sqlite, |c| {
        c.server.header_read_timeout = Duration::from_secs(10);
        c.server.event_loops = 0;
    })
    .await;
    let mut sockets = Vec::new();
    for n in 0..2000 {
        let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let greeting: &[u8] = match n % 3 {
            0 => b"",
            1 => b"PRI * HTTP/2.0\r\n",
            _ => b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        };
        socket.write_all(greeting).await.unwrap();
        sockets.push(socket);
    }
    let started = tokio::time::Instant::now();
    assert_eq!(app.get("/healthz").await.status(), 200, "served while 2,000 sockets hang");
    assert!(started.elapsed() < Duration::from_secs(10), "answered before the hanging sockets were cut");
    let cut = futures_util::future::join_all(sockets.iter_mut().map(|s| closed_within(s, Duration::from_secs(11))));
    let cut = cut.await;
    assert!(cut.iter().all(|c| *c), "{} of 2000 sockets still open", cut.iter().filter(|c| !**c).count());
    // What is left is at most the test client's own keep-alive connection.
    let metrics = std::sync::Arc::clone(&app.state.shared.metrics);
    crate::harness::wait_until("the cut connections are released", || metrics.connections() <= 1).await;
}

/// A keep-alive connection may wait `idle_timeout` for its next request — longer than the
/// header timeout, which only runs once a head starts — and is then closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_close_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_with(Backend::Sqlite, |c| {
        c.server.header_read_timeout = Duration::from_millis(500);
        c.server.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    socket.write_all(request).await.unwrap();
    assert!(read_response(&mut socket).await.unwrap().starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    socket.write_all(request).await.unwrap();
    assert!(
        read_response(&mut socket).await.unwrap().starts_with("HTTP/1.1 200"),
        "still open past the header timeout"
    );
    assert!(closed_within(&mut socket, Duration::from_secs(5)).await, "closed once idle for the idle timeout");
}

/// A request body that stops arriving is answered 408, for JSON, raw and multipart bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_408() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_with(Backend::Sqlite, |c| c.server.body_timeout = Duration::from_millis(500)).await;
    let alice = app.register("alice").await;
    let heads = [
        "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user".to_owned(),
        format!(
            "POST /v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 5000\r\n\r\n\u{0089}PNG",
            alice.token
        ),
        format!(
            "POST /v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 5000\r\n\r\n\
             --XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
            alice.token
        ),
    ];
    for head in heads {
        let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        socket.write_all(head.as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), read_response(&mut socket)).await.unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"request_timeout\""), "{answer}");
    }
    assert!(app.stored_keys("originals/").await.is_empty());
}

/// With several event loops, every connection to the port is answered, and dropping the
/// server ends every loop: the port refuses connections (a loop left running would still hold
/// its socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_loops_answer_on_one_port_and_stop_with_the_server() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_with(Backend::Sqlite, |c| c.server.event_loops = 3).await;
    let addr = app.addr;
    for _ in 0..24 {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(read_response(&mut socket).await.unwrap().starts_with("HTTP/1.1 200"));
    }
    drop(app);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "a loop still listens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Beyond `max_connections`, connections wait in the backlog until one ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_their_turn() {
    let app = spawn_with(Backend::Sqlite, |c| {
        c.server.max_connections = 3;
        c.server.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
    }
    let metrics = std::sync::Arc::clone(&app.state.shared.metrics);
    crate::harness::wait_until("three connections are served", || metrics.connections() == 3).await;
    let waiting = tokio::spawn({
        let (client, url) = (app.client.clone(), app.url("/healthz"));
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metrics.connections(), 3, "the fourth waits");
    assert!(!waiting.is_finished());
    // The silent ones are cut at the header timeout, and the fourth is served.
    assert_eq!(waiting.await.unwrap().unwrap(), 200);
}

/// Work that outlives its request (a transform's flight) logs with that request's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_logs_carry_the_request_id() {
    let server = crate::harness::Child::start(&[("LOG_LEVEL", "info")]);
    let (base, client) = (server.base(), reqwest::Client::new());
    let alice = server.register("alice").await;
    let jpeg = crate::fixtures::halves_jpeg(100, 50);
    let upload = client.post(format!("{base}/v1/images")).bearer_auth(&alice.token).body(jpeg).send().await.unwrap();
    let image: Value = upload.json().await.unwrap();
    let url = crate::harness::sign(&alice.key, &format!("/i/{}/w_20", image["id"].as_str().unwrap()), None);
    let res = client.get(format!("{base}{url}")).header("x-request-id", "trace-me-1").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut found = None;
    for _ in 0..100 {
        found = server.logs().into_iter().find(|e| e["message"] == "transformed");
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let event = found.expect("a transformed log line");
    let request_id = event["request_id"].as_str().or_else(|| event["span"]["request_id"].as_str());
    assert_eq!(request_id, Some("trace-me-1"), "{event}");
}

/// Tests that need PostgreSQL (at `TEST_DATABASE_URL`): the `postgres` tier of `tests/run`.
mod needs_postgres {
    use super::*;

    /// PostgreSQL stops taking connections: requests that need it answer 503 `unavailable` quickly,
    /// readiness says which part is down, and everything works again when it is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_outage_is_503_unavailable_until_it_heals() {
        let app = spawn_with(Backend::Postgres, |c| c.database.pool_timeout = Duration::from_secs(1)).await;
        let alice = app.register("alice").await;
        let name = app.env.pg_name.clone().unwrap();
        let admin = crate::harness::admin_client().await.unwrap();
        admin.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false")).await.unwrap();
        admin
            .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&name])
            .await
            .unwrap();
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
}
