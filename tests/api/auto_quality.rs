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

/// Value noise summed over six octaves, per channel: blobs at every scale, as in photos (whose
/// detail falls off with frequency), unlike [`detailed`]'s one fine pattern, which a reduction
/// aliases away.
fn photo_like(w: u32, h: u32) -> DynamicImage {
    let hash = |x: u32, y: u32, c: u32| {
        let mut v = x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77) ^ c.wrapping_mul(0xC2B2_AE3D);
        v ^= v >> 15;
        v = v.wrapping_mul(0x2C1B_3C6D);
        v ^= v >> 12;
        f64::from(v & 0xFFFF) / 65535.0
    };
    let noise = |x: u32, y: u32, c: u32| {
        (0..6u32)
            .map(|octave| {
                let cell = 256 >> octave;
                let (fx, fy) = (f64::from(x % cell) / f64::from(cell), f64::from(y % cell) / f64::from(cell));
                let (gx, gy) = (x / cell, y / cell);
                let top = hash(gx, gy, c + octave * 3) * (1.0 - fx) + hash(gx + 1, gy, c + octave * 3) * fx;
                let bottom = hash(gx, gy + 1, c + octave * 3) * (1.0 - fx) + hash(gx + 1, gy + 1, c + octave * 3) * fx;
                (top * (1.0 - fy) + bottom * fy) / f64::from(1u32 << octave)
            })
            .sum::<f64>()
            / 2.0
    };
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([0, 1, 2].map(|c| (noise(x, y, c) * 255.0).clamp(0.0, 255.0) as u8))
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

    // An output larger than 256 x 256 is searched on a reduction of itself: on a picture with
    // detail at every scale, the quality found there holds at full size, within the 2 points
    // the README measures for photos.
    let large = app.upload(&alice, encode(&photo_like(960, 640), image::ImageFormat::Png)).await;
    let large = large["id"].as_str().unwrap().to_owned();
    let reference = decode(&app.variant_bytes(&alice, &large, "fmt_png").await).to_rgb8();
    for format in [ImageFormat::Jpeg, ImageFormat::Webp] {
        let bytes = app.variant_bytes(&alice, &large, &format!("q_auto,fmt_{format}")).await;
        let got = score(&reference, &bytes, format);
        let target = AutoLevel::Good.target();
        assert!(got >= target - 2.0, "{format} 960x640 q_auto: SSIMULACRA2 {got:.2} < {target} - 2");
    }
    charged += 3;

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
