//! Placeholders: computed at upload from the upright image, returned in every `Image`, and
//! backfilled for rows that predate them.

use base64::Engine;
use image::imageops::FilterType;
use image::{DynamicImage, Rgba, RgbaImage};
use serde_json::Value;

use crate::fixtures::{self, alpha_png, halves_jpeg, with_exif};
use crate::harness::{spawn, Backend};

crate::for_backends!(uploads_carry_placeholders_of_the_upright_image, old_rows_are_backfilled_and_lists_show_them);

/// The reference: ThumbHash of the whole image shrunk to fit 100×100 with the image crate.
fn reference_thumbhash(img: &DynamicImage) -> (RgbaImage, Vec<u8>) {
    let small = img.resize(100, 100, FilterType::Triangle).to_rgba8();
    let hash = thumbhash::rgba_to_thumb_hash(small.width() as usize, small.height() as usize, small.as_raw());
    (small, hash)
}

/// The ThumbHash an `Image` carries, decoded back to pixels.
fn thumbhash_pixels(image: &Value) -> RgbaImage {
    let b64 = image["placeholder"]["thumbhash"].as_str().expect("thumbhash");
    let hash = base64::engine::general_purpose::STANDARD.decode(b64).expect("standard base64");
    let (w, h, rgba) = thumbhash::thumb_hash_to_rgba(&hash).expect("a valid ThumbHash");
    RgbaImage::from_raw(w as u32, h as u32, rgba).unwrap()
}

fn close(a: Rgba<u8>, b: Rgba<u8>, tolerance: u8) -> bool {
    a.0.iter().zip(b.0).all(|(x, y)| x.abs_diff(y) <= tolerance)
}

async fn uploads_carry_placeholders_of_the_upright_image(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;

    // Red left, blue right: the hashes keep the layout, the colour is the mean.
    let jpeg = halves_jpeg(400, 200);
    let image = app.upload(&alice, jpeg.clone()).await;
    let source = fixtures::decode(&jpeg);
    let (_, reference) = reference_thumbhash(&source);
    let (ref_w, ref_h, ref_pixels) = thumbhash::thumb_hash_to_rgba(&reference).unwrap();
    let ours = thumbhash_pixels(&image);
    assert_eq!((ours.width() as usize, ours.height() as usize), (ref_w, ref_h), "same aspect ratio as the reference");
    let reference = RgbaImage::from_raw(ref_w as u32, ref_h as u32, ref_pixels).unwrap();
    for (x, y) in [(0, ref_h as u32 / 2), (ref_w as u32 - 1, ref_h as u32 / 2), (ref_w as u32 / 2, 0)] {
        let (a, b) = (*ours.get_pixel(x, y), *reference.get_pixel(x, y));
        assert!(close(a, b, 12), "({x},{y}): {a:?} vs reference {b:?}");
    }
    assert!(ours.get_pixel(0, 0)[0] > 180 && ours.get_pixel(ours.width() - 1, 0)[2] > 180, "red left, blue right");
    let color = image["placeholder"]["color"].as_str().unwrap();
    let mean = source.resize_exact(1, 1, FilterType::Triangle).to_rgb8();
    let channel = |i: usize| u8::from_str_radix(&color[1 + 2 * i..3 + 2 * i], 16).unwrap();
    assert!((0..3).all(|i| channel(i).abs_diff(mean.get_pixel(0, 0)[i]) <= 6), "{color} vs mean {mean:?}");
    let blurhash = image["placeholder"]["blurhash"].as_str().unwrap();
    assert_eq!(blurhash.len(), 28, "4x3 components: {blurhash}");
    let blurred = blurhash::decode(blurhash, 8, 4, 1.0).unwrap();
    assert!(blurred[0] > blurred[2] && blurred[7 * 4 + 2] > blurred[7 * 4], "red left, blue right: {blurred:?}");

    // EXIF orientation 6 (rotate 90°): the placeholder is of the upright, portrait image, with
    // the red half on top.
    let rotated = app.upload(&alice, with_exif(&halves_jpeg(400, 200), 6)).await;
    assert_eq!((rotated["width"].as_u64(), rotated["height"].as_u64()), (Some(200), Some(400)));
    let upright = thumbhash_pixels(&rotated);
    assert!(upright.height() > upright.width(), "portrait: {:?}", upright.dimensions());
    assert!(upright.get_pixel(upright.width() / 2, 0)[0] > 180, "red on top");
    assert!(upright.get_pixel(upright.width() / 2, upright.height() - 1)[2] > 180, "blue at the bottom");

    // Alpha is kept: transparent left half, green right half; the colour ignores the clear part.
    let png = app.upload(&alice, alpha_png(300, 300)).await;
    let pixels = thumbhash_pixels(&png);
    assert!(pixels.get_pixel(0, pixels.height() / 2)[3] < 60, "transparent left");
    assert!(pixels.get_pixel(pixels.width() - 1, pixels.height() / 2)[3] > 200, "opaque right");
    assert_eq!(png["placeholder"]["color"], "#00c800");

    // The placeholder is part of the `Image` everywhere: the single read and the list.
    let id = image["id"].as_str().unwrap();
    let one: Value = app.get_auth(&format!("/v1/images/{id}"), &alice.token).await.json().await.unwrap();
    assert_eq!(one["placeholder"], image["placeholder"]);
    let page: Value = app.get_auth("/v1/images", &alice.token).await.json().await.unwrap();
    assert!(page["items"].as_array().unwrap().iter().all(|i| i["placeholder"]["thumbhash"].is_string()));
}

async fn old_rows_are_backfilled_and_lists_show_them(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let kept = app.upload(&alice, halves_jpeg(64, 32)).await;
    let lost = app.upload(&alice, alpha_png(40, 40)).await;
    // Rows from before placeholders existed; one of them has lost its original too.
    app.env.execute("UPDATE images SET thumbhash = NULL, blurhash = NULL, color = NULL").await;
    let lost_id = lost["id"].as_str().unwrap();
    let shared = &app.state.shared;
    shared.store.delete(&shared.keys.original(&imgedge::ids::ImageId::parse(lost_id).unwrap())).await.unwrap();
    let id = kept["id"].as_str().unwrap();
    let before: Value = app.get_auth(&format!("/v1/images/{id}"), &alice.token).await.json().await.unwrap();
    assert!(before["placeholder"].is_null(), "{before}");

    // One image filled, the one without an original skipped (and the backfill ends).
    assert_eq!(app.state.images.backfill().await, 1);
    let after: Value = app.get_auth(&format!("/v1/images/{id}"), &alice.token).await.json().await.unwrap();
    assert_eq!(after["placeholder"], kept["placeholder"], "the same values an upload computes");
    let lost_now: Value = app.get_auth(&format!("/v1/images/{lost_id}"), &alice.token).await.json().await.unwrap();
    assert!(lost_now["placeholder"].is_null());
    assert_eq!(app.state.images.backfill().await, 0, "nothing left that can be filled");
}
