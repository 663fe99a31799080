//! Development keys and test tokens: `lbp-cds token keygen` and `lbp-cds token sign`.
//! A CDS client (an EHR) signs with its private key and publishes the public JWKS; these helpers
//! let users and tests play that part.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported algorithm `{0}` (use ES384, ES256, RS384 or RS256)")]
    Algorithm(String),
    #[error("key error: {0}")]
    Key(String),
}

/// A generated key pair: the private key as PKCS#8 PEM and the public key as a JWK.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub algorithm: Algorithm,
    pub kid: String,
    pub private_pem: String,
    pub public_jwk: Jwk,
}

impl KeyPair {
    pub fn generate(algorithm: &str, kid: &str) -> Result<KeyPair, KeyError> {
        use p384::pkcs8::{EncodePrivateKey, LineEnding};
        let (algorithm, private_pem) = match algorithm {
            "ES384" => {
                let key = p384::SecretKey::random(&mut rand::rngs::OsRng);
                let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyError::Key(e.to_string()))?;
                (Algorithm::ES384, pem.to_string())
            }
            "RS384" | "RS256" => {
                use rsa::pkcs8::EncodePrivateKey as _;
                let key =
                    rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| KeyError::Key(e.to_string()))?;
                let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| KeyError::Key(e.to_string()))?;
                let alg = if algorithm == "RS384" { Algorithm::RS384 } else { Algorithm::RS256 };
                (alg, pem.to_string())
            }
            other => return Err(KeyError::Algorithm(other.to_owned())),
        };
        KeyPair::from_private_pem(algorithm, kid, private_pem)
    }

    /// A key pair from a private key written by [`KeyPair::generate`].
    pub fn from_private_pem(algorithm: Algorithm, kid: &str, private_pem: String) -> Result<KeyPair, KeyError> {
        let encoding = encoding_key(algorithm, &private_pem)?;
        let mut public_jwk = Jwk::from_encoding_key(&encoding, algorithm).map_err(|e| KeyError::Key(e.to_string()))?;
        public_jwk.common.key_id = Some(kid.to_owned());
        Ok(KeyPair { algorithm, kid: kid.to_owned(), private_pem, public_jwk })
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.public_jwk.clone()] }
    }

    /// Signs `claims` with this key (header `alg`, `typ: JWT`, `kid`).
    pub fn sign(&self, claims: &Value) -> Result<String, KeyError> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        let key = encoding_key(self.algorithm, &self.private_pem)?;
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| KeyError::Key(e.to_string()))
    }
}

pub fn encoding_key(algorithm: Algorithm, pem: &str) -> Result<EncodingKey, KeyError> {
    match algorithm {
        Algorithm::ES384 | Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::RS384 | Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        other => return Err(KeyError::Algorithm(format!("{other:?}"))),
    }
    .map_err(|e| KeyError::Key(e.to_string()))
}

/// The claims a CDS client sends: `iss`, `aud` (the exact URL called), `exp`, `iat`, `jti`.
pub fn client_claims(iss: &str, aud: &str, ttl_seconds: u64, tenant: Option<&str>) -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut claims = json!({
        "iss": iss,
        "sub": iss,
        "aud": aud,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    if let Some(tenant) = tenant {
        claims["tenant"] = json!(tenant);
    }
    claims
}
