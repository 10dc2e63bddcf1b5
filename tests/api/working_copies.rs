//! Working copies of large stills (JPEG copies of lossy ones, PNG copies of lossless or
//! transparent ones): made at upload (or by the start-up backfill for older rows, for rows with
//! the copies of before the 1/3 one, and for lossless rows from before their copies), stored
//! beside the variants, counted in their owner's storage, gone with the image, and decoded
//! instead of the original wherever one is at least 1.1 times the output on each side.

use image::GenericImageView;

use imgedge::format::ImageFormat;

use crate::fixtures::{alpha_png, busy, decode, encode, halves_jpeg};
use crate::harness::{assert_error, spawn, Backend, Owner, TestApp};

crate::for_backends!(
    large_jpegs_are_served_from_their_working_copies,
    older_rows_get_their_copies_from_the_backfill,
    copies_count_in_their_owners_storage
);
crate::for_backends!([Sqlite] stills_get_copies_of_their_kind);

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

    // A PNG from before lossless originals had copies (none recorded): the migration that came
    // with them marks it, and the backfill makes them; a PNG under 0.5 MP is left alone.
    let png = upload(&app, &alice, alpha_png(1040, 690)).await;
    let small = upload(&app, &alice, alpha_png(800, 600)).await;
    app.env.execute(&format!("UPDATE images SET levels = 0 WHERE id = '{png}'")).await;
    app.state.shared.store.delete_prefix(&format!("derived/{png}/")).await.unwrap();
    let migrations = match backend {
        Backend::Sqlite => imgedge::db::migrate::SQLITE,
        Backend::Postgres | Backend::PostgresS3 => imgedge::db::migrate::POSTGRES,
    };
    let migration = migrations.iter().find(|m| m.name == "0011_lossless_copies.sql").unwrap();
    app.env.execute(migration.sql).await;
    for id in [&png, &small] {
        app.state.shared.lookups.forget_image(id);
    }
    assert_eq!(app.state.images.backfill().await, 1, "the large PNG only");
    assert_eq!(app.stored_keys(&format!("derived/{png}/")).await.len(), 3, "the PNG's copies");
    assert_eq!(app.stored_keys(&format!("derived/{small}/")).await.len(), 0, "0.48 MP");
    app.state.shared.store.delete(&app.state.shared.keys.original(&png)).await.unwrap();
    assert_eq!(decode(&app.variant_bytes(&alice, png.as_str(), "w_300").await).width(), 300, "from a copy");
    assert_eq!(app.state.images.backfill().await, 0);
}

async fn stills_get_copies_of_their_kind(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let jpeg = upload(&app, &alice, photo()).await;

    // A lossy WebP (the server's own, full size): JPEG copies, and its variants come from them.
    let webp = app.variant_bytes(&alice, jpeg.as_str(), "fmt_webp,q_90").await;
    let id = upload(&app, &alice, webp).await;
    assert_eq!(copy_formats(&app, &id).await, [Some(ImageFormat::Jpeg); 3], "lossy WebP");
    let from_original = decode(&app.variant_bytes(&alice, id.as_str(), "w_400,fmt_png").await).to_rgb8();
    app.state.shared.store.delete(&app.state.shared.keys.original(&id)).await.unwrap();
    let from_copy = decode(&app.variant_bytes(&alice, id.as_str(), "w_420,fmt_png").await);
    assert_eq!(from_copy.dimensions(), (420, 280), "served with the original gone: from the 1/3 copy");
    let from_copy = from_copy.resize_exact(400, 267, image::imageops::FilterType::Lanczos3).to_rgb8();
    let diff = mean_difference(&from_copy, &from_original);
    assert!(diff < 6.0, "mean difference {diff:.2} between the copy's variant and the original's");

    // Lossless WebP, and a PNG with alpha (0.72 MP: lossless copies pay from 0.5 MP): PNG
    // copies, the alpha kept.
    let lossless = encode(&image::DynamicImage::ImageRgb8(busy(1800, 1200)), image::ImageFormat::WebP);
    let id = upload(&app, &alice, lossless).await;
    assert_eq!(copy_formats(&app, &id).await, [Some(ImageFormat::Png); 3], "lossless WebP");
    let id = upload(&app, &alice, alpha_png(1040, 690)).await;
    assert_eq!(copy_formats(&app, &id).await, [Some(ImageFormat::Png); 3], "PNG with alpha");
    app.state.shared.store.delete(&app.state.shared.keys.original(&id)).await.unwrap();
    let thumb = decode(&app.variant_bytes(&alice, id.as_str(), "w_300,fmt_png").await).to_rgba8();
    assert_eq!(thumb.dimensions(), (300, 199), "served with the original gone: from the 1/3 copy");
    assert_eq!(thumb.get_pixel(40, 100).0[3], 0, "the transparent half");
    assert_eq!(thumb.get_pixel(260, 100).0, [0, 200, 0, 255], "the opaque half");

    // A smaller PNG gets none.
    let id = upload(&app, &alice, alpha_png(800, 500)).await;
    assert_eq!(copy_formats(&app, &id).await, [None; 3], "0.4 MP PNG");

    // An AVIF, where this build decodes them.
    if cfg!(feature = "aom") {
        let avif = app.variant_bytes(&alice, jpeg.as_str(), "fmt_avif,q_80").await;
        let id = upload(&app, &alice, avif).await;
        assert_eq!(copy_formats(&app, &id).await, [Some(ImageFormat::Jpeg); 3], "AVIF");
        app.state.shared.store.delete(&app.state.shared.keys.original(&id)).await.unwrap();
        assert_eq!(decode(&app.variant_bytes(&alice, id.as_str(), "w_300,fmt_png").await).dimensions(), (300, 200));
    }
}

/// The format of each stored copy of `id` (1/2, 1/3, 1/4), by its bytes; `None` where none is.
/// `GET /v1/me`'s `storage` as `(images, original_bytes, copies_bytes)`, with `bytes` checked
/// to be their sum.
async fn storage(app: &TestApp, owner: &Owner) -> (u64, u64, u64) {
    let me: serde_json::Value = app.get_auth("/v1/me", &owner.token).await.json().await.unwrap();
    let field = |name: &str| me["storage"][name].as_u64().unwrap_or_else(|| panic!("storage.{name} in {me}"));
    let counted = (field("images"), field("original_bytes"), field("copies_bytes"));
    assert_eq!(field("bytes"), counted.1 + counted.2, "bytes is originals + copies");
    counted
}

async fn copies_count_in_their_owners_storage(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    assert_eq!(storage(&app, &alice).await, (0, 0, 0));
    let (photo, small) = (photo(), halves_jpeg(400, 200));
    let originals = (photo.len() + small.len()) as u64;
    let id = upload(&app, &alice, photo).await;
    upload(&app, &alice, small).await;
    let keys = &app.state.shared.keys;
    let mut copies = 0;
    for factor in [2, 3, 4] {
        copies += app.state.shared.store.size(&keys.level(&id, factor)).await.unwrap();
    }
    assert!(copies > 0);
    assert_eq!(storage(&app, &alice).await, (2, originals, copies), "the photo's three copies, the small one's none");
    assert_eq!(storage(&app, &bob).await, (0, 0, 0), "another owner's images are not counted");

    // A row from before copies were counted: until the backfill, its copies are not; the
    // backfill measures them in the store, without the original (it is not decoded again).
    app.env.execute("UPDATE images SET copies_bytes = NULL").await;
    let migrations = match backend {
        Backend::Sqlite => imgedge::db::migrate::SQLITE,
        Backend::Postgres | Backend::PostgresS3 => imgedge::db::migrate::POSTGRES,
    };
    let migration = migrations.iter().find(|m| m.name == "0012_copies_bytes.sql").unwrap();
    let update = migration.sql.lines().find(|line| line.starts_with("UPDATE")).unwrap();
    app.env.execute(update).await;
    assert_eq!(storage(&app, &alice).await, (2, originals, 0));
    app.state.shared.store.delete(&keys.original(&id)).await.unwrap();
    assert_eq!(app.state.images.backfill().await, 1, "the photo only: the small image holds no copies");
    assert_eq!(storage(&app, &alice).await, (2, originals, copies));
    assert_eq!(app.state.images.backfill().await, 0);

    // Gone with the image.
    let res = app.client.delete(app.url(&format!("/v1/images/{id}"))).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let (images, original_bytes, copies_bytes) = storage(&app, &alice).await;
    assert_eq!((images, copies_bytes), (1, 0));
    assert!(original_bytes < originals);
}

async fn copy_formats(app: &TestApp, id: &imgedge::ids::ImageId) -> [Option<ImageFormat>; 3] {
    let mut formats = [None; 3];
    for (i, factor) in [2, 3, 4].into_iter().enumerate() {
        if let Ok(bytes) = app.state.shared.store.get_bytes(&app.state.shared.keys.level(id, factor)).await {
            formats[i] = ImageFormat::sniff(&bytes);
        }
    }
    formats
}

/// Mean absolute difference per channel of two images of one size, out of 255.
fn mean_difference(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    total as f64 / a.as_raw().len() as f64
}
