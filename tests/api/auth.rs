//! Owners: register, login, JWTs of every bad kind, profile and signing keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::harness::{assert_error, spawn, Backend, JWT_SECRET};

crate::for_backends!(
    register_returns_the_user_and_a_working_token,
    invalid_usernames_and_passwords_are_400,
    usernames_are_unique_regardless_of_case,
    login_checks_the_password,
    bad_tokens_of_every_kind_are_401,
    malformed_and_oversized_json_is_refused,
    signing_key_rotation_stops_old_urls,
);

async fn register_returns_the_user_and_a_working_token(backend: Backend) {
    let app = spawn(backend).await;
    let res = app.post_json("/v1/auth/register", None, &json!({"username": "alice", "password": "password123"})).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["plan"], "free");
    assert_eq!(body["user"]["id"].as_str().unwrap().len(), 36);
    assert!(body["user"]["created_at"].as_str().unwrap().ends_with('Z'));
    let token = body["token"].as_str().unwrap();
    let me: Value = app.get_auth("/v1/me", token).await.json().await.unwrap();
    assert_eq!(me["id"], body["user"]["id"]);
    assert_eq!(me["quota"]["limit"], 20);
    assert_eq!(me["quota"]["used"], 0);
    assert_eq!(me["quota"]["remaining"], 20);
    assert!(me["quota"]["resets_at"].as_str().unwrap().contains("T00:00:00"));
    // The password is stored as an argon2id hash, never in clear.
    let (_, hash) = app.state.shared.db.user_by_username("alice").await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

async fn invalid_usernames_and_passwords_are_400(backend: Backend) {
    let app = spawn(backend).await;
    for (username, password) in [
        ("ab", "password123"),
        ("bad name", "password123"),
        ("alice", "short"),
        ("x".repeat(65).as_str(), "password123"),
    ] {
        let res = app.post_json("/v1/auth/register", None, &json!({"username": username, "password": password})).await;
        assert_eq!(res.status(), 400, "{username}/{password}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    let missing = app.post_json("/v1/auth/register", None, &json!({"username": "alice"})).await;
    let message = assert_error(missing, 400, "invalid_request").await;
    assert!(message.contains("password"), "{message}");
}

async fn usernames_are_unique_regardless_of_case(backend: Backend) {
    let app = spawn(backend).await;
    app.register("alice").await;
    for name in ["alice", "ALICE"] {
        let res = app.post_json("/v1/auth/register", None, &json!({"username": name, "password": "password123"})).await;
        assert_eq!(res.status(), 409, "{name}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "conflict");
    }
}

async fn login_checks_the_password(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let ok = app.post_json("/v1/auth/login", None, &json!({"username": "Alice", "password": "password123"})).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["user"]["id"], alice.id.as_str());
    assert_eq!(app.get_auth("/v1/me", body["token"].as_str().unwrap()).await.status(), 200);
    for (username, password) in [("alice", "wrong-password"), ("nobody", "password123")] {
        let res = app.post_json("/v1/auth/login", None, &json!({"username": username, "password": password})).await;
        assert_eq!(res.status(), 401, "{username}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

fn forge(header: &Value, claims: &Value, secret: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{h}.{c}").as_bytes());
    format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

async fn bad_tokens_of_every_kind_are_401(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let now = app.clock.unix();
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let claims = |exp: i64| json!({"sub": alice.id, "iat": now - 10, "exp": exp});
    // A correctly forged token works, which proves the others fail for their defect alone.
    let good = forge(&hs256, &claims(now + 3600), JWT_SECRET.as_bytes());
    assert_eq!(app.get_auth("/v1/me", &good).await.status(), 200);
    let expired = forge(&hs256, &claims(now - 3600), JWT_SECRET.as_bytes());
    let other_secret = forge(&hs256, &claims(now + 3600), b"another-secret-another-secret-123456");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(now + 3600).to_string())
    );
    // Alice's real token with its subject swapped for Bob's, signature kept.
    let bob = app.register("bob").await;
    let shared: Vec<&str> = alice.token.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(shared[1]).unwrap()).unwrap().replace(&alice.id, &bob.id);
    let tampered = format!("{}.{}.{}", shared[0], URL_SAFE_NO_PAD.encode(payload), shared[2]);
    let not_a_user = forge(&hs256, &json!({"sub": "admin", "iat": now, "exp": now + 3600}), JWT_SECRET.as_bytes());
    let deleted_user = forge(
        &hs256,
        &json!({"sub": "00000000-0000-4000-8000-000000000000", "iat": now, "exp": now + 3600}),
        JWT_SECRET.as_bytes(),
    );
    for (what, token) in [
        ("garbage", "garbage".to_owned()),
        ("expired", expired),
        ("other secret", other_secret),
        ("alg none", none),
        ("tampered", tampered),
        ("sub not a user id", not_a_user),
        ("unknown user", deleted_user),
    ] {
        let res = app.get_auth("/v1/me", &token).await;
        assert_eq!(res.status(), 401, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    }
    assert_error(app.get("/v1/me").await, 401, "unauthorized").await;
    let basic = app.client.get(app.url("/v1/images")).header("authorization", "Basic YTpi").send().await.unwrap();
    assert_error(basic, 401, "unauthorized").await;
}

async fn malformed_and_oversized_json_is_refused(backend: Backend) {
    let app = spawn(backend).await;
    let res = app
        .client
        .post(app.url("/v1/auth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    let huge = json!({"username": "a".repeat(70_000), "password": "password123"});
    let res = app.post_json("/v1/auth/register", None, &huge).await;
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
}

async fn signing_key_rotation_stops_old_urls(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let image = app.upload(&alice, crate::fixtures::halves_jpeg(64, 32)).await;
    let path = format!("/i/{}", image["id"].as_str().unwrap());
    let old_url = app.signed(&alice, &path);
    assert_eq!(app.get(&old_url).await.status(), 200);
    let before: Value = app.get_auth("/v1/me/signing-key", &alice.token).await.json().await.unwrap();
    assert_eq!(before["key"].as_str().unwrap().len(), 64);
    let res = app.client.post(app.url("/v1/me/signing-key/rotate")).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let rotated: Value = res.json().await.unwrap();
    assert_ne!(rotated["key"], before["key"]);
    let after: Value = app.get_auth("/v1/me/signing-key", &alice.token).await.json().await.unwrap();
    assert_eq!(after["key"], rotated["key"]);
    // On the replica that rotated, the old URL stops at once.
    let res = app.get(&old_url).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_signature");
    let new_key = hex::decode(rotated["key"].as_str().unwrap()).unwrap();
    assert_eq!(app.get(&crate::harness::sign(&new_key, &path, None)).await.status(), 200);
}

async fn failed_logins_are_limited_per_username(backend: Backend) {
    let app = spawn(backend).await;
    app.register("alice").await;
    app.register("bob").await;
    let login = |username: &'static str, password: &'static str| {
        let app = &app;
        async move { app.post_json("/v1/auth/login", None, &json!({"username": username, "password": password})).await }
    };
    for _ in 0..10 {
        assert_error(login("alice", "wrong-password").await, 401, "unauthorized").await;
    }
    // The eleventh attempt is refused before the password is checked, even the right one.
    for password in ["wrong-password", "password123"] {
        let res = login("ALICE", password).await;
        let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert_error(res, 429, "too_many_requests").await;
    }
    assert_eq!(login("bob", "password123").await.status(), 200, "other usernames are not locked");
}

crate::for_backends!([Sqlite, Postgres] failed_logins_are_limited_per_username);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_and_registrations_are_limited_per_client_address() {
    let app = crate::harness::spawn_with(Backend::Sqlite, |c| {
        c.auth.login_failures_per_ip = 5;
        c.auth.registrations_per_ip = 3;
        c.server.trusted_proxies = vec!["127.0.0.0/8".to_owned().try_into().unwrap()];
    })
    .await;
    let attempt = |from: &'static str, path: &'static str, username: String| {
        let app = &app;
        async move {
            let body = json!({"username": username, "password": "password123"});
            app.client.post(app.url(path)).header("x-forwarded-for", from).json(&body).send().await.unwrap()
        }
    };
    for n in 0..5 {
        let res = attempt("203.0.113.1", "/v1/auth/login", format!("nobody{n}")).await;
        assert_error(res, 401, "unauthorized").await;
    }
    let res = attempt("203.0.113.1", "/v1/auth/login", "someone".into()).await;
    assert_error(res, 429, "too_many_requests").await;
    // Another client behind the same trusted proxy is counted apart.
    assert_eq!(attempt("203.0.113.2", "/v1/auth/login", "nobody0".into()).await.status(), 401);
    // Registrations: three an hour from one address.
    for n in 0..3 {
        assert_eq!(attempt("198.51.100.9", "/v1/auth/register", format!("new{n}")).await.status(), 201);
    }
    assert_error(attempt("198.51.100.9", "/v1/auth/register", "new3".into()).await, 429, "too_many_requests").await;
    assert_eq!(attempt("198.51.100.10", "/v1/auth/register", "new4".into()).await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = crate::harness::spawn_with(Backend::Sqlite, |c| c.auth.login_failures_per_ip = 3).await;
    for n in 0..3 {
        let body = json!({"username": format!("nobody{n}"), "password": "password123"});
        let spoofed = format!("203.0.113.{n}");
        let res = app.client.post(app.url("/v1/auth/login")).header("x-forwarded-for", spoofed).json(&body).send();
        assert_eq!(res.await.unwrap().status(), 401);
    }
    let res = app.post_json("/v1/auth/login", None, &json!({"username": "x", "password": "password123"})).await;
    assert_error(res, 429, "too_many_requests").await;
}

/// Password hashing has its own small pool: a flood of logins queues there, and a transform
/// arriving meanwhile is served as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_does_not_starve_transforms() {
    let app = std::sync::Arc::new(
        crate::harness::spawn_with(Backend::Sqlite, |c| {
            c.transform.queue = 2;
            c.auth.login_failures_per_ip = 0;
            c.auth.login_failures_per_user = 0;
        })
        .await,
    );
    let alice = app.register("alice").await;
    let id = app.upload(&alice, crate::fixtures::halves_jpeg(300, 200)).await["id"].as_str().unwrap().to_owned();
    let logins: Vec<_> = (0..60)
        .map(|n| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move {
                let body = json!({"username": "alice", "password": format!("wrong-{n}")});
                app.post_json("/v1/auth/login", None, &body).await.status().as_u16()
            })
        })
        .collect();
    for w in [100, 120, 140] {
        let res = app.variant(&alice, &id, &format!("w_{w}")).await;
        assert_eq!(res.status(), 200, "a transform during the login flood");
    }
    let statuses: Vec<u16> = futures_util::future::join_all(logins).await.into_iter().map(Result::unwrap).collect();
    assert!(statuses.iter().all(|s| [401, 503].contains(s)), "{statuses:?}");
}
