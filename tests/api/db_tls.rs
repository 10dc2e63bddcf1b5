//! PostgreSQL over TLS: a throwaway cluster the test starts with `ssl = on`, a certificate
//! authority and a server certificate (for `localhost` only) made at start, and every
//! `sslmode` against it.

use std::path::Path;
use std::time::Duration;

use imgedge::config::{Config, DatabaseBackend};
use imgedge::db::{self, DbError};

use crate::cluster::{run, PgCluster};

/// A cluster that accepts only TLS connections from 127.0.0.1, with an authority and a
/// certificate for `localhost` made at start, and another authority that signed nothing.
fn tls_cluster() -> PgCluster {
    let prepare = |root: &Path| {
        let ca = ca();
        std::fs::write(root.join("ca.pem"), ca.cert.pem()).unwrap();
        let (server_cert, server_key) = signed_for(&["localhost"], &ca);
        std::fs::write(root.join("server.crt"), server_cert).unwrap();
        std::fs::write(root.join("server.key"), server_key).unwrap();
        std::fs::write(root.join("other-ca.pem"), self::ca().cert.pem()).unwrap();
        run("chown", &["postgres", path(&root.join("server.key")), path(&root.join("server.crt"))]);
        run("chmod", &["600", path(&root.join("server.key"))]);
    };
    PgCluster::start_prepared(
        prepare,
        "ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n",
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
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

/// Tests that need root: they start PostgreSQL clusters as the `postgres` user or mount file
/// systems (the `system` tier of `tests/run`).
mod needs_root {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_sslmode_against_a_tls_only_server() {
        let cluster = tls_cluster();
        let ca = format!("sslrootcert={}", cluster.file("ca.pem").display());
        let other = format!("sslrootcert={}", cluster.file("other-ca.pem").display());
        // Verified: the chain to our authority, and the host the certificate names.
        let full = cluster.url("localhost", &format!("sslmode=verify-full&{ca}"));
        let repo = connect(full.clone()).await.expect("verify-full with the right authority");
        repo.ping().await.unwrap();
        assert!(encrypted(&full).await);
        // The certificate does not name 127.0.0.1: verify-full refuses, verify-ca accepts.
        assert!(connect(cluster.url("127.0.0.1", &format!("sslmode=verify-full&{ca}"))).await.is_err());
        connect(cluster.url("127.0.0.1", &format!("sslmode=verify-ca&{ca}")))
            .await
            .expect("verify-ca ignores the name");
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
}
