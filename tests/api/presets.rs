//! Presets: the owner API, `p_NAME` expanded before the variant key is made, public presets
//! open only on their bare path, quota as usual.

use serde_json::{json, Value};

use crate::fixtures::{busy, decode, encode};
use crate::harness::{assert_error, spawn, Backend, Owner, TestApp};

crate::for_backends!(presets_expand_into_variants_and_public_ones_need_no_signature);

async fn put_preset(app: &TestApp, owner: &Owner, name: &str, body: Value) -> reqwest::Response {
    app.client.put(app.url(&format!("/v1/presets/{name}"))).bearer_auth(&owner.token).json(&body).send().await.unwrap()
}

/// GETs `url`; returns (status, width, Cache-Control, X-Cache, ETag).
async fn fetch(app: &TestApp, url: &str) -> (u16, u32, String, String, String) {
    let res = app.get(url).await;
    let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (status, cc, cache, etag) = (res.status().as_u16(), header("cache-control"), header("x-cache"), header("etag"));
    let bytes = res.bytes().await.unwrap();
    let width = if status == 200 { image::GenericImageView::width(&decode(&bytes)) } else { 0 };
    (status, width, cc, cache, etag)
}

async fn presets_expand_into_variants_and_public_ones_need_no_signature(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let jpeg = encode(&image::DynamicImage::ImageRgb8(busy(800, 400)), image::ImageFormat::Jpeg);
    let id = app.upload(&alice, jpeg.clone()).await["id"].as_str().unwrap().to_owned();

    // Stored in canonical form; listed by name.
    let res = put_preset(&app, &alice, "thumb", json!({"ops": "fmt_webp,w_200,q_70"})).await;
    assert_eq!(res.status(), 200);
    let preset: Value = res.json().await.unwrap();
    assert_eq!((preset["name"].as_str(), preset["ops"].as_str()), (Some("thumb"), Some("w_200,q_70,fmt_webp")));
    assert_eq!(preset["public"], false);
    put_preset(&app, &alice, "hero", json!({"ops": "w_600,h_200"})).await;
    let list: Value = app.get_auth("/v1/presets", &alice.token).await.json().await.unwrap();
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["hero", "thumb"]);

    // Expanded before the key is made: the same variant as the ops written out, one charge.
    let signed = app.signed(&alice, &format!("/i/{id}/p_thumb"));
    let first = fetch(&app, &signed).await;
    assert_eq!((first.0, first.1, first.2.as_str(), first.3.as_str()), (200, 200, "public, max-age=600", "miss"));
    let written = fetch(&app, &app.signed(&alice, &format!("/i/{id}/w_200,q_70,fmt_webp"))).await;
    assert_eq!((written.3.as_str(), written.4.as_str()), ("hit-memory", first.4.as_str()));
    assert_eq!(app.used_today(&alice).await, 1);
    // Tokens given with the preset replace its own.
    assert_eq!(fetch(&app, &app.signed(&alice, &format!("/i/{id}/p_thumb,w_100"))).await.1, 100);

    // Private: no signature, no image. Public: the bare path opens, and only it.
    let bare = format!("/i/{id}/p_thumb");
    assert_error(app.get(&bare).await, 401, "unauthorized").await;
    put_preset(&app, &alice, "thumb", json!({"ops": "w_150,fmt_webp", "public": true})).await;
    assert_error(app.get(&bare).await, 401, "unauthorized").await;
    // The image is published too: the bare path opens, for a short max-age.
    let publish = json!({"public": true});
    let res = app.client.patch(app.url(&format!("/v1/images/{id}"))).bearer_auth(&alice.token).json(&publish).send();
    assert_eq!(res.await.unwrap().status(), 200);
    let open = fetch(&app, &bare).await;
    assert_eq!((open.0, open.1, open.2.as_str()), (200, 150, "public, max-age=60"), "the change applies at once here");
    assert_error(app.get(&format!("/i/{id}/p_thumb,w_100")).await, 401, "unauthorized").await;
    let bob = app.register("bob").await;
    let bobs = app.upload(&bob, jpeg).await["id"].as_str().unwrap().to_owned();
    assert_error(app.get(&format!("/i/{bobs}/p_thumb")).await, 401, "unauthorized").await;
    assert_eq!(app.used_today(&alice).await, 3, "public fetches are charged to the owner");

    // The owner API signs paths that name the preset, so they follow it.
    let body = json!({"ops": "q_50,p_thumb"});
    let url: Value =
        app.post_json(&format!("/v1/images/{id}/url"), Some(&alice.token), &body).await.json().await.unwrap();
    let url = url["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("/i/{id}/p_thumb,q_50?sig=")), "{url}");
    assert_eq!(fetch(&app, url).await.1, 150);

    // Unknown presets are named; bad names and ops are refused.
    let unknown = app.get(&app.signed(&alice, &format!("/i/{id}/p_nope"))).await;
    assert!(assert_error(unknown, 400, "invalid_transform").await.contains("p_nope"));
    for (name, body, code) in [
        ("Bad", json!({"ops": "w_1"}), "invalid_request"),
        ("ok", json!({"ops": "p_thumb"}), "invalid_request"),
        ("ok", json!({"ops": "dpr_2"}), "invalid_request"),
        ("ok", json!({"ops": "w_x"}), "invalid_transform"),
        ("ok", json!({"ops": "w_1", "shared": true}), "invalid_request"),
    ] {
        assert_error(put_preset(&app, &alice, name, body).await, 400, code).await;
    }

    // Deleted: gone from the list, the bare path closes, signed uses are 400.
    let delete =
        |name: &str| app.client.delete(app.url(&format!("/v1/presets/{name}"))).bearer_auth(&alice.token).send();
    assert_eq!(delete("thumb").await.unwrap().status(), 204);
    assert_error(delete("thumb").await.unwrap(), 404, "not_found").await;
    assert_error(app.get(&bare).await, 401, "unauthorized").await;
    assert_error(app.get(&signed).await, 400, "invalid_transform").await;
    let list: Value = app.get_auth("/v1/presets", &alice.token).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // Presets are per owner: bob sees none of alice's.
    let list: Value = app.get_auth("/v1/presets", &bob.token).await.json().await.unwrap();
    assert!(list["items"].as_array().unwrap().is_empty());
}
