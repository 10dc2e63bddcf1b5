//! Hot-path costs of a request before any pixel work: parse + canonicalise ops, variant key,
//! signature sign/verify.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use imgedge::auth::SigningKey;
use imgedge::format::ImageFormat;
use imgedge::ids::ImageId;
use imgedge::transform::{geometry, parse, VariantKey};

const SHORT: &str = "w_300,fmt_webp";
const LONG: &str =
    "fmt_auto,q_70,sharpen_0.8,g_smart,fit_cover,h_200,w_300,dpr_2,crop_10:10:3000:2000,rot_90,flip_h,bg_ffffff";

fn grammar(c: &mut Criterion) {
    let id = ImageId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    c.bench_function("parse short ops", |b| b.iter(|| parse(black_box(SHORT), 8192).unwrap()));
    c.bench_function("parse long ops", |b| b.iter(|| parse(black_box(LONG), 8192).unwrap()));
    let ops = parse(LONG, 8192).unwrap();
    c.bench_function("canonical string", |b| b.iter(|| black_box(&ops).to_string()));
    let source = (4000, 3000);
    let plan = geometry::plan(source, &ops, 8192).unwrap();
    c.bench_function("variant key", |b| b.iter(|| VariantKey::new(&id, black_box(&ops), &plan, ImageFormat::Webp)));
    c.bench_function("parse + plan + key + etag (short)", |b| {
        b.iter(|| {
            let ops = parse(black_box(SHORT), 8192).unwrap();
            let plan = geometry::plan(source, &ops, 8192).unwrap();
            VariantKey::new(&id, &ops, &plan, ImageFormat::Webp).etag()
        })
    });
    let key = SigningKey::generate();
    let path = "/i/AAAAAAAAAAAAAAAAAAAAAA/w_300,fmt_webp";
    let sig = key.sign(path, Some(1_900_000_000));
    c.bench_function("sign url", |b| b.iter(|| key.sign(black_box(path), Some(1_900_000_000))));
    c.bench_function("verify url", |b| {
        b.iter(|| key.verify(black_box(path), Some(1_900_000_000), black_box(&sig), 1_800_000_000).unwrap())
    });
}

criterion_group!(benches, grammar);
criterion_main!(benches);
