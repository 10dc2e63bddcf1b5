//! The owner's presets: named ops used as `p_NAME` in `/i` paths.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::views::{PresetList, PresetView};
use super::{authenticate, json_body};
use crate::app::AppState;
use crate::db::{to_micros, Preset};
use crate::error::Error;
use crate::http::body::Body;
use crate::http::request::Params;
use crate::http::response::{empty, json};
use crate::transform::{self, grammar};

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
    let owner = authenticate(state, req.headers())?;
    let name = preset_name(params.get("name"))?;
    let body: PresetRequest = json_body(state, req).await?;
    if grammar::split_preset(&body.ops)?.0.is_some() {
        return Err(Error::InvalidRequest("a preset cannot use another preset (`p_`)".into()));
    }
    let ops = transform::parse(&body.ops, state.config.limits.max_dimension)?.to_string();
    if ops.is_empty() {
        return Err(Error::InvalidRequest("these ops change nothing: a preset needs at least one".into()));
    }
    let preset = Preset {
        owner,
        name: name.to_owned(),
        ops,
        public: body.public,
        updated_at: to_micros(state.parts.clock.now()),
    };
    state.parts.db.put_preset(&preset).await?;
    state.parts.lookups.forget_preset(&preset.owner, &preset.name);
    Ok(json(StatusCode::OK, &PresetView::new(&preset)))
}

/// `GET /v1/presets`: the owner's presets by name.
pub async fn list(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers())?;
    let presets = state.parts.db.presets(&owner).await?;
    Ok(json(StatusCode::OK, &PresetList { items: presets.iter().map(PresetView::new).collect() }))
}

/// `DELETE /v1/presets/{name}`.
pub async fn delete(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers())?;
    let name = preset_name(params.get("name"))?;
    let deleted = state.parts.db.delete_preset(&owner, name).await?;
    state.parts.lookups.forget_preset(&owner, name);
    if deleted {
        Ok(empty(StatusCode::NO_CONTENT))
    } else {
        Err(Error::NotFound("preset not found"))
    }
}

fn preset_name(name: &str) -> Result<&str, Error> {
    if grammar::is_preset_name(name) {
        Ok(name)
    } else {
        Err(Error::InvalidRequest(format!("preset names are 1 to 32 of [a-z0-9_-], not `{name}`")))
    }
}
