//! `PURGE_WEBHOOK_URL`: each change that leaves stale copies in a CDN sends their cache tags to
//! the webhook, from a queue in the database that neither slows the change nor loses a purge.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use crate::fixtures::halves_jpeg;
use crate::harness::{spawn_on, spawn_with, Backend, Env, TestApp};

crate::for_backends!(each_change_sends_its_tags_to_the_webhook, a_dead_webhook_slows_nothing_and_loses_nothing);

/// A webhook on loopback that records each call, and answers it — or, when `hang`, never does.
struct Webhook {
    url: String,
    /// (Surrogate-Key header, JSON body) of each call.
    calls: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Webhook {
    async fn start(hang: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind webhook");
        let url = format!("http://{}/purge", listener.local_addr().expect("addr"));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&calls);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = Arc::clone(&record);
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let record = Arc::clone(&record);
                    async move {
                        let key = req.headers().get("surrogate-key").map(|v| v.to_str().unwrap().to_owned());
                        let body = req.into_body().collect().await.expect("body").to_bytes();
                        let body: Value = serde_json::from_slice(&body).expect("JSON body");
                        record.lock().unwrap().push((key.unwrap_or_default(), body));
                        if hang {
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
            }
        });
        Self { url, calls }
    }

    /// Every tag received so far.
    fn tags(&self) -> Vec<String> {
        let calls = self.calls.lock().unwrap();
        let mut tags: Vec<String> = calls
            .iter()
            .flat_map(|(_, body)| body["tags"].as_array().expect("tags").iter().map(|t| t.as_str().unwrap().to_owned()))
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// Waits (10 s at most) until every one of `wanted` has been received.
    async fn wait_for(&self, wanted: &[String]) {
        for _ in 0..500 {
            if wanted.iter().all(|t| self.tags().contains(t)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the webhook got {:?}, not all of {wanted:?}", self.tags());
    }
}

async fn upload(app: &TestApp, owner: &crate::harness::Owner) -> String {
    app.upload(owner, halves_jpeg(64, 32)).await["id"].as_str().unwrap().to_owned()
}

async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.expect("request").status().as_u16()
}

async fn each_change_sends_its_tags_to_the_webhook(backend: Backend) {
    let webhook = Webhook::start(false).await;
    let app = spawn_with(backend, |c| c.purge.webhook_url.clone_from(&webhook.url)).await;
    let alice = app.register("alice").await;
    let (a, b, c) = (upload(&app, &alice).await, upload(&app, &alice).await, upload(&app, &alice).await);
    let (client, token) = (&app.client, alice.token.as_str());
    assert_eq!(status(client.delete(app.url(&format!("/v1/images/{a}"))).bearer_auth(token)).await, 204);
    assert_eq!(status(client.delete(app.url(&format!("/v1/images/{b}/variants"))).bearer_auth(token)).await, 204);
    let unpublish =
        client.patch(app.url(&format!("/v1/images/{c}"))).bearer_auth(token).json(&json!({"public": false}));
    assert_eq!(status(unpublish).await, 200);
    let preset = client.put(app.url("/v1/presets/card")).bearer_auth(token).json(&json!({"ops": "w_100"}));
    assert_eq!(status(preset).await, 200);
    assert_eq!(status(client.delete(app.url("/v1/presets/thumb")).bearer_auth(token)).await, 404);
    assert_eq!(status(client.post(app.url("/v1/me/signing-key/rotate")).bearer_auth(token)).await, 200);
    let user = &alice.id;
    let wanted =
        [format!("img-{a}"), format!("img-{b}"), format!("img-{c}"), format!("pre-{user}-card"), format!("own-{user}")];
    webhook.wait_for(&wanted).await;
    let mut wanted = wanted.to_vec();
    wanted.sort();
    assert_eq!(webhook.tags(), wanted, "a missing preset's delete sends nothing");
    // Each call names its tags twice: in the body and in the Surrogate-Key header.
    for (key, body) in webhook.calls.lock().unwrap().iter() {
        let tags: Vec<&str> = body["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(key, &tags.join(" "));
    }
    // What was sent is no longer queued.
    for _ in 0..100 {
        if app.env.count("SELECT count(*) FROM purge_queue").await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("sent purges stay queued");
}

async fn a_dead_webhook_slows_nothing_and_loses_nothing(backend: Backend) {
    let env = Arc::new(Env::new(backend).await);
    let dead = Webhook::start(true).await;
    let mut config = env.config();
    config.purge.webhook_url.clone_from(&dead.url);
    config.purge.timeout = Duration::from_secs(1);
    let app = spawn_on(Arc::clone(&env), config.clone(), crate::harness::noon()).await;
    let alice = app.register("alice").await;
    let (a, b) = (upload(&app, &alice).await, upload(&app, &alice).await);
    let delete = |id: &str| app.client.delete(app.url(&format!("/v1/images/{id}"))).bearer_auth(&alice.token);
    assert_eq!(status(delete(&a)).await, 204);
    // The sender is now waiting on a webhook that never answers; a delete does not wait for it.
    for _ in 0..500 {
        if !dead.calls.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dead.tags(), [format!("img-{a}")]);
    assert_eq!(status(delete(&b)).await, 204);
    assert_eq!(env.count("SELECT count(*) FROM purge_queue").await, 2, "both purges are queued");
    // Once the hung call timed out, the purge is rescheduled, not dropped.
    for _ in 0..500 {
        if env.count("SELECT count(*) FROM purge_queue WHERE attempts > 0").await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(env.count("SELECT count(*) FROM purge_queue WHERE attempts > 0").await > 0);
    // A restart with a working webhook sends both.
    drop(app);
    let live = Webhook::start(false).await;
    config.purge.webhook_url.clone_from(&live.url);
    let _app = spawn_on(Arc::clone(&env), config, crate::harness::noon()).await;
    live.wait_for(&[format!("img-{a}"), format!("img-{b}")]).await;
}
