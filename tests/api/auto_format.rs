//! `fmt_auto` by cost: AVIF and JPEG XL only up to 2048 × 2048 pixels (above, the next format
//! accepted, as a final answer); below that, a time budget after which the cheaper format the
//! browser accepts stands in — its own ETag, a short `max-age` — while the slow one is made in
//! the background, once, charged once.

use std::time::{Duration, Instant};

use crate::fixtures::halves_jpeg;
use crate::harness::{spawn, spawn_with, Backend};

crate::for_backends!(fmt_auto_never_waits_past_its_budget_for_a_slow_format, fmt_auto_makes_slow_formats_up_to_a_size);

const CHROME: &str = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8";

async fn fmt_auto_never_waits_past_its_budget_for_a_slow_format(backend: Backend) {
    let app = spawn_with(backend, |c| c.transform.auto_format_budget = Duration::from_millis(1)).await;
    let alice = app.register("alice").await;
    let id = app.upload(&alice, halves_jpeg(1200, 800)).await["id"].as_str().unwrap().to_owned();
    let url = app.url(&app.signed(&alice, &format!("/i/{id}/w_1000,fmt_auto")));
    let fetch = || app.client.get(&url).header("accept", CHROME).send();

    // An AVIF takes longer than 1 ms: WebP now, cacheable for a minute, with its own ETag.
    let first = fetch().await.unwrap();
    assert_eq!(first.status(), 200);
    let h = first.headers().clone();
    assert_eq!(h["content-type"], "image/webp");
    assert_eq!(h["cache-control"], "public, max-age=60");
    assert!(h["vary"].to_str().unwrap().contains("Accept"));
    let stand_in = h["etag"].to_str().unwrap().to_owned();
    let bytes = first.bytes().await.unwrap();
    assert_eq!(crate::fixtures::size(&bytes), (1000, 667));

    // The AVIF goes on being made: once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.metric("imgedge_transforms_total{outcome=\"ok\"}").await < 2 {
        assert!(Instant::now() < deadline, "the AVIF was never made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Then it is the answer — for a browser sending the stand-in's ETag back too.
    let second = app.client.get(&url).header("accept", CHROME).header("if-none-match", &stand_in).send().await.unwrap();
    assert_eq!(second.status(), 200);
    let h = second.headers();
    assert_eq!(h["content-type"], "image/avif");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_ne!(h["etag"].to_str().unwrap(), stand_in);
    assert_eq!(h["x-cache"], "hit-memory");

    assert_eq!(app.metric("imgedge_transforms_total{outcome=\"ok\"}").await, 2, "one AVIF, one WebP");
    assert_eq!(app.metric("imgedge_auto_format_fallbacks_total").await, 1);
    assert_eq!(app.used_today(&alice).await, 1, "the AVIF is charged, its stand-in is not");
}

/// Above 2048 × 2048 pixels `fmt_auto` makes WebP for a browser that takes AVIF: a final answer
/// (cached for a year), not a stand-in; `fmt_avif` still makes AVIF.
async fn fmt_auto_makes_slow_formats_up_to_a_size(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let id = app.upload(&alice, halves_jpeg(2100, 2100)).await["id"].as_str().unwrap().to_owned();
    let url = app.url(&app.signed(&alice, &format!("/i/{id}/fmt_auto")));
    let res = app.client.get(&url).header("accept", CHROME).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/webp");
    assert_eq!(res.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(app.metric("imgedge_auto_format_fallbacks_total").await, 0);
    let small = app.url(&app.signed(&alice, &format!("/i/{id}/w_300,fmt_auto")));
    let res = app.client.get(&small).header("accept", CHROME).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/avif");
}
