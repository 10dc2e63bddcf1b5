//! Operations endpoints: liveness, readiness, metrics.

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::AppState;
use crate::error::Error;
use crate::http::body::Body;
use crate::http::request::Params;
use crate::http::response::json;

/// `GET /healthz`: the process serves requests.
pub async fn healthz(_: &AppState, _: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
}

/// `GET /readyz`: the database and the object store answer, else 503.
pub async fn readyz(state: &AppState, _: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let (db, store) = tokio::join!(
        tokio::time::timeout(std::time::Duration::from_secs(3), state.parts.db.ping()),
        tokio::time::timeout(std::time::Duration::from_secs(3), state.parts.store.ping()),
    );
    let db_ok = matches!(db, Ok(Ok(())));
    let store_ok = matches!(store, Ok(Ok(())));
    if let Ok(Err(e)) = &db {
        tracing::warn!(error = ?e, "readiness: database check failed");
    }
    if let Ok(Err(e)) = &store {
        tracing::warn!(error = ?e, "readiness: object store check failed");
    }
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
    let mut res = Response::new(Body::full(state.parts.metrics.render(state.gauges())));
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(res)
}
