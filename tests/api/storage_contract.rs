//! The storage contract, written once and run on the local folder and on S3.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use imgedge::config::StorageConfig;
use imgedge::storage::{self, BlobKeys, StorageError, Store};

use crate::harness::{Backend, Env};

async fn store(backend: Backend) -> (Env, Store, BlobKeys) {
    let env = Env::new(backend).await;
    let config: StorageConfig = env.config().storage;
    let store = storage::open(&config).await.expect("open store");
    (env, store, BlobKeys::new(&config))
}

async fn storage_contract(backend: Backend) {
    let (_env, store, keys) = store(backend).await;
    store.ping().await.unwrap();
    let id = imgedge::ids::ImageId::generate();
    let original = keys.original(&id);
    assert!(matches!(store.get(&original).await.err(), Some(StorageError::NotFound)));
    // 1 MiB of varied bytes read back as a stream of several chunks.
    let payload: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 251) as u8).collect();
    store.put(&original, Bytes::from(payload.clone()), "image/png").await.unwrap();
    let blob = store.get(&original).await.unwrap();
    assert_eq!(blob.len, payload.len() as u64);
    let chunks: Vec<_> = blob.stream.collect().await;
    assert!(chunks.len() > 1, "reads stream in chunks");
    let read: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
    assert_eq!(read, payload);
    assert_eq!(store.get_bytes(&original).await.unwrap().as_ref(), payload.as_slice());
    assert!(matches!(
        store.get_bytes(&keys.original(&imgedge::ids::ImageId::generate())).await,
        Err(StorageError::NotFound)
    ));
    // Overwrite replaces.
    store.put(&original, Bytes::from_static(b"second"), "image/png").await.unwrap();
    assert_eq!(store.get(&original).await.unwrap().into_bytes().await.unwrap().as_ref(), b"second");
    // Listing and prefix deletes see exactly the image's objects.
    let a = keys.variant(&id, "aa", "webp");
    let b = keys.variant(&id, "bb", "jpg");
    let other = keys.variant(&imgedge::ids::ImageId::generate(), "cc", "png");
    for key in [&a, &b, &other] {
        store.put(key, Bytes::from_static(b"v"), "image/webp").await.unwrap();
    }
    let listed: Vec<_> = store.list(&keys.variants_of(&id)).await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    assert!(store.list(&keys.variants_of(&id)).await.unwrap().iter().all(|o| o.modified.is_some()));
    assert_eq!(store.delete_prefix(&keys.variants_of(&id)).await.unwrap(), 2);
    assert!(store.list(&keys.variants_of(&id)).await.unwrap().is_empty());
    assert_eq!(store.list(keys.derived_prefix()).await.unwrap().len(), 1, "other images keep theirs");
    // Deletes are idempotent.
    store.delete(&original).await.unwrap();
    store.delete(&original).await.unwrap();
    assert!(matches!(store.get(&original).await.err(), Some(StorageError::NotFound)));
}

// Sqlite is the local folder, PostgresS3 the S3 store.
crate::for_backends!([Sqlite, PostgresS3] storage_contract);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_have_no_presigned_urls() {
    let (_env, store, keys) = store(Backend::Sqlite).await;
    let key = keys.original(&imgedge::ids::ImageId::generate());
    assert_eq!(store.presign_get(&key, Duration::from_secs(60), "image/jpeg").await.unwrap(), None);
}

/// Tests that need PostgreSQL (at `TEST_DATABASE_URL`): the `postgres` tier of `tests/run`.
mod needs_postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_presigned_urls_work_and_resist_tampering() {
        let (_env, store, keys) = store(Backend::PostgresS3).await;
        let key = keys.original(&imgedge::ids::ImageId::generate());
        store.put(&key, Bytes::from_static(b"presigned bytes"), "image/jpeg").await.unwrap();
        let url = store.presign_get(&key, Duration::from_secs(60), "image/jpeg").await.unwrap().expect("S3 presigns");
        let res = reqwest::get(&url).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.bytes().await.unwrap().as_ref(), b"presigned bytes");
        let tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=600000");
        assert_ne!(tampered, url);
        assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_s3_is_503_fast_never_a_hang() {
        // A port held by this test without listening: connections to it are refused, and no other
        // process can take it while the test runs.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        let app = crate::harness::spawn_with(Backend::PostgresS3, |c| {
            c.storage.s3 = crate::harness::s3_config(&format!("http://127.0.0.1:{port}"), "nowhere");
        })
        .await;
        let started = std::time::Instant::now();
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status(), 503);
        let alice = app.register("alice").await;
        let res = app.upload_raw(&alice, crate::fixtures::halves_jpeg(20, 20), "image/jpeg").await;
        assert_eq!(res.status(), 503);
        assert!(res.headers().contains_key("retry-after"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
        assert!(body["error"]["message"].as_str().unwrap().contains("object store"), "{body}");
        assert!(started.elapsed() < Duration::from_secs(20), "answered in {:?}", started.elapsed());
        let list: serde_json::Value = app.get_auth("/v1/images", &alice.token).await.json().await.unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 0, "no row without its object");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweep_removes_orphans_and_spares_young_and_live_objects() {
        for backend in [Backend::Sqlite, Backend::PostgresS3] {
            let app = crate::harness::spawn(backend).await;
            let alice = app.register("alice").await;
            let live = app.upload(&alice, crate::fixtures::halves_jpeg(40, 20)).await;
            let live_id = live["id"].as_str().unwrap();
            assert_eq!(app.variant(&alice, live_id, "w_10").await.status(), 200);
            // Objects of an image with no row: a half-finished upload or delete.
            let ghost = imgedge::ids::ImageId::generate();
            let keys = &app.state.shared.keys;
            for key in [keys.original(&ghost), keys.variant(&ghost, "ff", "webp")] {
                app.state.shared.store.put(&key, Bytes::from_static(b"orphan"), "image/webp").await.unwrap();
            }
            let sweep = |grace: Duration, dry_run: bool| {
                imgedge::sweep::sweep(
                    &app.state.shared.db,
                    &app.state.shared.store,
                    keys,
                    grace,
                    dry_run,
                    std::time::SystemTime::now(),
                )
            };
            let young = sweep(Duration::from_secs(3600), false).await.unwrap();
            assert_eq!((young.orphans, young.deleted, young.recent), (2, 0, 2), "{backend:?}: young orphans are kept");
            let dry = sweep(Duration::ZERO, true).await.unwrap();
            assert_eq!((dry.orphans, dry.deleted), (2, 0));
            let real = sweep(Duration::ZERO, false).await.unwrap();
            assert_eq!((real.scanned, real.orphans, real.deleted), (4, 2, 2), "{backend:?}");
            assert!(app.stored_keys(&keys.variants_of(&ghost)).await.is_empty());
            assert_eq!(app.stored_keys("").await.len(), 2, "the live image keeps its original and variant");
            assert_eq!(app.variant(&alice, live_id, "w_10").await.status(), 200);
            if backend == Backend::Sqlite {
                let folder = app.env.dir.path().join("blobs").join(keys.variants_of(&ghost));
                assert!(!folder.exists(), "the emptied folder {} is gone", folder.display());
            }
        }
    }

    /// An upload finishing while a sweep runs: the sweep listed its object before the row existed,
    /// and must not delete it once the row does. Also, an object written after the sweep's clock
    /// reading (a modification time in the future) counts as new.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_finishing_during_a_sweep_loses_nothing() {
        for backend in [Backend::Sqlite, Backend::PostgresS3] {
            let app = crate::harness::spawn(backend).await;
            let alice = app.register("alice").await;
            let (db, store, keys) = (&app.state.shared.db, &app.state.shared.store, &app.state.shared.keys);
            // Half an upload: the object is stored, the row is not yet.
            let jpeg = crate::fixtures::halves_jpeg(40, 20);
            let id = imgedge::ids::ImageId::generate();
            store.put(&keys.original(&id), Bytes::from(jpeg.clone()), "image/jpeg").await.unwrap();
            // The sweep reads the store and the ids as if an hour had passed: the object is a candidate.
            let later = std::time::SystemTime::now() + Duration::from_secs(7200);
            let plan = imgedge::sweep::plan(db, store, keys, Duration::from_secs(3600), later).await.unwrap();
            // The upload finishes: its row appears before the sweep deletes.
            let record = imgedge::db::ImageRecord {
                id: id.clone(),
                owner: imgedge::ids::UserId::parse(&alice.id).unwrap(),
                format: imgedge::format::ImageFormat::Jpeg,
                width: 40,
                height: 20,
                size_bytes: jpeg.len() as u64,
                content_hash: blake3::hash(&jpeg).to_hex().to_string(),
                has_alpha: false,
                placeholder: None,
                frames: Some(1),
                public: false,
                levels: Some(0),
                copies_bytes: Some(0),
                purges: 0,
                created_at: imgedge::db::to_micros(chrono::Utc::now()),
            };
            db.insert_image(&record).await.unwrap();
            let report = imgedge::sweep::apply(plan, db, store, keys, false).await.unwrap();
            assert_eq!((report.orphans, report.claimed, report.deleted), (1, 1, 0), "{backend:?}");
            assert_eq!(
                app.get(&app.signed(&alice, &format!("/i/{id}"))).await.status(),
                200,
                "{backend:?}: nothing lost"
            );
            // Seen from a clock an hour behind, every object is from the future: age 0, kept.
            let ghost = imgedge::ids::ImageId::generate();
            store.put(&keys.original(&ghost), Bytes::from_static(b"orphan"), "image/jpeg").await.unwrap();
            let earlier = std::time::SystemTime::now() - Duration::from_secs(3600);
            let report = imgedge::sweep::sweep(db, store, keys, Duration::from_secs(60), false, earlier).await.unwrap();
            assert_eq!((report.orphans, report.recent, report.deleted), (1, 1, 0), "{backend:?}");
        }
    }
}
