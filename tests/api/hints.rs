//! Client hints: `w_auto`, `dpr_auto` and `Save-Data`, snapped to the ladder, with `Vary`
//! naming exactly the headers an answer depended on.

use crate::fixtures::{busy, decode, encode};
use crate::harness::{spawn_with, Backend, TestApp};

crate::for_backends!(one_signed_url_serves_every_screen_from_the_ladder);

/// GETs `url` with `headers`; returns (status, width, `Vary`, `X-Cache`, ETag, body length).
async fn fetch(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> (u16, u32, String, String, String, usize) {
    let mut req = app.client.get(app.url(url));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (status, vary, cache, etag) = (res.status().as_u16(), header("vary"), header("x-cache"), header("etag"));
    let bytes = res.bytes().await.unwrap();
    let width = if status == 200 { image::GenericImageView::width(&decode(&bytes)) } else { 0 };
    (status, width, vary, cache, etag, bytes.len())
}

async fn one_signed_url_serves_every_screen_from_the_ladder(backend: Backend) {
    let app = spawn_with(backend, |c| c.transform.width_ladder = vec![100, 200, 400, 800]).await;
    let alice = app.register("alice").await;
    let jpeg = encode(&image::DynamicImage::ImageRgb8(busy(1000, 500)), image::ImageFormat::Jpeg);
    let id = app.upload(&alice, jpeg).await["id"].as_str().unwrap().to_owned();

    // Two screens on one rung share one transform and one charge.
    let auto = app.signed(&alice, &format!("/i/{id}/w_auto,fmt_webp"));
    let first = fetch(&app, &auto, &[("sec-ch-width", "300")]).await;
    let named = "Sec-CH-Width, Width, Save-Data";
    assert_eq!((first.0, first.1, first.2.as_str(), first.3.as_str()), (200, 400, named, "miss"));
    let second = fetch(&app, &auto, &[("width", "350")]).await;
    assert_eq!((second.1, second.3.as_str()), (400, "hit-memory"));
    assert_eq!(second.4, first.4, "one variant, one ETag");
    assert_eq!(app.used_today(&alice).await, 1);
    // Another rung, the top step, and no hint at all (the source's width).
    assert_eq!(fetch(&app, &auto, &[("sec-ch-width", "101")]).await.1, 200);
    assert_eq!(fetch(&app, &auto, &[("sec-ch-width", "5000")]).await.1, 800);
    let none = fetch(&app, &auto, &[]).await;
    assert_eq!((none.1, none.2.as_str()), (1000, named), "a WebP of the source's width");
    let fallback = app.signed(&alice, &format!("/i/{id}/w_auto:300,fmt_webp"));
    assert_eq!(fetch(&app, &fallback, &[]).await.1, 300);
    assert_eq!(app.used_today(&alice).await, 5);

    // dpr_auto: 1, 1.5, 2 or 3, nearest; 1.9 and 2 share a rung.
    let dpr = app.signed(&alice, &format!("/i/{id}/w_100,dpr_auto"));
    let two = fetch(&app, &dpr, &[("sec-ch-dpr", "2")]).await;
    assert_eq!((two.1, two.2.as_str()), (200, "Sec-CH-DPR, DPR, Save-Data"));
    let near = fetch(&app, &dpr, &[("dpr", "1.9")]).await;
    assert_eq!((near.1, near.3.as_str()), (200, "hit-memory"));
    assert_eq!(fetch(&app, &dpr, &[]).await.1, 100);
    // With fmt_auto, Accept is named too.
    let both = app.signed(&alice, &format!("/i/{id}/w_auto,fmt_auto"));
    let res = fetch(&app, &both, &[("sec-ch-width", "200"), ("accept", "image/webp")]).await;
    assert_eq!(res.2, "Accept, Sec-CH-Width, Width, Save-Data");

    // Save-Data lowers the default quality (a variant of its own), and only the default.
    let plain = app.signed(&alice, &format!("/i/{id}/w_400"));
    let full = fetch(&app, &plain, &[]).await;
    let saving = fetch(&app, &plain, &[("save-data", "on")]).await;
    assert_eq!((full.2.as_str(), saving.2.as_str()), ("Save-Data", "Save-Data"), "named with and without it");
    assert!(saving.5 < full.5, "{} bytes with Save-Data vs {}", saving.5, full.5);
    assert_ne!(saving.4, full.4);
    assert_eq!(fetch(&app, &plain, &[]).await.5, full.5, "the full-quality variant is still served to others");
    let fixed = app.signed(&alice, &format!("/i/{id}/w_400,q_90"));
    assert_eq!(fetch(&app, &fixed, &[("save-data", "on")]).await.2, "", "an explicit q_ stays");
    // A URL without hint tokens ignores hint headers.
    let still = fetch(&app, &plain, &[("sec-ch-width", "100"), ("sec-ch-dpr", "3")]).await;
    assert_eq!((still.1, still.2.as_str(), still.5), (400, "Save-Data", full.5));
}
