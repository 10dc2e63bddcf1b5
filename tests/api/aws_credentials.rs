//! S3 credentials through AWS's standard chain when the configuration has no static keys: the
//! real binary in a child process (the chain reads the process environment), against the
//! in-process S3 server, which accepts only the test's key pair.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::fixtures::halves_jpeg;
use crate::harness::{fresh_bucket, Child, S3_ACCESS_KEY, S3_SECRET_KEY};

/// A loopback container-credentials endpoint (what ECS and EKS Pod Identity serve): answers
/// every request with `secret` for the test's key id, and counts the requests.
async fn credentials_endpoint(secret: &'static str) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/credentials", listener.local_addr().unwrap());
    let asked = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&asked);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let body = serde_json::json!({
                "AccessKeyId": S3_ACCESS_KEY,
                "SecretAccessKey": secret,
                "Token": "session-token",
                "Expiration": "2099-01-01T00:00:00Z",
            })
            .to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(format!("{head}{body}").as_bytes()).await;
        }
    });
    (url, asked)
}

/// The child's settings for a fresh bucket, with no static keys.
fn s3_env() -> Vec<(String, String)> {
    let s3 = fresh_bucket();
    vec![
        ("AWS_S3_BUCKET".into(), s3.bucket),
        ("AWS_ENDPOINT_URL".into(), s3.endpoint),
        ("AWS_S3_FORCE_PATH_STYLE".into(), "true".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

async fn upload_status(child: &Child) -> u16 {
    let owner = child.register("alice").await;
    let client = reqwest::Client::new();
    let res = client.post(format!("{}/v1/images", child.base())).bearer_auth(&owner.token).body(halves_jpeg(64, 32));
    res.send().await.unwrap().status().as_u16()
}

fn start(env: &[(String, String)]) -> Child {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Child::start(&env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_the_container_endpoint_when_no_keys_are_configured() {
    let (url, asked) = credentials_endpoint(S3_SECRET_KEY).await;
    let mut env = s3_env();
    env.push(("AWS_CONTAINER_CREDENTIALS_FULL_URI".into(), url));
    let child = start(&env);
    assert_eq!(upload_status(&child).await, 201, "stored with the endpoint's credentials");
    assert!(asked.load(Ordering::SeqCst) >= 1, "the endpoint was asked");

    // The endpoint's secret is what signs: a wrong one is refused by the store.
    let (url, asked) = credentials_endpoint("not-the-secret").await;
    let mut env = s3_env();
    env.push(("AWS_CONTAINER_CREDENTIALS_FULL_URI".into(), url));
    let child = start(&env);
    assert!(upload_status(&child).await >= 500);
    assert!(asked.load(Ordering::SeqCst) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_a_profile_in_the_shared_credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    let (credentials, config) = (dir.path().join("credentials"), dir.path().join("config"));
    let profile = format!("[uploads]\naws_access_key_id = {S3_ACCESS_KEY}\naws_secret_access_key = {S3_SECRET_KEY}\n");
    std::fs::write(&credentials, profile).unwrap();
    std::fs::write(&config, "[profile uploads]\nregion = eu-west-1\n").unwrap();
    let mut env = s3_env();
    for (k, v) in [
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_PROFILE", "uploads"),
    ] {
        env.push((k.into(), v.into()));
    }
    let child = start(&env);
    assert_eq!(upload_status(&child).await, 201, "stored with the profile's keys");
    // Another profile name finds no keys: nothing signs, the store refuses.
    env.retain(|(k, _)| k != "AWS_PROFILE");
    env.push(("AWS_PROFILE".into(), "nobody".into()));
    let child = start(&env);
    assert!(upload_status(&child).await >= 500);
}
