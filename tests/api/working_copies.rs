//! Working copies of large JPEG originals: made at upload (or by the start-up backfill for
//! older rows, and for rows with the copies of before the 1/3 one), stored beside the variants, gone with the image, and decoded instead of the
//! original wherever one is at least 1.1 times the output on each side.

use image::GenericImageView;

use crate::fixtures::{busy, decode, encode, halves_jpeg};
use crate::harness::{assert_error, spawn, Backend, Owner, TestApp};

crate::for_backends!(large_jpegs_are_served_from_their_working_copies, older_rows_get_their_copies_from_the_backfill);
crate::for_backends!([Sqlite] lossy_stills_get_copies_lossless_and_transparent_ones_do_not);

/// A 1800×1200 JPEG with detail: 2.16 MP, enough for working copies.
fn photo() -> Vec<u8> {
    encode(&image::DynamicImage::ImageRgb8(busy(1800, 1200)), image::ImageFormat::Jpeg)
}

async fn upload(app: &TestApp, owner: &Owner, bytes: Vec<u8>) -> imgedge::ids::ImageId {
    imgedge::ids::ImageId::parse(app.upload(owner, bytes).await["id"].as_str().unwrap()).unwrap()
}

async fn large_jpegs_are_served_from_their_working_copies(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let id = upload(&app, &alice, photo()).await;
    let keys = &app.state.shared.keys;
    let mut stored = app.stored_keys(&format!("derived/{id}/")).await;
    stored.sort();
    let levels: Vec<_> = [2, 3, 4].map(|f| keys.level(&id, f).as_str().to_owned()).into();
    assert_eq!(stored, levels);
    let copy = |factor| {
        let (at, store) = (keys.level(&id, factor), app.state.shared.store.clone());
        async move { decode(&store.get_bytes(&at).await.unwrap()).dimensions() }
    };
    assert_eq!((copy(2).await, copy(3).await, copy(4).await), ((900, 600), (600, 400), (450, 300)));
    // Small images and other formats get none.
    let small = upload(&app, &alice, halves_jpeg(400, 200)).await;
    assert!(app.stored_keys(&format!("derived/{small}/")).await.is_empty());

    // The same output either way: a variant made from the copy matches the original's own.
    let from_copy = decode(&app.variant_bytes(&alice, id.as_str(), "w_200,fmt_png").await).to_rgb8();
    let reference = decode(&photo()).resize_exact(200, 133, image::imageops::FilterType::Lanczos3).to_rgb8();
    let mean_diff = mean_difference(&from_copy, &reference);
    assert!(mean_diff < 4.0, "mean difference {mean_diff:.2} from a Lanczos resize of the original");

    // The witness: with the original gone, what a copy holds is still served; what needs the
    // original is not.
    app.state.shared.store.delete(&keys.original(&id)).await.unwrap();
    let thumb = app.variant_bytes(&alice, id.as_str(), "w_300,fmt_webp").await;
    assert_eq!(decode(&thumb).dimensions(), (300, 200), "from the 1/4 copy");
    assert_eq!(decode(&app.variant_bytes(&alice, id.as_str(), "w_500").await).width(), 500, "from the 1/3 copy");
    assert_eq!(decode(&app.variant_bytes(&alice, id.as_str(), "w_800").await).width(), 800, "from the 1/2 copy");
    assert_error(app.variant(&alice, id.as_str(), "w_1500").await, 404, "not_found").await;
    // Which copy: with the 1/3 one gone too, what it serves is not found, and an output it
    // would hold without 10 % to spare never came from it.
    app.state.shared.store.delete(&keys.level(&id, 3)).await.unwrap();
    assert_error(app.variant(&alice, id.as_str(), "w_520").await, 404, "not_found").await;
    assert_eq!(decode(&app.variant_bytes(&alice, id.as_str(), "w_560").await).width(), 560, "600 px is not 1.1 × 560");
    assert_eq!(decode(&app.variant_bytes(&alice, id.as_str(), "w_400").await).width(), 400, "450 px is 1.1 × 400");

    // Deleted with the image.
    let res = app.client.delete(app.url(&format!("/v1/images/{id}"))).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert!(app.stored_keys(&format!("derived/{id}/")).await.is_empty());
}

async fn older_rows_get_their_copies_from_the_backfill(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let id = upload(&app, &alice, photo()).await;
    // A row from before working copies: none recorded, none stored.
    app.env.execute("UPDATE images SET levels = NULL").await;
    app.state.shared.store.delete_prefix(&format!("derived/{id}/")).await.unwrap();
    app.state.shared.lookups.forget_image(&id);
    assert_eq!(app.state.images.backfill().await, 1);
    assert_eq!(app.stored_keys(&format!("derived/{id}/")).await.len(), 3, "every copy");
    // And the copies serve at once.
    app.state.shared.store.delete(&app.state.shared.keys.original(&id)).await.unwrap();
    assert_eq!(app.variant(&alice, id.as_str(), "w_300").await.status(), 200);
    assert_eq!(app.state.images.backfill().await, 0);

    // A row from before the copy at 1/3 (copies at 1/2 and 1/4 recorded): it is made, and used.
    let id = upload(&app, &alice, photo()).await;
    app.env.execute(&format!("UPDATE images SET levels = {} WHERE id = '{id}'", (1 << 2) | (1 << 4))).await;
    let keys = &app.state.shared.keys;
    app.state.shared.store.delete(&keys.level(&id, 3)).await.unwrap();
    app.state.shared.lookups.forget_image(&id);
    assert_eq!(app.state.images.backfill().await, 1);
    assert_eq!(app.stored_keys(&format!("derived/{id}/")).await.len(), 3, "the copy at 1/3 too");
    for gone in [keys.original(&id), keys.level(&id, 2)] {
        app.state.shared.store.delete(&gone).await.unwrap();
    }
    assert_eq!(decode(&app.variant_bytes(&alice, id.as_str(), "w_500").await).width(), 500, "from the 1/3 copy");
    assert_eq!(app.state.images.backfill().await, 0);
}

async fn lossy_stills_get_copies_lossless_and_transparent_ones_do_not(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let jpeg = upload(&app, &alice, photo()).await;

    // A lossy WebP (the server's own, full size): copies, and its variants come from them.
    let webp = app.variant_bytes(&alice, jpeg.as_str(), "fmt_webp,q_90").await;
    let id = upload(&app, &alice, webp).await;
    assert_eq!(copies(&app, &id).await, 3, "lossy WebP");
    let from_original = decode(&app.variant_bytes(&alice, id.as_str(), "w_400,fmt_png").await).to_rgb8();
    app.state.shared.store.delete(&app.state.shared.keys.original(&id)).await.unwrap();
    let from_copy = decode(&app.variant_bytes(&alice, id.as_str(), "w_420,fmt_png").await);
    assert_eq!(from_copy.dimensions(), (420, 280), "served with the original gone: from the 1/3 copy");
    let from_copy = from_copy.resize_exact(400, 267, image::imageops::FilterType::Lanczos3).to_rgb8();
    let diff = mean_difference(&from_copy, &from_original);
    assert!(diff < 6.0, "mean difference {diff:.2} between the copy's variant and the original's");

    // Lossless WebP, and a PNG with alpha: none.
    let lossless = encode(&image::DynamicImage::ImageRgb8(busy(1800, 1200)), image::ImageFormat::WebP);
    let alpha = encode(
        &image::DynamicImage::ImageRgba8(image::DynamicImage::ImageRgb8(busy(1800, 1200)).to_rgba8()),
        image::ImageFormat::Png,
    );
    for (what, bytes) in [("lossless WebP", lossless), ("PNG", alpha)] {
        let id = upload(&app, &alice, bytes).await;
        assert_eq!(copies(&app, &id).await, 0, "{what}");
    }

    // An AVIF, where this build decodes them.
    if cfg!(feature = "aom") {
        let avif = app.variant_bytes(&alice, jpeg.as_str(), "fmt_avif,q_80").await;
        let id = upload(&app, &alice, avif).await;
        assert_eq!(copies(&app, &id).await, 3, "AVIF");
        app.state.shared.store.delete(&app.state.shared.keys.original(&id)).await.unwrap();
        assert_eq!(decode(&app.variant_bytes(&alice, id.as_str(), "w_300,fmt_png").await).dimensions(), (300, 200));
    }
}

async fn copies(app: &TestApp, id: &imgedge::ids::ImageId) -> usize {
    app.stored_keys(&format!("derived/{id}/")).await.len()
}

/// Mean absolute difference per channel of two images of one size, out of 255.
fn mean_difference(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    total as f64 / a.as_raw().len() as f64
}
