//! `/i` delivery: every token's visible effect on the decoded output, signatures, HTTP
//! semantics and cache tiers.

use image::GenericImageView;
use serde_json::{json, Value};

use crate::fixtures::{self, busy, decode, halves, halves_jpeg, near, rgb, roughness, size, top_bottom, BLUE, RED};
use crate::harness::{assert_error, sign, spawn, spawn_with, Backend, Owner, TestApp};

crate::for_backends!(
    width_height_dpr_and_fit_modes_size_the_output,
    images_are_never_enlarged,
    gravity_chooses_what_cover_keeps,
    smart_gravity_keeps_the_detailed_region,
    crop_rotate_and_flips_move_pixels,
    blur_sharpen_gray_and_sepia_change_pixels,
    contain_pads_with_bg_and_jpeg_flattens_onto_it,
    watermark_lands_bottom_right,
    quality_and_formats_are_honoured,
    fmt_auto_follows_accept_and_varies,
    metadata_is_stripped_and_colour_converted_to_srgb,
    signatures_are_checked,
    one_signed_url_has_one_spelling,
    percent_encoded_ops_are_the_plain_variant,
    ops_that_change_nothing_serve_the_original,
    a_remembered_url_stops_working_at_once_on_this_replica,
    crop_and_gravity_work_on_the_upright_image,
    head_on_a_miss_transforms_and_sends_no_body,
    variants_stay_out_of_the_store_when_told,
    owner_jwt_is_an_alternative_to_a_signature,
    invalid_ops_are_400_naming_the_token,
    etag_304_head_and_headers,
    variants_come_from_memory_then_store,
    concurrent_store_hits_share_one_read,
    transform_api_uses_the_same_pipeline,
);

async fn setup(app: &TestApp, bytes: Vec<u8>) -> (Owner, String) {
    let alice = app.register("alice").await;
    let image = app.upload(&alice, bytes).await;
    (alice, image["id"].as_str().unwrap().to_owned())
}

fn png(img: image::RgbImage) -> Vec<u8> {
    fixtures::encode(&image::DynamicImage::ImageRgb8(img), image::ImageFormat::Png)
}

async fn width_height_dpr_and_fit_modes_size_the_output(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(400, 300)).await;
    for (ops, expected) in [
        ("w_100", (100, 75)),
        ("h_100", (133, 100)),
        ("w_100,h_100", (100, 100)),
        ("w_100,h_100,fit_cover", (100, 100)),
        ("w_100,h_100,fit_inside", (100, 75)),
        ("w_100,h_100,fit_contain", (100, 100)),
        ("w_100,h_100,fit_fill", (100, 100)),
        ("w_100,h_100,fit_outside", (133, 100)),
        ("w_100,dpr_2", (200, 150)),
        ("w_100,dpr_1.5", (150, 113)),
    ] {
        let bytes = app.variant_bytes(&alice, &id, ops).await;
        assert_eq!(size(&bytes), expected, "{ops}");
        assert_eq!(decode(&bytes).dimensions(), expected, "{ops}");
    }
    // fill stretches: the left half stays red across the whole left half.
    let filled = decode(&app.variant_bytes(&alice, &id, "w_100,h_20,fit_fill,fmt_png").await);
    assert!(near(rgb(&filled, 10, 10), RED, 40) && near(rgb(&filled, 90, 10), BLUE, 40));
}

async fn images_are_never_enlarged(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(80, 60)).await;
    for ops in ["w_400", "h_600", "w_800,h_600,fit_inside", "w_400,dpr_4"] {
        assert_eq!(size(&app.variant_bytes(&alice, &id, ops).await), (80, 60), "{ops}");
    }
    assert_eq!(size(&app.variant_bytes(&alice, &id, "w_400,h_30,fit_fill").await), (80, 30));
}

async fn gravity_chooses_what_cover_keeps(backend: Backend) {
    let app = spawn(backend).await;
    // Wide image, left red / right blue: a square cover crop keeps one side.
    let (alice, id) = setup(&app, png(halves(400, 100))).await;
    let pick = |ops: &'static str| {
        let app = &app;
        let alice = &alice;
        let id = &id;
        async move { decode(&app.variant_bytes(alice, id, ops).await) }
    };
    let west = pick("w_100,h_100,g_west").await;
    assert!(near(rgb(&west, 50, 50), RED, 10), "{:?}", rgb(&west, 50, 50));
    let east = pick("w_100,h_100,g_east").await;
    assert!(near(rgb(&east, 50, 50), BLUE, 10), "{:?}", rgb(&east, 50, 50));
    let centre = pick("w_100,h_100").await;
    assert!(near(rgb(&centre, 10, 50), RED, 10) && near(rgb(&centre, 90, 50), BLUE, 10));
    // Tall image, top red / bottom blue.
    let tall = app.upload(&alice, png(top_bottom(100, 400))).await;
    let tall = tall["id"].as_str().unwrap();
    let north = decode(&app.variant_bytes(&alice, tall, "w_100,h_100,g_north").await);
    assert!(near(rgb(&north, 50, 50), RED, 10));
    let south = decode(&app.variant_bytes(&alice, tall, "w_100,h_100,g_southwest").await);
    assert!(near(rgb(&south, 50, 50), BLUE, 10));
}

async fn smart_gravity_keeps_the_detailed_region(backend: Backend) {
    let app = spawn(backend).await;
    // Flat grey with a colourful checkerboard near the right edge.
    let img = image::RgbImage::from_fn(600, 200, |x, y| {
        if (450..550).contains(&x) && (50..150).contains(&y) {
            if (x / 5 + y / 5) % 2 == 0 {
                image::Rgb([255, 200, 0])
            } else {
                image::Rgb([0, 50, 255])
            }
        } else {
            image::Rgb([128, 128, 128])
        }
    });
    let (alice, id) = setup(&app, png(img)).await;
    let smart = decode(&app.variant_bytes(&alice, &id, "w_200,h_200,g_smart,fmt_png").await);
    let centre = decode(&app.variant_bytes(&alice, &id, "w_200,h_200,fmt_png").await);
    assert!(roughness(&smart) > 10.0 * roughness(&centre).max(1.0), "smart crop keeps the checkerboard");
}

async fn crop_rotate_and_flips_move_pixels(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, png(halves(200, 100))).await;
    let crop = decode(&app.variant_bytes(&alice, &id, "crop_120:10:60:40,fmt_png").await);
    assert_eq!(crop.dimensions(), (60, 40));
    assert!(near(rgb(&crop, 30, 20), BLUE, 5), "crop from the blue half");
    let rot = decode(&app.variant_bytes(&alice, &id, "rot_90,fmt_png").await);
    assert_eq!(rot.dimensions(), (100, 200));
    // 90° clockwise: the left (red) half ends up on top.
    assert!(near(rgb(&rot, 50, 20), RED, 5) && near(rgb(&rot, 50, 180), BLUE, 5));
    let rot270 = decode(&app.variant_bytes(&alice, &id, "rot_270,fmt_png").await);
    assert!(near(rgb(&rot270, 50, 20), BLUE, 5));
    let rot180 = decode(&app.variant_bytes(&alice, &id, "rot_180,fmt_png").await);
    assert!(near(rgb(&rot180, 20, 50), BLUE, 5));
    let flip_h = decode(&app.variant_bytes(&alice, &id, "flip_h,fmt_png").await);
    assert!(near(rgb(&flip_h, 20, 50), BLUE, 5) && near(rgb(&flip_h, 180, 50), RED, 5));
    let tb = app.upload(&alice, png(top_bottom(100, 200))).await;
    let flip_v = decode(&app.variant_bytes(&alice, tb["id"].as_str().unwrap(), "flip_v,fmt_png").await);
    assert!(near(rgb(&flip_v, 50, 20), BLUE, 5) && near(rgb(&flip_v, 50, 180), RED, 5));
    // Crop happens before rotation: crop the red half, then rotate.
    let both = decode(&app.variant_bytes(&alice, &id, "rot_90,crop_0:0:100:100,fmt_png").await);
    assert_eq!(both.dimensions(), (100, 100));
    assert!(near(rgb(&both, 50, 50), RED, 5));
}

async fn blur_sharpen_gray_and_sepia_change_pixels(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, png(busy(200, 200))).await;
    let plain = decode(&app.variant_bytes(&alice, &id, "w_100,fmt_png").await);
    let blurred = decode(&app.variant_bytes(&alice, &id, "w_100,blur_3,fmt_png").await);
    let sharpened = decode(&app.variant_bytes(&alice, &id, "w_100,sharpen_1,fmt_png").await);
    assert!(roughness(&blurred) < roughness(&plain) / 2.0, "blur smooths");
    assert!(roughness(&sharpened) > roughness(&plain), "sharpen adds contrast");
    let gray = decode(&app.variant_bytes(&alice, &id, "w_100,gray,fmt_png").await).to_rgb8();
    assert!(gray.pixels().all(|p| p[0] == p[1] && p[1] == p[2]), "gray makes channels equal");
    let sepia = decode(&app.variant_bytes(&alice, &id, "w_100,sepia,fmt_png").await).to_rgb8();
    let avg =
        |c: usize| sepia.pixels().map(|p| f64::from(p[c])).sum::<f64>() / f64::from(sepia.width() * sepia.height());
    assert!(avg(0) > avg(1) && avg(1) > avg(2), "sepia is warm: {} {} {}", avg(0), avg(1), avg(2));
}

async fn contain_pads_with_bg_and_jpeg_flattens_onto_it(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, png(halves(400, 200))).await;
    let padded = decode(&app.variant_bytes(&alice, &id, "w_100,h_100,fit_contain,bg_00ff00,fmt_png").await);
    assert_eq!(padded.dimensions(), (100, 100));
    assert!(near(rgb(&padded, 50, 5), [0, 255, 0], 2), "top band is the bg colour");
    assert!(near(rgb(&padded, 10, 50), RED, 10), "image in the middle");
    let transparent = decode(&app.variant_bytes(&alice, &id, "w_100,h_100,fit_contain,fmt_png").await);
    assert_eq!(transparent.to_rgba8().get_pixel(50, 5)[3], 0, "no bg: transparent padding where alpha is kept");
    // Alpha flattened onto bg when the output is JPEG.
    let alpha = app.upload(&alice, fixtures::alpha_png(100, 100)).await;
    let jpeg = decode(&app.variant_bytes(&alice, alpha["id"].as_str().unwrap(), "bg_0000ff,fmt_jpeg").await);
    assert!(near(rgb(&jpeg, 10, 50), [0, 0, 255], 12), "{:?}", rgb(&jpeg, 10, 50));
    let white = decode(&app.variant_bytes(&alice, alpha["id"].as_str().unwrap(), "fmt_jpeg").await);
    assert!(near(rgb(&white, 10, 50), [255, 255, 255], 8), "default flattening is white");
}

async fn watermark_lands_bottom_right(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let base = app.upload(&alice, png(image::RgbImage::from_pixel(400, 200, image::Rgb([255, 255, 255])))).await;
    let mark = app.upload(&alice, png(image::RgbImage::from_pixel(40, 20, image::Rgb([0, 0, 0])))).await;
    let ops = format!("wm_{},fmt_png", mark["id"].as_str().unwrap());
    let out = decode(&app.variant_bytes(&alice, base["id"].as_str().unwrap(), &ops).await);
    assert_eq!(out.dimensions(), (400, 200));
    // A quarter of the width (100 px, so 50 px tall), bottom-right with a small margin.
    assert!(near(rgb(&out, 340, 160), [0, 0, 0], 10), "watermark at bottom-right");
    assert!(near(rgb(&out, 50, 50), [255, 255, 255], 2), "rest untouched");
    assert!(near(rgb(&out, 280, 120), [255, 255, 255], 2), "watermark is a quarter wide");
    // Another owner's image cannot be used as a watermark.
    let bob = app.register("bob").await;
    let bobs = app.upload(&bob, png(image::RgbImage::from_pixel(10, 10, image::Rgb([0, 0, 0])))).await;
    let res = app.variant(&alice, base["id"].as_str().unwrap(), &format!("wm_{}", bobs["id"].as_str().unwrap())).await;
    assert_error(res, 400, "invalid_transform").await;
}

async fn quality_and_formats_are_honoured(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, png(busy(300, 200))).await;
    for (fmt, magic) in [
        ("jpeg", &b"\xFF\xD8\xFF"[..]),
        ("png", &b"\x89PNG"[..]),
        ("gif", &b"GIF8"[..]),
        ("webp", &b"RIFF"[..]),
        ("avif", &b"ftypavif"[..]),
    ] {
        let res = app.variant(&alice, &id, &format!("w_60,fmt_{fmt}")).await;
        assert_eq!(res.status(), 200, "{fmt}");
        assert_eq!(res.headers()["content-type"], format!("image/{fmt}").as_str());
        let bytes = res.bytes().await.unwrap();
        let found = if fmt == "avif" { &bytes[4..12] == magic } else { bytes.starts_with(magic) };
        assert!(found, "{fmt} magic bytes");
        assert_eq!(size(&bytes), (60, 40), "{fmt}");
    }
    // Without fmt_ the source format is kept.
    assert!(app.variant_bytes(&alice, &id, "w_60").await.starts_with(b"\x89PNG"));
    for fmt in ["jpeg", "webp"] {
        let low = app.variant_bytes(&alice, &id, &format!("fmt_{fmt},q_10")).await.len();
        let high = app.variant_bytes(&alice, &id, &format!("fmt_{fmt},q_95")).await.len();
        assert!(low * 2 < high, "{fmt}: q_10 {low} vs q_95 {high}");
    }
}

async fn fmt_auto_follows_accept_and_varies(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(100, 50)).await;
    let alpha = app.upload(&alice, fixtures::alpha_png(40, 40)).await;
    let alpha = alpha["id"].as_str().unwrap();
    let fetch = |id: String, accept: &'static str| {
        let url = app.url(&app.signed(&alice, &format!("/i/{id}/w_20,fmt_auto")));
        let client = app.client.clone();
        async move { client.get(url).header("accept", accept).send().await.unwrap() }
    };
    // Save-Data is named too wherever it could lower the quality: a lossy output without `q_`.
    for (image, accept, mime, vary) in [
        (id.clone(), "image/avif,image/webp,*/*", "image/avif", "Accept, Save-Data"),
        (id.clone(), "image/webp,*/*", "image/webp", "Accept, Save-Data"),
        (id.clone(), "*/*", "image/jpeg", "Accept, Save-Data"),
        (alpha.to_owned(), "image/png,*/*", "image/png", "Accept"),
        (alpha.to_owned(), "image/avif;q=0,image/webp", "image/webp", "Accept, Save-Data"),
    ] {
        let res = fetch(image, accept).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], mime, "{accept}");
        assert_eq!(res.headers()["vary"], vary, "{accept}");
    }
    // Different formats are different variants with different ETags.
    let a = fetch(id.clone(), "image/avif").await.headers()["etag"].clone();
    let w = fetch(id.clone(), "image/webp").await.headers()["etag"].clone();
    assert_ne!(a, w);
    // An explicit format does not vary by Accept; with its quality given, by nothing.
    let fixed = app.variant(&alice, &id, "w_20,fmt_webp").await;
    assert_eq!(fixed.headers()["vary"], "Save-Data");
    let fixed = app.variant(&alice, &id, "w_20,q_70,fmt_webp").await;
    assert!(fixed.headers().get("vary").is_none());
}

async fn metadata_is_stripped_and_colour_converted_to_srgb(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    // A phone photo: EXIF with GPS, XMP with a location, a comment and a Display P3 profile.
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let raw = fixtures::encode(
        &image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 64, image::Rgb([200, 40, 40]))),
        image::ImageFormat::Jpeg,
    );
    let phone = fixtures::with_comment(
        &fixtures::with_xmp(&fixtures::with_icc(&fixtures::with_exif(&raw, 1), &p3)),
        "taken at home",
    );
    let mut carried = fixtures::metadata_in(&phone);
    carried.sort();
    assert_eq!(
        carried,
        ["jpeg APP1 (XMP)", "jpeg APP1 Exif", "jpeg APP2 ICC", "jpeg COM"],
        "the source carries it all"
    );
    let tagged = app.upload(&alice, phone).await;
    let tagged = tagged["id"].as_str().unwrap();
    for fmt in ["jpeg", "png", "webp", "gif", "avif"] {
        for ops in [format!("w_50,fmt_{fmt}"), format!("fmt_{fmt}")] {
            let bytes = app.variant_bytes(&alice, tagged, &ops).await;
            assert_eq!(fixtures::metadata_in(&bytes), Vec::<String>::new(), "{ops} keeps metadata");
        }
    }
    // The P3 red is converted: the sRGB output has more red than the raw P3 values.
    let untagged = app.upload(&alice, raw).await;
    let converted = rgb(&decode(&app.variant_bytes(&alice, tagged, "w_32,fmt_png").await), 16, 16);
    let plain =
        rgb(&decode(&app.variant_bytes(&alice, untagged["id"].as_str().unwrap(), "w_32,fmt_png").await), 16, 16);
    assert!(converted[0] > plain[0] + 10, "P3 {converted:?} vs untagged {plain:?}");
}

async fn signatures_are_checked(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(100, 50)).await;
    let path = format!("/i/{id}/w_20");
    let code = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(app.get(&app.signed(&alice, &path)).await.status(), 200);
    assert_eq!(code(app.get(&path).await).await, (401, "unauthorized".into()));
    let valid = app.signed(&alice, &path);
    let sig = valid.split("sig=").nth(1).unwrap();
    assert_eq!(code(app.get(&format!("/i/{id}/w_21?sig={sig}")).await).await, (403, "bad_signature".into()));
    assert_eq!(code(app.get(&format!("{path}?sig=AAAA{}", &sig[4..])).await).await, (403, "bad_signature".into()));
    assert_eq!(code(app.get(&format!("{path}?sig=not-base64!")).await).await, (403, "bad_signature".into()));
    assert_eq!(code(app.get(&format!("{valid}&w=1")).await).await, (400, "invalid_request".into()));
    let now = app.clock.unix();
    let expired = sign(&alice.key, &path, Some(now - 10));
    assert_eq!(code(app.get(&expired).await).await, (403, "signature_expired".into()));
    // The expiry is signed: moving it forward breaks the signature.
    let moved = expired.replace(&format!("exp={}", now - 10), &format!("exp={}", now + 1000));
    assert_eq!(code(app.get(&moved).await).await, (403, "bad_signature".into()));
    let fresh = sign(&alice.key, &path, Some(now + 600));
    let res = app.get(&fresh).await;
    assert_eq!(res.status(), 200);
    let cc = res.headers()["cache-control"].to_str().unwrap().to_owned();
    let max_age: i64 = cc.split("max-age=").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    assert!(cc.starts_with("public") && (590..=600).contains(&max_age), "{cc}");
    // Query order does not matter.
    let sig = fresh.split("sig=").nth(1).unwrap();
    assert_eq!(app.get(&format!("{path}?sig={sig}&exp={}", now + 600)).await.status(), 200);
    // A URL answered before (from the replica's memo of checked URLs) still expires on time.
    assert_eq!(app.get(&fresh).await.headers()["x-cache"], "hit-memory");
    app.clock.advance(601);
    assert_eq!(code(app.get(&fresh).await).await, (403, "signature_expired".into()));
    // Unknown image: 404 whatever the signature.
    assert_eq!(
        code(app.get(&app.signed(&alice, "/i/AAAAAAAAAAAAAAAAAAAAAA/w_20")).await).await,
        (404, "not_found".into())
    );
}

async fn owner_jwt_is_an_alternative_to_a_signature(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(100, 50)).await;
    let bob = app.register("bob").await;
    let res = app.get_auth(&format!("/i/{id}/w_20"), &alice.token).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["cache-control"].to_str().unwrap().starts_with("private"));
    let res = app.get_auth(&format!("/i/{id}"), &alice.token).await;
    assert_eq!(res.status(), 200);
    assert_error(app.get_auth(&format!("/i/{id}/w_20"), &bob.token).await, 403, "forbidden").await;
    assert_error(app.get_auth(&format!("/i/{id}/w_20"), "not-a-jwt").await, 401, "unauthorized").await;
}

async fn invalid_ops_are_400_naming_the_token(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(100, 50)).await;
    for (ops, named) in [
        ("w_300,w_200", "w_200"),
        ("w_0", "w_0"),
        ("h_9000", "h_9000"),
        ("fit_squash", "fit_squash"),
        ("zoom_2", "zoom_2"),
        ("q_101", "q_101"),
        ("crop_90:0:20:20", "crop_90:0:20:20"),
        ("wm_AAAAAAAAAAAAAAAAAAAAAA", "wm_AAAAAAAAAAAAAAAAAAAAAA"),
        ("blur_0.1", "blur_0.1"),
    ] {
        let res = app.variant(&alice, &id, ops).await;
        assert_eq!(res.status(), 400, "{ops}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_transform", "{ops}");
        assert!(body["error"]["message"].as_str().unwrap().contains(named), "{ops}: {body}");
    }
    let long = vec!["w_1"; 400].join(",");
    assert_error(app.variant(&alice, &id, &long).await, 400, "invalid_transform").await;
    assert_eq!(app.used_today(&alice).await, 0, "refused ops cost nothing");
    let res = app.post_json(&format!("/v1/images/{id}/url"), Some(&alice.token), &json!({"ops": "w_1,nope"})).await;
    assert_error(res, 400, "invalid_transform").await;
}

async fn etag_304_head_and_headers(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(100, 50)).await;
    let url = app.signed(&alice, &format!("/i/{id}/w_40,fmt_webp"));
    let res = app.get(&url).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 34, "strong etag {etag}");
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-type"], "image/webp");
    assert_eq!(h["x-cache"], "miss");
    assert_eq!(h["vary"], "Save-Data", "Save-Data would lower a default quality");
    assert!(h.contains_key("x-request-id"));
    let body = res.bytes().await.unwrap();
    assert_eq!(h["content-length"].to_str().unwrap(), body.len().to_string());
    let used = app.used_today(&alice).await;
    assert_eq!(used, 1);
    // Same variant, other token order: same ETag (after signing that path).
    let reordered = app.get(&app.signed(&alice, &format!("/i/{id}/fmt_webp,w_40"))).await;
    assert_eq!(reordered.headers()["etag"].to_str().unwrap(), etag);
    // If-None-Match: 304, no body, no quota.
    let not_modified = app.client.get(app.url(&url)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"].to_str().unwrap(), etag);
    assert!(not_modified.bytes().await.unwrap().is_empty());
    let other_tag = app.client.get(app.url(&url)).header("if-none-match", "\"nope\"").send().await.unwrap();
    assert_eq!(other_tag.status(), 200);
    // A 304 on a variant never made costs nothing either: the ETag is known without pixels.
    let image_id = imgedge::ids::ImageId::parse(&id).unwrap();
    let ops = imgedge::transform::parse("w_41,fmt_webp", 8192).unwrap();
    let plan = imgedge::transform::geometry::plan((100, 50), &ops, 8192).unwrap();
    let unmade_tag =
        imgedge::transform::VariantKey::new(&image_id, &ops, &plan, imgedge::format::ImageFormat::Webp).etag();
    let unmade = app.signed(&alice, &format!("/i/{id}/w_41,fmt_webp"));
    let cond = app.client.get(app.url(&unmade)).header("if-none-match", &unmade_tag).send().await.unwrap();
    assert_eq!(cond.status(), 304);
    assert_eq!(app.used_today(&alice).await, used);
    assert!(app.stored_keys(&format!("derived/{id}/")).await.len() == 1, "nothing was transformed");
    // HEAD: the same headers, no body.
    let head = app.client.head(app.url(&url)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"].to_str().unwrap(), body.len().to_string());
    assert_eq!(head.headers()["etag"].to_str().unwrap(), etag);
    assert!(head.bytes().await.unwrap().is_empty());
    // Originals: ETag from the content hash, 304 too.
    let original = app.signed(&alice, &format!("/i/{id}"));
    let res = app.get(&original).await;
    let tag = res.headers()["etag"].to_str().unwrap().to_owned();
    let again = app.client.get(app.url(&original)).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(again.status(), 304);
}

async fn variants_come_from_memory_then_store(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(200, 100)).await;
    let first = app.variant(&alice, &id, "w_50").await;
    assert_eq!(first.headers()["x-cache"], "miss");
    let bytes = first.bytes().await.unwrap();
    let second = app.variant(&alice, &id, "w_50").await;
    assert_eq!(second.headers()["x-cache"], "hit-memory");
    assert_eq!(second.bytes().await.unwrap(), bytes);
    let stored = app.stored_keys(&format!("derived/{id}/")).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].ends_with(".jpg"), "{stored:?}");
    // A replica with an empty memory cache on the same backends serves from the store.
    let mut config = app.env.config();
    config.cache.memory_bytes = 0;
    let replica = crate::harness::spawn_on(app.env.clone(), config, app.clock.clone()).await;
    let res = replica.variant(&alice, &id, "w_50").await;
    assert_eq!(res.headers()["x-cache"], "hit-store");
    let etag = res.headers()["etag"].clone();
    assert_eq!(res.bytes().await.unwrap(), bytes);
    // Now the replica remembers the URL and reads the store without the full path: the same answer.
    let again = replica.variant(&alice, &id, "w_50").await;
    assert_eq!((&again.headers()["x-cache"], &again.headers()["etag"]), (&"hit-store".parse().unwrap(), &etag));
    assert_eq!(again.bytes().await.unwrap(), bytes);
    assert_eq!(app.used_today(&alice).await, 1, "only the first request transformed");
    // Gone from the store (a lost object): the remembered URL falls back to the full path.
    let key = imgedge::storage::BlobKey::from_listing(&stored[0]).unwrap();
    replica.state.shared.store.delete(&key).await.unwrap();
    let remade = replica.variant(&alice, &id, "w_50").await;
    assert_eq!(remade.headers()["x-cache"], "miss");
    assert_eq!(remade.bytes().await.unwrap(), bytes);
    assert_eq!(app.used_today(&alice).await, 2);
}

async fn transform_api_uses_the_same_pipeline(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(400, 200)).await;
    let body = json!({"transformations": {"resize": {"width": 100, "height": 100}, "format": "webp", "filters": {"grayscale": true}}});
    let res = app.post_json(&format!("/v1/images/{id}/transform"), Some(&alice.token), &body).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!((out["width"].as_u64(), out["height"].as_u64()), (Some(100), Some(100)));
    assert_eq!(out["format"], "webp");
    assert_eq!(app.used_today(&alice).await, 1);
    let url = out["url"].as_str().unwrap();
    let res = app.get(url).await;
    assert_eq!(res.headers()["x-cache"], "hit-memory", "the /i URL serves the variant the API made");
    let bytes = res.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, out["size_bytes"].as_u64().unwrap());
    let img = decode(&bytes).to_rgb8();
    assert!(img.pixels().all(|p| p[0].abs_diff(p[1]) <= 3 && p[1].abs_diff(p[2]) <= 3), "grayscale");
    let flop = json!({"transformations": {"flop": true, "format": "png"}});
    let out: Value =
        app.post_json(&format!("/v1/images/{id}/transform"), Some(&alice.token), &flop).await.json().await.unwrap();
    let flopped = decode(&app.get(out["url"].as_str().unwrap()).await.bytes().await.unwrap());
    assert!(near(rgb(&flopped, 20, 100), BLUE, 30), "flop mirrors left-right");
    let bad = json!({"transformations": {"rotate": 45}});
    let res = app.post_json(&format!("/v1/images/{id}/transform"), Some(&alice.token), &bad).await;
    let message = assert_error(res, 400, "invalid_transform").await;
    assert!(message.contains("rot_45"), "{message}");
    // Signed URL API: canonical ops and expiry.
    let res = app
        .post_json(
            &format!("/v1/images/{id}/url"),
            Some(&alice.token),
            &json!({"ops": "fmt_webp,w_300", "expires_in": 60}),
        )
        .await;
    let signed: Value = res.json().await.unwrap();
    let url = signed["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("/i/{id}/w_300,fmt_webp?exp=")), "{url}");
    assert!(signed["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.get(url).await.status(), 200);
}

async fn a_remembered_url_stops_working_at_once_on_this_replica(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(100, 50)).await;
    let kept = app.upload(&alice, halves_jpeg(100, 50)).await["id"].as_str().unwrap().to_owned();
    let (doomed_url, kept_url) =
        (app.signed(&alice, &format!("/i/{id}/w_20")), app.signed(&alice, &format!("/i/{kept}/w_20")));
    for url in [&doomed_url, &kept_url, &doomed_url, &kept_url] {
        assert_eq!(app.get(url).await.status(), 200);
    }
    // The second answers came from the replica's memo of checked URLs.
    assert_eq!(app.get(&kept_url).await.headers()["x-cache"], "hit-memory");
    let res = app.client.delete(app.url(&format!("/v1/images/{id}"))).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_error(app.get(&doomed_url).await, 404, "not_found").await;
    // Remembered again after the delete, then the key changes.
    for _ in 0..2 {
        assert_eq!(app.get(&kept_url).await.headers()["x-cache"], "hit-memory");
    }
    let res = app.client.post(app.url("/v1/me/signing-key/rotate")).bearer_auth(&alice.token).send().await.unwrap();
    let new_key = hex::decode(res.json::<Value>().await.unwrap()["key"].as_str().unwrap()).unwrap();
    assert_error(app.get(&kept_url).await, 403, "bad_signature").await;
    assert_eq!(app.get(&sign(&new_key, &format!("/i/{kept}/w_20"), None)).await.status(), 200);
}

async fn crop_and_gravity_work_on_the_upright_image(backend: Backend) {
    let app = spawn(backend).await;
    // Stored 400x200 left red / right blue with orientation 6 (turn 90° clockwise): upright it
    // is 200x400, red on top, blue below.
    let (alice, id) = setup(&app, fixtures::with_exif(&halves_jpeg(400, 200), 6)).await;
    let top = decode(&app.variant_bytes(&alice, &id, "crop_0:0:200:150,fmt_png").await);
    assert_eq!(top.dimensions(), (200, 150));
    assert!(near(rgb(&top, 100, 75), RED, 40), "crop counts in upright pixels: {:?}", rgb(&top, 100, 75));
    let bottom = decode(&app.variant_bytes(&alice, &id, "crop_0:250:200:150,fmt_png").await);
    assert!(near(rgb(&bottom, 100, 75), BLUE, 40));
    let north = decode(&app.variant_bytes(&alice, &id, "w_100,h_100,g_north,fmt_png").await);
    assert!(near(rgb(&north, 50, 50), RED, 40), "{:?}", rgb(&north, 50, 50));
    let south = decode(&app.variant_bytes(&alice, &id, "w_100,h_100,g_south,fmt_png").await);
    assert!(near(rgb(&south, 50, 50), BLUE, 40), "{:?}", rgb(&south, 50, 50));
    // Outside the upright image (it is 200 wide, not 400) is refused.
    let message = assert_error(app.variant(&alice, &id, "crop_250:0:100:100").await, 400, "invalid_transform").await;
    assert!(message.contains("crop_250:0:100:100"), "{message}");
}

async fn head_on_a_miss_transforms_and_sends_no_body(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(200, 100)).await;
    let url = app.url(&app.signed(&alice, &format!("/i/{id}/w_60,fmt_webp")));
    let head = app.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let h = head.headers().clone();
    assert_eq!((h["x-cache"].to_str().unwrap(), h["content-type"].to_str().unwrap()), ("miss", "image/webp"));
    assert!(head.bytes().await.unwrap().is_empty());
    assert_eq!(app.used_today(&alice).await, 1);
    let get = app.client.get(&url).send().await.unwrap();
    assert_eq!(get.headers()["x-cache"], "hit-memory");
    assert_eq!(get.headers()["etag"], h["etag"]);
    assert_eq!(get.bytes().await.unwrap().len().to_string(), h["content-length"].to_str().unwrap());
}

async fn variants_stay_out_of_the_store_when_told(backend: Backend) {
    let app = spawn_with(backend, |c| c.cache.store_variants = false).await;
    let (alice, id) = setup(&app, halves_jpeg(200, 100)).await;
    assert_eq!(app.variant(&alice, &id, "w_50").await.headers()["x-cache"], "miss");
    assert_eq!(app.variant(&alice, &id, "w_50").await.headers()["x-cache"], "hit-memory");
    assert!(app.stored_keys("derived/").await.is_empty(), "no variant was written");
    // Without the memory cache either, every request transforms (and pays).
    let mut config = app.env.config();
    config.cache.store_variants = false;
    config.cache.memory_bytes = 0;
    let bare = crate::harness::spawn_on(app.env.clone(), config, app.clock.clone()).await;
    for _ in 0..2 {
        assert_eq!(bare.variant(&alice, &id, "w_50").await.headers()["x-cache"], "miss");
    }
    assert_eq!(app.used_today(&alice).await, 3);
    assert!(app.stored_keys("derived/").await.is_empty());
}

async fn one_signed_url_has_one_spelling(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(100, 50)).await;
    let path = format!("/i/{id}/w_20");
    let exp = app.clock.unix() + 600;
    let signed = sign(&alice.key, &path, Some(exp));
    let sig = signed.split("sig=").nth(1).unwrap().to_owned();
    assert_eq!(app.get(&signed).await.status(), 200);
    assert_eq!(app.get(&format!("{path}?sig={sig}&exp={exp}")).await.status(), 200, "either order");
    // Every other spelling of the same URL is refused, before any lookup or signature check.
    for query in [
        format!("exp={exp}&&sig={sig}"),
        format!("&exp={exp}&sig={sig}"),
        format!("exp={exp}&sig={sig}&"),
        format!("exp=00{exp}&sig={sig}"),
        format!("exp=+{exp}&sig={sig}"),
        format!("%65xp={exp}&sig={sig}"),
        format!("exp={exp}&%73ig={sig}"),
        format!("exp={exp}&sig={sig}&sig={sig}"),
        format!("exp={exp}"),
        String::new(),
    ] {
        let message = assert_error(app.get(&format!("{path}?{query}")).await, 400, "invalid_request").await;
        assert!(!message.is_empty(), "{query}");
    }
    // A percent-encoded signature is another string, so it does not match.
    let encoded = sig.replacen(&sig[..1], &format!("%{:02X}", sig.as_bytes()[0]), 1);
    assert_error(app.get(&format!("{path}?exp={exp}&sig={encoded}")).await, 403, "bad_signature").await;
    assert_eq!(app.used_today(&alice).await, 1);
}

/// Generated OpenAPI clients send `w_40%2Cfmt_webp`: the same variant, signature and ETag as
/// `w_40,fmt_webp`, charged once.
async fn percent_encoded_ops_are_the_plain_variant(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(100, 50)).await;
    let plain = app.signed(&alice, &format!("/i/{id}/w_40,crop_0:0:80:50,fmt_webp"));
    let made = app.get(&plain).await;
    assert_eq!(made.status(), 200);
    let etag = made.headers()["etag"].clone();
    let (path, query) = plain.split_once('?').unwrap();
    for encoded in [path.replace(',', "%2C"), path.replace(',', "%2c").replace(':', "%3A"), path.replace("w_", "%77_")]
    {
        let res = app.get(&format!("{encoded}?{query}")).await;
        assert_eq!(res.status(), 200, "{encoded}");
        assert_eq!(res.headers()["etag"], etag, "{encoded}");
        assert_eq!(res.headers()["x-cache"], "hit-memory", "{encoded}");
        assert_eq!(size(&res.bytes().await.unwrap()), (40, 25));
    }
    assert_eq!(app.used_today(&alice).await, 1);
    // Signing stays over the plain form: a signature of the encoded path does not match it.
    let signed_encoded = app.signed(&alice, &path.replace(',', "%2C"));
    assert_error(app.get(&signed_encoded).await, 403, "bad_signature").await;
    // Escapes of characters that ops never hold are not decoded.
    for other in ["w_40%2Ffmt_webp", "w_40%20", "w_40%252Cfmt_webp"] {
        let url = app.signed(&alice, &format!("/i/{id}/{other}"));
        assert_error(app.get(&url).await, 400, "invalid_transform").await;
    }
}

async fn ops_that_change_nothing_serve_the_original(backend: Backend) {
    let app = spawn(backend).await;
    let jpeg = halves_jpeg(100, 50);
    let (alice, id) = setup(&app, jpeg.clone()).await;
    for path in [format!("/i/{id}/"), format!("/i/{id}/dpr_2"), format!("/i/{id}/bg_ffffff")] {
        let res = app.get(&app.signed(&alice, &path)).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers().get("x-cache").is_none(), "{path} is the original, not a variant");
        assert_eq!(res.bytes().await.unwrap().as_ref(), jpeg.as_slice(), "{path}");
    }
    assert_eq!(app.used_today(&alice).await, 0, "originals are free");
    // `bg_` on an image without alpha and without padding makes no variant of its own.
    let plain = app.variant(&alice, &id, "w_50").await.headers()["etag"].clone();
    let with_bg = app.variant(&alice, &id, "w_50,bg_ff0000").await;
    assert_eq!(
        (with_bg.headers()["etag"].clone(), with_bg.headers()["x-cache"].to_str().unwrap()),
        (plain, "hit-memory")
    );
    assert_eq!(app.used_today(&alice).await, 1);
    // The owner API signs the canonical path of what is left.
    let body = json!({"ops": "bg_ffffff,fmt_jpeg,w_30"});
    let signed: Value =
        app.post_json(&format!("/v1/images/{id}/url"), Some(&alice.token), &body).await.json().await.unwrap();
    assert!(signed["url"].as_str().unwrap().starts_with(&format!("/i/{id}/w_30,fmt_jpeg?sig=")), "{signed}");
    let body = json!({"ops": "dpr_2"});
    let signed: Value =
        app.post_json(&format!("/v1/images/{id}/url"), Some(&alice.token), &body).await.json().await.unwrap();
    assert!(signed["url"].as_str().unwrap().starts_with(&format!("/i/{id}?sig=")), "{signed}");
    // With padding, or alpha flattened into JPEG, `bg_` does change the output.
    let padded = app.variant(&alice, &id, "w_50,h_50,fit_contain,bg_ff0000").await.headers()["etag"].clone();
    let white = app.variant(&alice, &id, "w_50,h_50,fit_contain").await.headers()["etag"].clone();
    assert_ne!(padded, white);
}

async fn concurrent_store_hits_share_one_read(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, id) = setup(&app, halves_jpeg(300, 200)).await;
    let made = app.variant_bytes(&alice, &id, "w_120,fmt_webp").await;
    // A replica with an empty memory: HEAD learns the length without reading the object...
    let mut config = app.env.config();
    config.cache.memory_bytes = 16 << 20;
    let replica = std::sync::Arc::new(crate::harness::spawn_on(app.env.clone(), config, app.clock.clone()).await);
    let url = replica.url(&replica.signed(&alice, &format!("/i/{id}/w_120,fmt_webp")));
    let head = replica.client.head(&url).send().await.unwrap();
    assert_eq!(head.headers()["x-cache"], "hit-store");
    assert_eq!(head.headers()["content-length"].to_str().unwrap(), made.len().to_string());
    assert_eq!(replica.state.gauges().memory_cache_bytes, 0, "HEAD kept nothing in memory");
    // ...and twenty GETs at once share one read of an object in S3, kept once in memory.
    let gets: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (replica.client.clone(), url.clone());
            tokio::spawn(async move {
                let res = client.get(url).send().await.unwrap();
                (res.headers()["x-cache"].to_str().unwrap().to_owned(), res.bytes().await.unwrap())
            })
        })
        .collect();
    let answers: Vec<_> = futures_util::future::join_all(gets).await.into_iter().map(Result::unwrap).collect();
    assert!(answers.iter().all(|(tier, bytes)| tier != "miss" && bytes.as_ref() == made.as_slice()));
    let metrics = replica.get("/metrics").await.text().await.unwrap();
    let stored = answers.iter().filter(|(tier, _)| tier == "hit-store").count();
    assert!(stored >= 1, "the first answers come from the store");
    assert!(metrics.contains("imgedge_transforms_total{outcome=\"ok\"} 0"), "nothing was transformed again");
    let reads = replica.metric("imgedge_store_reads_total").await;
    if matches!(backend, Backend::PostgresS3) {
        assert_eq!(reads, 1, "one read of the object: {metrics}");
    } else {
        // A file in the page cache is read on the spot by each request that finds it there:
        // cheaper than merging the reads.
        assert!((1..=stored as u64).contains(&reads), "{reads} reads for {stored} answers from the store");
    }
    replica.state.shared.memory.run_pending_tasks();
    let held = replica.state.gauges().memory_cache_bytes;
    assert!(held < 2 * made.len() as u64 + 4096, "one copy is kept, not one per request: {held}");
    assert_eq!(app.used_today(&alice).await, 1);
}

/// Decoders never take the server down: a corrupt original is a 422 and the quota is refunded.
async fn failing_transform_is_refunded(backend: Backend) {
    let app = spawn_with(backend, |_| {}).await;
    let (alice, id) = setup(&app, halves_jpeg(200, 100)).await;
    // Corrupt the stored original behind the server's back.
    let key = app.state.shared.keys.original(&imgedge::ids::ImageId::parse(&id).unwrap());
    app.state
        .shared
        .store
        .put(&key, bytes::Bytes::from_static(b"\xFF\xD8\xFF\xE0 not a jpeg any more"), "image/jpeg")
        .await
        .unwrap();
    let res = app.variant(&alice, &id, "w_50").await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unprocessable_image");
    assert_eq!(app.used_today(&alice).await, 0, "the charge is given back");
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exif_orientation_is_applied_before_everything() {
    let app = crate::harness::spawn(Backend::Sqlite).await;
    // Stored 80x40 left red/right blue, orientation 6: upright it is 40x80 with red on top.
    let (alice, id) = setup(&app, fixtures::with_exif(&halves_jpeg(80, 40), 6)).await;
    let out = decode(&app.variant_bytes(&alice, &id, "fmt_png").await);
    assert_eq!(out.dimensions(), (40, 80));
    assert!(near(rgb(&out, 20, 10), RED, 40) && near(rgb(&out, 20, 70), BLUE, 40));
    // A DCT-scaled decode of a large photo keeps the orientation too.
    let big = app.upload(&alice, fixtures::with_exif(&halves_jpeg(1600, 800), 6)).await;
    let small = decode(&app.variant_bytes(&alice, big["id"].as_str().unwrap(), "w_50,fmt_png").await);
    assert_eq!(small.dimensions(), (50, 100));
    assert!(near(rgb(&small, 25, 10), RED, 40) && near(rgb(&small, 25, 90), BLUE, 40));
}

crate::for_backends!([Sqlite, Postgres, PostgresS3] failing_transform_is_refunded);

crate::for_backends!([Sqlite, Postgres, PostgresS3] cache_tags_name_the_image_the_owner_and_the_preset);

async fn cache_tags_name_the_image_the_owner_and_the_preset(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let id = app.upload(&alice, halves_jpeg(64, 32)).await["id"].as_str().unwrap().to_owned();
    let tags = |res: &reqwest::Response| {
        let get = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        (get("cache-tag"), get("surrogate-key"))
    };
    let (image, owner) = (format!("img-{id}"), format!("own-{}", alice.id));
    let plain = (Some(format!("{image},{owner}")), Some(format!("{image} {owner}")));

    // A variant: on the miss, on the hit of the remembered URL, and on a 304.
    let url = app.signed(&alice, &format!("/i/{id}/w_20"));
    for _ in 0..2 {
        let res = app.get(&url).await;
        assert_eq!(res.status(), 200);
        assert_eq!(tags(&res), plain);
    }
    let etag = app.get(&url).await.headers()["etag"].clone();
    let res = app.client.get(app.url(&url)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!((res.status().as_u16(), tags(&res)), (304, plain.clone()));
    // The original.
    let res = app.get(&app.signed(&alice, &format!("/i/{id}"))).await;
    assert_eq!((res.status().as_u16(), tags(&res)), (200, plain.clone()));

    // A preset's path names the preset too.
    let put = app.client.put(app.url("/v1/presets/card")).bearer_auth(&alice.token);
    assert_eq!(put.json(&json!({"ops": "w_30"})).send().await.unwrap().status().as_u16(), 200);
    let res = app.get(&app.signed(&alice, &format!("/i/{id}/p_card"))).await;
    let preset = format!("pre-{}-card", alice.id);
    assert_eq!(res.status(), 200);
    assert_eq!(tags(&res), (Some(format!("{image},{owner},{preset}")), Some(format!("{image} {owner} {preset}"))));

    // Refusals carry none.
    let res = app.get(&format!("/i/{id}/w_20?sig=AAAA")).await;
    assert_eq!((res.status().as_u16(), tags(&res)), (403, (None, None)));
}
