//! Faults lose nothing: the database restarting under load, the object store going away
//! mid-upload and mid-delete, the server killed during uploads, a full disk. Each test starts
//! (and breaks) what it needs itself.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::PgCluster;
use crate::fixtures::halves_jpeg;
use crate::harness::{assert_error, s3_config, spawn_on, Backend, Env, StoppableS3};

/// The server is killed (SIGKILL) in the middle of a burst of uploads: after a restart every
/// row has its object, and the sweep removes objects whose rows never came. Which uploads are
/// cut is decided by a gate, not by timing: 32 stall half-way through their bodies until after
/// the kill, while 8 more run at full speed into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_uploads_leaves_no_row_without_its_object() {
    let server = crate::harness::Child::start(&[("TRANSFORM_WORKERS", "2")]);
    let (base, client) = (server.base(), reqwest::Client::new());
    let token = server.register("alice").await.token;
    let upload = |body: reqwest::Body| {
        let (client, url, token) = (client.clone(), format!("{base}/v1/images"), token.clone());
        async move { client.post(url).bearer_auth(token).body(body).send().await.map(|r| r.status().as_u16()) }
    };
    // Eight are through before anything happens.
    for n in 0..8u32 {
        assert_eq!(upload(halves_jpeg(200 + n, 150).into()).await.unwrap(), 201);
    }
    // Thirty-two send half their bytes and wait for the gate, which opens after the kill.
    let (release, gate) = tokio::sync::watch::channel(false);
    let stalled: Vec<_> = (0..32u32)
        .map(|n| {
            let jpeg = halves_jpeg(300 + n, 150);
            let (first, second) = jpeg.split_at(jpeg.len() / 2);
            let (first, second) = (bytes::Bytes::copy_from_slice(first), bytes::Bytes::copy_from_slice(second));
            let mut gate = gate.clone();
            let rest = async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok::<_, std::io::Error>(second)
            };
            let body = futures_util::StreamExt::chain(
                futures_util::stream::iter([Ok::<_, std::io::Error>(first)]),
                futures_util::stream::once(rest),
            );
            tokio::spawn(upload(reqwest::Body::wrap_stream(body)))
        })
        .collect();
    let in_flight = || async {
        let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines().find_map(|l| l.strip_prefix("imgedge_http_requests_in_flight ")?.parse::<u64>().ok()).unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while in_flight().await < 33 {
        assert!(std::time::Instant::now() < deadline, "the stalled uploads never reached the server");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Eight more at full speed, into the kill: they land, or not, anywhere on their way.
    let racing: Vec<_> = (0..8u32).map(|n| tokio::spawn(upload(halves_jpeg(400 + n, 150).into()))).collect();
    let server = server.kill_and_restart();
    release.send(true).unwrap();
    let cut: Vec<_> = futures_util::future::join_all(stalled).await.into_iter().map(Result::unwrap).collect();
    assert!(cut.iter().all(Result::is_err), "every stalled upload was cut off by the kill: {cut:?}");
    futures_util::future::join_all(racing).await;
    let base = server.base();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/v1/images?limit=100&cursor={c}"),
            None => format!("{base}/v1/images?limit=100"),
        };
        let page: Value = client.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        ids.extend(page["items"].as_array().unwrap().iter().map(|i| i["url"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(ids.len() >= 8, "the uploads before the kill were kept: {}", ids.len());
    for url in &ids {
        assert_eq!(client.get(format!("{base}{url}")).send().await.unwrap().status(), 200, "{url} has its object");
    }
    // Objects whose rows never came: the sweep finds and removes them, and nothing else.
    let sweep = std::process::Command::new(env!("CARGO_BIN_EXE_imgedge"))
        .args(["sweep", "--grace-secs", "0"])
        .current_dir(server.dir.path())
        .env("DATA_DIR", "data")
        .output()
        .unwrap();
    assert!(sweep.status.success(), "{}", String::from_utf8_lossy(&sweep.stderr));
    for url in &ids {
        assert_eq!(client.get(format!("{base}{url}")).send().await.unwrap().status(), 200, "{url} survived the sweep");
    }
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Self {
        crate::cluster::run("mount", &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", at.to_str().unwrap()]);
        Self(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).output();
    }
}

/// Tests that need PostgreSQL (at `TEST_DATABASE_URL`): the `postgres` tier of `tests/run`.
mod needs_postgres {
    use super::*;

    /// The bucket goes away: uploads are 503 and leave no row; a delete removes the row (the
    /// image is gone) and leaves its objects to the sweep, which removes them once the store is
    /// back. No row is ever without its object.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_going_away_mid_upload_and_mid_delete_leaves_no_row_without_its_object() {
        let mut s3 = StoppableS3::start("faults").await;
        let env = Arc::new(Env::new(Backend::Postgres).await);
        let mut config = env.config();
        config.storage.s3 = s3_config(&s3.endpoint, "faults");
        let app = spawn_on(env, config, crate::harness::noon()).await;
        let alice = app.register("alice").await;
        let kept = app.upload(&alice, halves_jpeg(80, 40)).await["id"].as_str().unwrap().to_owned();
        let doomed = app.upload(&alice, halves_jpeg(80, 40)).await["id"].as_str().unwrap().to_owned();
        assert_eq!(app.variant(&alice, &doomed, "w_20").await.status(), 200);
        s3.stop().await;
        let res = app.upload_raw(&alice, halves_jpeg(80, 40), "image/jpeg").await;
        let message = assert_error(res, 503, "unavailable").await;
        assert!(message.contains("object store"), "{message}");
        let res =
            app.client.delete(app.url(&format!("/v1/images/{doomed}"))).bearer_auth(&alice.token).send().await.unwrap();
        assert_eq!(res.status(), 204, "the image is deleted; its files wait for the sweep");
        assert_error(app.variant(&alice, &doomed, "w_20").await, 404, "not_found").await;
        s3.resume().await;
        let rows: Value = app.get_auth("/v1/images", &alice.token).await.json().await.unwrap();
        let rows: Vec<&str> = rows["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(rows, vec![kept.as_str()], "the failed upload left no row");
        for id in rows {
            assert_eq!(app.get(&app.signed(&alice, &format!("/i/{id}"))).await.status(), 200, "{id} has its object");
        }
        let (db, store, keys) = (&app.state.shared.db, &app.state.shared.store, &app.state.shared.keys);
        let report =
            imgedge::sweep::sweep(db, store, keys, Duration::ZERO, false, std::time::SystemTime::now()).await.unwrap();
        assert_eq!((report.orphans, report.deleted), (2, 2), "the deleted image's original and variant");
        assert_eq!(app.stored_keys("").await, vec![format!("originals/{kept}")]);
    }
}

/// Tests that need root: they start PostgreSQL clusters as the `postgres` user or mount file
/// systems (the `system` tier of `tests/run`).
mod needs_root {
    use super::*;

    /// PostgreSQL stops for a while under a stream of transforms: requests that need it answer
    /// 503 `unavailable`, the server recovers by itself when the database is back, and the quota
    /// counts exactly the transforms that ran.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_restarting_under_load_loses_no_quota_unit() {
        let cluster = PgCluster::start();
        let env = Arc::new(Env::new(Backend::Sqlite).await);
        let mut config = env.config();
        config.database.backend = imgedge::config::DatabaseBackend::Postgres(cluster.url("127.0.0.1", ""));
        config.database.pool_timeout = Duration::from_secs(1);
        config.quota.daily_limit = 10_000;
        config.auth.lookup_ttl = Duration::ZERO; // every request asks the database
        let app = Arc::new(spawn_on(env, config, crate::harness::noon()).await);
        let alice = app.register("alice").await;
        let id = app.upload(&alice, halves_jpeg(120, 80)).await["id"].as_str().unwrap().to_owned();
        let load = tokio::spawn({
            let (app, alice, id) = (Arc::clone(&app), alice.clone(), id.clone());
            async move {
                let mut answers = Vec::new();
                for w in 1..=600u32 {
                    let res = app.variant(&alice, &id, &format!("w_{w}")).await;
                    let tier = res.headers().get("x-cache").map(|v| v.to_str().unwrap().to_owned());
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    answers.push((status, tier, body["error"]["code"].as_str().unwrap_or_default().to_owned()));
                    if answers.len() > 40
                        && answers.iter().rev().take(20).all(|(s, ..)| *s == 200)
                        && answers.iter().any(|(s, ..)| *s == 503)
                    {
                        break;
                    }
                }
                answers
            }
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        cluster.halt();
        // While it is down, readiness says so.
        let ready: Value = app.get("/readyz").await.json().await.unwrap();
        assert_eq!(ready["database"], "unavailable");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.resume();
        let answers = load.await.unwrap();
        let down: Vec<_> = answers.iter().filter(|(s, ..)| *s != 200).collect();
        assert!(!down.is_empty(), "the outage was seen");
        assert!(down.iter().all(|(s, _, code)| *s == 503 && code == "unavailable"), "{down:?}");
        assert!(answers.iter().rev().take(20).all(|(s, ..)| *s == 200), "served again without a restart");
        let made = answers.iter().filter(|(s, tier, _)| *s == 200 && tier.as_deref() == Some("miss")).count() as u64;
        assert_eq!(app.used_today(&alice).await, made, "every transform that ran was charged once, no other");
        assert_eq!(app.get("/readyz").await.status(), 200);
    }

    /// The local store's disk fills up: the upload that does not fit is 507 with a clear message,
    /// nothing half-written stays, and what was stored before still serves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_is_507_and_leaves_nothing_half_written() {
        let env = Arc::new(Env::new(Backend::Sqlite).await);
        let blobs = env.dir.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        let _disk = Tmpfs::mount(&blobs, "1m");
        let app = spawn_on(Arc::clone(&env), env.config(), crate::harness::noon()).await;
        let alice = app.register("alice").await;
        // Noise does not compress: about 400 KB a picture.
        let noisy = |_: u32| {
            use rand::RngCore;
            let mut pixels = vec![0u8; 400 * 340 * 3];
            rand::rng().fill_bytes(&mut pixels);
            let img = image::RgbImage::from_raw(400, 340, pixels).unwrap();
            let png = crate::fixtures::encode(&image::DynamicImage::ImageRgb8(img), image::ImageFormat::Png);
            assert!(png.len() > 300_000, "{}", png.len());
            png
        };
        let first = app.upload(&alice, noisy(1)).await["id"].as_str().unwrap().to_owned();
        let mut refused = None;
        for seed in 2..6 {
            let res = app.upload_raw(&alice, noisy(seed), "image/png").await;
            if res.status() != 201 {
                refused = Some(res);
                break;
            }
        }
        let message = assert_error(refused.expect("the disk filled up"), 507, "insufficient_storage").await;
        assert!(message.contains("full"), "{message}");
        let leftovers: Vec<_> = std::fs::read_dir(blobs.join(".tmp")).unwrap().collect();
        assert!(leftovers.is_empty(), "no partial file is left: {leftovers:?}");
        let rows: Value = app.get_auth("/v1/images", &alice.token).await.json().await.unwrap();
        for image in rows["items"].as_array().unwrap() {
            assert_eq!(app.get(image["url"].as_str().unwrap()).await.status(), 200, "every row has its object");
        }
        assert_eq!(app.get(&app.signed(&alice, &format!("/i/{first}"))).await.status(), 200);
    }
}
