//! Outbound HTTP: the one client for JWKS and FHIR calls, and the URL scopes those calls must stay
//! inside.
//!
//! A URL from a request (`jku`, a FHIR `next` link, `fhirServer`) is parsed with the WHATWG URL
//! parser that the HTTP client itself uses, refused if it carries anything a parser may rewrite
//! (dot segments, encoded dots or slashes, backslashes, white space, control characters,
//! userinfo), and then compared as a URL: scheme, host and port equal, path under the scope's
//! path on a segment boundary. The parsed URL is what gets fetched, so the check and the fetch
//! cannot disagree (the string `starts_with` check this replaces let `prefix/../evil` through).

use std::time::Duration;

use url::Url;

/// Longest URL accepted from a request.
pub const MAX_URL_LENGTH: usize = 2048;

/// Why a URL was refused. The message names the rule, never the URL (it may come from an
/// attacker and end up in a log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not an absolute URL")]
    NotAbsolute,
    #[error("is longer than {MAX_URL_LENGTH} characters")]
    TooLong,
    #[error("uses a scheme other than https (http is allowed only when configured)")]
    Scheme,
    #[error("contains white space, control characters or backslashes")]
    Characters,
    #[error("contains dot segments or percent-encoded dots or slashes")]
    DotSegments,
    #[error("contains a user name or password")]
    Userinfo,
    #[error("has no host")]
    NoHost,
    #[error("must have a path below the host (for example https://host/keys/)")]
    NoPath,
    #[error("must not have a query or fragment")]
    QueryOrFragment,
    #[error("is outside the allowed prefix")]
    OutsideScope,
}

/// A URL prefix that outbound requests must stay under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlScope {
    /// Scheme, host and port of the scope; the path always ends with `/`.
    base: Url,
}

impl UrlScope {
    /// Parses a configured prefix or base URL. `require_path`: a `jku` prefix must name a path
    /// (`https://host/` would admit every key set on that host); a FHIR base may be the root.
    pub fn parse(raw: &str, allow_http: bool, require_path: bool) -> Result<UrlScope, UrlError> {
        let mut base = parse_strict(raw, allow_http)?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(UrlError::QueryOrFragment);
        }
        if require_path && base.path().trim_matches('/').is_empty() {
            return Err(UrlError::NoPath);
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(UrlScope { base })
    }

    /// The scope as a URL string without the trailing slash (a FHIR base as clients write it).
    pub fn as_base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Parses `raw` and returns it if it lies inside this scope.
    pub fn admit(&self, raw: &str, allow_http: bool) -> Result<Url, UrlError> {
        let url = parse_strict(raw, allow_http)?;
        if self.contains(&url) { Ok(url) } else { Err(UrlError::OutsideScope) }
    }

    /// Same origin, and a path equal to the scope's (with or without its final slash) or below it.
    pub fn contains(&self, url: &Url) -> bool {
        let same_origin = url.scheme() == self.base.scheme()
            && url.host() == self.base.host()
            && url.port_or_known_default() == self.base.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none();
        let prefix = self.base.path();
        let path = url.path();
        same_origin && (path.starts_with(prefix) || path == prefix.trim_end_matches('/'))
    }

    /// Whether two scopes name the same base (a `fhirServer` against a configured one).
    pub fn same_base(&self, other: &UrlScope) -> bool {
        self.base == other.base
    }
}

/// Parses an absolute http(s) URL, refusing every form a parser would silently rewrite.
pub fn parse_strict(raw: &str, allow_http: bool) -> Result<Url, UrlError> {
    if raw.len() > MAX_URL_LENGTH {
        return Err(UrlError::TooLong);
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err(UrlError::Characters);
    }
    let path_and_rest = raw.split_once("://").map(|(_, rest)| rest).unwrap_or(raw);
    let path = path_and_rest.find('/').map(|at| &path_and_rest[at..]).unwrap_or("");
    let path = path.split(['?', '#']).next().unwrap_or("");
    // Encoded dots and slashes matter in the path (a parser may decode them into `..`); in the
    // query they are ordinary (FHIR `next` links carry `code=http%3A%2F%2Floinc.org%7C...`).
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"].iter().any(|encoded| lower.contains(encoded)) {
        return Err(UrlError::DotSegments);
    }
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(UrlError::DotSegments);
    }
    let url = Url::parse(raw).map_err(|_| UrlError::NotAbsolute)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err(UrlError::Scheme),
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || path_and_rest.split('/').next().is_some_and(|a| a.contains('@'))
    {
        return Err(UrlError::Userinfo);
    }
    if url.host().is_none() {
        return Err(UrlError::NoHost);
    }
    Ok(url)
}

/// The client for every outbound call: rustls with the ring provider, HTTP/2 when offered, gzip,
/// pooled connections, and no redirects (a redirect could carry a token somewhere else). There is
/// no fallback: a client that cannot be built with this policy stops start-up.
pub fn client() -> Result<reqwest::Client, String> {
    // Installing twice is harmless: the second call reports the provider already set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lbp-cds/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the outbound HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(raw: &str) -> UrlScope {
        UrlScope::parse(raw, true, true).unwrap()
    }

    #[test]
    fn traversal_encoded_and_userinfo_forms_are_refused() {
        let prefix = scope("http://h.example/jwks/");
        for raw in [
            "http://h.example/jwks/../evil",
            "http://h.example/jwks/%2e%2e/evil",
            "http://h.example/jwks/%2E./evil",
            "http://h.example/jwks/..\\evil",
            "http://h.example/jwks/.\t./evil",
            "http://h.example/jwks/./x",
            "http://h.example@other.example/jwks/x",
            "http://user:pw@h.example/jwks/x",
            "http://h.example:8443/jwks/x",
            "https://h.example/jwks/x",
            "http://h.example.evil/jwks/x",
            "http://h.example/jwksx",
            "http://h.example/jwks%2fx",
            "/jwks/x",
        ] {
            assert!(prefix.admit(raw, true).is_err(), "{raw:?} was admitted");
        }
        assert!(prefix.admit("http://h.example/jwks/keys.json", true).is_ok());
        assert!(prefix.admit("http://H.EXAMPLE:80/jwks/a/b?x=1", true).is_ok());
        // Encoded characters in a query are a FHIR server's ordinary `next` link.
        assert!(prefix.admit("http://h.example/jwks/x?code=http%3A%2F%2Floinc.org%7C8310-5&_page=2", true).is_ok());
        assert!(prefix.admit("http://h.example/jwks", true).is_ok());
    }

    #[test]
    fn prefixes_need_a_path_and_https_unless_http_is_allowed() {
        assert_eq!(UrlScope::parse("https://h.example", false, true), Err(UrlError::NoPath));
        assert_eq!(UrlScope::parse("https://h.example/", false, true), Err(UrlError::NoPath));
        assert_eq!(UrlScope::parse("http://h.example/k/", false, true), Err(UrlError::Scheme));
        assert_eq!(UrlScope::parse("https://u@h.example/k/", false, true), Err(UrlError::Userinfo));
        assert_eq!(UrlScope::parse("https://h.example/k/?a", false, true), Err(UrlError::QueryOrFragment));
        assert!(UrlScope::parse("https://h.example", false, false).is_ok());
        let http = scope("http://h.example/k");
        assert!(http.admit("http://h.example/k/x", false).is_err(), "http refused when not allowed");
    }

    #[test]
    fn fhir_bases_compare_as_urls() {
        let a = UrlScope::parse("https://FHIR.example.org:443/r4/", false, false).unwrap();
        let b = UrlScope::parse("https://fhir.example.org/r4", false, false).unwrap();
        assert!(a.same_base(&b));
        assert_eq!(b.as_base(), "https://fhir.example.org/r4");
        assert!(b.admit("https://fhir.example.org/r4?_getpages=x", false).is_ok());
        assert!(b.admit("https://fhir.example.org/r40/Condition", false).is_err());
    }
}
