//! Uploads and the owner's images: sniffing, limits, orientation, pages, ownership, delete.

use serde_json::Value;

use crate::fixtures::{self, alpha_png, halves_jpeg, png_header_only, with_exif};
use crate::harness::{assert_error, spawn, spawn_with, Backend};

crate::for_backends!(
    multipart_and_raw_uploads_are_stored,
    content_decides_the_format_not_the_header,
    corrupt_and_truncated_images_are_422,
    pixel_limit_is_checked_from_the_header,
    exif_orientation_sets_width_and_height,
    list_pages_newest_first_with_a_cursor,
    other_owners_get_403_and_unknown_ids_404,
    delete_removes_the_row_the_original_and_every_variant,
    download_redirects_to_a_working_url,
);

async fn multipart_and_raw_uploads_are_stored(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let bytes = halves_jpeg(120, 80);
    let form = reqwest::multipart::Form::new().text("title", "ignored").part(
        "file",
        reqwest::multipart::Part::bytes(bytes.clone()).file_name("a.jpg").mime_str("image/jpeg").unwrap(),
    );
    let res = app.client.post(app.url("/v1/images")).bearer_auth(&alice.token).multipart(form).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let image: Value = res.json().await.unwrap();
    assert_eq!(image["width"], 120);
    assert_eq!(image["height"], 80);
    assert_eq!(image["format"], "jpeg");
    assert_eq!(image["size_bytes"], bytes.len());
    assert_eq!(image["content_hash"], blake3::hash(&bytes).to_hex().as_str());
    let id = image["id"].as_str().unwrap();
    assert_eq!(id.len(), 22);
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    // The signed URL of the original returns the exact bytes.
    let res = app.get(image["url"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // The raw body works as well.
    let raw = app.upload(&alice, alpha_png(50, 40)).await;
    assert_eq!(raw["format"], "png");
    assert_eq!(app.stored_keys("originals/").await.len(), 2);
    // Multipart without a `file` field is a 400 and stores nothing.
    let form = reqwest::multipart::Form::new().text("other", "x");
    let res = app.client.post(app.url("/v1/images")).bearer_auth(&alice.token).multipart(form).send().await.unwrap();
    assert_error(res, 400, "invalid_request").await;
    assert_eq!(app.stored_keys("originals/").await.len(), 2);
}

async fn content_decides_the_format_not_the_header(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let res = app.upload_raw(&alice, alpha_png(10, 10), "image/jpeg").await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["format"], "png");
    let gif = fixtures::encode(&image::DynamicImage::ImageRgb8(fixtures::halves(8, 8)), image::ImageFormat::Gif);
    let webp = fixtures::encode(&image::DynamicImage::ImageRgb8(fixtures::halves(8, 8)), image::ImageFormat::WebP);
    assert_eq!(app.upload(&alice, gif).await["format"], "gif");
    assert_eq!(app.upload(&alice, webp).await["format"], "webp");
    for (what, bytes) in [
        ("text", b"hello, I am a PNG, honest".to_vec()),
        ("svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec()),
        ("bmp", b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\x18\0".to_vec()),
    ] {
        let res = app.upload_raw(&alice, bytes, "image/png").await;
        assert_eq!(res.status(), 415, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_media_type", "{what}");
    }
    // Garbage that starts like an AVIF: 422 where AVIF is decoded (`--features aom`), else 415.
    let res = app.upload_raw(&alice, b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf".to_vec(), "image/avif").await;
    assert_eq!(res.status(), if cfg!(feature = "aom") { 422 } else { 415 });
    assert_eq!(app.stored_keys("originals/").await.len(), 3);
}

async fn corrupt_and_truncated_images_are_422(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let jpeg = halves_jpeg(200, 100);
    let truncated = jpeg[..jpeg.len() / 2].to_vec();
    let mut garbled = alpha_png(40, 40);
    let mid = garbled.len() / 2;
    garbled[mid..mid + 16].fill(0xAB);
    for (what, bytes) in
        [("truncated jpeg", truncated), ("garbled png", garbled), ("header only", png_header_only(10, 10))]
    {
        let res = app.upload_raw(&alice, bytes, "image/png").await;
        assert_eq!(res.status(), 422, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unprocessable_image", "{what}");
    }
    let list: Value = app.get_auth("/v1/images", &alice.token).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    assert!(app.stored_keys("").await.is_empty());
}

async fn pixel_limit_is_checked_from_the_header(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    // 100k x 100k = 10 GP announced in 33 bytes: refused before any decode is attempted.
    let res = app.upload_raw(&alice, png_header_only(100_000, 100_000), "image/png").await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unprocessable_image");
    assert!(body["error"]["message"].as_str().unwrap().contains("pixels"), "{body}");
    assert!(app.stored_keys("").await.is_empty());
}

async fn exif_orientation_sets_width_and_height(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    // Stored 80x40, orientation 6 (rotate 90° clockwise to display): upright it is 40x80.
    let image = app.upload(&alice, with_exif(&halves_jpeg(80, 40), 6)).await;
    assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(40), Some(80)));
    let plain = app.upload(&alice, with_exif(&halves_jpeg(80, 40), 1)).await;
    assert_eq!((plain["width"].as_u64(), plain["height"].as_u64()), (Some(80), Some(40)));
}

async fn list_pages_newest_first_with_a_cursor(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.upload(&alice, halves_jpeg(10 + i, 10)).await["id"].as_str().unwrap().to_owned());
    }
    app.upload(&bob, halves_jpeg(10, 10)).await;
    ids.reverse();
    let mut seen = Vec::new();
    let mut path = "/v1/images?limit=2".to_owned();
    loop {
        let page: Value = app.get_auth(&path, &alice.token).await.json().await.unwrap();
        seen.extend(page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/images?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "newest first, each once, only alice's");
    let default: Value = app.get_auth("/v1/images", &alice.token).await.json().await.unwrap();
    assert_eq!(default["items"].as_array().unwrap().len(), 5);
    assert!(default["next_cursor"].is_null());
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=!!", "color=red"] {
        let res = app.get_auth(&format!("/v1/images?{bad}"), &alice.token).await;
        let message = assert_error(res, 400, "invalid_request").await;
        assert!(message.contains(bad.split('=').next().unwrap()), "{bad}: {message}");
    }
}

async fn other_owners_get_403_and_unknown_ids_404(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let image = app.upload(&alice, halves_jpeg(20, 20)).await;
    let id = image["id"].as_str().unwrap();
    assert_eq!(app.get_auth(&format!("/v1/images/{id}"), &alice.token).await.status(), 200);
    for (method, path) in [
        (reqwest::Method::GET, format!("/v1/images/{id}")),
        (reqwest::Method::DELETE, format!("/v1/images/{id}")),
        (reqwest::Method::GET, format!("/v1/images/{id}/download")),
    ] {
        let res = app.client.request(method.clone(), app.url(&path)).bearer_auth(&bob.token).send().await.unwrap();
        assert_eq!(res.status(), 403, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let res =
        app.post_json(&format!("/v1/images/{id}/url"), Some(&bob.token), &serde_json::json!({"ops": "w_10"})).await;
    assert_error(res, 403, "forbidden").await;
    for unknown in ["AAAAAAAAAAAAAAAAAAAAAA", "short", "..%2F..%2Fetc"] {
        let res = app.get_auth(&format!("/v1/images/{unknown}"), &alice.token).await;
        assert_eq!(res.status(), 404, "{unknown}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    // Bob's own signature over Alice's image is not Alice's signature.
    let res = app.get(&app.signed(&bob, &format!("/i/{id}"))).await;
    assert_error(res, 403, "bad_signature").await;
}

async fn delete_removes_the_row_the_original_and_every_variant(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let image = app.upload(&alice, halves_jpeg(200, 100)).await;
    let keep = app.upload(&alice, halves_jpeg(200, 100)).await;
    let id = image["id"].as_str().unwrap();
    let variant_url = app.signed(&alice, &format!("/i/{id}/w_50"));
    assert_eq!(app.get(&variant_url).await.status(), 200);
    assert_eq!(app.variant(&alice, keep["id"].as_str().unwrap(), "w_50").await.status(), 200);
    assert_eq!(app.stored_keys(&format!("derived/{id}/")).await.len(), 1);
    let res = app.client.delete(app.url(&format!("/v1/images/{id}"))).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_error(app.get_auth(&format!("/v1/images/{id}"), &alice.token).await, 404, "not_found").await;
    // Gone from delivery at once on this replica, though the variant was in memory.
    assert_error(app.get(&variant_url).await, 404, "not_found").await;
    assert_error(app.get(image["url"].as_str().unwrap()).await, 404, "not_found").await;
    assert!(app.stored_keys(&format!("originals/{id}")).await.is_empty());
    assert!(app.stored_keys(&format!("derived/{id}/")).await.is_empty());
    if backend == Backend::Sqlite {
        let folder = app.env.dir.path().join(format!("blobs/derived/{id}"));
        assert!(!folder.exists(), "no empty folder is left behind");
    }
    // The other image is untouched.
    let other = keep["id"].as_str().unwrap();
    assert_eq!(app.stored_keys(&format!("originals/{other}")).await.len(), 1);
    assert_eq!(app.stored_keys(&format!("derived/{other}/")).await.len(), 1);
    let again = app.client.delete(app.url(&format!("/v1/images/{id}"))).bearer_auth(&alice.token).send().await.unwrap();
    assert_error(again, 404, "not_found").await;
}

async fn download_redirects_to_a_working_url(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let bytes = halves_jpeg(30, 30);
    let image = app.upload(&alice, bytes.clone()).await;
    let res = app.get_auth(&format!("/v1/images/{}/download", image["id"].as_str().unwrap()), &alice.token).await;
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let url = if location.starts_with('/') { app.url(&location) } else { location.clone() };
    if app.env.backend == Backend::PostgresS3 {
        assert!(location.contains("X-Amz-Signature"), "{location}");
    } else {
        assert!(location.contains("exp=") && location.contains("sig="), "{location}");
    }
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

/// Over the byte limit: 413 while streaming, nothing stored (both request shapes).
async fn byte_limit_is_enforced(backend: Backend) {
    let app = spawn_with(backend, |c| c.limits.max_upload_bytes = 64 * 1024).await;
    let alice = app.register("alice").await;
    let big = vec![0xFFu8; 200 * 1024];
    // A declared length over the limit is refused from the head, before any body byte: the
    // answer is read off a socket that sends none (a client writing the body meanwhile may see
    // its write cut off by the close instead of the answer).
    let answer = refusal_of_declared_length(&app, &alice.token, big.len()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "the close is announced: {answer}");
    let res = app.client.post(app.url("/v1/images")).bearer_auth(&alice.token).body(big.clone()).send().await;
    assert_413_or_cut_off(res);
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(big));
    let res = app.client.post(app.url("/v1/images")).bearer_auth(&alice.token).multipart(form).send().await;
    assert_413_or_cut_off(res);
    // A chunked body without Content-Length is cut off while streaming too.
    let chunks = futures_util::stream::iter((0..50).map(|_| Ok::<_, std::io::Error>(vec![0u8; 8 * 1024])));
    let res = app
        .client
        .post(app.url("/v1/images"))
        .bearer_auth(&alice.token)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    assert_413_or_cut_off(res);
    assert!(app.stored_keys("").await.is_empty());
    let small = app.upload_raw(&alice, halves_jpeg(20, 20), "image/jpeg").await;
    assert_eq!(small.status(), 201);
}

/// The server answers 413 as soon as the limit is passed and closes the connection; a client
/// still sending may see the reset before it reads the answer. Either way nothing is stored.
/// The answer to an upload whose head declares `len` bytes, sent without its body.
async fn refusal_of_declared_length(app: &crate::harness::TestApp, token: &str, len: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: image/jpeg\r\nContent-Length: {len}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let body =
                    head.lines().find_map(|l| l.strip_prefix("content-length:")?.trim().parse().ok()).unwrap_or(0);
                if got.len() >= end + 4 + body {
                    break;
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read).await.expect("an answer within 10 s");
    String::from_utf8_lossy(&got).into_owned()
}

fn assert_413_or_cut_off(res: reqwest::Result<reqwest::Response>) {
    match res {
        Ok(res) => assert_eq!(res.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "unexpected client error: {e}"),
    }
}

crate::for_backends!([Sqlite, Postgres, PostgresS3] byte_limit_is_enforced);

/// Every JSON body is checked field by field: types, ranges, names, nothing unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_are_strict() {
    let app = spawn(Backend::Sqlite).await;
    let alice = app.register("alice").await;
    let id = app.upload(&alice, halves_jpeg(100, 50)).await["id"].as_str().unwrap().to_owned();
    let url = format!("/v1/images/{id}/url");
    for body in [
        serde_json::json!({"ops": "w_10", "expires_in": 0}),
        serde_json::json!({"ops": "w_10", "expires_in": -1}),
        serde_json::json!({"ops": "w_10", "expires_in": 1.5}),
        serde_json::json!({"ops": "w_10", "expires_in": "60"}),
        serde_json::json!({"ops": "w_10", "expires_in": 400_000_000}),
        serde_json::json!({"ops": "w_10", "expiry": 60}),
        serde_json::json!({"ops": 10}),
    ] {
        let message = assert_error(app.post_json(&url, Some(&alice.token), &body).await, 400, "invalid_request").await;
        assert!(
            message.contains("expires_in") || message.contains("expiry") || message.contains("ops"),
            "{body}: {message}"
        );
    }
    let ok: Value = app
        .post_json(&url, Some(&alice.token), &serde_json::json!({"ops": "w_10", "expires_in": 1}))
        .await
        .json()
        .await
        .unwrap();
    assert!(ok["expires_at"].is_string(), "{ok}");
    let transform = format!("/v1/images/{id}/transform");
    for format in ["webp,blur_100", "jpeg,w_5", "auto", "tiff"] {
        let body = serde_json::json!({"transformations": {"format": format}});
        let message =
            assert_error(app.post_json(&transform, Some(&alice.token), &body).await, 400, "invalid_request").await;
        assert!(message.contains(format), "{message}");
    }
    let body = serde_json::json!({"transformations": {"resize": {"width": 10}}, "extra": true});
    assert_error(app.post_json(&transform, Some(&alice.token), &body).await, 400, "invalid_request").await;
    let body = serde_json::json!({"username": "bob", "password": "password123", "admin": true});
    assert_error(app.post_json("/v1/auth/register", None, &body).await, 400, "invalid_request").await;
    assert_eq!(app.used_today(&alice).await, 0);
}

/// Files that would decode to far more than they weigh are checked and transformed within the
/// decode memory budget, or refused with 422 from their headers, and the server stays up.
async fn decode_bombs_stay_inside_the_memory_budget(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    // 49 MP of 16-bit RGBA (392 MB at full depth) in a few hundred KB.
    let png = fixtures::flat_png16(7000, 7000);
    assert!(png.len() < 2 << 20, "{} bytes", png.len());
    let png = app.upload(&alice, png).await["id"].as_str().unwrap().to_owned();
    // The check streamed its rows; a thumbnail averages them down while they are read.
    let thumb = fixtures::decode(&app.variant_bytes(&alice, &png, "w_300,fmt_png").await);
    assert_eq!(image::GenericImageView::dimensions(&thumb), (300, 300));
    assert_eq!(thumb.to_rgba8().get_pixel(150, 150).0, [0x12, 0x56, 0x9A, 0xFF]);
    // At full size the decode and the output would need more than one decode may hold.
    let message = assert_error(app.variant(&alice, &png, "fmt_webp").await, 422, "unprocessable_image").await;
    assert!(message.contains("MB of pixel memory"), "{message}");
    // 35 bytes announcing a 7000×7000 screen with one 1×1 frame.
    let gif = app.upload(&alice, fixtures::gif_big_screen(7000, 7000)).await["id"].as_str().unwrap().to_owned();
    let small = fixtures::decode(&app.variant_bytes(&alice, &gif, "w_100,fmt_png").await).to_rgba8();
    assert_eq!(small.dimensions(), (100, 100));
    assert_eq!(small.get_pixel(50, 50).0[3], 0, "the screen is transparent around the frame");
    assert_error(app.variant(&alice, &gif, "fmt_png").await, 422, "unprocessable_image").await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.used_today(&alice).await, 2, "refused transforms are not charged");
}

crate::for_backends!([Sqlite, Postgres] decode_bombs_stay_inside_the_memory_budget);

/// An upload whose complete check would hold more than one decode may is refused from its
/// header, before any decoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_decode_limit_are_422() {
    let app = spawn_with(Backend::Sqlite, |c| c.limits.max_decode_bytes = 1 << 20).await;
    let alice = app.register("alice").await;
    // A lossless WebP is held whole (ARGB) while it decodes: 800×800 at 4 bytes is over 1 MB.
    let webp = fixtures::encode(&image::DynamicImage::ImageRgb8(fixtures::halves(800, 800)), image::ImageFormat::WebP);
    let message = assert_error(app.upload_raw(&alice, webp, "image/webp").await, 422, "unprocessable_image").await;
    assert!(message.contains("limit of 1 MB"), "{message}");
    // A PNG of the same size streams its rows through the check, well under 1 MB.
    assert_eq!(app.upload_raw(&alice, fixtures::alpha_png(800, 800), "image/png").await.status(), 201);
    assert!(app.stored_keys("originals/").await.len() == 1);
    // Its working copies would hold more than 1 MB: it gets none, and is taken all the same.
    assert!(app.stored_keys("derived/").await.is_empty());
}

/// All decodes share one memory budget: a transform that does not fit waits for memory to be
/// given back, then runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_wait_for_the_shared_memory_budget() {
    let app = std::sync::Arc::new(
        spawn_with(Backend::Sqlite, |c| {
            c.limits.max_decode_bytes = 32 << 20;
            c.limits.decode_budget_bytes = 32 << 20;
        })
        .await,
    );
    let alice = app.register("alice").await;
    // Each full-size 1500×1500 PNG transform needs about 6.75 + 18 MB: two do not fit in 32.
    let ids: Vec<String> = futures_util::future::join_all((0..2).map(|_| {
        app.upload(
            &alice,
            fixtures::encode(&image::DynamicImage::ImageRgb8(fixtures::busy(1500, 1500)), image::ImageFormat::Png),
        )
    }))
    .await
    .into_iter()
    .map(|image| image["id"].as_str().unwrap().to_owned())
    .collect();
    let gate = crate::harness::Gate::close(&app).await;
    let requests: Vec<_> = ids
        .iter()
        .map(|id| {
            let (app, alice, id) = (std::sync::Arc::clone(&app), alice.clone(), id.clone());
            tokio::spawn(async move { app.variant(&alice, &id, "fmt_jpeg").await.status().as_u16() })
        })
        .collect();
    let state = app.state.clone();
    crate::harness::wait_until("both transforms wait", || state.gauges().queue_depth == 2).await;
    let reserved = app.state.gauges().decode_memory_bytes;
    assert!(reserved > 20 << 20 && reserved <= 32 << 20, "one reservation holds memory: {reserved}");
    gate.open().await;
    let statuses: Vec<u16> = futures_util::future::join_all(requests).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(statuses, vec![200, 200]);
    assert_eq!(app.state.gauges().decode_memory_bytes, 0, "all memory given back");
}

crate::for_backends!(purging_variants_keeps_the_original_and_the_next_request_is_a_charged_miss);

async fn purging_variants_keeps_the_original_and_the_next_request_is_a_charged_miss(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let id = app.upload(&alice, halves_jpeg(64, 32)).await["id"].as_str().unwrap().to_owned();
    let x_cache = |res: &reqwest::Response| res.headers()["x-cache"].to_str().unwrap().to_owned();
    for ops in ["w_20", "w_30,fmt_png"] {
        assert_eq!(x_cache(&app.variant(&alice, &id, ops).await), "miss");
    }
    assert_eq!(x_cache(&app.variant(&alice, &id, "w_20").await), "hit-memory");
    assert_eq!(app.used_today(&alice).await, 2);
    assert_eq!(app.stored_keys(&format!("derived/{id}/")).await.len(), 2);

    let purge = |token: Option<String>| {
        let req = app.client.delete(app.url(&format!("/v1/images/{id}/variants")));
        async move { if let Some(t) = token { req.bearer_auth(t) } else { req }.send().await.unwrap() }
    };
    assert_error(purge(None).await, 401, "unauthorized").await;
    assert_error(purge(Some(bob.token.clone())).await, 403, "forbidden").await;
    assert_eq!(x_cache(&app.variant(&alice, &id, "w_20").await), "hit-memory", "not purged by others");
    assert_eq!(purge(Some(alice.token.clone())).await.status(), 204);

    assert!(app.stored_keys(&format!("derived/{id}/")).await.is_empty(), "the variants left the store");
    assert_eq!(app.stored_keys("originals/").await.len(), 1, "the original stays");
    let res = app.variant(&alice, &id, "w_20").await;
    assert_eq!((res.status().as_u16(), x_cache(&res)), (200, "miss".to_owned()));
    assert_eq!(app.used_today(&alice).await, 3, "the miss after a purge is charged");
    assert_eq!(app.get(&app.signed(&alice, &format!("/i/{id}"))).await.status(), 200);
    let unknown = app.client.delete(app.url("/v1/images/AAAAAAAAAAAAAAAAAAAAAA/variants")).bearer_auth(&alice.token);
    assert_eq!(unknown.send().await.unwrap().status(), 404);
}
