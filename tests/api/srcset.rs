//! `POST /v1/images/{id}/srcset`: one signed URL per width, capped and deduplicated.

use serde_json::{json, Value};

use crate::fixtures::{decode, halves_jpeg};
use crate::harness::{assert_error, spawn, Backend};

crate::for_backends!(srcset_signs_every_width_and_each_url_serves_it);

async fn srcset_signs_every_width_and_each_url_serves_it(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.register("alice").await;
    let id = app.upload(&alice, halves_jpeg(400, 200)).await["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/images/{id}/srcset");

    // Widths past the source's 400 px collapse onto it; duplicates go; narrowest first.
    let body = json!({"ops": "fmt_webp", "widths": [320, 100, 640, 100, 1280]});
    let res = app.post_json(&path, Some(&alice.token), &body).await;
    assert_eq!(res.status(), 200);
    let set: Value = res.json().await.unwrap();
    let urls = set["urls"].as_array().unwrap();
    let widths: Vec<u64> = urls.iter().map(|u| u["width"].as_u64().unwrap()).collect();
    assert_eq!(widths, vec![100, 320, 400]);
    let expected: Vec<String> =
        urls.iter().map(|u| format!("{} {}w", u["url"].as_str().unwrap(), u["width"])).collect();
    assert_eq!(set["srcset"], expected.join(", "));
    for u in urls {
        let res = app.get(u["url"].as_str().unwrap()).await;
        assert_eq!(res.status(), 200, "{u}");
        assert_eq!(res.headers()["content-type"], "image/webp");
        let img = decode(&res.bytes().await.unwrap());
        assert_eq!(image::GenericImageView::width(&img) as u64, u["width"].as_u64().unwrap());
    }

    // A box keeps its aspect ratio at every width; an expiry signs every URL with it.
    let body = json!({"ops": "w_200,h_200,fmt_png", "widths": [50, 100], "expires_in": 600});
    let set: Value = app.post_json(&path, Some(&alice.token), &body).await.json().await.unwrap();
    for (u, side) in set["urls"].as_array().unwrap().iter().zip([50, 100]) {
        let url = u["url"].as_str().unwrap();
        assert!(url.contains("exp="), "{url}");
        let img = decode(&app.get(url).await.bytes().await.unwrap());
        assert_eq!(image::GenericImageView::dimensions(&img), (side, side));
    }

    // Bad requests name what is wrong; another owner's image is 403; no token is 401.
    for (body, code, named) in [
        (json!({"widths": []}), "invalid_request", "widths"),
        (json!({"widths": [0]}), "invalid_request", "widths"),
        (json!({"widths": (0..33).map(|w| w + 100).collect::<Vec<_>>()}), "invalid_request", "widths"),
        (json!({"widths": [100], "ops": "w_50,dpr_2"}), "invalid_request", "dpr_"),
        (json!({"widths": [100], "ops": "w_auto"}), "invalid_request", "w_auto"),
        (json!({"widths": [100], "ops": "w_x"}), "invalid_transform", "w_x"),
        (json!({"widths": [100], "expires_in": 0}), "invalid_request", "expires_in"),
        (json!({"widths": [100], "colour": "red"}), "invalid_request", "colour"),
    ] {
        let message = assert_error(app.post_json(&path, Some(&alice.token), &body).await, 400, code).await;
        assert!(message.contains(named), "{body}: the message names `{named}`: {message}");
    }
    let bob = app.register("bob").await;
    assert_error(app.post_json(&path, Some(&bob.token), &json!({"widths": [100]})).await, 403, "forbidden").await;
    assert_error(app.post_json(&path, None, &json!({"widths": [100]})).await, 401, "unauthorized").await;
}
