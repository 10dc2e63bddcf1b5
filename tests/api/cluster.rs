//! Throwaway PostgreSQL clusters the tests start and stop themselves (`initdb`/`pg_ctl` as the
//! `postgres` user), for outages and TLS — never the machine's shared server.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder of PostgreSQL's server programs: `PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout) that holds `initdb`.
fn pg_bin() -> String {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("PG_BIN") {
            return bin;
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").exists().then_some((version, bin))
            })
            .collect();
        versions.sort();
        let (_, bin) =
            versions.pop().expect("PostgreSQL's server programs (initdb, pg_ctl): set PG_BIN or install postgresql");
        bin.display().to_string()
    })
    .clone()
}

/// A PostgreSQL cluster on 127.0.0.1 in a temporary folder; stopped when dropped.
pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl PgCluster {
    /// A plain cluster, trusting every local connection.
    pub fn start() -> Self {
        Self::start_prepared(|_| {}, "", "local all all trust\nhost all all 127.0.0.1/32 trust\n")
    }

    /// A cluster with `conf` appended to postgresql.conf (`{dir}` is the cluster's folder) and
    /// `hba` as pg_hba.conf, after `prepare` wrote the files they name into that folder.
    pub fn start_prepared(prepare: impl FnOnce(&Path), conf: &str, hba: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        prepare(root);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        run("chmod", &["755", path(root)]);
        let (data, sockets) = (root.join("data"), root.join("sockets"));
        for owned in [&data, &sockets] {
            std::fs::create_dir(owned).unwrap();
            run("chown", &["postgres", path(owned)]);
        }
        run("chmod", &["700", path(&data)]);
        as_postgres("initdb", &["-A", "trust", "-U", "postgres", "--no-sync", "-D", path(&data)]);
        let settings = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n{}",
            sockets.display(),
            conf.replace("{dir}", &root.display().to_string())
        );
        append(&data.join("postgresql.conf"), &settings);
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        let cluster = Self { dir, port };
        cluster.resume();
        cluster
    }

    /// The URL of database `postgres` as user `postgres` at `host`, with `params`.
    pub fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{params}", self.port)
    }

    /// A file in the cluster's folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Stops the server (fast shutdown: sessions are terminated).
    pub fn halt(&self) {
        as_postgres("pg_ctl", &["-D", path(&self.dir.path().join("data")), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the server (again).
    pub fn resume(&self) {
        let (data, log) = (self.dir.path().join("data"), self.dir.path().join("sockets/server.log"));
        as_postgres("pg_ctl", &["-D", path(&data), "-l", path(&log), "-w", "-t", "30", "start"]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{}/pg_ctl", pg_bin()),
                "-D",
                path(&data),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `program`, panicking with its error output when it fails.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn as_postgres(tool: &str, args: &[&str]) {
    let program = format!("{}/{tool}", pg_bin());
    let mut all = vec!["-u", "postgres", "--", program.as_str()];
    all.extend_from_slice(args);
    run("runuser", &all);
}

fn append(file: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(file).unwrap().write_all(text.as_bytes()).unwrap();
}
