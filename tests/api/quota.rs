//! The atomic daily quota: exact under concurrency, free for hits, reset at UTC midnight,
//! refunded on failure; single flight; overload.

use std::sync::Arc;

use serde_json::Value;

use crate::fixtures::halves_jpeg;
use reqwest::StatusCode;

use crate::harness::{assert_error, spawn_with, wait_until, Backend, Gate, Owner, TestApp};

async fn budget(backend: Backend, limit: u32) -> (TestApp, Owner, String) {
    budget_on(backend, limit, crate::harness::noon()).await
}

/// [`budget`] on a server with `clock`.
async fn budget_on(backend: Backend, limit: u32, clock: imgedge::clock::Clock) -> (TestApp, Owner, String) {
    let env = std::sync::Arc::new(crate::harness::Env::new(backend).await);
    let mut config = env.config();
    config.quota.daily_limit = limit;
    let app = crate::harness::spawn_on(env, config, clock).await;
    let alice = app.register("alice").await;
    // Wider than any width the tests ask for: every `w_N` is a variant of its own.
    let image = app.upload(&alice, halves_jpeg(256, 32)).await;
    (app, alice, image["id"].as_str().unwrap().to_owned())
}

async fn spent_quota_is_429_until_midnight(backend: Backend) {
    let noon = chrono::Utc::now().date_naive().and_hms_opt(12, 0, 0).unwrap().and_utc();
    let (app, alice, id) = budget_on(backend, 3, imgedge::clock::Clock::frozen_at(noon)).await;
    for w in 1..=3 {
        assert_eq!(app.variant(&alice, &id, &format!("w_{w}")).await.status(), 200);
    }
    let res = app.variant(&alice, &id, "w_4").await;
    assert_eq!(res.status(), 429);
    // The clock stands still at noon: twelve hours to the next UTC midnight, to the second.
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let expected = 43_200;
    assert_eq!(retry, expected);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exceeded");
    // Hits, 304s and originals stay free.
    let hit = app.variant(&alice, &id, "w_1").await;
    assert_eq!(hit.status(), 200);
    assert_eq!(hit.headers()["x-cache"], "hit-memory");
    assert_eq!(app.get(&app.signed(&alice, &format!("/i/{id}"))).await.status(), 200);
    let me: Value = app.get_auth("/v1/me", &alice.token).await.json().await.unwrap();
    assert_eq!((me["quota"]["used"].as_u64(), me["quota"]["remaining"].as_u64()), (Some(3), Some(0)));
    // Another owner has a budget of their own.
    let bob = app.register("bob").await;
    let bobs = app.upload(&bob, halves_jpeg(64, 32)).await;
    assert_eq!(app.variant(&bob, bobs["id"].as_str().unwrap(), "w_4").await.status(), 200);
    // The next UTC day starts a new budget: the first charge of the day sets the count to 1.
    app.clock.advance(i64::try_from(expected).unwrap() + 1);
    assert_eq!(app.used_today(&alice).await, 0);
    assert_eq!(app.variant(&alice, &id, "w_4").await.status(), 200);
    assert_eq!(app.used_today(&alice).await, 1);
    let user = app.state.shared.db.user(&imgedge::ids::UserId::parse(&alice.id).unwrap()).await.unwrap().unwrap();
    assert_eq!(user.transform_count, 1);
    assert_eq!(user.transform_date, Some(app.clock.today()));
}

async fn quota_is_exact_under_concurrency(backend: Backend) {
    let (app, alice, id) = budget(backend, 20).await;
    let app = Arc::new(app);
    let requests = (1..=200).map(|w| {
        let (app, alice, id) = (Arc::clone(&app), alice.clone(), id.clone());
        tokio::spawn(async move { app.variant(&alice, &id, &format!("w_{w},q_50")).await.status().as_u16() })
    });
    let statuses: Vec<u16> = futures_util::future::join_all(requests).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 180);
    let user = app.state.shared.db.user(&imgedge::ids::UserId::parse(&alice.id).unwrap()).await.unwrap().unwrap();
    assert_eq!(user.transform_count, 20, "the database row holds exactly the budget");
    assert_eq!(app.stored_keys(&format!("derived/{id}/")).await.len(), 20, "exactly 20 transforms ran");
}

async fn concurrent_misses_share_one_transform(backend: Backend) {
    let (app, alice, id) = budget(backend, 20).await;
    let app = Arc::new(app);
    // The transform cannot start until the gate opens, so all twenty requests are in flight
    // together: one leads, nineteen join it.
    let gate = Gate::close(&app).await;
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (app, alice, id) = (Arc::clone(&app), alice.clone(), id.clone());
            tokio::spawn(async move {
                let res = app.variant(&alice, &id, "w_48,blur_2,fmt_avif").await;
                let tier = res.headers().get("x-cache").map(|v| v.to_str().unwrap().to_owned());
                (res.status().as_u16(), tier, res.bytes().await.unwrap())
            })
        })
        .collect();
    // Waiting on the one transform, not only arrived: a request still in its lookups when the
    // transform ends would be a memory hit.
    let delivery = app.state.delivery.clone();
    wait_until("all twenty requests wait on the transform", || delivery.waiting_on_transforms() == 20).await;
    gate.open().await;
    let results: Vec<_> = futures_util::future::join_all(requests).await.into_iter().map(Result::unwrap).collect();
    let answers: Vec<_> = results.iter().map(|(s, tier, _)| (*s, tier.clone())).collect();
    assert!(
        answers.iter().all(|(s, tier)| *s == 200 && tier.as_deref() == Some("miss")),
        "every request joined: {answers:?}"
    );
    assert!(results.windows(2).all(|w| w[0].2 == w[1].2), "every response has the same bytes");
    assert_eq!(app.used_today(&alice).await, 1, "one transform, one charge");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("imgedge_transforms_total{outcome=\"ok\"} 1"), "{metrics}");
}

async fn a_slow_transform_finishes_once_and_is_charged_once(backend: Backend) {
    let app = spawn_with(backend, |c| {
        c.quota.daily_limit = 5;
        c.transform.timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let alice = app.register("alice").await;
    let id = app.upload(&alice, halves_jpeg(64, 32)).await["id"].as_str().unwrap().to_owned();
    // No worker is free for longer than the requests wait.
    let gate = Gate::close(&app).await;
    for _ in 0..3 {
        let res = app.variant(&alice, &id, "w_60,fmt_webp").await;
        assert!(res.headers().contains_key("retry-after"));
        assert_error(res, 503, "overloaded").await;
    }
    assert_eq!(app.used_today(&alice).await, 1, "one transform is under way, charged once");
    gate.open().await;
    let stored = || async { app.stored_keys(&format!("derived/{id}/")).await.len() };
    for _ in 0..500 {
        if stored().await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(stored().await, 1, "the late result was stored");
    let res = app.variant(&alice, &id, "w_60,fmt_webp").await;
    assert_eq!((res.status(), res.headers()["x-cache"].to_str().unwrap()), (StatusCode::OK, "hit-memory"));
    assert_eq!(app.used_today(&alice).await, 1);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("imgedge_transforms_total{outcome=\"ok\"} 1"), "ran once: {metrics}");
}

async fn a_full_queue_refuses_before_any_charge_or_read(backend: Backend) {
    let app = spawn_with(backend, |c| c.transform.queue = 0).await;
    let alice = app.register("alice").await;
    let id = app.upload(&alice, halves_jpeg(64, 32)).await["id"].as_str().unwrap().to_owned();
    assert_eq!(app.variant(&alice, &id, "w_10").await.status(), 200);
    let reads = app.metric("imgedge_store_reads_total").await;
    let gate = Gate::close(&app).await;
    let res = app.variant(&alice, &id, "w_20").await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_error(res, 503, "overloaded").await;
    // Refused before it cost anything: one charge (the first variant's), no refund, no read.
    assert_eq!(app.used_today(&alice).await, 1);
    assert_eq!(app.metric("imgedge_quota_charges_total").await, 1);
    assert_eq!(app.metric("imgedge_quota_refunds_total").await, 0);
    assert_eq!(app.metric("imgedge_store_reads_total").await, reads);
    let hit = app.variant(&alice, &id, "w_10").await;
    assert_eq!((hit.status(), hit.headers()["x-cache"].to_str().unwrap()), (StatusCode::OK, "hit-memory"));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("imgedge_overloaded_total 1"), "{metrics}");
    gate.open().await;
}

async fn each_plan_has_its_own_budget(backend: Backend) {
    let app = spawn_with(backend, |c| {
        c.quota.daily_limit = 1;
        c.quota.plans.insert("pro".into(), 3);
    })
    .await;
    let alice = app.register("alice").await;
    let id = app.upload(&alice, halves_jpeg(64, 32)).await["id"].as_str().unwrap().to_owned();
    assert_eq!(app.variant(&alice, &id, "w_1").await.status(), 200);
    assert_error(app.variant(&alice, &id, "w_2").await, 429, "quota_exceeded").await;
    let me: Value = app.get_auth("/v1/me", &alice.token).await.json().await.unwrap();
    assert_eq!((me["plan"].as_str(), me["quota"]["limit"].as_u64()), (Some("free"), Some(1)));
    let user = imgedge::ids::UserId::parse(&alice.id).unwrap();
    assert!(app.state.shared.db.set_plan(&user, "pro").await.unwrap());
    // `/i` reads the plan with the owner's key, cached for the lookup bound.
    app.clock.advance(11);
    let me: Value = app.get_auth("/v1/me", &alice.token).await.json().await.unwrap();
    assert_eq!((me["plan"].as_str(), me["quota"]["limit"].as_u64()), (Some("pro"), Some(3)));
    assert_eq!(app.variant(&alice, &id, "w_2").await.status(), 200);
    assert_eq!(app.variant(&alice, &id, "w_3").await.status(), 200);
    assert_error(app.variant(&alice, &id, "w_4").await, 429, "quota_exceeded").await;
}

crate::for_backends!(
    [Sqlite, Postgres, PostgresS3]
    spent_quota_is_429_until_midnight,
    quota_is_exact_under_concurrency,
    concurrent_misses_share_one_transform,
    a_slow_transform_finishes_once_and_is_charged_once,
    a_full_queue_refuses_before_any_charge_or_read,
    each_plan_has_its_own_budget,
);
