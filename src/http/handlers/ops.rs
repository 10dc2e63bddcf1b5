//! Operations endpoints: liveness, readiness, metrics.

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};

use crate::app::AppState;
use crate::error::Error;
use crate::http::body::Body;
use crate::http::response::json;

/// `GET /healthz`: the process serves requests.
pub fn healthz() -> Response<Body> {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: the database and the object store answer, else 503.
pub async fn readyz(state: &AppState) -> Response<Body> {
    let (db, store) = tokio::join!(
        tokio::time::timeout(std::time::Duration::from_secs(3), state.db.ping()),
        tokio::time::timeout(std::time::Duration::from_secs(3), state.store.ping()),
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
    json(status, &body)
}

/// `GET /metrics`: Prometheus text.
pub fn metrics(state: &AppState) -> Result<Response<Body>, Error> {
    let mut res = Response::new(Body::full(state.metrics.render(state.gauges())));
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(res)
}
