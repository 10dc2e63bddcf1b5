//! Configuration as an operator writes it: built-in defaults, `config.toml`, environment
//! variables; every bad value stops start-up naming its setting.

use std::path::PathBuf;
use std::time::Duration;

use imgedge::config::{Config, ConfigError, DatabaseBackend, LogFormat, ENV};

fn load(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
    Config::parse(text, env)?.validate()
}

#[test]
fn defaults_then_the_file_then_the_environment() {
    let config = load("", &[]).unwrap();
    assert_eq!(config.database.backend, DatabaseBackend::Sqlite(PathBuf::from("./data/imgedge.db")));
    assert_eq!((config.server.header_read_timeout, config.cache.memory_bytes), (Duration::from_secs(10), 256 << 20));
    let file = "[server]\nport = 9000\n[quota]\ndaily_limit = 5\nplans = { pro = 500 }\n";
    let config = load(file, &[("PORT", "0"), ("DATA_DIR", "/x"), ("AWS_S3_FORCE_PATH_STYLE", "on")]).unwrap();
    assert_eq!((config.server.port, config.quota.limit_for("free"), config.quota.limit_for("pro")), (0, 5, 500));
    assert_eq!(config.database.backend, DatabaseBackend::Sqlite(PathBuf::from("/x/imgedge.db")));
    assert!(config.storage.s3.force_path_style);
    assert_eq!(load("", &[("LOG_FORMAT", "json")]).unwrap().log.format, LogFormat::Json);
    // AVIF's speed: 0 is the encoder's own default (libaom 6, rav1e 8); 1–10 as given.
    let avif_speed =
        |text: &str| imgedge::transform::encode::avif::speed(load(text, &[]).unwrap().transform.avif_speed);
    assert_eq!(avif_speed(""), if cfg!(feature = "aom") { 6 } else { 8 });
    assert_eq!(avif_speed("[transform]\navif_speed = 9\n"), 9);
    // Event loops: one per core by default, a number as given, 0 for none.
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(load("", &[]).unwrap().server.event_loops, cores);
    assert_eq!(load("[server]\nevent_loops = 0\n", &[]).unwrap().server.event_loops, 0);
    assert_eq!(load("", &[("EVENT_LOOPS", "3")]).unwrap().server.event_loops, 3);
    assert_eq!(load("[server]\nevent_loops = 1\n", &[("EVENT_LOOPS", "auto")]).unwrap().server.event_loops, cores);
}

#[test]
fn bad_values_name_their_setting() {
    for (pairs, needle) in [
        (&[("DATABASE_URL", "postgres://u@localhost/db")][..], "JWT_SECRET"),
        (&[("JWT_SECRET", "short")], "at least 32"),
        (&[("PORT", "eighty")], "PORT: `eighty` is not valid"),
        (&[("ACCESS_LOG", "maybe")], "ACCESS_LOG: `maybe` is not valid"),
        (&[("LOG_FORMAT", "xml")], "xml"),
        (&[("DATABASE_URL", "mysql://x")], "postgres://"),
        (&[("AWS_S3_BUCKET", "b"), ("AWS_ACCESS_KEY_ID", "k")], "AWS_ACCESS_KEY_ID"),
        (&[("TRANSFORM_TIMEOUT_SECS", "0")], "transform.timeout_secs"),
        (&[("PORT", "70000")], "port"),
        (&[("EVENT_LOOPS", "many")], "`many`: \"auto\" or a number"),
        (&[("EVENT_LOOPS", "257")], "server.event_loops"),
    ] {
        let err = load("", pairs).unwrap_err().to_string();
        assert!(err.contains(needle), "{pairs:?}: {err}");
    }
    let err = load("[transform]\navif_speed = 11\n", &[]).unwrap_err().to_string();
    assert!(err.contains("transform.avif_speed"), "{err}");
    let err = load("[server]\nprot = 1\n", &[]).unwrap_err().to_string();
    assert!(err.contains("prot"), "{err}");
}

#[test]
fn the_repository_config_file_lists_exactly_the_defaults() {
    let root = env!("CARGO_MANIFEST_DIR");
    let file = std::fs::read_to_string(format!("{root}/config.toml")).unwrap();
    let defaults = std::fs::read_to_string(format!("{root}/src/config/defaults.toml")).unwrap();
    assert_eq!(file.parse::<toml::Table>().unwrap(), defaults.parse::<toml::Table>().unwrap());
    let defaults = toml::Value::Table(defaults.parse().unwrap());
    for (name, key) in ENV {
        assert!(file.contains(&format!("[{name}]")), "config.toml does not mention {name}");
        let found = key.split('.').try_fold(&defaults, |at, part| at.get(part));
        assert!(found.is_some(), "{name} sets {key}, which has no default");
    }
}

/// Every environment variable the source reads is in the one list (`imgedge::config::ENV` for
/// settings, `OTHER` for the rest), and the README's configuration names every one of them.
#[test]
fn every_environment_variable_is_in_the_one_list() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed: Vec<&str> = imgedge::config::ENV.iter().chain(imgedge::config::OTHER).map(|(name, _)| *name).collect();
    let mut files = vec![root.join("src")];
    let mut read = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for call in ["env::var(\"", "env::var_os(\"", "env(\""] {
                for (at, _) in text.match_indices(call) {
                    let name = text[at + call.len()..].split('"').next().unwrap();
                    if name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
                        read.push((name.to_owned(), path.display().to_string()));
                    }
                }
            }
        }
    }
    assert!(read.iter().any(|(name, _)| name == "IMGEDGE_CONFIG"), "the scan finds what it looks for: {read:?}");
    for (name, file) in &read {
        assert!(listed.contains(&name.as_str()), "{file} reads {name}, which is in neither ENV nor OTHER");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for name in listed {
        assert!(readme.contains(&format!("`{name}`")), "the README does not name {name}");
    }
}
