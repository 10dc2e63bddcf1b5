//! `q_auto` against a fixed `q_80`: bytes, SSIMULACRA2 of the whole output, and encode time,
//! per image of a folder, resized to each width. Prints a table per image and a summary; the
//! README's "Automatic quality" table is its summary. Run through `benches/auto-quality.sh`,
//! which makes the corpus, or:
//!
//!   AUTO_CORPUS=folder AUTO_WIDTHS=320,1280 AUTO_FORMATS=jpeg,webp cargo bench --bench auto_quality
//!
//! Then, from a sweep of every even quality 20–96 per image (`AUTO_SWEEP=0` skips it), what any
//! per-image choice of quality could do, whatever its search:
//! - at `q_80`'s mean score: the fewest bytes of one target score for every image (what `q_auto`
//!   does, with a perfect search), and of any per-image choice at all (the Lagrangian optimum:
//!   per image, the quality that minimises bytes − λ · score, λ swept);
//! - at a floor: the bytes of the lowest fixed quality under which no image scores less than
//!   each level's lowest score, against that level's.

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

/// One image's curve: (quality, bytes, score) at every even quality from 20 to 96.
type Curve = Vec<(u8, usize, f64)>;

fn sweep(img: &DynamicImage, reference: &RgbImage, format: ImageFormat) -> Curve {
    (20..=96)
        .step_by(2)
        .map(|q| {
            let settings = Settings { format, quality: Some(Quality::Fixed(q)), background: [255; 3], avif_speed: 6 };
            let bytes = encode(img, &settings).expect("encodes");
            (q, bytes.len(), score(reference, &bytes, format))
        })
        .collect()
}

/// Per image, the lowest quality whose score reaches `target` (the top one when none does).
fn at_target(curves: &[Curve], target: f64) -> Vec<(u8, usize, f64)> {
    curves.iter().map(|c| *c.iter().find(|p| p.2 >= target).unwrap_or(c.last().expect("a curve"))).collect()
}

fn totals(points: &[(u8, usize, f64)]) -> (usize, f64, f64) {
    let bytes = points.iter().map(|p| p.1).sum();
    let mean = points.iter().map(|p| p.2).sum::<f64>() / points.len() as f64;
    (bytes, mean, points.iter().map(|p| p.2).fold(f64::INFINITY, f64::min))
}

/// What any per-image choice of quality could do against the same fixed quality for all
/// (`fixed`) and against `q_auto`'s levels (`levels`: name, bytes, lowest score).
fn bounds(curves: &[Curve], fixed: u8, levels: &[(String, usize, f64)]) {
    let at_fixed: Vec<_> = curves.iter().map(|c| *c.iter().find(|p| p.0 == fixed).expect("swept")).collect();
    let (fixed_bytes, fixed_mean, _) = totals(&at_fixed);
    // One target score for all: the lowest whose mean reaches the fixed quality's.
    let one =
        (0..=400).map(|i| 60.0 + f64::from(i) * 0.1).map(|t| totals(&at_target(curves, t))).find(|t| t.1 >= fixed_mean);
    // Any choice: per image the point minimising bytes − λ·score, for every λ; the fewest
    // bytes whose mean score reaches the fixed quality's.
    let any = (0..=4000)
        .map(|i| 10f64.powf(f64::from(i) / 500.0))
        .map(|lambda| {
            let chosen: Vec<_> = curves
                .iter()
                .map(|c| {
                    *c.iter()
                        .min_by(|a, b| (a.1 as f64 - lambda * a.2).total_cmp(&(b.1 as f64 - lambda * b.2)))
                        .expect("a curve")
                })
                .collect();
            totals(&chosen)
        })
        .filter(|t| t.1 >= fixed_mean)
        .map(|t| t.0)
        .min();
    let ratio = |b: usize| b as f64 / fixed_bytes as f64;
    match one {
        Some((b, m, low)) => println!(
            "\t  at q_{fixed}'s mean {fixed_mean:.1}: one target for all {:.2}x (mean {m:.1}, lowest {low:.1})",
            ratio(b)
        ),
        None => println!("\t  at q_{fixed}'s mean {fixed_mean:.1}: no single target reaches it"),
    }
    if let Some(b) = any {
        println!("\t  at q_{fixed}'s mean {fixed_mean:.1}: any per-image choice {:.2}x at best", ratio(b));
    }
    for (name, bytes, lowest) in levels {
        let floor = curves[0]
            .iter()
            .map(|p| p.0)
            .find(|&q| curves.iter().all(|c| c.iter().find(|p| p.0 == q).is_some_and(|p| p.2 >= *lowest)));
        match floor {
            Some(q) => {
                let b: usize = curves.iter().map(|c| c.iter().find(|p| p.0 == q).expect("swept").1).sum();
                println!("\t  {name} (lowest {lowest:.1}): {:.2}x the bytes of q_{q}, the lowest fixed q with no score under it", *bytes as f64 / b as f64);
            }
            None => println!("\t  {name} (lowest {lowest:.1}): no fixed q keeps every image above it"),
        }
    }
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
    let swept = std::env::var("AUTO_SWEEP").map_or(true, |v| v != "0");
    let mut sums: BTreeMap<(u32, String, String), Sums> = BTreeMap::new();
    let mut curves: BTreeMap<(u32, String), Vec<Curve>> = BTreeMap::new();
    println!("file\tsize\tformat\tquality\tbytes\tscore\tms");
    for file in files {
        let Ok(source) = image::open(&file) else { continue };
        let source = DynamicImage::ImageRgb8(source.to_rgb8());
        for &width in &widths {
            let img = DynamicImage::ImageRgb8(source.resize(width, u32::MAX, FilterType::Lanczos3).to_rgb8());
            let reference = img.to_rgb8();
            for &format in &formats {
                if swept {
                    curves.entry((width, format.to_string())).or_default().push(sweep(&img, &reference, format));
                }
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
    if swept {
        println!("\nwhat any per-image quality could do (from the sweep)");
    }
    for ((width, format), curves) in &curves {
        let fixed = if format == "avif" { 60 } else { 80 };
        let levels: Vec<_> = sums
            .iter()
            .filter(|((w, f, n), _)| w == width && f == format && n.starts_with("q_auto"))
            .map(|((_, _, n), s)| (n.clone(), s.bytes, s.scores.iter().copied().fold(f64::INFINITY, f64::min)))
            .collect();
        println!("{width}\t{format}");
        bounds(curves, fixed, &levels);
    }
}
