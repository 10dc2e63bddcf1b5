//! The route table: every endpoint's method, path pattern, metrics label and handler, in one
//! list. Adding an endpoint is one line here plus its handler.
//!
//! Patterns are `/`-separated segments; `{name}` captures a non-empty segment and `{name?}` a
//! possibly empty one. Unknown paths are 404; a known path with another method is 405 with
//! `Allow`. `HEAD` is accepted wherever `GET` is.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use hyper::body::Incoming;

use super::body::Body;
use super::handlers::{assets, auth, delivery, health, images, presets};
pub use super::request::Params;
use crate::error::Error;
use crate::http::state::AppState;

/// What a handler returns: its answer, when it had one without waiting (a cache hit), else
/// the future that makes it.
///
/// Only what waits is boxed: a boxed future is allocated and moved whole however little of it
/// a request uses, and the delivery handler's is kilobytes for the sake of its slow paths.
pub enum Reply<'a> {
    /// Answered on the spot; taken by the first poll.
    Ready(Option<Result<Response<Body>, Error>>),
    /// Answered when this completes.
    Later(Pin<Box<dyn Future<Output = Result<Response<Body>, Error>> + Send + 'a>>),
}

impl<'a> Reply<'a> {
    /// An answer already made.
    pub fn ready(answer: Result<Response<Body>, Error>) -> Self {
        Self::Ready(Some(answer))
    }

    /// An answer `future` makes.
    pub fn later(future: impl Future<Output = Result<Response<Body>, Error>> + Send + 'a) -> Self {
        Self::Later(Box::pin(future))
    }
}

impl Future for Reply<'_> {
    type Output = Result<Response<Body>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Ready(answer) => {
                Poll::Ready(answer.take().unwrap_or_else(|| Err(Error::internal("a reply polled after it answered"))))
            }
            Self::Later(future) => future.as_mut().poll(cx),
        }
    }
}

/// A request handler: the shared state, the request, and the path's captured parameters.
pub type Handler = for<'a> fn(&'a AppState, Request<Incoming>, Params<'a>) -> Reply<'a>;

/// One endpoint.
#[derive(Debug)]
pub struct Route {
    /// Method (`GET` also answers `HEAD`).
    pub method: Method,
    /// Path pattern.
    pub pattern: &'static str,
    /// The `route` label of its metrics.
    pub label: &'static str,
    /// What answers it.
    pub handler: Handler,
}

/// Wraps an `async fn(&AppState, Request<Incoming>, Params) -> Result<Response<Body>, Error>`.
macro_rules! to {
    ($handler:path) => {
        |state, req, params| Reply::later($handler(state, req, params))
    };
}

/// Every endpoint. `/i` comes first: it is the hot path.
pub static ROUTES: &[Route] = &[
    r(Method::GET, "/i/{id}/{ops?}", "deliver_variant", delivery::variant),
    r(Method::GET, "/i/{id}", "deliver_original", to!(delivery::original)),
    r(Method::GET, "/healthz", "healthz", to!(health::healthz)),
    r(Method::GET, "/readyz", "readyz", to!(health::readyz)),
    r(Method::GET, "/metrics", "metrics", to!(health::metrics)),
    r(Method::POST, "/v1/auth/register", "auth_register", to!(auth::register)),
    r(Method::POST, "/v1/auth/login", "auth_login", to!(auth::login)),
    r(Method::GET, "/v1/me", "me", to!(auth::me)),
    r(Method::GET, "/v1/me/signing-key", "signing_key", to!(auth::signing_key)),
    r(Method::POST, "/v1/me/signing-key/rotate", "signing_key_rotate", to!(auth::rotate_key)),
    r(Method::GET, "/v1/images", "images_list", to!(images::list)),
    r(Method::POST, "/v1/images", "images_create", to!(images::upload)),
    r(Method::GET, "/v1/images/{id}", "image_get", to!(images::get)),
    r(Method::PATCH, "/v1/images/{id}", "image_patch", to!(images::patch)),
    r(Method::DELETE, "/v1/images/{id}", "image_delete", to!(images::delete)),
    r(Method::DELETE, "/v1/images/{id}/variants", "image_variants_purge", to!(images::purge_variants)),
    r(Method::POST, "/v1/images/{id}/url", "image_url", to!(images::sign_url)),
    r(Method::POST, "/v1/images/{id}/srcset", "image_srcset", to!(images::srcset)),
    r(Method::POST, "/v1/images/{id}/transform", "image_transform", to!(images::transform)),
    r(Method::GET, "/v1/images/{id}/download", "image_download", to!(images::download)),
    r(Method::GET, "/v1/presets", "presets_list", to!(presets::list)),
    r(Method::PUT, "/v1/presets/{name}", "preset_put", to!(presets::put)),
    r(Method::DELETE, "/v1/presets/{name}", "preset_delete", to!(presets::delete)),
    r(Method::GET, "/openapi.json", "openapi", to!(assets::openapi)),
    r(Method::GET, "/console", "console", to!(assets::console)),
    r(Method::GET, "/console/{file}", "console_file", to!(assets::console_file)),
];

/// The metrics label of requests that match no route.
pub const UNMATCHED: &str = "unmatched";

/// Every metrics label: one per route, in table order, then [`UNMATCHED`].
pub fn labels() -> Vec<&'static str> {
    ROUTES.iter().map(|route| route.label).chain([UNMATCHED]).collect()
}

const fn r(method: Method, pattern: &'static str, label: &'static str, handler: Handler) -> Route {
    Route { method, pattern, label, handler }
}

/// Matches `method` and `path` (without query); returns the route, its index in [`ROUTES`]
/// (the position of its metrics label) and the captured parameters.
///
/// # Errors
/// [`Error::NotFound`] for unknown paths, [`Error::MethodNotAllowed`] for a known path with
/// another method.
pub fn route<'a>(method: &Method, path: &'a str) -> Result<(usize, &'static Route, Params<'a>), Error> {
    let as_get = if method == Method::HEAD { &Method::GET } else { method };
    let mut allow: Vec<&str> = Vec::new();
    for (index, route) in ROUTES.iter().enumerate() {
        let Some(params) = capture(route.pattern, path) else { continue };
        if route.method == as_get {
            return Ok((index, route, params));
        }
        allow.push(route.method.as_str());
        if route.method == Method::GET {
            allow.push("HEAD");
        }
    }
    if allow.is_empty() {
        Err(Error::NotFound("no such route"))
    } else {
        Err(Error::MethodNotAllowed { allow: allow.join(", ") })
    }
}

/// The parameters of `path` when it matches `pattern`.
fn capture<'a>(pattern: &'static str, path: &'a str) -> Option<Params<'a>> {
    let mut params = Params::default();
    let mut slots = params.slots();
    let (mut pattern, mut path) = (Some(pattern.strip_prefix('/').unwrap_or(pattern)), Some(path.strip_prefix('/')?));
    while let Some((expected, rest)) = pattern.map(segment) {
        let (actual, path_rest) = segment(path?);
        (pattern, path) = (rest, path_rest);
        match expected.strip_prefix('{').and_then(|e| e.strip_suffix('}')) {
            None if actual == expected => {}
            None => return None,
            Some(name) => {
                let (name, optional) = name.strip_suffix('?').map_or((name, false), |n| (n, true));
                if actual.is_empty() && !optional {
                    return None;
                }
                *slots.next()? = (name, actual);
            }
        }
    }
    drop(slots);
    path.is_none().then_some(params)
}

/// The first `/`-separated segment of `s` and what follows its `/`, if one does. A plain scan:
/// with `str::split`, routing a memory hit took two thirds more instructions.
fn segment(s: &str) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == b'/') {
        Some(slash) => (&s[..slash], Some(&s[slash + 1..])),
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(method: Method, path: &str) -> (&'static str, Params<'_>) {
        let (_, route, params) = route(&method, path).unwrap();
        (route.label, params)
    }

    /// A ready reply answers on its first poll, without a waker; polled again it is an error,
    /// not a panic. A later one answers when its future does.
    #[test]
    fn replies_answer_on_the_spot_or_when_their_future_does() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut ready = Reply::ready(Ok(Response::new(Body::Empty)));
        let Poll::Ready(Ok(answer)) = Pin::new(&mut ready).poll(&mut cx) else { panic!("not answered at once") };
        assert_eq!(answer.status(), http::StatusCode::OK);
        let Poll::Ready(Err(again)) = Pin::new(&mut ready).poll(&mut cx) else { panic!("answered twice") };
        assert_eq!(again.status(), http::StatusCode::INTERNAL_SERVER_ERROR);

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut later = Reply::later(async move {
            let _ = rx.await;
            Err(Error::NotFound("gone"))
        });
        assert!(Pin::new(&mut later).poll(&mut cx).is_pending());
        tx.send(()).unwrap();
        let Poll::Ready(Err(e)) = Pin::new(&mut later).poll(&mut cx) else { panic!("not answered after its future") };
        assert_eq!(e.status(), http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn routes_match_with_their_parameters() {
        let (name, params) = label(Method::GET, "/i/abc/w_300");
        assert_eq!((name, params.get("id"), params.get("ops")), ("deliver_variant", "abc", "w_300"));
        let (name, params) = label(Method::HEAD, "/i/abc");
        assert_eq!((name, params.get("id"), params.get("ops")), ("deliver_original", "abc", ""));
        assert_eq!(label(Method::GET, "/i/abc/").0, "deliver_variant", "empty ops reach delivery");
        assert_eq!(label(Method::DELETE, "/v1/images/x").0, "image_delete");
        assert_eq!(label(Method::POST, "/v1/images").0, "images_create");
        assert_eq!(label(Method::GET, "/v1/images").0, "images_list");
        assert_eq!(label(Method::POST, "/v1/images/x/transform").1.get("id"), "x");
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        for (method, path, allow) in [
            (Method::PUT, "/v1/images/x", "GET, HEAD, PATCH, DELETE"),
            (Method::PUT, "/v1/images", "GET, HEAD, POST"),
            (Method::GET, "/v1/auth/login", "POST"),
            (Method::POST, "/i/abc", "GET, HEAD"),
        ] {
            match route(&method, path) {
                Err(Error::MethodNotAllowed { allow: found }) => assert_eq!(found, allow, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in ["/", "", "/nope", "/i/", "/i", "/v1/images/x/y", "/v1/images/", "/i/a/b/c", "/a/b/c/d/e/f/g/h"] {
            assert!(matches!(route(&Method::GET, path), Err(Error::NotFound(_))), "{path}");
        }
    }

    #[test]
    fn every_route_has_its_own_metrics_label() {
        let labels = labels();
        assert_eq!(labels.len(), ROUTES.len() + 1);
        for (i, label) in labels.iter().enumerate() {
            assert!(!label.is_empty() && label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{label}");
            assert!(!labels[..i].contains(label), "label `{label}` is used twice");
        }
        // And the metrics know every one of them.
        let metrics = crate::metrics::Metrics::new(labels.clone());
        for i in 0..labels.len() {
            metrics.request(i, 200, std::time::Duration::from_millis(1));
        }
        let text = metrics.render(crate::metrics::Gauges::default());
        for label in labels {
            assert!(text.contains(&format!("route=\"{label}\",status=\"200\"}} 1")), "{label} missing:\n{text}");
        }
    }

    #[test]
    fn every_pattern_is_reachable() {
        for route in ROUTES {
            let path = route.pattern.replace("{id}", "x").replace("{ops?}", "y");
            let method = route.method.clone();
            let (_, found, _) = super::route(&method, &path).unwrap();
            assert_eq!(found.label, route.label, "{path} is shadowed by an earlier route");
        }
    }
}
