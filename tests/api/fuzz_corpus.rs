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
