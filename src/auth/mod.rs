//! Authentication of CDS clients, as the CDS Hooks specification describes: a bearer JWT signed
//! by a trusted issuer (ES384 or RS384; ES256/RS256 when configured; never `none` or HS*), the
//! key selected by `kid` from the issuer's static keys first, then its JWKS URL or an
//! allow-listed `jku`; `aud` equal to the endpoint URL, `exp` required and not too far from
//! `iat`, `iat` not too old, `jti` not replayed, no `crit` header, optional tenant allow-list.
//! Every failure is a bare 401; the reason is logged (escaped), the token never is.
//!
//! `config` reads the settings, `key_sets` fetches and caches keys, `replay` remembers `jti`s,
//! `keys` makes development keys and tokens.

pub mod config;
pub mod key_sets;
pub mod keys;
pub mod replay;

use std::collections::HashMap;

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

pub use config::{AuthConfig, ConfigError, IssuerConfig, IssuerUrls};
use key_sets::{KeySets, pick};
use replay::{ReplayCache, now_seconds};

use crate::shared_cache::SharedCache;

use crate::outbound::UrlScope;
use crate::telemetry::loggable;

/// Why a request was not authenticated. Logged; the client only sees 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("the token header has a `crit` member (no JWS extension is understood here)")]
    Critical,
    #[error("issuer is not trusted")]
    UnknownIssuer,
    #[error("jku is not under the issuer's allowed prefixes: it {0}")]
    JkuNotAllowed(crate::outbound::UrlError),
    #[error("no key for kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("key set could not be fetched: {0}")]
    KeyFetch(String),
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("token issued too long ago or in the future")]
    Stale,
    #[error("token lifetime (exp - iat) exceeds {0} seconds")]
    Lifetime(u64),
    #[error("jti was already used")]
    Replay,
    /// The shared replay cache could not be asked: refused, since the `jti` may be a replay.
    #[error("replay check unavailable: {0}")]
    ReplayCheckUnavailable(String),
    #[error("tenant is not allowed")]
    Tenant,
}

impl AuthError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::Malformed(_) => "malformed",
            AuthError::Algorithm(_) => "algorithm",
            AuthError::Critical => "crit",
            AuthError::UnknownIssuer => "unknown_issuer",
            AuthError::JkuNotAllowed(_) => "jku_not_allowed",
            AuthError::UnknownKey(_) => "unknown_key",
            AuthError::KeyFetch(_) => "key_fetch",
            AuthError::Invalid(_) => "invalid",
            AuthError::Stale => "stale",
            AuthError::Lifetime(_) => "lifetime",
            AuthError::Replay => "replay",
            AuthError::ReplayCheckUnavailable(_) => "replay_check_unavailable",
            AuthError::Tenant => "tenant",
        }
    }
}

/// An authenticated CDS client, attached to the request.
#[derive(Debug, Clone)]
pub struct Client {
    pub issuer: String,
    pub tenant: Option<String>,
    pub fhir_servers: Vec<UrlScope>,
    pub open_fhir_servers: Vec<UrlScope>,
}

impl Client {
    /// Whether this client may send us to `fhir_server` (the same base URL, compared as URLs).
    pub fn may_use_fhir_server(&self, fhir_server: &UrlScope) -> bool {
        self.fhir_servers.iter().any(|allowed| allowed.same_base(fhir_server))
    }

    /// Whether `fhir_server` may be queried without a token.
    pub fn may_query_openly(&self, fhir_server: &UrlScope) -> bool {
        self.may_use_fhir_server(fhir_server) && self.open_fhir_servers.iter().any(|open| open.same_base(fhir_server))
    }
}

struct Issuer {
    config: IssuerConfig,
    urls: IssuerUrls,
    algorithms: Vec<Algorithm>,
    static_keys: Vec<Jwk>,
}

pub struct Authenticator {
    config: AuthConfig,
    issuers: HashMap<String, Issuer>,
    key_sets: KeySets,
    replay: ReplayCache,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("issuers", &self.issuers.keys().collect::<Vec<_>>()).finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    iat: Option<u64>,
    exp: u64,
    jti: Option<String>,
    tenant: Option<String>,
}

/// The members of the JOSE header that jsonwebtoken does not check.
#[derive(Deserialize)]
struct ExtraHeader {
    crit: Option<serde_json::Value>,
}

impl Authenticator {
    /// Validates the configuration (as `AuthConfig::load` does, for configurations built in
    /// code) and reads the static key files.
    pub fn new(config: AuthConfig, http: reqwest::Client) -> Result<Authenticator, ConfigError> {
        let parsed = config.validate("(authentication configuration)")?;
        let mut issuers = HashMap::new();
        for (issuer, urls) in config.issuers.iter().zip(parsed) {
            let mut static_keys = issuer.jwks.as_ref().map(|set| set.keys.clone()).unwrap_or_default();
            if let Some(file) = &issuer.jwks_file {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| ConfigError::Read { path: file.display().to_string(), message: e.to_string() })?;
                let set: JwkSet = serde_json::from_str(&text).map_err(|e| ConfigError::Invalid {
                    path: file.display().to_string(),
                    field: "keys".into(),
                    message: e.to_string(),
                })?;
                static_keys.extend(set.keys);
            }
            let names: Vec<&str> = if issuer.algorithms.is_empty() {
                vec!["ES384", "RS384"]
            } else {
                issuer.algorithms.iter().map(String::as_str).collect()
            };
            let algorithms = names
                .iter()
                .filter_map(|name| match *name {
                    "ES384" => Some(Algorithm::ES384),
                    "RS384" => Some(Algorithm::RS384),
                    "ES256" => Some(Algorithm::ES256),
                    "RS256" => Some(Algorithm::RS256),
                    _ => None,
                })
                .collect();
            issuers.insert(issuer.iss.clone(), Issuer { config: issuer.clone(), urls, algorithms, static_keys });
        }
        Ok(Authenticator {
            key_sets: KeySets::new(&config, http),
            replay: ReplayCache::in_process(config.replay_cache_capacity),
            config,
            issuers,
        })
    }

    /// Shares the replay cache and fetched key sets with other replicas through Redis.
    pub fn share_through(mut self, shared: SharedCache) -> Authenticator {
        self.replay = ReplayCache::Shared(shared.clone());
        self.key_sets.share_through(shared);
        self
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The `aud` a token for `path` must carry.
    pub fn expected_audience(&self, path: &str) -> String {
        format!("{}{path}", self.config.public_base_url.trim_end_matches('/'))
    }

    /// Authenticates one request from its `Authorization` header value and path.
    pub async fn authenticate(&self, authorization: Option<&str>, path: &str) -> Result<Client, AuthError> {
        let token = authorization
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::MissingToken)?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        refuse_critical_header(token)?;
        let algorithm = header.alg;
        if !matches!(algorithm, Algorithm::ES384 | Algorithm::RS384 | Algorithm::ES256 | Algorithm::RS256) {
            return Err(AuthError::Algorithm(format!("{algorithm:?}")));
        }
        let unverified: Claims =
            jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let issuer = self.issuers.get(&unverified.iss).ok_or(AuthError::UnknownIssuer)?;
        if !issuer.algorithms.contains(&algorithm) {
            return Err(AuthError::Algorithm(format!("{algorithm:?}")));
        }
        let jwk = self.find_key(issuer, header.kid.as_deref(), header.jku.as_deref(), algorithm).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| AuthError::Invalid(format!("unusable key: {e}")))?;

        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[self.expected_audience(path)]);
        validation.set_issuer(&[issuer.config.iss.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.config.clock_skew_seconds;
        validation.validate_nbf = true;
        let claims: Claims =
            jsonwebtoken::decode(token, &key, &validation).map_err(|e| AuthError::Invalid(e.to_string()))?.claims;

        let now = now_seconds();
        let skew = self.config.clock_skew_seconds;
        let iat = claims.iat.ok_or_else(|| AuthError::Invalid("iat is required".into()))?;
        if iat > now + skew || now.saturating_sub(iat) > self.config.max_token_age_seconds + skew {
            return Err(AuthError::Stale);
        }
        if claims.exp.saturating_sub(iat) > self.config.max_token_lifetime_seconds {
            return Err(AuthError::Lifetime(self.config.max_token_lifetime_seconds));
        }
        if !issuer.config.tenants.is_empty()
            && !claims.tenant.as_ref().is_some_and(|tenant| issuer.config.tenants.contains(tenant))
        {
            return Err(AuthError::Tenant);
        }
        let jti = claims
            .jti
            .as_deref()
            .filter(|j| !j.is_empty())
            .ok_or_else(|| AuthError::Invalid("jti is required".into()))?;
        let first = self
            .replay
            .first_use(&claims.iss, jti, claims.exp + skew)
            .await
            .map_err(|e| AuthError::ReplayCheckUnavailable(e.to_string()))?;
        if !first {
            return Err(AuthError::Replay);
        }
        Ok(Client {
            issuer: claims.iss,
            tenant: claims.tenant,
            fhir_servers: issuer.urls.fhir_servers.clone(),
            open_fhir_servers: issuer.urls.open_fhir_servers.clone(),
        })
    }

    /// Static keys first; then the `jku` (parsed, and admitted only under one of the issuer's
    /// prefixes) or the issuer's JWKS URL.
    async fn find_key(
        &self,
        issuer: &Issuer,
        kid: Option<&str>,
        jku: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Jwk, AuthError> {
        let http = self.config.allow_insecure_http;
        let source = match jku {
            Some(jku) => {
                let mut refusal = crate::outbound::UrlError::OutsideScope;
                let admitted = issuer.urls.jku_prefixes.iter().find_map(|prefix| match prefix.admit(jku, http) {
                    Ok(url) => Some(url),
                    Err(error) => {
                        refusal = error;
                        None
                    }
                });
                Some(admitted.ok_or(AuthError::JkuNotAllowed(refusal))?)
            }
            None => issuer.urls.jwks_url.clone(),
        };
        if let Some(key) = pick(&issuer.static_keys, kid, algorithm) {
            return Ok(key);
        }
        match source {
            Some(source) => self.key_sets.find(&issuer.config.iss, &source, kid, algorithm).await,
            None => Err(AuthError::UnknownKey(kid.map(loggable))),
        }
    }
}

/// RFC 7515 4.1.11: a recipient must refuse a JWS whose `crit` lists an extension it does not
/// understand; this service understands none, so any `crit` is refused.
fn refuse_critical_header(token: &str) -> Result<(), AuthError> {
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed("header is not base64url".into()))?;
    let header: ExtraHeader =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed("header is not a JSON object".into()))?;
    match header.crit {
        Some(_) => Err(AuthError::Critical),
        None => Ok(()),
    }
}
