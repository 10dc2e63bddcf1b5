//! The fuzz targets' corpus and every crash the fuzzer found, replayed on each test run
//! (`tests/fuzz/{corpus,regressions}/<target>`): none may panic.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let mut replayed = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else { continue };
        for entry in dir {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| run(&input)).is_err() {
                panic!("{} panics", path.display());
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs for {target}");
}

#[test]
fn ops_inputs_do_not_panic() {
    replay("ops", imgedge::fuzzing::ops);
}

#[test]
fn signed_url_inputs_do_not_panic() {
    replay("signed_url", imgedge::fuzzing::signed_url);
}

#[test]
fn image_inputs_do_not_panic() {
    replay("image", imgedge::fuzzing::image);
}

#[test]
fn upload_body_inputs_do_not_panic() {
    replay("upload_body", imgedge::fuzzing::upload_body);
}

#[test]
fn gif_inputs_do_not_panic() {
    replay("gif", imgedge::fuzzing::gif);
}

/// The GIF target builds what it says: a valid animation from a small description.
#[test]
fn the_gif_target_builds_valid_frames() {
    // 4×3 screen, two 2×2 frames at 1,1 and 2,1, pixels from the input.
    let mut input = vec![4, 0, 3, 0, 2];
    for left in [1u8, 2] {
        input.extend_from_slice(&[left, 0, 1, 0, 2, 0, 2, 0, 0]);
        input.extend_from_slice(&[1, 2, 3, 1]);
    }
    let built = imgedge::fuzzing::build_gif(&input).unwrap();
    let info = imgedge::transform::decode::animation::info(&built, imgedge::format::ImageFormat::Gif).unwrap();
    assert_eq!((info.frames, info.largest_frame), (2, (2, 2)));
    let frames =
        imgedge::transform::decode::animation::frames(&built, imgedge::format::ImageFormat::Gif, 1 << 20).unwrap();
    let first = frames.into_iter().next().unwrap().unwrap().image;
    assert_eq!(first.dimensions(), (4, 3));
    assert_eq!(first.get_pixel(1, 1).0, [255, 0, 0, 255], "index 1 is red");
    assert_eq!(first.get_pixel(2, 2).0, [255, 0, 0, 255], "the fourth pixel, index 1");
    assert_eq!(first.get_pixel(2, 1).0, [0, 255, 0, 255], "index 2 is green");
}
