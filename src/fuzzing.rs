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
    if let Ok(inspected) = crate::library::upload::inspect(data, &limits) {
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
