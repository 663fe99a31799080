//! Attack cases, as a hospital security reviewer would try them: the real server on a real
//! socket, hostile JWKS and FHIR servers as real HTTP servers on loopback. Each test names the
//! attack it repels.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use lbp_cds::auth::keys::{KeyPair, client_claims, encoding_key};
use lbp_cds::auth::{AuthConfig, Authenticator, IssuerConfig};
use lbp_cds::config::Settings;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ISSUER: &str = "https://ehr.example.org";

/// A hostile HTTP server: every request is counted by path and answered by `answer`.
struct Hostile {
    base: String,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Hostile {
    async fn start(answer: impl Fn(&str, &str) -> Response + Send + Sync + 'static) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (seen, answer, own) = (hits.clone(), Arc::new(answer), base.clone());
        let app = axum::Router::new().fallback(move |request: Request| {
            let (seen, answer, own) = (seen.clone(), answer.clone(), own.clone());
            async move {
                let path = request.uri().path().to_owned();
                let target = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
                seen.lock().unwrap().push(path);
                answer(&own, &target)
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Hostile { base, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().iter().filter(|p| p.as_str() == path).count()
    }

    fn total(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

fn json_response(value: &Value) -> Response {
    Response::builder().header("content-type", "application/json").body(Body::from(value.to_string())).unwrap()
}

fn issuer_with(f: impl FnOnce(&mut IssuerConfig)) -> IssuerConfig {
    let mut issuer = IssuerConfig {
        iss: ISSUER.into(),
        fhir_servers: vec!["https://fhir.example.org/r4".into()],
        ..IssuerConfig::default()
    };
    f(&mut issuer);
    issuer
}

async fn protected(issuer: IssuerConfig, tune: impl FnOnce(&mut AuthConfig) + Send + 'static) -> TestApp {
    TestApp::spawn_with_address(move |address| {
        let mut config = AuthConfig {
            public_base_url: format!("http://{address}"),
            allow_insecure_http: true,
            issuers: vec![issuer],
            ..AuthConfig::default()
        };
        tune(&mut config);
        let http = lbp_cds::outbound::client().expect("outbound client");
        Settings {
            fixed_today: Some(TODAY),
            auth: Some(Arc::new(Authenticator::new(config, http).expect("valid config"))),
            ..Settings::default()
        }
    })
    .await
}

fn token_with_header(key: &KeyPair, header: jsonwebtoken::Header, aud: &str) -> String {
    let claims = client_claims(ISSUER, aud, 300, None);
    jsonwebtoken::encode(&header, &claims, &encoding_key(key.algorithm, &key.private_pem).unwrap()).unwrap()
}

fn jku_token(key: &KeyPair, jku: &str, aud: &str) -> String {
    let mut header = jsonwebtoken::Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    header.jku = Some(jku.to_owned());
    token_with_header(key, header, aud)
}

fn body() -> Value {
    Scenario::new("patient-view", 45).low_back_pain(7).body()
}

async fn status_with(app: &TestApp, token: &str) -> u16 {
    app.post_with_token("lbp-patient-view", &body(), token).await.0
}

/// Attack: a token signed with the attacker's own key, its `jku` escaping the allowed prefix by
/// traversal, encoded dots, a backslash, a tab inside `..`, or userinfo naming another host.
#[tokio::test]
async fn jku_forms_that_leave_the_prefix_are_refused_and_never_fetched() {
    let attacker = KeyPair::generate("ES384", "evil").unwrap();
    let evil_set = serde_json::to_value(attacker.jwks()).unwrap();
    let keys = Hostile::start(move |_, _| json_response(&evil_set)).await;
    let other = Hostile::start(|_, _| json_response(&json!({"keys": []}))).await;
    let prefix = format!("{}/jwks/", keys.base);
    let app = protected(issuer_with(|i| i.jku_prefixes = vec![prefix.clone()]), |_| {}).await;
    let aud = app.url("/cds-services/lbp-patient-view");
    let host = keys.base.trim_start_matches("http://");
    let other_host = other.base.trim_start_matches("http://");
    for jku in [
        format!("{prefix}../evil.json"),
        format!("{prefix}%2e%2e/evil.json"),
        format!("{prefix}%2E%2E/evil.json"),
        format!("{prefix}..\\evil.json"),
        format!("{prefix}.\t./evil.json"),
        format!("http://{host}@{other_host}/jwks/k.json"),
        format!("http://user:pw@{host}/jwks/k.json"),
        format!("{}/jwksx/evil.json", keys.base),
        format!("{}/evil.json", keys.base),
    ] {
        assert_eq!(status_with(&app, &jku_token(&attacker, &jku, &aud)).await, 401, "{jku:?} was accepted");
    }
    assert_eq!(keys.total(), 0, "no key set outside the prefix was fetched: {:?}", keys.hits.lock().unwrap());
    assert_eq!(other.total(), 0, "the userinfo form reached another host");
    // The same key under the prefix is fetched and works: the refusals above were the URL's.
    assert_eq!(status_with(&app, &jku_token(&attacker, &format!("{prefix}evil.json"), &aud)).await, 200);
    assert_eq!(keys.hits("/jwks/evil.json"), 1);
}

/// Configuration refuses a `jku` prefix without a path (it would admit every key set on the host).
#[test]
fn a_jku_prefix_without_a_path_is_refused_at_start_up() {
    for prefix in ["https://keys.example.org", "https://keys.example.org/"] {
        let config = AuthConfig {
            public_base_url: "https://cds.example.org".into(),
            issuers: vec![issuer_with(|i| i.jku_prefixes = vec![prefix.into()])],
            ..AuthConfig::default()
        };
        let error = Authenticator::new(config, lbp_cds::outbound::client().unwrap()).unwrap_err().to_string();
        assert!(error.contains("issuers[0].jku_prefixes") && error.contains("path"), "{error}");
    }
    let http = AuthConfig {
        public_base_url: "https://cds.example.org".into(),
        issuers: vec![issuer_with(|i| i.jku_prefixes = vec!["http://keys.example.org/jwks/".into()])],
        ..AuthConfig::default()
    };
    let error = Authenticator::new(http, lbp_cds::outbound::client().unwrap()).unwrap_err().to_string();
    assert!(error.contains("https"), "http needs allow_insecure_http: {error}");
}

/// Attack: unauthenticated fan-out. 200 tokens, each naming a different `jku` under the prefix,
/// make at most a handful of outbound fetches, and legitimate calls keep their slots.
#[tokio::test]
async fn two_hundred_distinct_jkus_cause_at_most_a_handful_of_fetches() {
    let keys = Hostile::start(|_, _| json_response(&json!({"keys": []}))).await;
    let prefix = format!("{}/jwks/", keys.base);
    let legit = KeyPair::generate("ES384", "legit").unwrap();
    let legit_jwk = legit.public_jwk.clone();
    let app = protected(
        issuer_with(|i| {
            i.jku_prefixes = vec![prefix.clone()];
            i.jwks = Some(jsonwebtoken::jwk::JwkSet { keys: vec![legit_jwk] });
        }),
        |c| c.jwks_min_refresh_seconds = 30,
    )
    .await;
    let aud = app.url("/cds-services/lbp-patient-view");
    let attacker = KeyPair::generate("ES384", "evil").unwrap();
    let calls = (0..200).map(|n| {
        let token = jku_token(&attacker, &format!("{prefix}set-{n}.json"), &aud);
        let app = &app;
        async move { status_with(app, &token).await }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert!(keys.total() <= 2, "{} fetches for 200 jkus", keys.total());
    // A legitimate client with a static key is unaffected.
    assert_eq!(status_with(&app, &legit.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap()).await, 200);
}

/// Attack: a key set that never ends. It is read as a stream and abandoned at the size cap.
#[tokio::test]
async fn an_endless_key_set_is_abandoned_at_the_size_cap() {
    let keys = Hostile::start(|_, _| {
        let chunk = bytes_of(64 * 1024);
        let stream = futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
        Response::builder().header("content-type", "application/json").body(Body::from_stream(stream)).unwrap()
    })
    .await;
    let url = format!("{}/jwks/keys.json", keys.base);
    let app = protected(issuer_with(|i| i.jwks_url = Some(url)), |c| c.jwks_max_bytes = 64 * 1024).await;
    let aud = app.url("/cds-services/lbp-patient-view");
    let key = KeyPair::generate("ES384", "k").unwrap();
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        status_with(&app, &key.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap()),
    )
    .await;
    assert_eq!(answered.expect("answered before the stream ended (it never does)"), 401);
    assert_eq!(keys.hits("/jwks/keys.json"), 1);
}

fn bytes_of(size: usize) -> axum::body::Bytes {
    axum::body::Bytes::from(vec![b' '; size])
}

/// Revocation: a key removed from the issuer's JWKS stops working once its lifetime has passed.
#[tokio::test]
async fn a_key_removed_from_the_jwks_is_revoked_within_its_lifetime() {
    let key = KeyPair::generate("ES384", "rotating").unwrap();
    let jwks = JwksServer::start(serde_json::to_value(key.jwks()).unwrap()).await;
    let url = jwks.url.clone();
    let app = protected(issuer_with(|i| i.jwks_url = Some(url)), |c| {
        c.jwks_min_refresh_seconds = 1;
        c.jwks_max_cache_seconds = 1;
    })
    .await;
    let aud = app.url("/cds-services/lbp-patient-view");
    let sign = || key.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap();
    assert_eq!(status_with(&app, &sign()).await, 200);
    *jwks.keys.lock().unwrap() = json!({"keys": []});
    assert_eq!(status_with(&app, &sign()).await, 200, "still trusted within its lifetime");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(status_with(&app, &sign()).await, 401, "revoked after its lifetime");
    assert_eq!(jwks.fetch_count(), 2);
}

/// A `crit` header member, a token valid for a day, and a body that is not JSON.
#[tokio::test]
async fn crit_headers_long_lived_tokens_and_non_json_bodies_are_refused() {
    let key = KeyPair::generate("ES384", "k").unwrap();
    let jwk = key.public_jwk.clone();
    let app = protected(issuer_with(|i| i.jwks = Some(jsonwebtoken::jwk::JwkSet { keys: vec![jwk] })), |_| {}).await;
    let aud = app.url("/cds-services/lbp-patient-view");
    // crit: built by hand, since jsonwebtoken's Header has no `crit`.
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let header = b64(json!({"alg": "ES384", "typ": "JWT", "kid": "k", "crit": ["exp"]}).to_string().as_bytes());
    let claims = b64(client_claims(ISSUER, &aud, 300, None).to_string().as_bytes());
    let signing_input = format!("{header}.{claims}");
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &encoding_key(key.algorithm, &key.private_pem).unwrap(),
        key.algorithm,
    )
    .unwrap();
    assert_eq!(status_with(&app, &format!("{signing_input}.{signature}")).await, 401, "crit refused");

    assert_eq!(
        status_with(&app, &key.sign(&client_claims(ISSUER, &aud, 86_400, None)).unwrap()).await,
        401,
        "a day-long token"
    );
    assert_eq!(status_with(&app, &key.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap()).await, 200);

    let response = app
        .client
        .post(&aud)
        .bearer_auth(key.sign(&client_claims(ISSUER, &aud, 300, None)).unwrap())
        .header("content-type", "text/plain")
        .body(body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
}

/// Reads from a raw socket until the server closes it; the time it took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(tokio::time::Instant::from_std(started + limit), stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Attack: idle sockets and a request head sent one byte at a time hold no connection past the
/// header-read timeout; past the connection cap new connections are closed and counted.
#[tokio::test]
async fn idle_and_slow_connections_are_closed_and_the_cap_holds() {
    let app = TestApp::spawn_with(Settings {
        fixed_today: Some(TODAY),
        header_read_timeout_ms: 300,
        max_connections: 4,
        ..Settings::default()
    })
    .await;
    let mut idle = TcpStream::connect(app.address).await.unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await.is_some(), "an idle connection was closed");

    let mut slow = TcpStream::connect(app.address).await.unwrap();
    let writer = async {
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n" {
            if slow.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    let closed_while_writing = tokio::time::timeout(Duration::from_secs(10), writer).await.unwrap_or(false);
    assert!(
        closed_while_writing || closed_within(&mut slow, Duration::from_secs(2)).await.is_some(),
        "a slow head was cut off"
    );

    // Four idle connections fill the cap: the fifth is closed at once, and counted.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(app.address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut fifth = TcpStream::connect(app.address).await.unwrap();
    let closed = closed_within(&mut fifth, Duration::from_millis(250)).await;
    assert!(closed.is_some(), "the connection over the cap was closed before the header timeout");
    // Once the idle ones time out, the service answers again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _) = app.get("/health").await;
    assert_eq!(status, 200);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let refused = metric(&metrics, "lbp_cds_connections_refused_total");
    assert!(refused >= 1.0, "{metrics}");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Shutdown: a half-sent request head cannot keep the process from stopping.
#[tokio::test]
async fn a_half_sent_head_does_not_hold_shutdown_past_its_deadline() {
    let content =
        lbp_cds::content::Content::from_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cards")).unwrap();
    let settings = Settings { shutdown_grace_ms: 300, header_read_timeout_ms: 60_000, ..Settings::default() };
    let state = lbp_cds::http::AppState::new(content, settings).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(lbp_cds::http::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let mut half = TcpStream::connect(address).await.unwrap();
    half.write_all(b"POST /cds-services/lbp-patient-view HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(finished.is_ok(), "the server stopped within its grace period despite the half-open connection");
    assert!(closed_within(&mut half, Duration::from_secs(1)).await.is_some());
}

/// A FHIR server that answers every search with `entries` tiny Conditions and a `next` link.
async fn flooding_fhir(entries: usize) -> Hostile {
    // About 60 bytes an entry: 100,000 of them stay under the page size cap, so the resource
    // budget is what stops the call.
    let entries: Arc<str> =
        vec![r#"{"resource":{"resourceType":"Condition","code":{"text":"x"}}}"#; entries].join(",").into();
    let counter = Arc::new(AtomicUsize::new(0));
    Hostile::start(move |base, _| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let text = format!(
            r#"{{"resourceType":"Bundle","type":"searchset","link":[{{"relation":"next","url":"{base}/r4/Condition?page={n}"}}],"entry":[{entries}]}}"#
        );
        Response::builder().header("content-type", "application/fhir+json").body(Body::from(text)).unwrap()
    })
    .await
}

fn request_for(fhir: &str) -> Value {
    let mut request = body();
    request["fhirServer"] = json!(format!("{fhir}/r4"));
    request["prefetch"].as_object_mut().unwrap().remove("conditions");
    request
}

/// Attack: a FHIR server on the allow-list that sends pages of 100,000 entries with `next`
/// links. The call ends within its budget with a partial answer that says so, and `/health`
/// stays answerable meanwhile (parsing runs off the async workers).
#[tokio::test]
async fn a_flooding_fhir_server_gets_a_bounded_partial_answer_and_health_stays_up() {
    let fhir = flooding_fhir(100_000).await;
    let scope = lbp_cds::outbound::UrlScope::parse(&format!("{}/r4", fhir.base), true, false).unwrap();
    let app =
        TestApp::spawn_with(Settings { fixed_today: Some(TODAY), fhir_servers: vec![scope], ..Settings::default() })
            .await;
    let request = request_for(&fhir.base);
    let call = app.post("lbp-patient-view", &request);
    let health = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut slowest = Duration::ZERO;
        for _ in 0..5 {
            let started = Instant::now();
            assert_eq!(app.get("/health").await.0, 200);
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        slowest
    };
    let started = Instant::now();
    let ((status, response), slowest_health) = tokio::join!(call, health);
    let took = started.elapsed();
    assert_eq!(status, 200, "{response}");
    assert!(took < Duration::from_secs(10), "the call ended within the request deadline ({took:?})");
    assert!(slowest_health < Duration::from_secs(1), "/health answered within a second ({slowest_health:?})");
    let prefetch = &response["extension"]["lbp-cds"]["prefetch"];
    let conditions =
        prefetch.as_array().unwrap().iter().find(|k| k["key"] == "conditions").expect("conditions reported");
    assert_eq!(conditions["status"], "fetched-incomplete", "{conditions}");
    let detail = conditions["detail"].as_str().unwrap();
    assert!(detail.contains("more than"), "the limit that was hit is named: {detail}");
    assert!(fhir.total() <= 10, "{} pages fetched", fhir.total());
}

/// Attack: a `next` link that climbs out of `fhirServer` to another path on the same host. It is
/// not followed (the token never goes there) and nothing of what lies there is echoed.
#[tokio::test]
async fn a_next_link_out_of_the_fhir_base_is_not_followed_and_nothing_is_echoed() {
    let fhir = Hostile::start(|base, target| {
        if target.starts_with("/secret") {
            return json_response(&json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Condition", "id": "SECRET-MARKER"}}]}));
        }
        let mut escapes = vec![
            format!("{base}/r4/../secret/x.json"),
            format!("{base}/r4/%2e%2e/secret/x.json"),
            format!("{base}/secret/x.json"),
        ];
        let pick = target.len() % escapes.len();
        let next = escapes.swap_remove(pick);
        json_response(&json!({
            "resourceType": "Bundle", "type": "searchset",
            "link": [{"relation": "next", "url": next}],
            "entry": [{"resource": {"resourceType": "Condition", "id": "ok", "subject": {"reference": "Patient/pat-1"},
                "code": {"coding": [{"system": ICD10, "code": "M54.50"}]}, "clinicalStatus": {"coding": [{"code": "active"}]},
                "onsetDateTime": days_ago(7)}}],
        }))
    })
    .await;
    let scope = lbp_cds::outbound::UrlScope::parse(&format!("{}/r4", fhir.base), true, false).unwrap();
    let app =
        TestApp::spawn_with(Settings { fixed_today: Some(TODAY), fhir_servers: vec![scope], ..Settings::default() })
            .await;
    let mut request = request_for(&fhir.base);
    request["fhirAuthorization"] = json!({"access_token": "fhir-token", "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "lbp-cds"});
    let response = app.cards("lbp-patient-view", &request).await;
    assert_eq!(fhir.hits("/secret/x.json"), 0, "the escape was followed: {:?}", fhir.hits.lock().unwrap());
    let text = response.to_string();
    assert!(!text.contains("SECRET-MARKER") && !text.contains("/secret"), "{text}");
    let conditions = response["extension"]["lbp-cds"]["prefetch"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "conditions")
        .cloned()
        .unwrap();
    assert_eq!(conditions["status"], "fetched-incomplete", "{conditions}");
}

/// Unreadable fetched resources are reported without quoting what they held.
#[tokio::test]
async fn errors_about_fetched_resources_do_not_quote_their_content() {
    let fhir = Hostile::start(|_, _| {
        json_response(&json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": {"resourceType": "Condition", "id": "bad", "subject": {"reference": "Patient/pat-1"}, "clinicalStatus": "LEAKED-VALUE-1"}},
            {"resource": {"resourceType": "Condition", "id": "bad2", "subject": {"reference": "Patient/pat-1"}, "recordedDate": 424242}}
        ]}))
    })
    .await;
    let scope = lbp_cds::outbound::UrlScope::parse(&format!("{}/r4", fhir.base), true, false).unwrap();
    let app =
        TestApp::spawn_with(Settings { fixed_today: Some(TODAY), fhir_servers: vec![scope], ..Settings::default() })
            .await;
    let (status, response) = app.post("lbp-patient-view", &request_for(&fhir.base)).await;
    assert_eq!(status, 200, "{response}");
    let skipped = response["extension"]["lbp-cds"]["skippedResources"].to_string();
    assert!(skipped.contains("bad"), "the unreadable resources are reported: {response}");
    assert!(!response.to_string().contains("LEAKED-VALUE-1"), "{response}");
}
