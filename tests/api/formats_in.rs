//! Originals in formats beyond JPEG, PNG, WebP and GIF: JPEG XL and HEIC (every build) and AVIF
//! (a build with `--features aom`, the one `deploy/` ships and `tests/run` tests). The JPEG XL
//! files in `tests/fixtures` were written by libjxl's `cjxl` 0.7 (Debian's libjxl-tools), the AVIF
//! by Sharp 0.34 (libheif + aom 3.15), the HEIC by pillow-heif 1.9 (libheif 1.23 + x265 4.3);
//! where a HEIC's pixels are checked, the expected colours are what libheif shows.

#[cfg(feature = "aom")]
use serde_json::Value;

#[cfg(feature = "aom")]
use crate::fixtures::halves_jpeg;
use crate::fixtures::size;
use crate::fixtures::{decode, near, rgb, BLUE, RED};
#[cfg(not(feature = "libjxl"))]
use crate::harness::assert_error;
use crate::harness::{spawn, Backend};
use imgedge::format::ImageFormat;

crate::for_backends!(jpeg_xl_originals_are_kept_as_uploaded_and_transformed);
crate::for_backends!(heic_originals_are_kept_as_uploaded_and_transformed, heic_sizes_are_counted_before_any_decode);
#[cfg(feature = "libjxl")]
crate::for_backends!(jpeg_xl_variants_decode_elsewhere_and_fmt_auto_prefers_them);
#[cfg(not(feature = "libjxl"))]
crate::for_backends!(fmt_jxl_is_refused_naming_the_feature);
#[cfg(feature = "aom")]
crate::for_backends!(avif_originals_are_kept_as_uploaded_and_transformed, avif_headers_are_counted_before_any_decode);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).expect(name)
}

async fn jpeg_xl_originals_are_kept_as_uploaded_and_transformed(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    // Lossy (VarDCT, XYB), a bare codestream: red | blue.
    let lossy = fixture("halves-96x64.jxl");
    let image = app.upload(&alice, lossy.clone()).await;
    assert_eq!(image["format"], "jxl");
    assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(96), Some(64)));
    let id = image["id"].as_str().unwrap();
    let res = app.get(&app.signed(&alice, &format!("/i/{id}"))).await;
    assert_eq!(res.headers()["content-type"], "image/jxl");
    assert_eq!(res.bytes().await.unwrap().to_vec(), lossy, "the original as uploaded");
    // No `fmt_`: the source's format when this build writes JPEG XL (`libjxl`), else JPEG.
    let bytes = app.variant_bytes(&alice, id, "w_48").await;
    let kept = if cfg!(feature = "libjxl") { ImageFormat::Jxl } else { ImageFormat::Jpeg };
    assert_eq!(ImageFormat::sniff(&bytes), Some(kept));
    for fmt in ["png", "webp"] {
        let img = decode(&app.variant_bytes(&alice, id, &format!("w_48,fmt_{fmt}")).await);
        assert_eq!((img.width(), img.height()), (48, 32), "{fmt}");
        assert!(near(rgb(&img, 4, 16), RED, 40) && near(rgb(&img, 44, 16), BLUE, 40), "{fmt}");
    }

    // Lossless with alpha (modular): the alpha kept.
    let image = app.upload(&alice, fixture("halves-alpha-96x64.jxl")).await;
    let id = image["id"].as_str().unwrap();
    let img = decode(&app.variant_bytes(&alice, id, "w_48,fmt_png").await).to_rgba8();
    assert_eq!(img.dimensions(), (48, 32));
    let px = img.get_pixel(4, 16).0;
    assert!(near([px[0], px[1], px[2]], RED, 10) && (120..=136).contains(&px[3]), "{px:?}");

    // Grey, in the ISO BMFF container: dark top, light bottom, as RGB.
    let image = app.upload(&alice, fixture("gray-32x32.jxl")).await;
    let img = decode(&app.variant_bytes(&alice, image["id"].as_str().unwrap(), "w_16,fmt_png").await);
    assert!(near(rgb(&img, 8, 2), [40, 40, 40], 10) && near(rgb(&img, 8, 13), [210, 210, 210], 10));

    // Cut short: 422, nothing kept.
    let res = app.upload_raw(&alice, lossy[..lossy.len() / 2].to_vec(), "image/jxl").await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.stored_keys("originals/").await.len(), 3);
}

const GREEN: [u8; 3] = [0, 160, 0];

/// iPhone-style HEIC: stored as uploaded, upright by `irot`/`imir`, grids of tiles, alpha,
/// 10-bit, a Display P3 profile converted, every output format.
async fn heic_originals_are_kept_as_uploaded_and_transformed(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    // Red | blue over green, 96 × 64, written with EXIF orientation 6 (libheif: `irot`): upright
    // it is 64 × 96, green on the left, red over blue on the right.
    let turned = fixture("quad-96x64-o6.heic");
    let image = app.upload(&alice, turned.clone()).await;
    assert_eq!(image["format"], "heic");
    assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(64), Some(96)));
    let id = image["id"].as_str().unwrap();
    let res = app.get(&app.signed(&alice, &format!("/i/{id}"))).await;
    assert_eq!(res.headers()["content-type"], "image/heic");
    assert_eq!(res.bytes().await.unwrap().to_vec(), turned, "the original as uploaded");
    // No `fmt_`: a JPEG (no build writes HEIC); every other format on request.
    let bytes = app.variant_bytes(&alice, id, "w_32").await;
    assert_eq!(ImageFormat::sniff(&bytes), Some(ImageFormat::Jpeg));
    for fmt in ["jpeg", "png", "webp"] {
        let img = decode(&app.variant_bytes(&alice, id, &format!("w_32,fmt_{fmt}")).await);
        assert_eq!((img.width(), img.height()), (32, 48), "{fmt}");
        let (left, top_right, bottom_right) = (rgb(&img, 4, 24), rgb(&img, 28, 5), rgb(&img, 28, 43));
        assert!(
            near(left, GREEN, 40) && near(top_right, RED, 40) && near(bottom_right, BLUE, 40),
            "{fmt}: {left:?} {top_right:?} {bottom_right:?}"
        );
    }
    if ImageFormat::Avif.is_encodable() {
        assert_eq!(size(&app.variant_bytes(&alice, id, "w_32,fmt_avif").await), (32, 48));
    }

    // EXIF 5 and 7, a turn then a mirror (libheif: `irot` 3, then `imir` axis 1 and 0): red
    // over blue on the left, green right; green left, blue over red on the right.
    for (name, [top_left, bottom_left, top_right, bottom_right]) in
        [("quad-96x64-o5.heic", [RED, BLUE, GREEN, GREEN]), ("quad-96x64-o7.heic", [GREEN, GREEN, BLUE, RED])]
    {
        let image = app.upload(&alice, fixture(name)).await;
        let img = decode(&app.variant_bytes(&alice, image["id"].as_str().unwrap(), "w_32,fmt_png").await);
        let seen = [rgb(&img, 3, 5), rgb(&img, 3, 43), rgb(&img, 28, 5), rgb(&img, 28, 43)];
        let expected = [top_left, bottom_left, top_right, bottom_right];
        assert!(seen.iter().zip(expected).all(|(&s, e)| near(s, e, 40)), "{name}: {seen:?}");
    }

    // A grid of 128-px tiles, 300 × 200 (the last column and row cut): seamless quadrants.
    let image = app.upload(&alice, fixture("quad-300x200-grid.heic")).await;
    assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(300), Some(200)));
    let img = decode(&app.variant_bytes(&alice, image["id"].as_str().unwrap(), "w_150,fmt_png").await);
    assert_eq!((img.width(), img.height()), (150, 100));
    for (x, y, colour) in
        [(5, 5, RED), (64, 30, RED), (70, 45, RED), (140, 5, BLUE), (100, 45, BLUE), (75, 90, GREEN), (64, 70, GREEN)]
    {
        assert!(near(rgb(&img, x, y), colour, 40), "({x}, {y}): {:?}", rgb(&img, x, y));
    }

    // An auxiliary alpha image: red | half-transparent blue.
    let image = app.upload(&alice, fixture("halves-alpha-96x64.heic")).await;
    let img = decode(&app.variant_bytes(&alice, image["id"].as_str().unwrap(), "w_48,fmt_png").await).to_rgba8();
    let (opaque, half) = (img.get_pixel(4, 16).0, img.get_pixel(44, 16).0);
    assert!(near([opaque[0], opaque[1], opaque[2]], RED, 40) && opaque[3] == 255, "{opaque:?}");
    assert!(near([half[0], half[1], half[2]], BLUE, 40) && (120..=136).contains(&half[3]), "{half:?}");

    // 10 bits a sample.
    let image = app.upload(&alice, fixture("halves-96x64-10bit.heic")).await;
    let img = decode(&app.variant_bytes(&alice, image["id"].as_str().unwrap(), "w_48,fmt_png").await);
    assert!(near(rgb(&img, 4, 16), RED, 40) && near(rgb(&img, 44, 16), BLUE, 40), "{:?}", rgb(&img, 4, 16));

    // Display P3 (200, 40, 40), as an iPhone tags its photos: converted, so sRGB has more red.
    let image = app.upload(&alice, fixture("red-64-p3.heic")).await;
    let img = decode(&app.variant_bytes(&alice, image["id"].as_str().unwrap(), "w_32,fmt_png").await);
    let red = rgb(&img, 16, 16);
    assert!(red[0] >= 212 && red[1] < 40, "P3 (200, 40, 40) as sRGB: {red:?}");

    // Cut short: 422, nothing more kept.
    let res = app.upload_raw(&alice, turned[..turned.len() * 2 / 3].to_vec(), "image/heic").await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.stored_keys("originals/").await.len(), 7);
}

/// A HEIC's size is read from its container and counted by the limits before any pixel is
/// decoded: a grid of 128-px tiles claiming 60000 × 60000 is refused without a decode; one whose
/// `grid` box and `ispe` disagree is refused by the decoder.
async fn heic_sizes_are_counted_before_any_decode(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let grid = fixture("quad-300x200-grid.heic");
    // The grid's `ispe` (version and flags, then 32-bit width and height) and its derivation's
    // body in `idat` (version, flags, rows - 1, columns - 1, then the size as 16-bit numbers).
    let find = |needle: &[u8]| grid.windows(needle.len()).position(|w| w == needle).expect("the grid's 300 x 200");
    let ispe = find(&[b"ispe".as_slice(), &[0; 4], &300u32.to_be_bytes(), &200u32.to_be_bytes()].concat()) + 8;
    let body = find(&[0, 0, 1, 2, 0x01, 0x2C, 0x00, 0xC8]) + 4;
    let mut claims = grid.clone();
    claims[ispe..ispe + 8].copy_from_slice(&[60_000u32.to_be_bytes(), 60_000u32.to_be_bytes()].concat());
    claims[body..body + 4].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let res = app.upload_raw(&alice, claims.clone(), "image/heic").await;
    assert_eq!(res.status(), 422);
    let refusal: serde_json::Value = res.json().await.unwrap();
    assert_eq!(refusal["error"]["code"], "unprocessable_image", "{refusal}");
    assert!(refusal["error"]["message"].as_str().unwrap().contains("60000x60000"), "{refusal}");

    // The `grid` box alone claiming more than its `ispe`: tiles that do not cover it, 422.
    let mut lies = grid.clone();
    lies[body..body + 4].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let res = app.upload_raw(&alice, lies, "image/heic").await;
    assert_eq!(res.status(), 422);
    assert_eq!(app.stored_keys("originals/").await.len(), 0);
}

/// `fmt_jxl` (libjxl) decoded by jxl-oxide — another implementation — at its size and colours;
/// `q_` makes smaller files; `fmt_auto` picks JPEG XL first when `Accept` lists it, with its own
/// ETag and `Vary: Accept`.
#[cfg(feature = "libjxl")]
async fn jpeg_xl_variants_decode_elsewhere_and_fmt_auto_prefers_them(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let id = app.upload(&alice, crate::fixtures::halves_jpeg(300, 200)).await["id"].as_str().unwrap().to_owned();
    let res = app.variant(&alice, &id, "w_150,fmt_jxl").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jxl");
    let bytes = res.bytes().await.unwrap();
    let decoded = imgedge::transform::decode::jxl::decode(&bytes, 1 << 24).expect("jxl-oxide decodes it").image;
    assert_eq!((decoded.width(), decoded.height()), (150, 100));
    assert!(near(rgb(&decoded, 10, 50), RED, 40) && near(rgb(&decoded, 140, 50), BLUE, 40));
    let small = app.variant_bytes(&alice, &id, "w_150,fmt_jxl,q_20").await;
    assert!(small.len() < bytes.len(), "q_20: {} < {}", small.len(), bytes.len());

    let auto = |accept: &'static str| {
        let url = app.url(&app.signed(&alice, &format!("/i/{id}/w_150,fmt_auto")));
        app.client.get(url).header("accept", accept).send()
    };
    let jxl = auto("image/jxl,image/avif,image/webp,*/*").await.unwrap();
    assert_eq!(jxl.headers()["content-type"], "image/jxl");
    assert!(jxl.headers()["vary"].to_str().unwrap().contains("Accept"));
    let avif = auto("image/avif,image/webp,*/*").await.unwrap();
    assert_eq!(avif.headers()["content-type"], "image/avif");
    assert_ne!(jxl.headers()["etag"], avif.headers()["etag"]);
    assert_eq!(jxl.bytes().await.unwrap(), bytes, "fmt_auto's JPEG XL is the fmt_jxl variant");
}

#[cfg(not(feature = "libjxl"))]
async fn fmt_jxl_is_refused_naming_the_feature(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let id = app.upload(&alice, crate::fixtures::halves_jpeg(30, 20)).await["id"].as_str().unwrap().to_owned();
    let message = assert_error(app.variant(&alice, &id, "w_10,fmt_jxl").await, 400, "invalid_transform").await;
    assert!(message.contains("libjxl"), "{message}");
    let url = app.url(&app.signed(&alice, &format!("/i/{id}/w_10,fmt_auto")));
    let res = app.client.get(url).header("accept", "image/jxl,image/webp").send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/webp", "fmt_auto skips what is not built");
    assert_eq!(app.used_today(&alice).await, 1);
}

#[cfg(feature = "aom")]
async fn avif_originals_are_kept_as_uploaded_and_transformed(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let jpeg = app.upload(&alice, halves_jpeg(120, 80)).await;
    let avif = app.variant_bytes(&alice, jpeg["id"].as_str().unwrap(), "fmt_avif,q_90").await;

    let image = app.upload(&alice, avif.clone()).await;
    assert_eq!(image["format"], "avif");
    assert_eq!((image["width"].as_u64(), image["height"].as_u64()), (Some(120), Some(80)));
    let id = image["id"].as_str().unwrap();

    // The original is the uploaded bytes.
    let res = app.get(&app.signed(&alice, &format!("/i/{id}"))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/avif");
    assert_eq!(res.bytes().await.unwrap().to_vec(), avif);

    // Every output format, resized, with the colours where they were.
    for fmt in ["png", "jpeg", "webp", "avif"] {
        let bytes = app.variant_bytes(&alice, id, &format!("w_60,fmt_{fmt}")).await;
        assert_eq!(size(&bytes), (60, 40), "{fmt}");
        if fmt == "avif" {
            continue; // (the test has no AVIF decoder; the server's is tested above)
        }
        let img = decode(&bytes);
        assert!(near(rgb(&img, 5, 20), RED, 40) && near(rgb(&img, 55, 20), BLUE, 40), "{fmt}");
    }
    // Sharp's AVIF (libheif + aom, an encoder not ours): the same colours where they were.
    let sharp = app.upload(&alice, fixture("halves-96x64-sharp.avif")).await;
    assert_eq!((sharp["format"].as_str(), sharp["width"].as_u64()), (Some("avif"), Some(96)));
    let img = decode(&app.variant_bytes(&alice, sharp["id"].as_str().unwrap(), "w_48,fmt_png").await);
    assert!(near(rgb(&img, 4, 16), RED, 40) && near(rgb(&img, 44, 16), BLUE, 40), "{:?}", rgb(&img, 4, 16));

    // An op that needs every pixel: a crop of the right half is all blue.
    let img = decode(&app.variant_bytes(&alice, id, "w_30,h_40,fit_cover,g_east,fmt_png").await);
    assert!(near(rgb(&img, 2, 20), BLUE, 40), "{:?}", rgb(&img, 2, 20));
}

#[cfg(feature = "aom")]
async fn avif_headers_are_counted_before_any_decode(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let jpeg = app.upload(&alice, halves_jpeg(64, 64)).await;
    let avif = app.variant_bytes(&alice, jpeg["id"].as_str().unwrap(), "fmt_avif").await;

    // The same file, its `ispe` box claiming 100000 × 100000.
    let at = avif.windows(4).position(|w| w == b"ispe").expect("an ispe box") + 8;
    let mut claims = avif.clone();
    claims[at..at + 8].copy_from_slice(&[100_000u32.to_be_bytes(), 100_000u32.to_be_bytes()].concat());
    let res = app.upload_raw(&alice, claims, "image/avif").await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unprocessable_image", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("pixels"), "{body}");

    // Truncated, or claiming a size its frame does not have: 422, nothing kept.
    let truncated = avif[..avif.len() * 2 / 3].to_vec();
    let mut smaller = avif.clone();
    smaller[at..at + 8].copy_from_slice(&[32u32.to_be_bytes(), 32u32.to_be_bytes()].concat());
    for (what, bytes) in [("truncated", truncated), ("smaller header", smaller)] {
        let res = app.upload_raw(&alice, bytes, "image/avif").await;
        assert_eq!(res.status(), 422, "{what}");
    }
    assert_eq!(app.stored_keys("originals/").await.len(), 1);
}
