//! `q_auto` against a fixed `q_80`: bytes, SSIMULACRA2 of the whole output, and encode time,
//! per image of a folder, resized to each width. Prints a table per image and a summary; the
//! README's "Automatic quality" table is its summary. Run through `benches/auto-quality.sh`,
//! which makes the corpus, or:
//!
//!   AUTO_CORPUS=folder AUTO_WIDTHS=320,1280 AUTO_FORMATS=jpeg,webp cargo bench --bench auto_quality

use std::collections::BTreeMap;
use std::time::Instant;

use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use imgedge::format::ImageFormat;
use imgedge::transform::encode::{encode, Settings};
use imgedge::transform::quality::{default_quality, AutoLevel, Quality};

fn score(reference: &RgbImage, bytes: &[u8], format: ImageFormat) -> f64 {
    let (w, h) = reference.dimensions();
    let decoded = imgedge::transform::decode::decode(bytes, format, 1, 1 << 28).expect("decodes").image.to_rgb8();
    let descriptor = fast_ssim2::PixelDescriptor::RGB8_SRGB;
    let a = fast_ssim2::PixelSlice::new(reference.as_raw(), w, h, w as usize * 3, descriptor).unwrap();
    let b = fast_ssim2::PixelSlice::new(decoded.as_raw(), w, h, w as usize * 3, descriptor).unwrap();
    fast_ssim2::compute_ssimulacra2(&a, &b).unwrap()
}

fn list<T: std::str::FromStr>(var: &str, default: &str) -> Vec<T> {
    std::env::var(var).unwrap_or_else(|_| default.into()).split(',').filter_map(|s| s.parse().ok()).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Default)]
struct Sums {
    bytes: usize,
    scores: Vec<f64>,
    ms: Vec<f64>,
}

fn main() {
    let dir = std::env::var("AUTO_CORPUS").unwrap_or_else(|_| "/tmp/imgbench/auto-corpus".into());
    let widths: Vec<u32> = list("AUTO_WIDTHS", "320,1280");
    let formats: Vec<ImageFormat> = list("AUTO_FORMATS", "jpeg,webp");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("AUTO_CORPUS").map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut sums: BTreeMap<(u32, String, String), Sums> = BTreeMap::new();
    println!("file\tsize\tformat\tquality\tbytes\tscore\tms");
    for file in files {
        let Ok(source) = image::open(&file) else { continue };
        let source = DynamicImage::ImageRgb8(source.to_rgb8());
        for &width in &widths {
            let img = DynamicImage::ImageRgb8(source.resize(width, u32::MAX, FilterType::Lanczos3).to_rgb8());
            let reference = img.to_rgb8();
            for &format in &formats {
                let fixed = default_quality(format).expect("a lossy format");
                let fixed = if format == ImageFormat::Avif { fixed } else { 80 };
                let qualities = std::iter::once((format!("q_{fixed}"), Quality::Fixed(fixed)))
                    .chain(AutoLevel::ALL.map(|l| (format!("q_auto:{}", l.as_str()), Quality::Auto(l))));
                for (name, quality) in qualities {
                    let settings = Settings { format, quality: Some(quality), background: [255; 3], avif_speed: 6 };
                    let mut times = Vec::new();
                    let mut bytes = Vec::new();
                    for _ in 0..3 {
                        let started = Instant::now();
                        bytes = encode(&img, &settings).expect("encodes");
                        times.push(started.elapsed().as_secs_f64() * 1000.0);
                    }
                    let (ms, s) = (median(times), score(&reference, &bytes, format));
                    let name_of = file.file_name().unwrap().to_string_lossy();
                    println!(
                        "{name_of}\t{}x{}\t{format}\t{name}\t{}\t{s:.2}\t{ms:.1}",
                        img.width(),
                        img.height(),
                        bytes.len()
                    );
                    let sum = sums.entry((width, format.to_string(), name)).or_default();
                    sum.bytes += bytes.len();
                    sum.scores.push(s);
                    sum.ms.push(ms);
                }
            }
        }
    }
    println!("\nwidth\tformat\tquality\tbytes vs fixed\tmean score\tlowest score\tmedian ms");
    for ((width, format, name), sum) in &sums {
        let fixed = sums
            .iter()
            .find(|((w, f, n), _)| w == width && f == format && n.starts_with("q_") && !n.starts_with("q_auto"));
        let ratio = fixed.map_or(f64::NAN, |(_, f)| sum.bytes as f64 / f.bytes as f64);
        let mean = sum.scores.iter().sum::<f64>() / sum.scores.len() as f64;
        let lowest = sum.scores.iter().copied().fold(f64::INFINITY, f64::min);
        println!("{width}\t{format}\t{name}\t{ratio:.2}\t{mean:.1}\t{lowest:.1}\t{:.1}", median(sum.ms.clone()));
    }
}
