//! Faults lose nothing: the database restarting under load, the object store going away
//! mid-upload and mid-delete, the server killed during uploads, a full disk. Each test starts
//! (and breaks) what it needs itself.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::PgCluster;
use crate::fixtures::halves_jpeg;
use crate::harness::{assert_error, s3_config, spawn_on, Backend, Env, StoppableS3};

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
    let (db, store, keys) = (&app.state.parts.db, &app.state.parts.store, &app.state.parts.keys);
    let report =
        imgedge::sweep::sweep(db, store, keys, Duration::ZERO, false, std::time::SystemTime::now()).await.unwrap();
    assert_eq!((report.orphans, report.deleted), (2, 2), "the deleted image's original and variant");
    assert_eq!(app.stored_keys("").await, vec![format!("originals/{kept}")]);
}

/// The server is killed (SIGKILL) in the middle of a burst of uploads: after a restart every
/// row has its object, and the sweep removes objects whose rows never came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_during_uploads_leaves_no_row_without_its_object() {
    let server = crate::harness::Child::start(&[("TRANSFORM_WORKERS", "2")]);
    let (base, client) = (server.base(), reqwest::Client::new());
    let token = server.register("alice").await.token;
    let uploads: Vec<_> = (0..40u32)
        .map(|n| {
            let (client, url, token) = (client.clone(), format!("{base}/v1/images"), token.clone());
            tokio::spawn(async move {
                let jpeg = halves_jpeg(200 + n, 150);
                client.post(url).bearer_auth(token).body(jpeg).send().await.map(|r| r.status().as_u16())
            })
        })
        .collect();
    // Kill it once some uploads are through and others are on their way.
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..500 {
        let metrics = client.get(format!("{base}/metrics")).send().await;
        let text = match metrics {
            Ok(res) => res.text().await.unwrap_or_default(),
            Err(_) => break,
        };
        let created = text
            .lines()
            .find(|l| l.starts_with("imgedge_http_requests_total{route=\"images_create\",status=\"201\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
            .unwrap_or(0);
        done.store(created, std::sync::atomic::Ordering::Relaxed);
        if created >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = server.kill_and_restart();
    let answered: Vec<_> = futures_util::future::join_all(uploads).await.into_iter().map(Result::unwrap).collect();
    assert!(answered.iter().any(Result::is_err), "some uploads were cut off by the kill");
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
