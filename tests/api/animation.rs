//! Animation: GIF and animated WebP originals keep every frame, their delays and loop count
//! through geometry and filters; `still`, first-frame formats, `fmt_auto`, `Image.frames`, the
//! frame and pixel limits, and the backfill of rows that predate frame counts.

use std::io::Cursor;

use image::codecs::gif::GifDecoder;
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, RgbaImage};
use serde_json::Value;

use crate::fixtures;
use crate::harness::{assert_error, spawn, spawn_with, Backend};

crate::for_backends!(
    animations_keep_frames_delays_and_loops,
    animated_webp_originals_resize_frame_by_frame,
    frame_and_pixel_limits_count_every_frame,
    rows_before_frame_counts_are_backfilled,
);

const FRAMES: usize = 12;
const RED: [u8; 3] = [220, 30, 30];

/// Frame `i`'s display time: 100, 200, 300 ms in turn.
fn delay_ms(i: usize) -> u32 {
    [100, 200, 300][i % 3]
}

/// The colour of frame `i`'s block.
fn block_color(i: usize) -> [u8; 3] {
    let v = u8::try_from(i * 20).unwrap();
    [v, 255 - v, 40 + v / 2]
}

/// Where frame `i`'s 40×40 block goes on the 120×80 screen.
fn block_at(i: usize) -> (u32, u32) {
    (u32::try_from(i % 3).unwrap() * 40, 20)
}

/// A 12-frame 120×80 GIF: frame 0 is red all over, each later frame is only a 40×40 block (a
/// sub-rectangle kept on the canvas), so a decoder that does not composite shows transparency.
fn animated_gif(repeat: gif::Repeat) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, 120, 80, &[]).unwrap();
        encoder.set_repeat(repeat).unwrap();
        for i in 0..FRAMES {
            let (w, h, color) = if i == 0 { (120u16, 80u16, RED) } else { (40, 40, block_color(i)) };
            let pixels: Vec<u8> = (0..usize::from(w) * usize::from(h)).flat_map(|_| color).collect();
            let mut frame = gif::Frame::from_rgb(w, h, &pixels);
            if i > 0 {
                let (x, y) = block_at(i);
                (frame.left, frame.top) = (u16::try_from(x).unwrap(), u16::try_from(y).unwrap());
            }
            frame.delay = u16::try_from(delay_ms(i) / 10).unwrap();
            frame.dispose = gif::DisposalMethod::Keep;
            encoder.write_frame(&frame).unwrap();
        }
    }
    out
}

/// Every frame of an animated GIF or WebP, decoded by the `image` crate (not by the server's
/// decoders), with its delay in milliseconds.
fn frames_of(bytes: &[u8]) -> Vec<(RgbaImage, u32)> {
    let frames = match imgedge::format::ImageFormat::sniff(bytes) {
        Some(imgedge::format::ImageFormat::Gif) => GifDecoder::new(Cursor::new(bytes)).unwrap().into_frames(),
        Some(imgedge::format::ImageFormat::Webp) => WebPDecoder::new(Cursor::new(bytes)).unwrap().into_frames(),
        other => panic!("not an animation format: {other:?}"),
    };
    frames
        .map(|frame| {
            let frame = frame.unwrap();
            let (numer, denom) = frame.delay().numer_denom_ms();
            (frame.into_buffer(), numer / denom)
        })
        .collect()
}

/// The GIF's NETSCAPE loop count.
fn gif_repeat(bytes: &[u8]) -> gif::Repeat {
    let mut decoder = gif::DecodeOptions::new().read_info(Cursor::new(bytes)).unwrap();
    while decoder.read_next_frame().unwrap().is_some() {}
    decoder.repeat()
}

/// The WebP `ANIM` chunk's loop count.
fn webp_loops(bytes: &[u8]) -> u16 {
    let at = bytes.windows(4).position(|w| w == b"ANIM").expect("an ANIM chunk");
    u16::from_le_bytes([bytes[at + 12], bytes[at + 13]])
}

fn near(pixel: &image::Rgba<u8>, expected: [u8; 3]) -> bool {
    pixel[3] == 255 && fixtures::near([pixel[0], pixel[1], pixel[2]], expected, 24)
}

/// The frames of [`animated_gif`] resized to `width`, with the source's timing and each frame
/// composited: the latest block in its place, the red ground where no block ever went.
fn assert_same_animation(bytes: &[u8], width: u32, what: &str) {
    let frames = frames_of(bytes);
    assert_eq!(frames.len(), FRAMES, "{what}: frame count");
    let scale = 120.0 / f64::from(width);
    let at = |v: u32| (f64::from(v) / scale) as u32;
    for (i, (frame, delay)) in frames.iter().enumerate() {
        assert_eq!(frame.dimensions(), (width, (80.0 / scale).round() as u32), "{what}: frame {i} size");
        assert_eq!(*delay, delay_ms(i), "{what}: frame {i} delay");
        let corner = frame.get_pixel(2, 2);
        assert!(near(corner, RED), "{what}: frame {i} keeps the ground at the corner: {corner:?}");
        if i > 0 {
            let (x, y) = block_at(i);
            let centre = frame.get_pixel(at(x + 20), at(y + 20));
            assert!(near(centre, block_color(i)), "{what}: frame {i} block {centre:?} vs {:?}", block_color(i));
        }
    }
}

async fn animations_keep_frames_delays_and_loops(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let image = app.upload(&alice, animated_gif(gif::Repeat::Infinite)).await;
    assert_eq!(image["frames"], 12);
    let id = image["id"].as_str().unwrap();

    // Resized GIF → GIF and GIF → WebP: 12 frames at the new size, same delays, loops forever.
    let gif = app.variant_bytes(&alice, id, "w_60").await;
    assert_same_animation(&gif, 60, "w_60 (GIF)");
    assert_eq!(gif_repeat(&gif), gif::Repeat::Infinite);
    let webp = app.variant_bytes(&alice, id, "w_60,fmt_webp").await;
    assert_same_animation(&webp, 60, "w_60,fmt_webp");
    assert_eq!(webp_loops(&webp), 0, "0 is forever");

    // Filters run on every frame: gray leaves no colour in any of them.
    let gray = frames_of(&app.variant_bytes(&alice, id, "w_60,gray,fmt_webp").await);
    assert_eq!(gray.len(), FRAMES);
    assert!(gray.iter().all(|(f, _)| f.pixels().all(|p| p[0].abs_diff(p[1]) < 12 && p[1].abs_diff(p[2]) < 12)));

    // `fmt_auto` keeps the animation: WebP when accepted (even where AVIF is), else GIF.
    for (accept, mime) in [("image/avif,image/webp,*/*", "image/webp"), ("image/avif,*/*", "image/gif")] {
        let url = app.url(&app.signed(&alice, &format!("/i/{id}/w_60,fmt_auto")));
        let res = app.client.get(url).header("accept", accept).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], mime, "{accept}");
        assert!(res.headers()["vary"].to_str().unwrap().contains("Accept"));
        assert_eq!(frames_of(&res.bytes().await.unwrap()).len(), FRAMES, "{accept}");
    }

    // `still` and first-frame formats: one frame, the red ground.
    let still = app.variant_bytes(&alice, id, "still,w_60").await;
    assert_eq!(frames_of(&still).len(), 1);
    let png = fixtures::decode(&app.variant_bytes(&alice, id, "w_60,fmt_png").await);
    assert_eq!((png.width(), png.height()), (60, 40));
    assert!(fixtures::near(fixtures::rgb(&png, 30, 20), RED, 24), "the first frame");
    for (ops, format) in
        [("w_60,fmt_jpeg", imgedge::format::ImageFormat::Jpeg), ("w_60,fmt_avif", imgedge::format::ImageFormat::Avif)]
    {
        let bytes = app.variant_bytes(&alice, id, ops).await;
        assert_eq!(imgedge::format::ImageFormat::sniff(&bytes), Some(format), "{ops}: one frame in a still format");
        assert_eq!(fixtures::size(&bytes), (60, 40), "{ops}");
    }
    let still_webp = app.variant_bytes(&alice, id, "still,fmt_webp").await;
    assert!(!still_webp.windows(4).any(|w| w == b"ANMF"), "a still WebP");

    // A finite loop count is kept: 2 repetitions after the first play is 3 plays in WebP.
    let finite = app.upload(&alice, animated_gif(gif::Repeat::Finite(2))).await;
    let finite_id = finite["id"].as_str().unwrap();
    assert_eq!(gif_repeat(&app.variant_bytes(&alice, finite_id, "w_30").await), gif::Repeat::Finite(2));
    assert_eq!(webp_loops(&app.variant_bytes(&alice, finite_id, "w_30,fmt_webp").await), 3);

    // `still` on a still image changes nothing: the original, free.
    let jpeg = app.upload(&alice, fixtures::halves_jpeg(64, 32)).await;
    let before = app.used_today(&alice).await;
    let res = app.variant(&alice, jpeg["id"].as_str().unwrap(), "still").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len() as u64, jpeg["size_bytes"].as_u64().unwrap());
    assert_eq!(app.used_today(&alice).await, before, "no transform, no charge");
    assert_eq!(jpeg["frames"], 1);
}

async fn animated_webp_originals_resize_frame_by_frame(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let gif = app.upload(&alice, animated_gif(gif::Repeat::Finite(4))).await;
    // An animated WebP original: the GIF at full size, as the server writes it (checked by an
    // independent decoder first).
    let webp = app.variant_bytes(&alice, gif["id"].as_str().unwrap(), "fmt_webp").await;
    assert_same_animation(&webp, 120, "fmt_webp");
    let image = app.upload(&alice, webp).await;
    assert_eq!((image["format"].as_str(), image["frames"].as_u64()), (Some("webp"), Some(12)));
    let id = image["id"].as_str().unwrap();

    let resized = app.variant_bytes(&alice, id, "w_40,fmt_gif").await;
    assert_same_animation(&resized, 40, "WebP → w_40 GIF");
    assert_eq!(gif_repeat(&resized), gif::Repeat::Finite(4), "5 plays both ways");
    let cropped = frames_of(&app.variant_bytes(&alice, id, "w_40,h_40").await);
    assert_eq!(cropped.len(), FRAMES);
    assert!(cropped.iter().all(|(f, _)| f.dimensions() == (40, 40)), "every frame cut the same");
    // Frame 2's block is on the right; mirrored, it is on the left.
    let mirrored = frames_of(&app.variant_bytes(&alice, id, "flip_h,w_60").await);
    let (x, y) = block_at(2);
    assert!(near(mirrored[2].0.get_pixel(59 - (x + 20) / 2, (y + 20) / 2), block_color(2)), "frame 2 mirrored");
}

async fn frame_and_pixel_limits_count_every_frame(backend: Backend) {
    // 12 frames of 120×80 are 115,200 pixels: over a 100,000 limit, though one frame is not.
    let app = spawn_with(backend, |c| c.limits.max_pixels = 100_000).await;
    let alice = app.register("alice").await;
    let res = app.upload_raw(&alice, animated_gif(gif::Repeat::Infinite), "image/gif").await;
    let message = assert_error(res, 422, "unprocessable_image").await;
    assert!(message.contains("12 frames"), "{message}");

    let app = spawn_with(backend, |c| c.limits.max_frames = 11).await;
    let alice = app.register("alice").await;
    let res = app.upload_raw(&alice, animated_gif(gif::Repeat::Infinite), "image/gif").await;
    let message = assert_error(res, 422, "unprocessable_image").await;
    assert!(message.contains("12 frames") && message.contains("11"), "{message}");

    // Decode memory: every frame's canvas counts (12 × 120 × 80 × 4 bytes is 450 KiB).
    let app = spawn_with(backend, |c| c.limits.max_decode_bytes = 400 << 10).await;
    let alice = app.register("alice").await;
    let res = app.upload_raw(&alice, animated_gif(gif::Repeat::Infinite), "image/gif").await;
    assert_error(res, 422, "unprocessable_image").await;
}

async fn rows_before_frame_counts_are_backfilled(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let gif = app.upload(&alice, animated_gif(gif::Repeat::Infinite)).await;
    let id = gif["id"].as_str().unwrap();
    app.env.execute("UPDATE images SET frames = NULL WHERE format = 'gif'").await;
    let before: Value = app.get_auth(&format!("/v1/images/{id}"), &alice.token).await.json().await.unwrap();
    assert!(before["frames"].is_null(), "{before}");
    // Not counted yet, it is still served animated: the pipeline reads the file.
    assert_eq!(frames_of(&app.variant_bytes(&alice, id, "w_30").await).len(), FRAMES);

    assert_eq!(app.state.images.backfill().await, 1);
    let after: Value = app.get_auth(&format!("/v1/images/{id}"), &alice.token).await.json().await.unwrap();
    assert_eq!(after["frames"], 12);
    assert_eq!(after["placeholder"], gif["placeholder"]);
}
