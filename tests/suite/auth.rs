//! Authentication of CDS clients with real signed JWTs, the fhirServer binding, and limits.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::*;
use base64::Engine;
use lbp_cds::auth::keys::{KeyPair, client_claims};
use lbp_cds::auth::{AuthConfig, Authenticator, IssuerConfig};
use lbp_cds::config::Settings;
use serde_json::{Value, json};

const ISSUER: &str = "https://ehr.example.org";
const FHIR: &str = "https://fhir.example.org/r4";

fn issuer(keys: &[&KeyPair]) -> IssuerConfig {
    IssuerConfig {
        iss: ISSUER.into(),
        algorithms: Vec::new(),
        jwks: Some(jsonwebtoken::jwk::JwkSet { keys: keys.iter().map(|k| k.public_jwk.clone()).collect() }),
        jwks_file: None,
        jwks_url: None,
        jku_prefixes: Vec::new(),
        fhir_servers: vec![FHIR.into()],
        tenants: Vec::new(),
        open_fhir_servers: Vec::new(),
    }
}

fn config(base: &str, issuers: Vec<IssuerConfig>) -> AuthConfig {
    AuthConfig {
        public_base_url: base.into(),
        discovery_open: true,
        max_token_age_seconds: 600,
        clock_skew_seconds: 30,
        jwks_min_refresh_seconds: 30,
        // The test JWKS servers and FHIR doubles are plain http on loopback.
        allow_insecure_http: true,
        issuers,
        ..AuthConfig::default()
    }
}

async fn protected(issuers: Vec<IssuerConfig>) -> TestApp {
    protected_with_refresh(issuers, 30).await
}

async fn protected_with_refresh(issuers: Vec<IssuerConfig>, refresh_seconds: u64) -> TestApp {
    TestApp::spawn_with_address(move |address| {
        let mut config = config(&format!("http://{address}"), issuers);
        config.jwks_min_refresh_seconds = refresh_seconds;
        Settings {
            fixed_today: Some(TODAY),
            auth: Some(Arc::new(
                Authenticator::new(config, lbp_cds::outbound::client().expect("outbound client")).unwrap(),
            )),
            ..Settings::default()
        }
    })
    .await
}

fn audience(app: &TestApp, service: &str) -> String {
    app.url(&format!("/cds-services/{service}"))
}

fn body() -> Value {
    Scenario::new("patient-view", 45).low_back_pain(7).body()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn b64(value: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value)
}

#[tokio::test]
async fn valid_es384_and_rs384_tokens_are_accepted() {
    let es = KeyPair::generate("ES384", "es-1").unwrap();
    let rs = KeyPair::generate("RS384", "rs-1").unwrap();
    let app = protected(vec![issuer(&[&es, &rs])]).await;
    for key in [&es, &rs] {
        let token = key.sign(&client_claims(ISSUER, &audience(&app, "lbp-patient-view"), 300, None)).unwrap();
        let (status, _, response) = app.post_with_token("lbp-patient-view", &body(), &token).await;
        assert_eq!(status, 200, "{:?}: {response}", key.algorithm);
        assert_valid_response(&response);
    }
}

#[tokio::test]
async fn bad_tokens_get_a_bare_401_with_a_challenge() {
    let key = KeyPair::generate("ES384", "es-1").unwrap();
    let other = KeyPair::generate("ES384", "es-1").unwrap();
    let app = protected(vec![issuer(&[&key])]).await;
    let aud = audience(&app, "lbp-patient-view");
    let claims = client_claims(ISSUER, &aud, 300, None);
    let with = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c["jti"] = json!(uuid::Uuid::new_v4().to_string());
        key.sign(&c).unwrap()
    };
    let valid = key.sign(&claims).unwrap();
    let parts: Vec<&str> = valid.split('.').collect();
    let mut tampered_claims = claims.clone();
    tampered_claims["iss"] = json!("https://attacker.example");
    let tampered = format!("{}.{}.{}", parts[0], b64(tampered_claims.to_string().as_bytes()), parts[2]);
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    // Algorithm confusion: HS256 with the public key as the shared secret.
    let public = serde_json::to_vec(&key.public_jwk).unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some("es-1".into());
    let hs = jsonwebtoken::encode(&hs_header, &claims, &jsonwebtoken::EncodingKey::from_secret(&public)).unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("expired", with(json!({"iat": now() - 1000, "exp": now() - 600}))),
        ("not yet valid", with(json!({"nbf": now() + 3600}))),
        ("issued in the future", with(json!({"iat": now() + 3600, "exp": now() + 4000}))),
        ("issued too long ago", with(json!({"iat": now() - 3600}))),
        ("wrong aud", with(json!({"aud": audience(&app, "lbp-order-sign")}))),
        ("no exp", {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().remove("exp");
            key.sign(&c).unwrap()
        }),
        ("no jti", {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().remove("jti");
            key.sign(&c).unwrap()
        }),
        ("unknown issuer", with(json!({"iss": "https://unknown.example"}))),
        ("signed by another key with the same kid", other.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap()),
        ("alg none", none),
        ("HS256 with the public key", hs),
        ("tampered payload", tampered),
        ("garbage", "not.a.jwt".into()),
    ];
    for (name, token) in cases {
        let (status, challenge, _) = app.post_with_token("lbp-patient-view", &body(), &token).await;
        assert_eq!(status, 401, "{name}");
        assert!(challenge.is_some_and(|c| c.starts_with("Bearer")), "{name}: WWW-Authenticate");
    }
    let (status, _) = app.post("lbp-patient-view", &body()).await;
    assert_eq!(status, 401, "no token at all");
    // The valid token still works after all that.
    let (status, _, _) = app.post_with_token("lbp-patient-view", &body(), &valid).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_replayed_jti_is_refused() {
    let key = KeyPair::generate("ES384", "es-1").unwrap();
    let app = protected(vec![issuer(&[&key])]).await;
    let token = key.sign(&client_claims(ISSUER, &audience(&app, "lbp-patient-view"), 300, None)).unwrap();
    assert_eq!(app.post_with_token("lbp-patient-view", &body(), &token).await.0, 200);
    assert_eq!(app.post_with_token("lbp-patient-view", &body(), &token).await.0, 401);
}

#[tokio::test]
async fn key_rotation_works_without_a_restart_and_refetching_is_rate_limited() {
    let old = KeyPair::generate("ES384", "2026-01").unwrap();
    let new = KeyPair::generate("ES384", "2026-02").unwrap();
    let jwks = JwksServer::start(serde_json::to_value(old.jwks()).unwrap()).await;
    let mut config = issuer(&[]);
    config.jwks = None;
    config.jwks_url = Some(jwks.url.clone());
    let app = protected_with_refresh(vec![config], 1).await;
    let aud = audience(&app, "lbp-patient-view");
    let sign = |key: &KeyPair| key.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap();
    assert_eq!(app.post_with_token("lbp-patient-view", &body(), &sign(&old)).await.0, 200);
    assert_eq!(jwks.fetch_count(), 1);
    // The EHR rotates its key. Within the refresh interval the cached set is used: no fetch storm.
    *jwks.keys.lock().unwrap() = serde_json::to_value(new.jwks()).unwrap();
    assert_eq!(app.post_with_token("lbp-patient-view", &body(), &sign(&new)).await.0, 401);
    assert_eq!(app.post_with_token("lbp-patient-view", &body(), &sign(&new)).await.0, 401);
    assert_eq!(jwks.fetch_count(), 1, "refetching is rate-limited");
    // After the interval the unknown kid makes the service fetch the JWKS again: no restart needed.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(app.post_with_token("lbp-patient-view", &body(), &sign(&new)).await.0, 200);
    assert_eq!(jwks.fetch_count(), 2);
}

#[tokio::test]
async fn an_unknown_kid_triggers_a_refetch() {
    let old = KeyPair::generate("ES384", "k1").unwrap();
    let new = KeyPair::generate("ES384", "k2").unwrap();
    let jwks = JwksServer::start(serde_json::to_value(old.jwks()).unwrap()).await;
    *jwks.keys.lock().unwrap() = json!({"keys": [old.public_jwk, new.public_jwk]});
    let mut config = issuer(&[&old]);
    config.jwks_url = Some(jwks.url.clone());
    let app = protected(vec![config]).await;
    let aud = audience(&app, "lbp-patient-view");
    // k1 is known statically (no fetch); k2 is not, so the JWKS URL is fetched once.
    assert_eq!(
        app.post_with_token("lbp-patient-view", &body(), &old.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap())
            .await
            .0,
        200
    );
    assert_eq!(jwks.fetch_count(), 0);
    assert_eq!(
        app.post_with_token("lbp-patient-view", &body(), &new.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap())
            .await
            .0,
        200
    );
    assert_eq!(jwks.fetch_count(), 1);
}

#[tokio::test]
async fn a_jku_outside_the_allow_list_is_never_fetched() {
    let key = KeyPair::generate("ES384", "k1").unwrap();
    let trap = ConnectionCounter::start().await;
    let mut config = issuer(&[]);
    config.jwks = None;
    config.jku_prefixes = vec!["https://keys.ehr.example.org/jwks/".into()];
    let app = protected(vec![config]).await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
    header.kid = Some("k1".into());
    header.jku = Some(format!("{}/jwks.json", trap.url));
    let claims = client_claims(ISSUER, &audience(&app, "lbp-patient-view"), 300, None);
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &lbp_cds::auth::keys::encoding_key(key.algorithm, &key.private_pem).unwrap(),
    )
    .unwrap();
    assert_eq!(app.post_with_token("lbp-patient-view", &body(), &token).await.0, 401);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(trap.count(), 0, "the jku must not be contacted");
}

#[tokio::test]
async fn an_untrusted_fhir_server_is_refused_before_any_connection() {
    let key = KeyPair::generate("ES384", "k1").unwrap();
    let trap = ConnectionCounter::start().await;
    let app = protected(vec![issuer(&[&key])]).await;
    let aud = audience(&app, "lbp-patient-view");
    let mut request = body();
    request["fhirServer"] = json!(trap.url);
    request["fhirAuthorization"] = json!({"access_token": "secret-access-token", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "lbp-cds"});
    request["prefetch"].as_object_mut().unwrap().remove("conditions");
    let (status, _, response) = app
        .post_with_token("lbp-patient-view", &request, &key.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap())
        .await;
    assert_eq!(status, 403, "{response}");
    assert_eq!(response["resourceType"], "OperationOutcome");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(trap.count(), 0, "no connection to an untrusted fhirServer");
    // The bound server is accepted (prefetch complete, so nothing is fetched).
    let mut request = body();
    request["fhirServer"] = json!(format!("{FHIR}/"));
    let (status, _, _) = app
        .post_with_token("lbp-patient-view", &request, &key.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap())
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn discovery_is_open_by_default_and_can_be_closed_and_tenants_are_checked() {
    let key = KeyPair::generate("ES384", "k1").unwrap();
    let app = protected(vec![issuer(&[&key])]).await;
    assert_eq!(app.get("/cds-services").await.0, 200);
    assert_eq!(app.get("/health").await.0, 200);

    let mut tenant_issuer = issuer(&[&key]);
    tenant_issuer.tenants = vec!["hospital-a".into()];
    let closed = TestApp::spawn_with_address(move |address| {
        let mut config = config(&format!("http://{address}"), vec![tenant_issuer]);
        config.discovery_open = false;
        Settings {
            fixed_today: Some(TODAY),
            auth: Some(Arc::new(
                Authenticator::new(config, lbp_cds::outbound::client().expect("outbound client")).unwrap(),
            )),
            ..Settings::default()
        }
    })
    .await;
    assert_eq!(closed.get("/cds-services").await.0, 401);
    let aud = audience(&closed, "lbp-patient-view");
    let wrong_tenant = key.sign(&client_claims(ISSUER, &aud, 300, Some("hospital-b"))).unwrap();
    assert_eq!(closed.post_with_token("lbp-patient-view", &body(), &wrong_tenant).await.0, 401);
    let right_tenant = key.sign(&client_claims(ISSUER, &aud, 300, Some("hospital-a"))).unwrap();
    assert_eq!(closed.post_with_token("lbp-patient-view", &body(), &right_tenant).await.0, 200);
}

#[tokio::test]
async fn oversized_slow_and_excess_requests_get_their_status_without_hurting_good_ones() {
    let app = TestApp::spawn_with(Settings {
        fixed_today: Some(TODAY),
        body_limit_bytes: 256 * 1024,
        request_timeout_ms: 500,
        header_limit_bytes: 8 * 1024,
        ..Settings::default()
    })
    .await;
    let good = body();
    let address = app.address;
    // A slow client: announces a body and sends it one byte at a time.
    let slow = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = "POST /cds-services/lbp-patient-view HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..20 {
            if stream.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut response = vec![0; 64];
        let n = stream.read(&mut response).await.unwrap_or(0);
        String::from_utf8_lossy(&response[..n]).to_string()
    });
    let mut huge = body();
    huge["prefetch"]["conditions"]["entry"][0]["resource"]["note"] = json!([{"text": "x".repeat(300 * 1024)}]);
    let big_headers = app
        .client
        .post(app.url("/cds-services/lbp-patient-view"))
        .header("x-filler", "y".repeat(10 * 1024))
        .json(&good)
        .send();
    let (huge_status, _) = app.post("lbp-patient-view", &huge).await;
    assert_eq!(huge_status, 413);
    assert_eq!(big_headers.await.unwrap().status().as_u16(), 431);
    for _ in 0..5 {
        assert_eq!(app.post("lbp-patient-view", &good).await.0, 200, "good requests are served meanwhile");
    }
    let slow_response = slow.await.unwrap();
    assert!(slow_response.starts_with("HTTP/1.1 408"), "{slow_response}");
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_get_503() {
    let app = TestApp::spawn_with(Settings {
        fixed_today: Some(TODAY),
        request_timeout_ms: 2_000,
        max_concurrent_requests: 1,
        ..Settings::default()
    })
    .await;
    let address = app.address;
    // Hold the only slot with a request whose body never completes.
    let _holder = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = "POST /cds-services/lbp-patient-view HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{";
        stream.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, response) = app.post("lbp-patient-view", &body()).await;
    assert_eq!(status, 503, "{response}");
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    assert_eq!(app.post("lbp-patient-view", &body()).await.0, 200, "served again once the slot is free");
}
