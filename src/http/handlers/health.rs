//! Health endpoints: liveness, readiness, metrics.

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::error::Error;
use crate::http::body::Body;
use crate::http::request::Params;
use crate::http::response::json;
use crate::http::state::AppState;

/// `GET /healthz`: the process serves requests.
pub async fn healthz(_: &AppState, _: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
}

/// `GET /readyz`: the database and the object store answer, else 503.
pub async fn readyz(state: &AppState, _: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let ready = state.shared.readiness(std::time::Duration::from_secs(3)).await;
    let (db_ok, store_ok) = (ready.database, ready.storage);
    let body = serde_json::json!({
        "status": if db_ok && store_ok { "ready" } else { "unavailable" },
        "database": if db_ok { "ok" } else { "unavailable" },
        "storage": if store_ok { "ok" } else { "unavailable" },
    });
    let status = if db_ok && store_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok(json(status, &body))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(state: &AppState, _: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let mut res = Response::new(Body::full(state.shared.metrics.render(state.gauges())));
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(res)
}
