//! What a request costs: no file, URL or header makes one request cost more than its owner
//! paid for. GIF frames count at their own size, outputs too large for their format and
//! transforms that failed cost a lookup, hints that cannot enlarge collapse into one variant,
//! and unsigned access through a public preset reaches only published images.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::fixtures::{busy, decode, encode, halves_jpeg, size};
use crate::harness::{assert_error, spawn, spawn_on, spawn_with, Backend, Env, Owner, TestApp};

crate::for_backends!(
    a_failed_transform_is_remembered_and_decoded_once,
    hints_that_cannot_enlarge_collapse_into_one_variant,
    public_presets_open_published_images_only,
);
crate::for_backends!([Sqlite] gif_frames_count_at_their_own_rectangle, outputs_too_large_for_their_format_cost_nothing);
crate::for_backends!([Sqlite, Postgres] owners_objects_are_bounded_and_gone_owners_are_refused);

/// A GIF with a `screen` and `frames` frames of `frame` size at 0,0, every pixel palette index 1.
fn gif_frames(screen: (u16, u16), frame: (u16, u16), frames: usize) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, screen.0, screen.1, &[0, 0, 0, 200, 40, 40]).unwrap();
        encoder.set_repeat(gif::Repeat::Infinite).unwrap();
        for _ in 0..frames {
            let pixels = vec![1u8; usize::from(frame.0) * usize::from(frame.1)];
            let mut f = gif::Frame::from_indexed_pixels(frame.0, frame.1, pixels, None);
            f.delay = 10;
            encoder.write_frame(&f).unwrap();
        }
    }
    out
}

async fn upload_id(app: &TestApp, owner: &Owner, bytes: Vec<u8>) -> String {
    app.upload(owner, bytes).await["id"].as_str().unwrap().to_owned()
}

async fn gif_frames_count_at_their_own_rectangle(backend: Backend) {
    // A 1×1 screen with two 3000×3000 frames: 18 MP to decode, though the screen says 2 pixels.
    let bomb = gif_frames((1, 1), (3000, 3000), 2);
    assert!(bomb.len() < 200_000, "{} bytes", bomb.len());
    let app = spawn_with(backend, |c| c.limits.max_pixels = 10_000_000).await;
    let alice = app.register("alice").await;
    let message =
        assert_error(app.upload_raw(&alice, bomb.clone(), "image/gif").await, 422, "unprocessable_image").await;
    assert!(message.contains("3000x3000 x 2 frames"), "{message}");

    // Within the pixel limit, each frame's rectangle counts against the decode memory too:
    // 2 × 3000 × 3000 × 4 bytes is 69 MB.
    let app = spawn_with(backend, |c| c.limits.max_decode_bytes = 64 << 20).await;
    let alice = app.register("alice").await;
    let message =
        assert_error(app.upload_raw(&alice, bomb.clone(), "image/gif").await, 422, "unprocessable_image").await;
    assert!(message.contains("needs 69 MB"), "{message}");

    // An original stored before the rule (here: put behind the server's back) is refused from
    // its container before a pixel is decoded, and the refusal is remembered.
    let app = spawn_with(backend, |c| c.limits.max_pixels = 10_000_000).await;
    let alice = app.register("alice").await;
    let id = upload_id(&app, &alice, gif_frames((1, 1), (1, 1), 2)).await;
    let key = app.state.shared.keys.original(&imgedge::ids::ImageId::parse(&id).unwrap());
    app.state.shared.store.put(&key, bomb.into(), "image/gif").await.unwrap();
    for _ in 0..2 {
        let message = assert_error(app.variant(&alice, &id, "w_1").await, 422, "unprocessable_image").await;
        assert!(message.contains("3000x3000 x 2 frames is more pixels than allowed"), "{message}");
    }
    assert_eq!(app.metric("imgedge_decode_memory_bytes").await, 0, "nothing was reserved");
    assert_eq!(app.metric("imgedge_failures_remembered_total").await, 1);
    assert_eq!(app.used_today(&alice).await, 0);
}

async fn outputs_too_large_for_their_format_cost_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let wide = encode(&image::DynamicImage::ImageRgb8(busy(16_400, 12)), image::ImageFormat::Png);
    let id = upload_id(&app, &alice, wide).await;
    // WebP and AVIF hold at most 16383 and 16384 px a side: refused from the plan, for free.
    for ops in ["fmt_webp", "sharpen_10,blur_100,fmt_webp", "fmt_avif"] {
        let message = assert_error(app.variant(&alice, &id, ops).await, 400, "invalid_transform").await;
        assert!(message.contains("16400x12") && message.contains("px a side"), "{ops}: {message}");
    }
    assert_eq!(app.metric("imgedge_transforms_total{outcome=\"error\"}").await, 0, "nothing was decoded");
    assert_eq!(app.metric("imgedge_transforms_total{outcome=\"ok\"}").await, 0);
    assert_eq!(app.used_today(&alice).await, 0);
    // Signing refuses what delivery would.
    let res = app.post_json(&format!("/v1/images/{id}/url"), Some(&alice.token), &json!({"ops": "fmt_webp"})).await;
    assert_error(res, 400, "invalid_transform").await;
    // fmt_auto passes over the formats that cannot hold it; a smaller output fits again.
    let auto = app.signed(&alice, &format!("/i/{id}/fmt_auto"));
    let res = app.client.get(app.url(&auto)).header("accept", "image/avif,image/webp,*/*").send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["content-type"].to_str().unwrap()), (200, "image/jpeg"));
    let small = app.variant_bytes(&alice, &id, "w_8000,fmt_webp").await;
    assert_eq!(size(&small).0, 8000);
}

async fn a_failed_transform_is_remembered_and_decoded_once(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let id = upload_id(&app, &alice, halves_jpeg(300, 200)).await;
    // The original turns unreadable behind the server's back (a bad disk, a bad copy).
    let key = app.state.shared.keys.original(&imgedge::ids::ImageId::parse(&id).unwrap());
    app.state
        .shared
        .store
        .put(&key, b"\xFF\xD8\xFF\xE0 not a JPEG any more".to_vec().into(), "image/jpeg")
        .await
        .unwrap();
    let mut messages = Vec::new();
    for _ in 0..5 {
        messages.push(assert_error(app.variant(&alice, &id, "w_100,fmt_webp").await, 422, "unprocessable_image").await);
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "the same error each time: {messages:?}");
    assert_eq!(app.metric("imgedge_transforms_total{outcome=\"error\"}").await, 1, "one decode");
    assert_eq!(app.metric("imgedge_failures_remembered_total").await, 4);
    assert_eq!(app.used_today(&alice).await, 0, "the one charge was given back");
    // Another variant of the image is its own try.
    assert_error(app.variant(&alice, &id, "w_50").await, 422, "unprocessable_image").await;
    assert_eq!(app.metric("imgedge_transforms_total{outcome=\"error\"}").await, 2);
}

/// GETs `url` with `headers`; returns (status, width, `Vary`, ETag).
async fn fetch(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> (u16, u32, String, String) {
    let mut req = app.client.get(app.url(url));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (status, vary, etag) = (res.status().as_u16(), header("vary"), header("etag"));
    let bytes = res.bytes().await.unwrap();
    let width = if status == 200 { image::GenericImageView::width(&decode(&bytes)) } else { 0 };
    (status, width, vary, etag)
}

async fn hints_that_cannot_enlarge_collapse_into_one_variant(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let id = upload_id(&app, &alice, halves_jpeg(120, 80)).await;
    let auto = app.signed(&alice, &format!("/i/{id}/w_auto"));
    // Three rungs below the source's 120 px, thirteen above it: those make one 120 px variant.
    let mut above = Vec::new();
    for width in [64, 88, 112, 144, 192, 256, 336, 448, 592, 776, 1024, 1352, 1784, 2352, 3104, 4096] {
        let (status, served, vary, etag) = fetch(&app, &auto, &[("sec-ch-width", &width.to_string())]).await;
        assert_eq!((status, served), (200, width.min(120)), "hint {width}");
        assert_eq!(vary, "Sec-CH-Width, Width, Save-Data", "every header read is named, Save-Data too");
        if width > 120 {
            above.push(etag);
        }
    }
    assert!(above.windows(2).all(|w| w[0] == w[1]), "one ETag: {above:?}");
    assert_eq!(app.used_today(&alice).await, 4, "three rungs and the source's size");
    // The same for ratios, and for sizes written out: w_300 on a 120 px image is that variant.
    let dpr = app.signed(&alice, &format!("/i/{id}/w_100,dpr_auto"));
    for ratio in ["1.5", "2", "3"] {
        assert_eq!(fetch(&app, &dpr, &[("sec-ch-dpr", ratio)]).await.3, above[0], "dpr {ratio}");
    }
    assert_eq!(fetch(&app, &app.signed(&alice, &format!("/i/{id}/w_300")), &[]).await.3, above[0]);
    assert_eq!(fetch(&app, &app.signed(&alice, &format!("/i/{id}/w_60,dpr_2")), &[]).await.3, above[0]);
    assert_eq!(app.used_today(&alice).await, 4);
    // Save-Data makes its own, lower-quality variant; an explicit quality is not lowered.
    let saving = fetch(&app, &auto, &[("sec-ch-width", "500"), ("save-data", "on")]).await;
    assert_ne!(saving.3, above[0]);
    let fixed = fetch(&app, &app.signed(&alice, &format!("/i/{id}/w_50,q_90")), &[("save-data", "on")]).await;
    assert_eq!(fixed.2, "", "nothing read, nothing named");
    assert_eq!(app.used_today(&alice).await, 6);
}

async fn put_preset(app: &TestApp, owner: &Owner, name: &str, body: Value) -> reqwest::Response {
    app.client.put(app.url(&format!("/v1/presets/{name}"))).bearer_auth(&owner.token).json(&body).send().await.unwrap()
}

async fn publish(app: &TestApp, owner: &Owner, id: &str, public: bool) -> Value {
    let res = app
        .client
        .patch(app.url(&format!("/v1/images/{id}")))
        .bearer_auth(&owner.token)
        .json(&json!({"public": public}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn public_presets_open_published_images_only(backend: Backend) {
    let env = Arc::new(Env::new(backend).await);
    let config = env.config();
    let clock = crate::harness::noon();
    let a = spawn_on(Arc::clone(&env), config.clone(), clock.clone()).await;
    let alice = a.register("alice").await;
    let id = upload_id(&a, &alice, halves_jpeg(400, 200)).await;
    assert_eq!(
        a.get_auth(&format!("/v1/images/{id}"), &alice.token).await.json::<Value>().await.unwrap()["public"],
        false
    );
    assert_eq!(put_preset(&a, &alice, "card", json!({"ops": "w_100,fmt_png", "public": true})).await.status(), 200);
    let bare = format!("/i/{id}/p_card");
    assert_error(a.get(&bare).await, 401, "unauthorized").await;

    // Published: the bare path opens, in exactly one spelling, for a short max-age.
    assert_eq!(publish(&a, &alice, &id, true).await["public"], true);
    let (status, width, _, _) = fetch(&a, &bare, &[]).await;
    assert_eq!((status, width), (200, 100));
    assert_eq!(a.get(&bare).await.headers()["cache-control"], "public, max-age=60");
    for spelling in [format!("{bare},"), format!("/i/{id}/,p_card"), format!("{bare},w_50")] {
        assert_error(a.get(&spelling).await, 401, "unauthorized").await;
    }

    // A second replica serves it too; un-publishing closes it here at once, there within the bound.
    let b = spawn_on(Arc::clone(&env), config, clock.clone()).await;
    assert_eq!(b.get(&bare).await.status(), 200);
    assert_eq!(publish(&a, &alice, &id, false).await["public"], false);
    assert_error(a.get(&bare).await, 401, "unauthorized").await;
    clock.advance(11);
    assert_error(b.get(&bare).await, 401, "unauthorized").await;

    // Tokens beside a preset are kept when signing, and served.
    let signed: Value = a
        .post_json(&format!("/v1/images/{id}/url"), Some(&alice.token), &json!({"ops": "dpr_2,p_card"}))
        .await
        .json()
        .await
        .unwrap();
    let url = signed["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("/i/{id}/p_card,dpr_2?sig=")), "{url}");
    assert_eq!(fetch(&a, url, &[]).await.1, 200, "twice the card's width");
}

async fn owners_objects_are_bounded_and_gone_owners_are_refused(backend: Backend) {
    let app = spawn_with(backend, |c| c.limits.max_presets = 3).await;
    let alice = app.register("alice").await;
    // Every answer says nosniff, JSON and errors included.
    for res in [app.get_auth("/v1/me", &alice.token).await, app.get("/v1/me").await, app.get("/nowhere").await] {
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{}", res.url());
    }

    // At most max_presets names; replacing one still works; the list pages by name.
    for name in ["a", "b", "c"] {
        assert_eq!(put_preset(&app, &alice, name, json!({"ops": "w_10"})).await.status(), 200);
    }
    let message = assert_error(put_preset(&app, &alice, "d", json!({"ops": "w_10"})).await, 409, "conflict").await;
    assert!(message.contains("max_presets"), "{message}");
    assert_eq!(put_preset(&app, &alice, "b", json!({"ops": "w_20"})).await.status(), 200);
    let page: Value = app.get_auth("/v1/presets?limit=2", &alice.token).await.json().await.unwrap();
    let names = |page: &Value| page["items"].as_array().unwrap().iter().map(|p| p["name"].clone()).collect::<Vec<_>>();
    assert_eq!(names(&page), vec!["a", "b"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value =
        app.get_auth(&format!("/v1/presets?limit=2&cursor={cursor}"), &alice.token).await.json().await.unwrap();
    assert_eq!((names(&rest), rest["next_cursor"].clone()), (vec![json!("c")], Value::Null));
    assert_error(app.get_auth("/v1/presets?cursor=!!", &alice.token).await, 400, "invalid_request").await;

    // srcset refuses what it could not serve, naming it.
    let id = upload_id(&app, &alice, halves_jpeg(200, 100)).await;
    let body = json!({"ops": "w_auto,fmt_webp", "widths": [100]});
    let res = app.post_json(&format!("/v1/images/{id}/srcset"), Some(&alice.token), &body).await;
    assert!(assert_error(res, 400, "invalid_request").await.contains("w_auto"));

    // An owner deleted behind this replica's back: their token is refused within the lookup
    // bound, before an upload is even read (garbage would be a 415 if it were), never a 500.
    let user_id = alice.id.clone();
    app.env.execute(&format!("DELETE FROM users WHERE id = '{user_id}'")).await;
    let before = app.stored_keys("originals/").await.len();
    let garbage = || app.upload_raw(&alice, b"not an image".to_vec(), "image/jpeg");
    app.clock.advance(11);
    assert_error(garbage().await, 401, "unauthorized").await;
    // Within the bound a write for the gone owner is a 401 too, and leaves nothing behind.
    assert_error(app.upload_raw(&alice, halves_jpeg(64, 32), "image/jpeg").await, 401, "unauthorized").await;
    assert_error(app.get_auth("/v1/me", &alice.token).await, 401, "unauthorized").await;
    assert_eq!(app.stored_keys("originals/").await.len(), before, "nothing was stored");
}
