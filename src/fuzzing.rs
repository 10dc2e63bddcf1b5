//! Entry points of the fuzz targets (`tests/fuzz`, run by `benches/fuzz.sh`), shared with the
//! test that replays their corpus and every crash found (`tests/api/fuzz_corpus.rs`). Each
//! takes arbitrary bytes and must return normally: an error is an answer, a panic is a bug.

use std::time::Duration;

use bytes::Bytes;
use http::Method;

use crate::config::Limits;
use crate::format::ImageFormat;
use crate::transform::decode;

/// Limits of the image target: small enough that the fuzzer's memory limit is never the
/// finding, as the server's budget would refuse the same files.
fn limits() -> Limits {
    Limits {
        max_upload_bytes: 1 << 20,
        max_pixels: 4_000_000,
        max_frames: 100,
        max_presets: 100,
        max_dimension: 8192,
        max_decode_bytes: 64 << 20,
        decode_budget_bytes: 64 << 20,
    }
}

/// The ops grammar: whatever parses prints a canonical form that parses back to the same ops.
pub fn ops(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ops) = crate::transform::parse(text, 8192) {
        let canonical = ops.to_string();
        assert_eq!(crate::transform::parse(&canonical, 8192).as_ref(), Ok(&ops), "{canonical}");
    }
}

/// The `/i` URL: routing of the path, then the signed query's one spelling.
pub fn signed_url(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (path, query) = text.split_once('?').map_or((text.as_ref(), None), |(p, q)| (p, Some(q)));
    let _ = crate::http::router::route(&Method::GET, path);
    if let Ok((exp, Some(sig))) = crate::delivery::access::signature_params(query) {
        // What was accepted is spelled exactly as a signer spells it.
        let spellings = match exp {
            None => vec![format!("sig={sig}")],
            Some(exp) => vec![format!("exp={exp}&sig={sig}"), format!("sig={sig}&exp={exp}")],
        };
        assert!(query.is_some_and(|q| spellings.iter().any(|s| s == q)), "{query:?} accepted");
    }
}

/// Upload checks and decodes: sniffing, header limits, the complete check, and decodes at
/// every scale a transform may use, within the decode limit.
pub fn image(data: &[u8]) {
    let limits = limits();
    if let Ok(inspected) = crate::images::upload::inspect(data, &limits) {
        // An accepted animation: every frame, as a transform that keeps it reads them.
        if inspected.frames > 1 {
            if let Ok(frames) = decode::animation::frames(data, inspected.format, limits.max_decode_bytes) {
                for frame in frames.take(inspected.frames as usize) {
                    if frame.is_err() {
                        break;
                    }
                }
            }
        }
    }
    let Some(format) = ImageFormat::sniff(data).filter(|f| f.is_decodable()) else { return };
    let Ok(probe) = decode::probe(data, format) else { return };
    if u64::from(probe.width) * u64::from(probe.height) > limits.max_pixels {
        return;
    }
    for k in [1, 2, 3, 8] {
        if probe.bytes_at(k) <= limits.max_decode_bytes {
            let _ = decode::decode(data, format, k, limits.max_pixels);
        }
    }
}

/// GIFs built from the fuzzer's bytes — the logical screen, each frame's rectangle (which may
/// reach far past the screen), interlacing, disposal and pixels — through the same checks and
/// decodes as [`image`]: whatever the container announces, nothing may allocate past the decode
/// limit (the fuzzer runs under a malloc limit at the budget).
///
/// The bytes are read as: screen width and height (u16 LE each), a frame count (0–7), then per
/// frame left, top, width and height (u16 LE each) and a flags byte (bit 0 interlaced, bits 1–3
/// disposal, bit 4 raw data); the rest feeds the frames' pixels. A frame of at most 64 K pixels
/// gets valid LZW of pixels taken from the input, a larger one (or one flagged raw) the input
/// itself as its LZW data, which a decoder must refuse or cut short.
pub fn gif(data: &[u8]) {
    if let Some(built) = build_gif(data) {
        image(&built);
    }
}

/// The GIF [`gif`] describes; `None` when the input is too short for its header.
pub fn build_gif(data: &[u8]) -> Option<Vec<u8>> {
    let mut input = data.iter().copied();
    let u16_le = |input: &mut dyn Iterator<Item = u8>| Some(u16::from_le_bytes([input.next()?, input.next()?]));
    let (width, height) = (u16_le(&mut input)?, u16_le(&mut input)?);
    let frames = input.next()? % 8;
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    // A global palette of four colours, then a NETSCAPE loop.
    out.extend_from_slice(&[0x81, 0, 0, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]);
    out.extend_from_slice(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00");
    for _ in 0..frames {
        let (left, top) = (u16_le(&mut input)?, u16_le(&mut input)?);
        let (w, h) = (u16_le(&mut input)?, u16_le(&mut input)?);
        let flags = input.next()?;
        let disposal = (flags >> 1) & 0x07;
        out.extend_from_slice(&[0x21, 0xF9, 0x04, disposal << 2, 10, 0, 0, 0]);
        out.push(0x2C);
        for v in [left, top, w, h] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(if flags & 1 == 1 { 0x40 } else { 0 });
        out.push(2); // LZW minimum code size
        let pixels = u64::from(w) * u64::from(h);
        let lzw = if flags & 0x10 == 0 && pixels <= 1 << 16 {
            literal_lzw((0..pixels).map(|_| input.next().unwrap_or(0) & 3))
        } else {
            input.by_ref().take(4096).collect()
        };
        for block in lzw.chunks(255) {
            out.push(u8::try_from(block.len()).unwrap_or(255));
            out.extend_from_slice(block);
        }
        out.push(0);
    }
    out.push(0x3B);
    Some(out)
}

/// Valid GIF LZW (minimum code size 2) of `indices` (each 0–3) without compression: every code
/// a literal, a clear code every two so the codes stay 3 bits wide.
fn literal_lzw(indices: impl Iterator<Item = u8>) -> Vec<u8> {
    const CLEAR: u32 = 4;
    const END: u32 = 5;
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    let mut put = |code: u32, out: &mut Vec<u8>| {
        acc |= code << bits;
        bits += 3;
        while bits >= 8 {
            out.push((acc & 0xFF) as u8);
            acc >>= 8;
            bits -= 8;
        }
    };
    for (i, index) in indices.enumerate() {
        if i % 2 == 0 {
            put(CLEAR, &mut out);
        }
        put(u32::from(index), &mut out);
    }
    put(END, &mut out);
    put(0, &mut out); // flushes the last bits
    out
}

/// Multipart and raw upload bodies: the first line is the `Content-Type`, the rest the body,
/// cut into chunks at every `\x00`.
pub fn upload_body(data: &[u8]) {
    let Some(split) = data.iter().position(|&b| b == b'\n') else { return };
    let content_type = String::from_utf8_lossy(&data[..split]).into_owned();
    let chunks: Vec<std::io::Result<Bytes>> =
        data[split + 1..].split(|&b| b == 0).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
    let read = crate::http::request::read_upload(&content_type, None, futures_util::stream::iter(chunks), 1 << 16);
    let _ = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), read).await });
}
