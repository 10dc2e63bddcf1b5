//! PostgreSQL over TLS: a throwaway cluster the test starts with `ssl = on`, a certificate
//! authority and a server certificate (for `localhost` only) made at start, and every
//! `sslmode` against it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imgedge::config::{Config, DatabaseBackend};
use imgedge::db::{self, DbError};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL cluster that accepts only TLS connections from 127.0.0.1.
struct TlsCluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl TlsCluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let ca = ca();
        std::fs::write(root.join("ca.pem"), ca.cert.pem()).unwrap();
        let (server_cert, server_key) = signed_for(&["localhost"], &ca);
        std::fs::write(root.join("server.crt"), server_cert).unwrap();
        std::fs::write(root.join("server.key"), server_key).unwrap();
        // Another authority, which signed nothing the server presents.
        std::fs::write(root.join("other-ca.pem"), self::ca().cert.pem()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        run("chmod", &["755", path(root)]);
        run("chown", &["postgres", path(&root.join("server.key")), path(&root.join("server.crt"))]);
        run("chmod", &["600", path(&root.join("server.key"))]);
        let (data, sockets) = (root.join("data"), root.join("sockets"));
        for owned in [&data, &sockets] {
            std::fs::create_dir(owned).unwrap();
            run("chown", &["postgres", path(owned)]);
        }
        run("chmod", &["700", path(&data)]);
        as_postgres("initdb", &["-A", "trust", "-U", "postgres", "--no-sync", "-D", path(&data)]);
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sockets}'\nfsync = off\n\
             ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n",
            dir = root.display(),
            sockets = sockets.display()
        );
        append(&data.join("postgresql.conf"), &conf);
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let log = sockets.join("server.log");
        as_postgres("pg_ctl", &["-D", path(&data), "-l", path(&log), "-w", "-t", "30", "start"]);
        Self { dir, port }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{params}", self.port)
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D", path(&data), "-m", "immediate", "stop"])
            .output();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn as_postgres(tool: &str, args: &[&str]) {
    let program = format!("{PG_BIN}/{tool}");
    let mut all = vec!["-u", "postgres", "--", program.as_str()];
    all.extend_from_slice(args);
    run("runuser", &all);
}

fn append(file: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(file).unwrap().write_all(text.as_bytes()).unwrap();
}

struct Authority {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn ca() -> Authority {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "imgedge test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    Authority { cert: params.self_signed(&key).unwrap(), key }
}

fn signed_for(names: &[&str], ca: &Authority) -> (String, String) {
    let params = rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

async fn connect(url: String) -> Result<db::Db, DbError> {
    let mut config = Config::embedded("/tmp").database;
    config.backend = DatabaseBackend::Postgres(url);
    config.pool_timeout = Duration::from_secs(2);
    db::connect(&config).await
}

/// Whether the pool's session is encrypted, as the server sees it.
async fn encrypted(url: &str) -> bool {
    let target = db::tls::target(url, None).unwrap();
    let (client, conn) = target.config.connect(target.tls).await.expect("connects");
    tokio::spawn(conn);
    let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_against_a_tls_only_server() {
    let cluster = TlsCluster::start();
    let ca = format!("sslrootcert={}", cluster.file("ca.pem").display());
    let other = format!("sslrootcert={}", cluster.file("other-ca.pem").display());
    // Verified: the chain to our authority, and the host the certificate names.
    let full = cluster.url("localhost", &format!("sslmode=verify-full&{ca}"));
    let repo = connect(full.clone()).await.expect("verify-full with the right authority");
    repo.ping().await.unwrap();
    assert!(encrypted(&full).await);
    // The certificate does not name 127.0.0.1: verify-full refuses, verify-ca accepts.
    assert!(connect(cluster.url("127.0.0.1", &format!("sslmode=verify-full&{ca}"))).await.is_err());
    connect(cluster.url("127.0.0.1", &format!("sslmode=verify-ca&{ca}"))).await.expect("verify-ca ignores the name");
    // Another authority: refused, whatever the name.
    assert!(connect(cluster.url("localhost", &format!("sslmode=verify-full&{other}"))).await.is_err());
    assert!(
        connect(cluster.url("localhost", &format!("sslmode=require&{other}"))).await.is_err(),
        "require + root checks"
    );
    // Encryption without checks.
    let require = cluster.url("127.0.0.1", "sslmode=require");
    connect(require.clone()).await.expect("require without a root");
    assert!(encrypted(&require).await);
    assert!(encrypted(&cluster.url("127.0.0.1", "sslmode=prefer")).await, "prefer takes TLS when offered");
    // Plain text is refused by the server.
    assert!(connect(cluster.url("127.0.0.1", "sslmode=disable")).await.is_err());
}
