//! Method + path → route. Unknown paths are 404; known paths with another method are 405.

use http::Method;

use crate::error::Error;
use crate::metrics::RouteLabel;

/// A matched route with its path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /healthz`
    Healthz,
    /// `GET /readyz`
    Readyz,
    /// `GET /metrics`
    Metrics,
    /// `POST /v1/auth/register`
    Register,
    /// `POST /v1/auth/login`
    Login,
    /// `GET /v1/me`
    Me,
    /// `GET /v1/me/signing-key`
    SigningKey,
    /// `POST /v1/me/signing-key/rotate`
    RotateKey,
    /// `POST /v1/images`
    Upload,
    /// `GET /v1/images`
    ListImages,
    /// `GET /v1/images/{id}`
    GetImage(&'a str),
    /// `DELETE /v1/images/{id}`
    DeleteImage(&'a str),
    /// `POST /v1/images/{id}/url`
    SignUrl(&'a str),
    /// `POST /v1/images/{id}/transform`
    Transform(&'a str),
    /// `GET /v1/images/{id}/download`
    Download(&'a str),
    /// `GET|HEAD /i/{id}`
    Original(&'a str),
    /// `GET|HEAD /i/{id}/{ops}`
    Variant(&'a str, &'a str),
}

impl Route<'_> {
    /// The metrics label.
    pub fn label(&self) -> RouteLabel {
        match self {
            Self::Healthz => RouteLabel::Healthz,
            Self::Readyz => RouteLabel::Readyz,
            Self::Metrics => RouteLabel::Metrics,
            Self::Register => RouteLabel::Register,
            Self::Login => RouteLabel::Login,
            Self::Me => RouteLabel::Me,
            Self::SigningKey => RouteLabel::SigningKey,
            Self::RotateKey => RouteLabel::RotateKey,
            Self::Upload => RouteLabel::Upload,
            Self::ListImages => RouteLabel::ListImages,
            Self::GetImage(_) => RouteLabel::GetImage,
            Self::DeleteImage(_) => RouteLabel::DeleteImage,
            Self::SignUrl(_) => RouteLabel::SignUrl,
            Self::Transform(_) => RouteLabel::Transform,
            Self::Download(_) => RouteLabel::Download,
            Self::Original(_) => RouteLabel::Original,
            Self::Variant(..) => RouteLabel::Variant,
        }
    }
}

/// Matches `method` and `path` (without query).
///
/// # Errors
/// [`Error::NotFound`] for unknown paths, [`Error::MethodNotAllowed`] for a known path with
/// another method. `HEAD` is accepted wherever `GET` is.
pub fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, Error> {
    let mut parts = [""; 6];
    let mut n = 0;
    for part in path.strip_prefix('/').unwrap_or(path).split('/') {
        if n == parts.len() {
            return Err(not_found());
        }
        parts[n] = part;
        n += 1;
    }
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    let delete = method == Method::DELETE;
    let pick = |ok: bool, route: Route<'a>, allow: &'static str| {
        if ok {
            Ok(route)
        } else {
            Err(Error::MethodNotAllowed { allow })
        }
    };
    match &parts[..n] {
        ["healthz"] => pick(get, Route::Healthz, "GET, HEAD"),
        ["readyz"] => pick(get, Route::Readyz, "GET, HEAD"),
        ["metrics"] => pick(get, Route::Metrics, "GET, HEAD"),
        ["v1", "auth", "register"] => pick(post, Route::Register, "POST"),
        ["v1", "auth", "login"] => pick(post, Route::Login, "POST"),
        ["v1", "me"] => pick(get, Route::Me, "GET, HEAD"),
        ["v1", "me", "signing-key"] => pick(get, Route::SigningKey, "GET, HEAD"),
        ["v1", "me", "signing-key", "rotate"] => pick(post, Route::RotateKey, "POST"),
        ["v1", "images"] if get => Ok(Route::ListImages),
        ["v1", "images"] => pick(post, Route::Upload, "GET, HEAD, POST"),
        ["v1", "images", id] if !id.is_empty() && get => Ok(Route::GetImage(id)),
        ["v1", "images", id] if !id.is_empty() => pick(delete, Route::DeleteImage(id), "GET, HEAD, DELETE"),
        ["v1", "images", id, "url"] if !id.is_empty() => pick(post, Route::SignUrl(id), "POST"),
        ["v1", "images", id, "transform"] if !id.is_empty() => pick(post, Route::Transform(id), "POST"),
        ["v1", "images", id, "download"] if !id.is_empty() => pick(get, Route::Download(id), "GET, HEAD"),
        ["i", id] if !id.is_empty() => pick(get, Route::Original(id), "GET, HEAD"),
        ["i", id, ops] if !id.is_empty() => pick(get, Route::Variant(id, ops), "GET, HEAD"),
        _ => Err(not_found()),
    }
}

fn not_found() -> Error {
    Error::NotFound("no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_their_parameters() {
        assert_eq!(route(&Method::GET, "/i/abc/w_300").unwrap(), Route::Variant("abc", "w_300"));
        assert_eq!(route(&Method::HEAD, "/i/abc").unwrap(), Route::Original("abc"));
        assert_eq!(route(&Method::DELETE, "/v1/images/x").unwrap(), Route::DeleteImage("x"));
        assert_eq!(route(&Method::POST, "/v1/images").unwrap(), Route::Upload);
        assert_eq!(route(&Method::GET, "/v1/images").unwrap(), Route::ListImages);
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        match route(&Method::PUT, "/v1/images/x") {
            Err(Error::MethodNotAllowed { allow }) => assert_eq!(allow, "GET, HEAD, DELETE"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in ["/", "/nope", "/i/", "/v1/images/x/y", "/i/a/b/c", "/a/b/c/d/e/f/g/h"] {
            assert!(matches!(route(&Method::GET, path), Err(Error::NotFound(_))), "{path}");
        }
    }
}
