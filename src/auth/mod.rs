//! Authentication of CDS clients, as the CDS Hooks specification describes: a bearer JWT signed
//! by a trusted issuer (ES384 or RS384; ES256/RS256 when configured; never `none` or HS*), the
//! key selected by `kid` from a configured JWKS (static, URL, or an allow-listed `jku`), `aud`
//! equal to the endpoint URL, `exp` required, `iat` not too old, `jti` not replayed, optional
//! tenant allow-list. Every failure is a bare 401; the reason is logged, the token never is.

pub mod keys;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

/// The authentication configuration file (`--auth-config`, TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The service's public base URL, as clients call it (behind a proxy, the proxy's URL). The
    /// expected `aud` is this plus the request path.
    pub public_base_url: String,
    /// Whether `GET /cds-services` may be called without a token.
    #[serde(default = "default_true")]
    pub discovery_open: bool,
    /// Oldest accepted `iat`, in seconds (the sandbox issues 5-minute tokens).
    #[serde(default = "default_max_age")]
    pub max_token_age_seconds: u64,
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
    /// Least time between two JWKS fetches of one source (refresh on unknown `kid`).
    #[serde(default = "default_refresh")]
    pub jwks_min_refresh_seconds: u64,
    pub issuers: Vec<IssuerConfig>,
}

fn default_true() -> bool {
    true
}
fn default_max_age() -> u64 {
    600
}
fn default_skew() -> u64 {
    60
}
fn default_refresh() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` claim.
    pub iss: String,
    /// Accepted algorithms; default ES384 and RS384. ES256 and RS256 may be added.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// A static JWKS, inline.
    #[serde(default)]
    pub jwks: Option<JwkSet>,
    /// A static JWKS, from a file (relative to the configuration file).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL, fetched on first use and again for an unknown `kid` (rate-limited).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// `jku` header values starting with one of these are fetched; any other `jku` is refused.
    #[serde(default)]
    pub jku_prefixes: Vec<String>,
    /// FHIR server base URLs this client may name in `fhirServer`; any other is refused (403).
    #[serde(default)]
    pub fhir_servers: Vec<String>,
    /// If set, the `tenant` claim must be one of these.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// FHIR servers (among `fhir_servers`) that may be queried without an access token, when a
    /// request brings `fhirServer` without `fhirAuthorization` (open servers, like the sandbox's).
    #[serde(default)]
    pub open_fhir_servers: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("invalid authentication configuration in {path}, field `{field}`: {message}")]
    Invalid { path: String, field: String, message: String },
}

/// Why a request was not authenticated. Logged; the client only sees 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("issuer is not trusted")]
    UnknownIssuer,
    #[error("jku is not on the issuer's allow-list")]
    JkuNotAllowed,
    #[error("no key for kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("key set could not be fetched: {0}")]
    KeyFetch(String),
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("token issued too long ago or in the future")]
    Stale,
    #[error("jti was already used")]
    Replay,
    #[error("tenant is not allowed")]
    Tenant,
}

/// An authenticated CDS client, attached to the request.
#[derive(Debug, Clone)]
pub struct Client {
    pub issuer: String,
    pub tenant: Option<String>,
    pub fhir_servers: Vec<String>,
    pub open_fhir_servers: Vec<String>,
}

impl Client {
    /// Whether this client may send us to `fhir_server` (exact base URL, trailing slash ignored).
    pub fn may_use_fhir_server(&self, fhir_server: &str) -> bool {
        fhir_server_allowed(&self.fhir_servers, fhir_server)
    }

    /// Whether `fhir_server` may be queried without a token.
    pub fn may_query_openly(&self, fhir_server: &str) -> bool {
        self.may_use_fhir_server(fhir_server) && fhir_server_allowed(&self.open_fhir_servers, fhir_server)
    }
}

pub fn fhir_server_allowed(allowed: &[String], fhir_server: &str) -> bool {
    let wanted = fhir_server.trim_end_matches('/');
    allowed.iter().any(|base| base.trim_end_matches('/') == wanted)
}

struct Issuer {
    config: IssuerConfig,
    algorithms: Vec<Algorithm>,
    static_keys: Vec<Jwk>,
}

#[derive(Default)]
struct FetchedKeys {
    keys: HashMap<String, Vec<Jwk>>,
    last_fetch: HashMap<String, Instant>,
}

pub struct Authenticator {
    config: AuthConfig,
    issuers: HashMap<String, Issuer>,
    fetched: RwLock<FetchedKeys>,
    replay: Mutex<HashMap<(String, String), u64>>,
    http: reqwest::Client,
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
                let file = base.join(file);
                issuer.jwks_file = Some(file);
            }
        }
        config.validate(&shown)?;
        Ok(config)
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |field: String, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            message: message.to_owned(),
        };
        if !is_http_url(&self.public_base_url) {
            return Err(invalid("public_base_url".into(), "must be an absolute http(s) URL"));
        }
        if self.issuers.is_empty() {
            return Err(invalid("issuers".into(), "at least one trusted issuer is required"));
        }
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
            if issuer.jwks.is_none() && issuer.jwks_file.is_none() && issuer.jwks_url.is_none() && issuer.jku_prefixes.is_empty() {
                return Err(invalid(field("jwks"), "needs a key source: jwks, jwks_file, jwks_url or jku_prefixes"));
            }
            for url in issuer.jwks_url.iter().chain(&issuer.jku_prefixes).chain(&issuer.fhir_servers).chain(&issuer.open_fhir_servers) {
                if !is_http_url(url) {
                    return Err(invalid(field("jwks_url/jku_prefixes/fhir_servers"), "must be absolute http(s) URLs"));
                }
            }
        }
        Ok(())
    }
}

fn is_http_url(value: &str) -> bool {
    (value.starts_with("https://") || value.starts_with("http://")) && !value.contains(char::is_whitespace)
}

impl Authenticator {
    pub fn new(config: AuthConfig, http: reqwest::Client) -> Result<Authenticator, ConfigError> {
        let mut issuers = HashMap::new();
        for issuer in &config.issuers {
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
            issuers.insert(issuer.iss.clone(), Issuer { config: issuer.clone(), algorithms, static_keys });
        }
        Ok(Authenticator {
            config,
            issuers,
            fetched: RwLock::new(FetchedKeys::default()),
            replay: Mutex::new(HashMap::new()),
            http,
        })
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
        let claims: Claims = jsonwebtoken::decode(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .claims;

        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let skew = self.config.clock_skew_seconds;
        let iat = claims.iat.ok_or_else(|| AuthError::Invalid("iat is required".into()))?;
        if iat > now + skew || now.saturating_sub(iat) > self.config.max_token_age_seconds + skew {
            return Err(AuthError::Stale);
        }
        if !issuer.config.tenants.is_empty()
            && !claims.tenant.as_ref().is_some_and(|tenant| issuer.config.tenants.contains(tenant))
        {
            return Err(AuthError::Tenant);
        }
        let jti = claims.jti.clone().filter(|j| !j.is_empty()).ok_or_else(|| AuthError::Invalid("jti is required".into()))?;
        {
            let mut seen = self.replay.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            seen.retain(|_, expires| *expires + skew >= now);
            if seen.insert((claims.iss.clone(), jti), claims.exp).is_some() {
                return Err(AuthError::Replay);
            }
        }
        Ok(Client {
            issuer: claims.iss,
            tenant: claims.tenant,
            fhir_servers: issuer.config.fhir_servers.clone(),
            open_fhir_servers: issuer.config.open_fhir_servers.clone(),
        })
    }

    async fn find_key(
        &self,
        issuer: &Issuer,
        kid: Option<&str>,
        jku: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Jwk, AuthError> {
        let source = match jku {
            Some(jku) => {
                if !issuer.config.jku_prefixes.iter().any(|prefix| jku.starts_with(prefix.as_str())) {
                    return Err(AuthError::JkuNotAllowed);
                }
                Some(jku.to_owned())
            }
            None => issuer.config.jwks_url.clone(),
        };
        if let Some(key) = pick(&issuer.static_keys, kid, algorithm) {
            return Ok(key);
        }
        let Some(source) = source else {
            return Err(AuthError::UnknownKey(kid.map(str::to_owned)));
        };
        if let Some(key) = self.fetched.read().await.keys.get(&source).and_then(|keys| pick(keys, kid, algorithm)) {
            return Ok(key);
        }
        // Unknown kid: the client may have rotated its keys. Fetch again, at most once per interval.
        {
            let mut fetched = self.fetched.write().await;
            let recent = fetched
                .last_fetch
                .get(&source)
                .is_some_and(|at| at.elapsed() < Duration::from_secs(self.config.jwks_min_refresh_seconds));
            if !recent {
                fetched.last_fetch.insert(source.clone(), Instant::now());
                drop(fetched);
                let keys = self.fetch(&source).await?;
                self.fetched.write().await.keys.insert(source.clone(), keys);
            }
        }
        self.fetched
            .read()
            .await
            .keys
            .get(&source)
            .and_then(|keys| pick(keys, kid, algorithm))
            .ok_or_else(|| AuthError::UnknownKey(kid.map(str::to_owned)))
    }

    async fn fetch(&self, url: &str) -> Result<Vec<Jwk>, AuthError> {
        tracing::info!(%url, "fetching JWKS");
        let response = self
            .http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| AuthError::KeyFetch(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(AuthError::KeyFetch(format!("status {}", response.status())));
        }
        let body = response.bytes().await.map_err(|e| AuthError::KeyFetch(e.without_url().to_string()))?;
        if body.len() > 1024 * 1024 {
            return Err(AuthError::KeyFetch("JWKS larger than 1 MiB".into()));
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| AuthError::KeyFetch(e.to_string()))?;
        Ok(set.keys)
    }
}

/// The key for `kid`; without a `kid`, the only key of the algorithm's family.
fn pick(keys: &[Jwk], kid: Option<&str>, algorithm: Algorithm) -> Option<Jwk> {
    let family_matches = |key: &Jwk| match (&key.algorithm, algorithm) {
        (jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_), Algorithm::ES384 | Algorithm::ES256) => true,
        (jsonwebtoken::jwk::AlgorithmParameters::RSA(_), Algorithm::RS384 | Algorithm::RS256) => true,
        _ => false,
    };
    match kid {
        Some(kid) => keys.iter().find(|key| key.common.key_id.as_deref() == Some(kid) && family_matches(key)).cloned(),
        None => {
            let mut candidates = keys.iter().filter(|key| family_matches(key));
            match (candidates.next(), candidates.next()) {
                (Some(key), None) => Some(key.clone()),
                _ => None,
            }
        }
    }
}
