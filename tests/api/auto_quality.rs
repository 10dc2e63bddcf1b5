//! `q_auto`: each level's output reaches its SSIMULACRA2 score against the pixels it was made
//! from (scored here with fast-ssim2 against the lossless variant of the same ops), with fewer
//! bytes the lower the level, its own ETag, and one charge per variant.

use image::{DynamicImage, RgbImage};

use crate::fixtures::{decode, encode};
use crate::harness::{spawn, Backend};
use imgedge::format::ImageFormat;
use imgedge::transform::quality::AutoLevel;

crate::for_backends!(q_auto_reaches_each_levels_score_with_fewer_bytes_the_lower_the_level);

/// Gradients with fine detail: neither flat art nor noise.
fn detailed(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        let detail = u8::try_from((x * 7 + y * 13) % 23).unwrap();
        let r = u8::try_from(x * 255 / w).unwrap() ^ detail;
        image::Rgb([r, u8::try_from(y * 255 / h).unwrap(), u8::try_from((x + y) % 256 / 2).unwrap() + detail])
    }))
}

fn score(reference: &RgbImage, bytes: &[u8], format: ImageFormat) -> f64 {
    let (w, h) = reference.dimensions();
    let decoded = imgedge::transform::decode::decode(bytes, format, 1, 1 << 24).expect("decodes").image.to_rgb8();
    assert_eq!(decoded.dimensions(), (w, h));
    let descriptor = fast_ssim2::PixelDescriptor::RGB8_SRGB;
    let stride = w as usize * 3;
    let source = fast_ssim2::PixelSlice::new(reference.as_raw(), w, h, stride, descriptor).unwrap();
    let distorted = fast_ssim2::PixelSlice::new(decoded.as_raw(), w, h, stride, descriptor).unwrap();
    fast_ssim2::compute_ssimulacra2(&source, &distorted).unwrap()
}

async fn q_auto_reaches_each_levels_score_with_fewer_bytes_the_lower_the_level(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let png = encode(&detailed(480, 320), image::ImageFormat::Png);
    let id = app.upload(&alice, png).await["id"].as_str().unwrap().to_owned();
    let reference = decode(&app.variant_bytes(&alice, &id, "w_240,fmt_png").await).to_rgb8();
    let mut charged = 1;

    let formats = [ImageFormat::Jpeg, ImageFormat::Webp, ImageFormat::Avif, ImageFormat::Jxl];
    // AVIF is scored where this build decodes it (`aom`); JPEG XL where it writes it (`libjxl`).
    for format in formats.into_iter().filter(|f| f.is_encodable() && f.is_decodable()) {
        let mut seen = Vec::new();
        for level in AutoLevel::ALL {
            let (target, level) = (level.target(), level.as_str());
            let res = app.variant(&alice, &id, &format!("w_240,q_auto:{level},fmt_{format}")).await;
            assert_eq!(res.status(), 200, "{format} {level}");
            let etag = res.headers()["etag"].to_str().unwrap().to_owned();
            let bytes = res.bytes().await.unwrap();
            assert_eq!(ImageFormat::sniff(&bytes), Some(format));
            let got = score(&reference, &bytes, format);
            assert!(got >= target, "{format} q_auto:{level}: SSIMULACRA2 {got:.2} < {target}");
            seen.push((bytes.len(), etag));
            charged += 1;
        }
        let sizes: Vec<usize> = seen.iter().map(|(len, _)| *len).collect();
        assert!(sizes[0] >= sizes[1] && sizes[1] >= sizes[2], "{format}: {sizes:?}");
        assert!(seen[0].1 != seen[1].1 && seen[1].1 != seen[2].1, "{format}: one ETag per level");
        // `q_auto` is `q_auto:good`: the same variant, served from memory, not charged again.
        let short = app.variant(&alice, &id, &format!("w_240,q_auto,fmt_{format}")).await;
        assert_eq!(short.headers()["etag"].to_str().unwrap(), seen[1].1);
        assert_eq!(short.headers()["x-cache"], "hit-memory");
    }

    // A smooth gradient: q_80 spends bytes nobody sees; q_auto does not.
    let smooth = DynamicImage::ImageRgb8(RgbImage::from_fn(240, 160, |x, y| {
        image::Rgb([u8::try_from(x).unwrap(), u8::try_from(y).unwrap(), 128])
    }));
    let flat = app.upload(&alice, encode(&smooth, image::ImageFormat::Png)).await["id"].as_str().unwrap().to_owned();
    let fixed = app.variant_bytes(&alice, &flat, "q_80,fmt_jpeg").await;
    let auto = app.variant_bytes(&alice, &flat, "q_auto,fmt_jpeg").await;
    assert!(auto.len() * 10 < fixed.len() * 9, "q_auto {} vs q_80 {} bytes", auto.len(), fixed.len());
    charged += 2;
    assert_eq!(app.used_today(&alice).await, charged);
}
