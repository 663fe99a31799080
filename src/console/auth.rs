//! Console protection. The hook API authenticates each call with a JWT from an EHR; people in a
//! browser get a session instead: with authentication on, a login with the configured console
//! token (never logged) starts one, held in an HttpOnly, SameSite=Strict cookie (Secure unless
//! the browser talks to a loopback address over plain http). Every POST, login included, must
//! carry the session's CSRF token in a form field and, when the browser sends them, an `Origin`
//! naming this host and a `Sec-Fetch-Site` of `same-origin`. Sessions live in a bounded cache and
//! end after `--console-session-minutes` without a request.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::pages;
use crate::http::AppState;

pub const COOKIE: &str = "lbp_cds_console";
/// Sessions before login held at most (the least used go first). Signed-in sessions have their
/// own cache, so a flood of anonymous visits cannot push a signed-in user out.
const MAX_ANONYMOUS_SESSIONS: u64 = 10_000;
const MAX_SIGNED_IN_SESSIONS: u64 = 1_000;

#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub csrf: String,
    pub signed_in: bool,
}

/// How the console is protected, for the banner on every page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Authentication is off (development): the console is open to whoever reaches the port.
    Off,
    SignedIn,
    SignedOut,
}

pub struct ConsoleState {
    anonymous: moka::sync::Cache<String, Session>,
    signed_in: moka::sync::Cache<String, Session>,
    pub session_seconds: u64,
}

impl ConsoleState {
    pub fn new(session_minutes: u64) -> ConsoleState {
        let session_seconds = session_minutes.saturating_mul(60).max(60);
        let cache = |capacity| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs(session_seconds))
                .build()
        };
        ConsoleState {
            anonymous: cache(MAX_ANONYMOUS_SESSIONS),
            signed_in: cache(MAX_SIGNED_IN_SESSIONS),
            session_seconds,
        }
    }

    pub fn start(&self, signed_in: bool) -> Session {
        let session = Session { id: random_token(), csrf: random_token(), signed_in };
        let cache = if signed_in { &self.signed_in } else { &self.anonymous };
        cache.insert(session.id.clone(), session.clone());
        session
    }

    pub fn end(&self, id: &str) {
        self.anonymous.invalidate(id);
        self.signed_in.invalidate(id);
    }

    fn find(&self, id: &str) -> Option<Session> {
        self.signed_in.get(id).or_else(|| self.anonymous.get(id))
    }
}

/// 32 random bytes, hex.
fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session cookie of a request, if any.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The host the browser addressed (without its port).
fn host_name(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let url = url::Url::parse(&format!("http://{host}/")).ok()?;
    url.host_str().map(str::to_owned)
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `Set-Cookie` for a session: Secure unless the browser talks to loopback (plain http there);
/// always Secure when the service's public address is https (a proxy may rewrite `Host` to a
/// loopback address).
pub fn session_cookie(app: &AppState, headers: &HeaderMap, session: &Session, max_age: u64) -> HeaderValue {
    let public_https =
        app.settings.auth.as_ref().is_some_and(|auth| auth.config().public_base_url.starts_with("https://"));
    let loopback = host_name(headers).is_some_and(|h| is_loopback_host(&h));
    let secure = if loopback && !public_https { "" } else { "; Secure" };
    let value = format!("{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}", session.id);
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// Why a POST was refused, or `None` when its Origin and fetch site are this console's: the
/// Origin must name the host the request was sent to, or the public address of the service
/// (`public_base_url`, for a proxy that rewrites `Host`).
fn cross_site(headers: &HeaderMap, public_base: Option<&str>) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Some("the request came from another site");
    }
    let origin = headers.get(header::ORIGIN)?;
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok());
    let public = public_base.and_then(|base| url::Url::parse(base).ok()).map(|base| base.origin());
    let same_host = origin.is_some_and(|o| {
        let authority = match o.port() {
            Some(port) => format!("{}:{port}", o.host_str().unwrap_or_default()),
            None => o.host_str().unwrap_or_default().to_owned(),
        };
        authority.eq_ignore_ascii_case(host) || public.as_ref().is_some_and(|p| p.is_tuple() && *p == o.origin())
    });
    (!same_host).then_some("the Origin header names another site")
}

/// The fields of an `application/x-www-form-urlencoded` body.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// Every console request passes here: its session (started when missing), the login when
/// authentication is on, and on POST the Origin and CSRF checks. Responses are never cached and
/// never framed; scripts and styles come only from the console itself.
pub async fn guard(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<ConsoleState>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = check(&app, &console, request, next).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

async fn check(app: &AppState, console: &ConsoleState, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/console/assets/") {
        return next.run(request).await;
    }
    let auth_on = app.settings.auth.is_some();
    if auth_on && app.settings.console.token.is_none() {
        return pages::closed().into_response();
    }
    let found = cookie(request.headers()).and_then(|id| console.find(&id));
    let is_new = found.is_none();
    let session = found.unwrap_or_else(|| console.start(false));
    let protection = match (auth_on, session.signed_in) {
        (false, _) => Protection::Off,
        (true, true) => Protection::SignedIn,
        (true, false) => Protection::SignedOut,
    };
    let set_cookie = is_new.then(|| session_cookie(app, request.headers(), &session, console.session_seconds));
    let with_cookie = |mut response: Response| {
        if let Some(cookie) = set_cookie.clone() {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    };
    let is_login = path == "/console/login";
    if protection == Protection::SignedOut && !is_login {
        if request.method() == Method::GET || request.method() == Method::HEAD {
            return with_cookie(Redirect::to("/console/login").into_response());
        }
        return with_cookie(pages::refused(StatusCode::UNAUTHORIZED, "Sign in to the console first.").into_response());
    }
    let mut request = request;
    if request.method() == Method::POST {
        let public_base = app.settings.auth.as_ref().map(|auth| auth.config().public_base_url.clone());
        if let Some(reason) = cross_site(request.headers(), public_base.as_deref()) {
            tracing::warn!(path = %crate::telemetry::loggable(&path), reason, "console POST refused");
            return with_cookie(pages::refused(StatusCode::FORBIDDEN, &format!("Refused: {reason}.")).into_response());
        }
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, app.settings.body_limit_bytes).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return with_cookie(
                    pages::refused(StatusCode::PAYLOAD_TOO_LARGE, "The form is larger than the body limit.")
                        .into_response(),
                );
            }
        };
        let fields = form_fields(&bytes);
        let token_ok = field(&fields, "csrf").is_some_and(|offered| same(offered, &session.csrf));
        if !token_ok {
            tracing::warn!(path = %crate::telemetry::loggable(&path), "console POST without a valid CSRF token refused");
            return with_cookie(
                pages::refused(
                    StatusCode::FORBIDDEN,
                    "Refused: the form's CSRF token is missing or does not match this session. Reload the page and try again.",
                )
                .into_response(),
            );
        }
        request = Request::from_parts(parts, Body::from(Bytes::clone(&bytes)));
    }
    request.extensions_mut().insert(session);
    request.extensions_mut().insert(protection);
    with_cookie(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_cookie_is_secure_unless_on_loopback() {
        let session = Session { id: "abc".into(), csrf: "x".into(), signed_in: true };
        let app =
            AppState::new(crate::content::Content::embedded().unwrap(), crate::config::Settings::default()).unwrap();
        for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "localhost"] {
            let value = session_cookie(&app, &headers(&[("host", host)]), &session, 60);
            let text = value.to_str().unwrap();
            assert!(
                text.contains("HttpOnly") && text.contains("SameSite=Strict") && !text.contains("Secure"),
                "{host}: {text}"
            );
        }
        for host in ["cds.example.org", "10.0.0.5:8080", "127.0.0.1.example.org"] {
            let value = session_cookie(&app, &headers(&[("host", host)]), &session, 60);
            assert!(value.to_str().unwrap().ends_with("; Secure"), "{host}");
        }
    }

    #[test]
    fn origin_and_fetch_site_must_be_this_console() {
        assert_eq!(
            cross_site(&headers(&[("host", "a.example:8080")]), None),
            None,
            "no Origin: the CSRF token decides"
        );
        assert_eq!(
            cross_site(&headers(&[("host", "a.example:8080"), ("origin", "http://a.example:8080")]), None),
            None
        );
        assert_eq!(cross_site(&headers(&[("host", "a.example"), ("origin", "https://a.example")]), None), None);
        assert!(
            cross_site(&headers(&[("host", "a.example:8080"), ("origin", "http://evil.example:8080")]), None).is_some()
        );
        assert!(cross_site(&headers(&[("host", "a.example:8080"), ("origin", "null")]), None).is_some());
        assert!(cross_site(&headers(&[("host", "a.example"), ("sec-fetch-site", "cross-site")]), None).is_some());
        assert_eq!(cross_site(&headers(&[("host", "a.example"), ("sec-fetch-site", "same-origin")]), None), None);
        // Behind a proxy that rewrites Host, the public address counts.
        let proxied = headers(&[("host", "127.0.0.1:8080"), ("origin", "https://cds.example.org")]);
        assert_eq!(cross_site(&proxied, Some("https://cds.example.org/")), None);
        assert!(cross_site(&proxied, Some("https://other.example.org")).is_some());
        assert!(cross_site(&proxied, None).is_some());
    }

    #[test]
    fn sessions_have_random_ids_and_tokens() {
        let state = ConsoleState::new(5);
        let (a, b) = (state.start(false), state.start(true));
        assert_ne!(a.id, b.id);
        assert_ne!(a.csrf, b.csrf);
        assert_eq!(a.id.len(), 64);
        assert!(state.find(&b.id).unwrap().signed_in);
        state.end(&b.id);
        assert!(state.find(&b.id).is_none());
        for _ in 0..(MAX_ANONYMOUS_SESSIONS + 50) {
            state.start(false);
        }
        let member = state.start(true);
        for _ in 0..(MAX_ANONYMOUS_SESSIONS + 50) {
            state.start(false);
        }
        state.anonymous.run_pending_tasks();
        assert!(state.anonymous.entry_count() <= MAX_ANONYMOUS_SESSIONS, "bounded");
        assert!(state.find(&member.id).is_some(), "a flood of anonymous visits keeps signed-in sessions");
        assert_eq!(cookie(&headers(&[("cookie", &format!("x=1; {COOKIE}={}", a.id))])), Some(a.id.clone()));
    }
}
