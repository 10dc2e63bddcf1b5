//! The owner's presets: named ops used as `p_NAME` in `/i` paths.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::views::{PresetList, PresetView};
use super::{authenticate, json_body, page};
use crate::error::Error;
use crate::http::body::Body;
use crate::http::request::Params;
use crate::http::response::{empty, json};
use crate::http::state::AppState;

/// Body of `PUT /v1/presets/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetRequest {
    ops: String,
    #[serde(default)]
    public: bool,
}

/// `PUT /v1/presets/{name}`: creates or replaces a preset; its ops are stored in canonical
/// form. Every replica applies the change within the lookup bound (10 s).
pub async fn put(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    let body: PresetRequest = json_body(state, req).await?;
    let preset = state.presets.put(&owner, params.get("name"), &body.ops, body.public).await?;
    Ok(json(StatusCode::OK, &PresetView::new(&preset)))
}

/// `GET /v1/presets?limit=&cursor=`: the owner's presets by name, a page at a time.
pub async fn list(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    let (limit, cursor) = page(req.uri().query())?;
    let (items, next_cursor) = state.presets.list(&owner, cursor.as_deref(), limit).await?;
    Ok(json(StatusCode::OK, &PresetList { items: items.iter().map(PresetView::new).collect(), next_cursor }))
}

/// `DELETE /v1/presets/{name}`.
pub async fn delete(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    state.presets.delete(&owner, params.get("name")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
