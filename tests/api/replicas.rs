//! Two replicas on one PostgreSQL and one bucket. They share one injected clock, which the
//! tests move past the lookup bound instead of sleeping through it.

use std::sync::Arc;
use std::time::Duration;

use crate::fixtures::halves_jpeg;
use crate::harness::{assert_error, sign, spawn_on, Backend, Env, TestApp};

/// How stale a replica's lookups may be (the default).
const LOOKUP_TTL: Duration = Duration::from_secs(10);

/// Moves both replicas' clock `secs` on.
fn advance(app: &TestApp, secs: i64) {
    app.clock.advance(secs);
}

async fn pair(limit: u32) -> (TestApp, TestApp) {
    let env = Arc::new(Env::new(Backend::PostgresS3).await);
    let mut config = env.config();
    config.quota.daily_limit = limit;
    config.auth.lookup_ttl = LOOKUP_TTL;
    let clock = crate::harness::noon();
    let a = spawn_on(Arc::clone(&env), config.clone(), clock.clone()).await;
    let b = spawn_on(env, config, clock).await;
    (a, b)
}

/// Tests that need PostgreSQL (at `TEST_DATABASE_URL`): the `postgres` tier of `tests/run`.
mod needs_postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quota_is_exact_across_replicas() {
        let (a, b) = pair(20).await;
        let alice = a.register("alice").await;
        // Wider than every width asked for: each `w_N` is a variant of its own.
        let id = a.upload(&alice, halves_jpeg(128, 32)).await["id"].as_str().unwrap().to_owned();
        let (a, b) = (Arc::new(a), Arc::new(b));
        let requests = (1..=100).map(|w| {
            let app = if w % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
            let (alice, id) = (alice.clone(), id.clone());
            tokio::spawn(async move { app.variant(&alice, &id, &format!("w_{w}")).await.status().as_u16() })
        });
        let statuses: Vec<u16> =
            futures_util::future::join_all(requests).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 20, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 80);
        assert_eq!(a.used_today(&alice).await, 20);
        assert_eq!(b.used_today(&alice).await, 20);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_variant_made_by_one_is_served_by_the_other_from_the_store() {
        let (a, b) = pair(20).await;
        let alice = a.register("alice").await;
        let id = a.upload(&alice, halves_jpeg(300, 200)).await["id"].as_str().unwrap().to_owned();
        let made = a.variant(&alice, &id, "w_120,fmt_webp").await;
        assert_eq!(made.headers()["x-cache"], "miss");
        let etag = made.headers()["etag"].clone();
        let bytes = made.bytes().await.unwrap();
        let served = b.variant(&alice, &id, "w_120,fmt_webp").await;
        assert_eq!(served.headers()["x-cache"], "hit-store");
        assert_eq!(served.headers()["etag"], etag);
        assert_eq!(served.bytes().await.unwrap(), bytes);
        // The streamed store hit also filled B's memory.
        let again = b.variant(&alice, &id, "w_120,fmt_webp").await;
        assert_eq!(again.headers()["x-cache"], "hit-memory");
        assert_eq!(a.used_today(&alice).await, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deletes_and_key_rotations_reach_the_other_replica_within_the_bound() {
        let (a, b) = pair(20).await;
        let alice = a.register("alice").await;
        let doomed = a.upload(&alice, halves_jpeg(60, 40)).await["id"].as_str().unwrap().to_owned();
        let kept = a.upload(&alice, halves_jpeg(60, 40)).await["id"].as_str().unwrap().to_owned();
        // B caches the image, the owner's key and the variant.
        assert_eq!(b.variant(&alice, &doomed, "w_20").await.status(), 200);
        assert_eq!(b.variant(&alice, &kept, "w_20").await.status(), 200);
        let res =
            a.client.delete(a.url(&format!("/v1/images/{doomed}"))).bearer_auth(&alice.token).send().await.unwrap();
        assert_eq!(res.status(), 204);
        let rotated: serde_json::Value = a
            .client
            .post(a.url("/v1/me/signing-key/rotate"))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // A sees both changes at once.
        assert_error(a.variant(&alice, &doomed, "w_20").await, 404, "not_found").await;
        assert_error(a.variant(&alice, &kept, "w_20").await, 403, "bad_signature").await;
        // B still within the bound: it may answer from what it read (a stale read is allowed).
        advance(&a, 9);
        assert_eq!(b.variant(&alice, &kept, "w_20").await.status(), 200, "the key B read 9 s ago");
        // B past the bound.
        advance(&a, 2);
        assert_error(b.variant(&alice, &doomed, "w_20").await, 404, "not_found").await;
        assert_error(b.variant(&alice, &kept, "w_20").await, 403, "bad_signature").await; // the old key no longer signs
        let new_key = hex::decode(rotated["key"].as_str().unwrap()).unwrap();
        assert_eq!(b.get(&sign(&new_key, &format!("/i/{kept}/w_20"), None)).await.status(), 200);
    }

    /// A URL remembered late, with records read before a key rotation on another replica, is not
    /// answered past the bound counted from the rotation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn remembered_urls_expire_with_the_records_they_were_checked_with() {
        let env = Arc::new(Env::new(Backend::Postgres).await);
        let mut config = env.config();
        config.auth.lookup_ttl = LOOKUP_TTL;
        let clock = crate::harness::noon();
        let a = spawn_on(Arc::clone(&env), config.clone(), clock.clone()).await;
        let b = spawn_on(env, config, clock).await;
        let alice = a.register("alice").await;
        let id = a.upload(&alice, halves_jpeg(60, 40)).await["id"].as_str().unwrap().to_owned();
        // t = 0: B reads the image and the owner's key.
        assert_eq!(b.variant(&alice, &id, "w_20").await.status(), 200);
        // t = 2: A rotates the key.
        advance(&a, 2);
        let res = a.client.post(a.url("/v1/me/signing-key/rotate")).bearer_auth(&alice.token).send().await.unwrap();
        assert_eq!(res.status(), 200);
        // t = 6, still within the bound of B's reads: B checks a new URL with the key it read before
        // the rotation, and remembers it.
        advance(&a, 4);
        assert_eq!(b.variant(&alice, &id, "w_21").await.status(), 200);
        assert_eq!(b.variant(&alice, &id, "w_21").await.headers()["x-cache"], "hit-memory");
        // t = 11, past the bound of the reads it was checked with (t = 0 + 10 s): the old key opens
        // nothing, though the URL was remembered only at t = 6.
        advance(&a, 5);
        assert_error(b.variant(&alice, &id, "w_21").await, 403, "bad_signature").await;
    }

    /// A preset changed or deleted through one replica applies on the other within the bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn preset_changes_reach_the_other_replica_within_the_bound() {
        let (a, b) = pair(100).await;
        let alice = a.register("alice").await;
        let id = a.upload(&alice, halves_jpeg(400, 200)).await["id"].as_str().unwrap().to_owned();
        let put = |ops: &str| {
            let body = serde_json::json!({"ops": ops, "public": true});
            a.client.put(a.url("/v1/presets/card")).bearer_auth(&alice.token).json(&body).send()
        };
        let width = |bytes: &[u8]| image::GenericImageView::width(&crate::fixtures::decode(bytes));
        let publish = serde_json::json!({"public": true});
        let res = a.client.patch(a.url(&format!("/v1/images/{id}"))).bearer_auth(&alice.token).json(&publish).send();
        assert_eq!(res.await.unwrap().status(), 200);
        let bare = format!("/i/{id}/p_card");
        assert_eq!(put("w_200,fmt_png").await.unwrap().status(), 200);
        assert_eq!(width(&b.get(&bare).await.bytes().await.unwrap()), 200, "b reads the preset");
        assert_eq!(put("w_150,fmt_png").await.unwrap().status(), 200);
        assert_eq!(width(&a.get(&bare).await.bytes().await.unwrap()), 150, "at once where it changed");
        advance(&a, 11);
        assert_eq!(width(&b.get(&bare).await.bytes().await.unwrap()), 150, "within the bound on the other");
        let deleted = a.client.delete(a.url("/v1/presets/card")).bearer_auth(&alice.token).send().await.unwrap();
        assert_eq!(deleted.status(), 204);
        assert_error(a.get(&bare).await, 401, "unauthorized").await;
        advance(&a, 11);
        assert_error(b.get(&bare).await, 401, "unauthorized").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_purge_on_one_reaches_the_others_memory_within_the_lookup_bound() {
        let (a, b) = pair(20).await;
        let alice = a.register("alice").await;
        let id = a.upload(&alice, halves_jpeg(300, 200)).await["id"].as_str().unwrap().to_owned();
        let x_cache = |res: &reqwest::Response| res.headers()["x-cache"].to_str().unwrap().to_owned();
        assert_eq!(x_cache(&b.variant(&alice, &id, "w_120").await), "miss");
        assert_eq!(x_cache(&b.variant(&alice, &id, "w_120").await), "hit-memory");
        let purge = a.client.delete(a.url(&format!("/v1/images/{id}/variants"))).bearer_auth(&alice.token);
        assert_eq!(purge.send().await.unwrap().status().as_u16(), 204);
        // b still holds the old variant in memory; once its lookup of the image expires, the
        // new purge count makes another key: a miss, charged.
        advance(&b, LOOKUP_TTL.as_secs() as i64 + 1);
        let res = b.variant(&alice, &id, "w_120").await;
        assert_eq!((res.status().as_u16(), x_cache(&res)), (200, "miss".to_owned()));
        assert_eq!(b.used_today(&alice).await, 2);
    }
}
