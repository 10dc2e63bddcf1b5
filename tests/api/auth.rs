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
    let (_, hash) = app.state.parts.db.user_by_username("alice").await.unwrap().unwrap();
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
    let parts: Vec<&str> = alice.token.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap().replace(&alice.id, &bob.id);
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload), parts[2]);
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
