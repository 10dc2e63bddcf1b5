//! The pixel pipeline on a real photo, stage by stage and whole.
//!
//! Uses the benchmark corpus when it exists (`benches/peers/make-corpus.sh` builds
//! `/tmp/imgbench/corpus`; override with `IMGEDGE_BENCH_CORPUS`), else synthetic images of the
//! same sizes (noisier than a photo, so decode and encode are a little slower).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use image::DynamicImage;
use imgedge::format::ImageFormat;
use imgedge::transform::quality::{AutoLevel, Quality};
use imgedge::transform::{decode, encode, levels, parse, pipeline, resize};

fn corpus(name: &str, synthetic: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    let dir =
        std::env::var_os("IMGEDGE_BENCH_CORPUS").map_or_else(|| PathBuf::from("/tmp/imgbench/corpus"), PathBuf::from);
    std::fs::read(dir.join(name)).unwrap_or_else(|_| {
        eprintln!("{name}: corpus not found, using a synthetic image");
        synthetic()
    })
}

/// The (d) case's original: a 1024×768 PNG with alpha.
fn alpha_png() -> Vec<u8> {
    corpus("alpha-1024.png", || {
        let img = image::RgbaImage::from_fn(1024, 768, |x, y| {
            image::Rgba([(x % 256) as u8, (y % 256) as u8, 90, ((x + y) % 256) as u8])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(img).write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    })
}

/// The (i-png) case's original: a 2040×1360 PNG photo.
fn photo_png() -> Vec<u8> {
    corpus("photo-2.8mp.png", || encoded(photo(2040, 1360), image::ImageFormat::Png))
}

fn photo(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 23;
        image::Rgb([(x * 255 / w) as u8 + n as u8, (y * 255 / h) as u8, ((x + y) % 200) as u8 + n as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
    out.into_inner()
}

/// A JPEG from [`photo`] re-encoded as `format`.
fn encoded(jpeg: Vec<u8>, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::load_from_memory(&jpeg).unwrap().write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn run(bytes: &[u8], format: ImageFormat, size: (u32, u32), ops: &str, out: ImageFormat) -> usize {
    run_from(bytes, 1, format, size, ops, out)
}

/// [`run`] from the working copy at 1/`level` of the original (`level` 1: the original).
fn run_from(bytes: &[u8], level: u32, format: ImageFormat, size: (u32, u32), ops: &str, out: ImageFormat) -> usize {
    let ops = parse(ops, 8192).unwrap();
    let job = pipeline::Job {
        original: bytes,
        source_format: format,
        source_size: size,
        source_frames: None,
        ops: &ops,
        format: out,
        watermark: None,
        max_pixels: 50_000_000,
        max_dimension: 8192,
        avif_speed: 8,
        level,
    };
    pipeline::run(&job).unwrap().bytes.len()
}

fn stages(c: &mut Criterion) {
    let big = corpus("photo-12mp.jpg", || photo(4000, 3000));
    let mut g = c.benchmark_group("12MP jpeg stages");
    g.sample_size(10);
    g.bench_function("decode full", |b| {
        b.iter(|| decode::decode(black_box(&big), ImageFormat::Jpeg, 1, 50_000_000).unwrap())
    });
    g.bench_function("decode 1/4 (DCT)", |b| {
        b.iter(|| decode::decode(black_box(&big), ImageFormat::Jpeg, 4, 50_000_000).unwrap())
    });
    g.bench_function("decode 1/8 (DCT)", |b| {
        b.iter(|| decode::decode(black_box(&big), ImageFormat::Jpeg, 8, 50_000_000).unwrap())
    });
    let quarter = decode::decode(&big, ImageFormat::Jpeg, 4, 50_000_000).unwrap().image;
    g.bench_function("resize 1000 -> 300 (lanczos3)", |b| {
        b.iter(|| resize::resize(black_box(&quarter), None, (300, 225)).unwrap())
    });
    let thumb: DynamicImage = resize::resize(&quarter, None, (300, 225)).unwrap();
    for (name, format, quality) in [
        ("encode 300px webp q80", ImageFormat::Webp, Some(Quality::Fixed(80))),
        ("encode 300px jpeg q80", ImageFormat::Jpeg, Some(Quality::Fixed(80))),
        (
            "encode 300px jpeg q_auto (three trial encodes, scored)",
            ImageFormat::Jpeg,
            Some(Quality::Auto(AutoLevel::Good)),
        ),
        ("encode 300px png", ImageFormat::Png, None),
        ("encode 300px avif q60 speed 8", ImageFormat::Avif, Some(Quality::Fixed(60))),
    ] {
        let settings = encode::Settings { format, quality, background: [255; 3], avif_speed: 8 };
        g.bench_function(name, |b| b.iter(|| encode::encode(black_box(&thumb), &settings).unwrap()));
    }
    // libwebp's method (Sharp's and imgproxy's "effort"; all three peers use 4): time and bytes.
    let rgb = thumb.to_rgb8();
    for method in [0, 2, 3, 4, 6] {
        let mut config = webp::WebPConfig::new().unwrap();
        config.quality = 80.0;
        config.method = method;
        let webp = || webp::Encoder::from_rgb(rgb.as_raw(), 300, 225).encode_advanced(&config).unwrap();
        eprintln!("webp q80 method {method}: {} bytes", webp().len());
        g.bench_function(format!("encode 300px webp q80 method {method}"), |b| b.iter(webp));
    }
    g.finish();
}

fn whole(c: &mut Criterion) {
    let big = corpus("photo-12mp.jpg", || photo(4000, 3000));
    let mid = corpus("photo-2mp.jpg", || photo(1600, 1200));
    let alpha = alpha_png();
    let mut g = c.benchmark_group("pipeline (the http-load cases)");
    g.sample_size(10);
    g.bench_function("(a) 12MP jpeg -> w300 webp q80", |b| {
        b.iter(|| run(&big, ImageFormat::Jpeg, (4000, 3000), "w_300,q_80", ImageFormat::Webp))
    });
    g.bench_function("(b) 12MP jpeg -> w1200 jpeg q80", |b| {
        b.iter(|| run(&big, ImageFormat::Jpeg, (4000, 3000), "w_1200,q_80", ImageFormat::Jpeg))
    });
    g.bench_function("(c) 2MP jpeg -> w300 webp q80", |b| {
        b.iter(|| run(&mid, ImageFormat::Jpeg, (1600, 1200), "w_300,q_80", ImageFormat::Webp))
    });
    g.bench_function("(d) 1024 png+alpha -> w300 png", |b| {
        b.iter(|| run(&alpha, ImageFormat::Png, (1024, 768), "w_300", ImageFormat::Png))
    });
    // (h): rav1e in a plain build, libaom with `--features aom`; run the bench both ways to compare.
    g.bench_function(format!("(h) 2MP jpeg -> w600 avif q60 ({})", encode::avif::ENCODER), |b| {
        b.iter(|| run(&mid, ImageFormat::Jpeg, (1600, 1200), "w_600,q_60", ImageFormat::Avif))
    });
    g.bench_function("12MP jpeg -> 300x300 smart crop, sharpen, avif", |b| {
        b.iter(|| run(&big, ImageFormat::Jpeg, (4000, 3000), "w_300,h_300,g_smart,sharpen_1", ImageFormat::Avif))
    });
    // The imgproxy-shaped cases: a 2040×1360 photo into a 512 box, the same format out.
    let png = photo_png();
    g.bench_function("(i-png) 2.8MP png -> 512 box png", |b| {
        b.iter(|| run(&png, ImageFormat::Png, (2040, 1360), "w_512,h_512,fit_inside", ImageFormat::Png))
    });
    let webp = corpus("photo-2.8mp.webp", || encoded(photo(2040, 1360), image::ImageFormat::WebP));
    g.bench_function("(i-webp) 2.8MP webp -> 512 box webp q75", |b| {
        b.iter(|| run(&webp, ImageFormat::Webp, (2040, 1360), "w_512,h_512,fit_inside,q_75", ImageFormat::Webp))
    });
    if ImageFormat::Avif.is_decodable() {
        let avif = corpus("photo-2.8mp.avif", || {
            let img = image::load_from_memory(&photo(2040, 1360)).unwrap();
            encode::avif::encode(&img, 65, 8).unwrap()
        });
        g.bench_function("(i-avif) 2.8MP avif -> 512 box avif q65", |b| {
            b.iter(|| run(&avif, ImageFormat::Avif, (2040, 1360), "w_512,h_512,fit_inside,q_65", ImageFormat::Avif))
        });
    }
    let gif = animated_gif(480, 270, 24);
    g.bench_function("24-frame 480x270 gif -> w240 animated webp", |b| {
        b.iter(|| run(&gif, ImageFormat::Gif, (480, 270), "w_240", ImageFormat::Webp))
    });
    g.bench_function("24-frame 480x270 gif -> w240 animated gif", |b| {
        b.iter(|| run(&gif, ImageFormat::Gif, (480, 270), "w_240", ImageFormat::Gif))
    });
    g.finish();
}

/// The working copies (transform::levels) against the original, case by case: the same
/// output decoded from the smallest copy that holds it. Making them is the upload's extra cost.
fn working_copies(c: &mut Criterion) {
    let big = corpus("photo-12mp.jpg", || photo(4000, 3000));
    let mid = corpus("photo-2mp.jpg", || photo(1600, 1200));
    let copies = |bytes: &[u8]| levels::make(bytes, ImageFormat::Jpeg, levels::Kind::Jpeg, 50_000_000).unwrap();
    let (big_copies, mid_copies) = (copies(&big), copies(&mid));
    // Lossless originals get PNG copies.
    let (alpha, png) = (alpha_png(), photo_png());
    let png_copies = |bytes: &[u8]| levels::make(bytes, ImageFormat::Png, levels::Kind::Png, 50_000_000).unwrap();
    let (alpha_copies, png_copies) = (png_copies(&alpha), png_copies(&png));
    let copy = |copies: &[levels::Level], f: u32| copies.iter().find(|l| l.factor == f).unwrap().bytes.clone();
    let mut g = c.benchmark_group("working copies");
    g.sample_size(10);
    g.bench_function("make the copies of a 12MP jpeg", |b| b.iter(|| copies(black_box(&big))));
    // The whole upload check (decode, placeholder, copies): the upload's CPU with copies; minus
    // the line above, without them.
    let limits = imgedge::config::Config::embedded("/tmp/imgedge-bench").limits;
    g.bench_function("upload check of a 12MP jpeg (copies included)", |b| {
        b.iter(|| imgedge::images::upload::inspect(black_box(&big), &limits).unwrap())
    });
    // The copies are decoded by libjpeg, whole ones too; zune-jpeg decodes originals whole.
    let half = copy(&big_copies, 2);
    g.bench_function("decode the 1/2 copy whole: zune-jpeg", |b| {
        b.iter(|| decode::decode(black_box(&half), ImageFormat::Jpeg, 1, 50_000_000).unwrap())
    });
    g.bench_function("decode the 1/2 copy whole: libjpeg", |b| {
        b.iter(|| decode::working_copy(black_box(&half), 1, 50_000_000).unwrap())
    });
    // (b) from the copy the rule chose before the 1/3 one existed, and from the one it chooses.
    for (name, bytes, level, size, ops, out) in [
        ("(a) from the 1/4 copy", copy(&big_copies, 4), 4, (4000, 3000), "w_300,q_80", ImageFormat::Webp),
        ("(b) from the 1/2 copy", half.clone(), 2, (4000, 3000), "w_1200,q_80", ImageFormat::Jpeg),
        ("(b) from the 1/3 copy", copy(&big_copies, 3), 3, (4000, 3000), "w_1200,q_80", ImageFormat::Jpeg),
        ("(c) from the 1/4 copy", copy(&mid_copies, 4), 4, (1600, 1200), "w_300,q_80", ImageFormat::Webp),
        ("(d) from the 1/3 PNG copy", copy(&alpha_copies, 3), 3, (1024, 768), "w_300", ImageFormat::Png),
        (
            "(i-png) from the 1/3 PNG copy",
            copy(&png_copies, 3),
            3,
            (2040, 1360),
            "w_512,h_512,fit_inside",
            ImageFormat::Png,
        ),
    ] {
        let format = levels::Kind::of(&bytes).format();
        g.bench_function(name, |b| b.iter(|| run_from(&bytes, level, format, size, ops, out)));
    }
    g.bench_function("make the PNG copies of a 1024x768 png+alpha", |b| {
        b.iter(|| levels::make(black_box(&alpha), ImageFormat::Png, levels::Kind::Png, 50_000_000).unwrap())
    });
    g.finish();
}

/// An animation of `frames` frames: a gradient with a block moving across it, 40 ms each.
fn animated_gif(w: u16, h: u16, frames: u16) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, w, h, &[]).unwrap();
        encoder.set_repeat(gif::Repeat::Infinite).unwrap();
        for i in 0..frames {
            let mut rgba: Vec<u8> = (0..u32::from(w) * u32::from(h))
                .flat_map(|p| {
                    let (x, y) = (p % u32::from(w), p / u32::from(w));
                    let block = (x / 40) as u16 == i % (w / 40) && y > 100 && y < 180;
                    if block {
                        [250, 250, 250, 255]
                    } else {
                        [(x * 255 / u32::from(w)) as u8, (y * 255 / u32::from(h)) as u8, 120, 255]
                    }
                })
                .collect();
            let mut frame = gif::Frame::from_rgba_speed(w, h, &mut rgba, 10);
            frame.delay = 4;
            encoder.write_frame(&frame).unwrap();
        }
    }
    out
}

criterion_group!(benches, stages, whole, working_copies);
criterion_main!(benches);
