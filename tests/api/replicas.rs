//! Two replicas on one PostgreSQL and one bucket. They share one injected clock, which the
//! tests move past the lookup bound instead of sleeping through it.

use std::sync::Arc;
use std::time::Duration;

use crate::fixtures::halves_jpeg;
use crate::harness::{
    assert_error, sign, spawn_on, Backend, Child, Env, Gate, TestApp, JWT_SECRET, S3_ACCESS_KEY, S3_SECRET_KEY,
};

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

    /// Polls `app`'s counter `name` until it reaches `want` (10 s at most).
    async fn wait_for_metric(app: &TestApp, name: &str, want: u64) {
        for _ in 0..500 {
            if app.metric(name).await >= want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{name} never reached {want}");
    }

    async fn transforms(app: &TestApp) -> u64 {
        app.metric("imgedge_transforms_total{outcome=\"ok\"}").await
            + app.metric("imgedge_transforms_total{outcome=\"error\"}").await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_variant_asked_of_both_at_once_is_made_and_charged_once() {
        let (a, b) = pair(20).await;
        let alice = a.register("alice").await;
        let id = a.upload(&alice, halves_jpeg(2400, 1600)).await["id"].as_str().unwrap().to_owned();
        let (a, b) = (Arc::new(a), Arc::new(b));
        let fetch = |app: &Arc<TestApp>| {
            let (app, alice, id) = (Arc::clone(app), alice.clone(), id.clone());
            tokio::spawn(async move {
                let res = app.variant(&alice, &id, "w_640,fmt_webp").await;
                let etag = res.headers().get("etag").map(|e| e.to_str().unwrap().to_owned());
                (res.status().as_u16(), etag, res.bytes().await.unwrap())
            })
        };
        // A claims the variant and charges, then waits for a worker that the gate holds; every
        // other request, on either replica, arrives while A is making it.
        let gate = Gate::close(&a).await;
        let mut requests = vec![fetch(&a)];
        wait_for_metric(&a, "imgedge_claims_won_total", 1).await;
        requests.extend((1..16).map(|i| fetch(if i % 2 == 0 { &a } else { &b })));
        wait_for_metric(&b, "imgedge_claims_waited_total", 1).await;
        gate.open().await;
        let answers: Vec<_> = futures_util::future::join_all(requests).await.into_iter().map(Result::unwrap).collect();
        assert!(
            answers.iter().all(|(status, ..)| *status == 200),
            "{:?}",
            answers.iter().map(|a| a.0).collect::<Vec<_>>()
        );
        assert!(answers.iter().all(|(_, etag, bytes)| *etag == answers[0].1 && *bytes == answers[0].2));
        assert_eq!(crate::fixtures::decode(&answers[0].2).width(), 640);
        assert_eq!(transforms(&a).await + transforms(&b).await, 1, "one transform in the fleet");
        assert_eq!(a.used_today(&alice).await, 1, "one charge");
        assert_eq!(b.metric("imgedge_claims_won_total").await, 0);
        // Nothing is left claimed once the variant is stored.
        no_claims_left(&a.env).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_whose_holder_died_is_taken_over_and_not_charged_again() {
        let env = Arc::new(Env::new(Backend::PostgresS3).await);
        let mut config = env.config();
        config.quota.daily_limit = 20;
        let b = spawn_on(Arc::clone(&env), config, crate::harness::noon()).await;
        let alice = b.register("alice").await;
        // Large enough that its blur takes a while: the holder is stopped mid-transform.
        let id = b.upload(&alice, halves_jpeg(3000, 2000)).await["id"].as_str().unwrap().to_owned();
        let (db_url, s3) = (env.database_url(), env.s3.clone().expect("bucket"));
        // A: the real binary on the same database and bucket; its lease is 2 × 1 s.
        let a = Child::start(&[
            ("DATABASE_URL", db_url.as_str()),
            ("AWS_S3_BUCKET", s3.bucket.as_str()),
            ("AWS_ENDPOINT_URL", s3.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_S3_FORCE_PATH_STYLE", "true"),
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY),
            ("JWT_SECRET", JWT_SECRET),
            ("TRANSFORM_TIMEOUT_SECS", "1"),
        ]);
        let ops = "blur_100,fmt_png";
        let path = b.signed(&alice, &format!("/i/{id}/{ops}"));
        let on_a = tokio::spawn(reqwest::get(format!("{}{path}", a.base())));
        // Stop A once it holds the claim (and has charged), still making the variant; then kill it.
        let mut held = false;
        for _ in 0..500 {
            if env.count("SELECT count(*) FROM variant_claims WHERE charged_on IS NOT NULL").await == 1 {
                a.signal(libc::SIGSTOP);
                held = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(held, "A never claimed the variant");
        assert_eq!(env.count("SELECT count(*) FROM variant_claims").await, 1, "A finished before it was stopped");
        drop(a);
        let _ = on_a.await;
        assert_eq!(b.used_today(&alice).await, 1, "A charged");
        let res = b.variant(&alice, &id, ops).await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.headers()["x-cache"], "miss");
        assert_eq!(crate::fixtures::decode(&res.bytes().await.unwrap()).width(), 3000);
        assert_eq!(b.metric("imgedge_claims_taken_over_total").await, 1);
        assert_eq!(b.metric("imgedge_claims_waited_total").await, 1, "B waited for the lease to run out");
        assert_eq!(b.used_today(&alice).await, 1, "the take-over charged nothing more");
        no_claims_left(&env).await;
    }

    /// Waits (5 s at most) for every claim to be let go: a holder releases its claim in a task
    /// of its own as its answer goes out, so moments after the answer, not before it.
    async fn no_claims_left(env: &crate::harness::Env) {
        let mut claims = env.count("SELECT count(*) FROM variant_claims").await;
        for _ in 0..250 {
            if claims == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            claims = env.count("SELECT count(*) FROM variant_claims").await;
        }
        assert_eq!(claims, 0, "a claim is left");
    }
}
