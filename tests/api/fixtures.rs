//! Test images, made in code so every pixel is known.

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

pub const RED: [u8; 3] = [220, 20, 20];
pub const BLUE: [u8; 3] = [20, 20, 220];

/// Encodes `img` in `format` with the `image` crate.
pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode fixture");
    out.into_inner()
}

/// A `w`×`h` JPEG, left half red, right half blue.
pub fn halves_jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(halves(w, h)), ImageFormat::Jpeg)
}

/// Left half red, right half blue.
pub fn halves(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, _| if x < w / 2 { Rgb(RED) } else { Rgb(BLUE) })
}

/// Top half red, bottom half blue.
pub fn top_bottom(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |_, y| if y < h / 2 { Rgb(RED) } else { Rgb(BLUE) })
}

/// A busy photo-like PNG (gradients and stripes), so blur and sharpen have work to do.
pub fn busy(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let stripe = if (x / 3 + y / 3) % 2 == 0 { 60 } else { 0 };
        Rgb([(x * 255 / w.max(1)) as u8 / 2 + stripe, (y * 255 / h.max(1)) as u8 / 2 + stripe, 128])
    })
}

/// A PNG with a transparent left half and an opaque green right half.
pub fn alpha_png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, _| if x < w / 2 { Rgba([0, 0, 0, 0]) } else { Rgba([0, 200, 0, 255]) });
    encode(&DynamicImage::ImageRgba8(img), ImageFormat::Png)
}

/// Inserts an APP1 Exif segment after the JPEG's SOI: orientation, and a GPS pointer with
/// a latitude so "metadata is stripped" has something to strip.
pub fn with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    // Big-endian TIFF: IFD0 with Orientation (0x0112) and a GPS IFD pointer (0x8825).
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&2u16.to_be_bytes());
    tiff.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]);
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    let gps_offset: u32 = 8 + 2 + 2 * 12 + 4;
    tiff.extend_from_slice(&[0x88, 0x25, 0x00, 0x04, 0, 0, 0, 1]);
    tiff.extend_from_slice(&gps_offset.to_be_bytes());
    tiff.extend_from_slice(&0u32.to_be_bytes());
    // GPS IFD: GPSLatitudeRef = "N".
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&[0x00, 0x01, 0x00, 0x02, 0, 0, 0, 2, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    insert_segment(jpeg, 0xE1, &payload)
}

/// Inserts an ICC profile as an APP2 `ICC_PROFILE` segment.
pub fn with_icc(jpeg: &[u8], icc: &[u8]) -> Vec<u8> {
    let mut payload = b"ICC_PROFILE\0".to_vec();
    payload.extend_from_slice(&[1, 1]);
    payload.extend_from_slice(icc);
    insert_segment(jpeg, 0xE2, &payload)
}

fn insert_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let len = u16::try_from(payload.len() + 2).expect("segment fits");
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG header announcing `w`×`h` followed by nothing useful.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let crc = crc32(&ihdr);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Decodes an output (JPEG, PNG, WebP or GIF).
pub fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("output decodes")
}

/// Width and height from the header (works for AVIF too).
pub fn size(bytes: &[u8]) -> (u32, u32) {
    let s = imagesize::blob_size(bytes).expect("output has a readable header");
    (s.width as u32, s.height as u32)
}

/// True when `pixel` is within `tolerance` of `expected` on every channel.
pub fn near(pixel: [u8; 3], expected: [u8; 3], tolerance: u8) -> bool {
    pixel.iter().zip(expected).all(|(a, b)| a.abs_diff(b) <= tolerance)
}

/// RGB of a decoded pixel.
pub fn rgb(img: &DynamicImage, x: u32, y: u32) -> [u8; 3] {
    let p = img.to_rgb8();
    p.get_pixel(x, y).0
}

/// Mean squared difference between neighbouring pixels: high for sharp images.
pub fn roughness(img: &DynamicImage) -> f64 {
    let g = img.to_luma8();
    let mut sum = 0f64;
    let mut n = 0f64;
    for y in 0..g.height() {
        for x in 1..g.width() {
            let d = f64::from(g.get_pixel(x, y)[0]) - f64::from(g.get_pixel(x - 1, y)[0]);
            sum += d * d;
            n += 1.0;
        }
    }
    sum / n.max(1.0)
}

/// Inserts an APP1 XMP packet carrying a location and a creator.
pub fn with_xmp(jpeg: &[u8]) -> Vec<u8> {
    let mut payload = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    payload.extend_from_slice(
        br#"<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.5N" exif:GPSLongitude="2,21.0E"/></rdf:RDF></x:xmpmeta>"#,
    );
    insert_segment(jpeg, 0xE1, &payload)
}

/// Inserts a COM (comment) segment.
pub fn with_comment(jpeg: &[u8], text: &str) -> Vec<u8> {
    insert_segment(jpeg, 0xFE, text.as_bytes())
}

/// The metadata an encoded image carries, by container: EXIF, XMP, ICC profiles, comments and
/// text chunks. Each format's container is walked (JPEG segments, PNG chunks, RIFF chunks,
/// GIF blocks, ISOBMFF boxes), so a block is found where a decoder would find it.
pub fn metadata_in(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut at = 2;
        while at + 4 <= bytes.len() && bytes[at] == 0xFF {
            let marker = bytes[at + 1];
            if marker == 0xDA || marker == 0xD9 {
                break;
            }
            let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            let data = &bytes[at + 4..(at + 2 + len).min(bytes.len())];
            match marker {
                0xE1 if data.starts_with(b"Exif\0") => found.push("jpeg APP1 Exif".into()),
                0xE1 => found.push("jpeg APP1 (XMP)".into()),
                0xE2 if data.starts_with(b"ICC_PROFILE") => found.push("jpeg APP2 ICC".into()),
                0xED => found.push("jpeg APP13 (IPTC)".into()),
                0xFE => found.push("jpeg COM".into()),
                _ => {}
            }
            at += 2 + len;
        }
    } else if bytes.starts_with(b"\x89PNG") {
        let mut at = 8;
        while at + 8 <= bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let kind = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
            if ["eXIf", "iCCP", "tEXt", "iTXt", "zTXt"].contains(&kind.as_str()) {
                found.push(format!("png {kind}"));
            }
            at += 12 + len;
        }
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let kind = &bytes[at..at + 4];
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            match kind {
                b"EXIF" | b"XMP " | b"ICCP" => found.push(format!("webp {}", String::from_utf8_lossy(kind))),
                b"VP8X" if bytes.get(at + 8).is_some_and(|flags| flags & 0b0010_1100 != 0) => {
                    found.push("webp VP8X metadata flags".into())
                }
                _ => {}
            }
            at += 8 + len + (len & 1);
        }
    } else if bytes.starts_with(b"GIF8") {
        // Extensions: 0x21, label, then sub-blocks. Comments (0xFE) and application blocks other
        // than the looping NETSCAPE one carry metadata (XMP is an application block).
        let mut at = 13;
        if bytes[10] & 0x80 != 0 {
            at += 3 << ((bytes[10] & 7) + 1);
        }
        while at < bytes.len() {
            match bytes[at] {
                0x21 => {
                    let label = bytes[at + 1];
                    let app = bytes.get(at + 3..at + 14).unwrap_or_default();
                    if label == 0xFE {
                        found.push("gif comment".into());
                    } else if label == 0xFF && !app.starts_with(b"NETSCAPE") {
                        found.push(format!("gif application {}", String::from_utf8_lossy(app)));
                    }
                    at += 2;
                    while at < bytes.len() && bytes[at] != 0 {
                        at += 1 + usize::from(bytes[at]);
                    }
                    at += 1;
                }
                0x2C => {
                    let flags = bytes[at + 9];
                    at += 10;
                    if flags & 0x80 != 0 {
                        at += 3 << ((flags & 7) + 1);
                    }
                    at += 1; // LZW minimum code size
                    while at < bytes.len() && bytes[at] != 0 {
                        at += 1 + usize::from(bytes[at]);
                    }
                    at += 1;
                }
                _ => break,
            }
        }
    } else if bytes.get(4..8) == Some(b"ftyp") {
        isobmff_metadata(bytes, &mut found);
    } else {
        panic!("not an image container this test knows");
    }
    found
}

/// Walks ISOBMFF boxes: `Exif` and `mime` (XMP) items in `iinf`, ICC profiles in `colr`.
fn isobmff_metadata(bytes: &[u8], found: &mut Vec<String>) {
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let end = if size == 0 { bytes.len() } else { (at + size).min(bytes.len()) };
        let body = &bytes[at + 8..end];
        match kind {
            b"meta" => isobmff_metadata(&body[4..], found),
            b"iprp" | b"ipco" => isobmff_metadata(body, found),
            b"iinf" => {
                let skip = if body[0] == 0 { 6 } else { 8 };
                isobmff_metadata(&body[skip..], found);
            }
            b"infe" if body[0] >= 2 => {
                let id_len = if body[0] == 2 { 2 } else { 4 };
                let item_type = &body[4 + id_len + 2..4 + id_len + 6];
                if item_type == b"Exif" || item_type == b"mime" {
                    found.push(format!("avif item {}", String::from_utf8_lossy(item_type)));
                }
            }
            b"colr" if &body[..4] != b"nclx" => found.push("avif colr ICC".into()),
            _ => {}
        }
        if size < 8 {
            break;
        }
        at = end;
    }
}

/// A flat-colour 16-bit RGBA PNG, written row by row (the test never holds it decoded).
pub fn flat_png16(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Sixteen);
    let mut writer = encoder.write_header().expect("png header");
    let mut stream = writer.stream_writer().expect("png stream");
    let row: Vec<u8> = (0..w).flat_map(|_| [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xFF, 0xFF]).collect();
    for _ in 0..h {
        std::io::Write::write_all(&mut stream, &row).expect("png row");
    }
    stream.finish().expect("png end");
    drop(writer);
    out
}

/// A GIF with a `w`×`h` logical screen and a single red 1×1 frame in its top-left corner:
/// 35 bytes.
pub fn gif_big_screen(w: u16, h: u16) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&[0x80, 0, 0]); // a global palette of two colours
    out.extend_from_slice(&[255, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // a 1×1 frame at 0,0
    out.extend_from_slice(&[2, 2, 0x44, 0x01, 0]); // LZW: clear, index 0, end
    out.push(0x3B);
    out
}
