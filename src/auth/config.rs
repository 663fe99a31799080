//! The authentication configuration file (`--auth-config`, TOML): trusted issuers, their keys and
//! FHIR servers, and the limits of token checking. Every default is written once, in
//! `Default for AuthConfig`; a file states only what it changes.

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;

use crate::outbound::UrlScope;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The service's public base URL, as clients call it (behind a proxy, the proxy's URL). The
    /// expected `aud` is this plus the request path. Required.
    pub public_base_url: String,
    /// Whether `GET /cds-services` may be called without a token.
    pub discovery_open: bool,
    /// Oldest accepted `iat`, in seconds (the sandbox issues 5-minute tokens).
    pub max_token_age_seconds: u64,
    /// Longest accepted token lifetime (`exp - iat`), in seconds: a token valid for a day is a
    /// stolen-token risk the CDS Hooks specification's short lifetimes avoid.
    pub max_token_lifetime_seconds: u64,
    pub clock_skew_seconds: u64,
    /// Least time between two key-set fetches for one issuer (whatever the URL): an
    /// unauthenticated caller can make us fetch at most this often.
    pub jwks_min_refresh_seconds: u64,
    /// Longest time a fetched key is trusted without fetching its set again; `Cache-Control:
    /// max-age` may shorten it. A key removed from the issuer's set is revoked here within this time.
    pub jwks_max_cache_seconds: u64,
    /// Largest key set read, in bytes (read as a stream and abandoned past the limit).
    pub jwks_max_bytes: usize,
    /// Time limit of one key-set fetch, in milliseconds.
    pub jwks_fetch_timeout_ms: u64,
    /// `jti` values remembered for replay detection (each until its token expires).
    pub replay_cache_capacity: u64,
    /// Allow `http://` key-set URLs, `jku` prefixes and FHIR servers. For local tests only.
    pub allow_insecure_http: bool,
    pub issuers: Vec<IssuerConfig>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            public_base_url: String::new(),
            discovery_open: true,
            max_token_age_seconds: 600,
            max_token_lifetime_seconds: 900,
            clock_skew_seconds: 60,
            jwks_min_refresh_seconds: 30,
            jwks_max_cache_seconds: 600,
            jwks_max_bytes: 256 * 1024,
            jwks_fetch_timeout_ms: 5_000,
            replay_cache_capacity: 250_000,
            allow_insecure_http: false,
            issuers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerConfig {
    /// The `iss` claim.
    pub iss: String,
    /// Accepted algorithms; default ES384 and RS384. ES256 and RS256 may be added.
    pub algorithms: Vec<String>,
    /// A static JWKS, inline.
    pub jwks: Option<JwkSet>,
    /// A static JWKS, from a file (relative to the configuration file).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL, fetched on first use and again for an unknown `kid` (rate-limited).
    pub jwks_url: Option<String>,
    /// `jku` header values under one of these URL prefixes (same scheme, host and port, path
    /// below the prefix's path) are fetched; any other `jku` is refused. Each needs a path.
    pub jku_prefixes: Vec<String>,
    /// FHIR server base URLs this client may name in `fhirServer`; any other is refused (403).
    pub fhir_servers: Vec<String>,
    /// If set, the `tenant` claim must be one of these.
    pub tenants: Vec<String>,
    /// FHIR servers (among `fhir_servers`) that may be queried without an access token, when a
    /// request brings `fhirServer` without `fhirAuthorization` (open servers, like the sandbox's).
    pub open_fhir_servers: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("invalid authentication configuration in {path}, field `{field}`: {message}")]
    Invalid { path: String, field: String, message: String },
}

/// An issuer's URLs, parsed once at start-up.
#[derive(Debug, Clone)]
pub struct IssuerUrls {
    pub jwks_url: Option<url::Url>,
    pub jku_prefixes: Vec<UrlScope>,
    pub fhir_servers: Vec<UrlScope>,
    pub open_fhir_servers: Vec<UrlScope>,
}

impl AuthConfig {
    pub fn load(path: &Path) -> Result<AuthConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: shown.clone(), message: e.to_string() })?;
        let mut config: AuthConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: shown.clone(),
            field: "(file)".into(),
            message: e.message().to_owned(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for issuer in &mut config.issuers {
            if let Some(file) = &issuer.jwks_file {
                issuer.jwks_file = Some(base.join(file));
            }
        }
        config.validate(&shown)?;
        Ok(config)
    }

    /// Checks every field and parses every URL; the parsed URLs, per issuer.
    pub fn validate(&self, path: &str) -> Result<Vec<IssuerUrls>, ConfigError> {
        let invalid = |field: String, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            message: message.to_owned(),
        };
        let http = self.allow_insecure_http;
        crate::outbound::parse_strict(&self.public_base_url, true)
            .map_err(|e| invalid("public_base_url".into(), &format!("must be an absolute http(s) URL: it {e}")))?;
        if self.issuers.is_empty() {
            return Err(invalid("issuers".into(), "at least one trusted issuer is required"));
        }
        if self.jwks_max_cache_seconds < self.jwks_min_refresh_seconds {
            return Err(invalid(
                "jwks_max_cache_seconds".into(),
                "must be at least jwks_min_refresh_seconds (an expired key set could not be fetched again in time)",
            ));
        }
        if self.max_token_lifetime_seconds == 0 || self.jwks_max_bytes == 0 || self.replay_cache_capacity == 0 {
            return Err(invalid(
                "max_token_lifetime_seconds/jwks_max_bytes/replay_cache_capacity".into(),
                "must be greater than zero",
            ));
        }
        let mut parsed = Vec::new();
        for (index, issuer) in self.issuers.iter().enumerate() {
            let field = |name: &str| format!("issuers[{index}].{name}");
            if issuer.iss.trim().is_empty() {
                return Err(invalid(field("iss"), "must not be empty"));
            }
            for algorithm in &issuer.algorithms {
                if !matches!(algorithm.as_str(), "ES384" | "RS384" | "ES256" | "RS256") {
                    return Err(invalid(field("algorithms"), "only ES384, RS384, ES256 and RS256 are accepted"));
                }
            }
            if issuer.jwks.is_none()
                && issuer.jwks_file.is_none()
                && issuer.jwks_url.is_none()
                && issuer.jku_prefixes.is_empty()
            {
                return Err(invalid(field("jwks"), "needs a key source: jwks, jwks_file, jwks_url or jku_prefixes"));
            }
            let scopes = |name: &str, list: &[String], require_path: bool| {
                list.iter()
                    .map(|raw| {
                        UrlScope::parse(raw, http, require_path)
                            .map_err(|e| invalid(field(name), &format!("{raw:?} {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            let jwks_url = match &issuer.jwks_url {
                Some(raw) => Some(
                    crate::outbound::parse_strict(raw, http)
                        .map_err(|e| invalid(field("jwks_url"), &format!("{raw:?} {e}")))?,
                ),
                None => None,
            };
            let urls = IssuerUrls {
                jwks_url,
                jku_prefixes: scopes("jku_prefixes", &issuer.jku_prefixes, true)?,
                fhir_servers: scopes("fhir_servers", &issuer.fhir_servers, false)?,
                open_fhir_servers: scopes("open_fhir_servers", &issuer.open_fhir_servers, false)?,
            };
            if let Some(open) =
                urls.open_fhir_servers.iter().find(|o| !urls.fhir_servers.iter().any(|s| s.same_base(o)))
            {
                return Err(invalid(
                    field("open_fhir_servers"),
                    &format!("{:?} must also be listed in fhir_servers", open.as_base()),
                ));
            }
            parsed.push(urls);
        }
        Ok(parsed)
    }
}
