//! The console at `/console` and `lbp-cds fixture`, against real `lbp-cds serve` processes with
//! real SQLite stores: over HTTP (escaping, login, CSRF, Origin), and in headless Chromium driven
//! through chromedriver's W3C WebDriver endpoints (skipped with a reason when Chromium is not
//! installed, unless `LBP_CDS_REQUIRE_CHROMIUM=1`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Logged, card_types, copy_dir, spawn_logged, tempdir};
use lbp_cds::auth::keys::KeyPair;
use serde_json::{Value, json};

/// A clinical date far from the fixtures' 2026-03-02.
const FAR_DATE: &str = "2031-07-15";
const CONSOLE_TOKEN: &str = "console-token-for-tests-7f3a9c";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One `lbp-cds serve` process with a SQLite store in its own folder; killed on drop.
struct Server {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl Server {
    fn start(dir: &Path, args: &[String]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_lbp-cds"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--today", FAR_DATE])
            .args(args)
            .env("LBP_CDS_LOG", "info")
            .env("LBP_CDS_DATABASE_URL", format!("sqlite://{}", dir.join("lbp-cds.db").display()));
        let (Logged { child, log, .. }, address) = spawn_logged(command);
        Server { child, address, log, dir: dir.to_owned() }
    }

    /// With authentication on (one trusted issuer) and a console token file.
    fn start_with_auth(extra: &[String], with_console_token: bool) -> Server {
        let dir = tempdir();
        let key = KeyPair::generate("ES384", "console-test").unwrap();
        std::fs::write(dir.join("jwks.json"), serde_json::to_string(&key.jwks()).unwrap()).unwrap();
        std::fs::write(
            dir.join("auth.toml"),
            "public_base_url = \"http://127.0.0.1\"\n[[issuers]]\niss = \"https://ehr.example.org\"\njwks_file = \"jwks.json\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("console-token"), format!("{CONSOLE_TOKEN}\n")).unwrap();
        let mut args = vec!["--auth-config".to_owned(), dir.join("auth.toml").display().to_string()];
        if with_console_token {
            args.extend(["--console-token-file".to_owned(), dir.join("console-token").display().to_string()]);
        }
        args.extend(extra.iter().cloned());
        Server::start(&dir, &args)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client() -> reqwest::Client {
    // The project's client: no redirects followed, a crypto provider installed.
    lbp_cds::outbound::client().unwrap()
}

/// The console cookie a response sets, as `name=value`.
fn set_cookie(response: &reqwest::Response) -> Option<(String, String)> {
    response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|full| {
        let pair = full.split(';').next()?.trim().to_owned();
        pair.starts_with("lbp_cds_console=").then(|| (pair, full.to_owned()))
    })
}

fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[start..start + 64].to_owned()
}

/// A browser-like visit: the cookie it was given and the CSRF token of its session.
struct Visitor {
    client: reqwest::Client,
    cookie: String,
    csrf: String,
}

impl Visitor {
    async fn arrive(server: &Server, page: &str) -> Visitor {
        let client = client();
        let response = client.get(server.url(page)).send().await.unwrap();
        let (cookie, _) = set_cookie(&response).expect("a session cookie");
        let html = response.text().await.unwrap();
        Visitor { client, cookie, csrf: csrf_of(&html) }
    }

    async fn get(&self, server: &Server, path: &str) -> (u16, String) {
        let response = self.client.get(server.url(path)).header("cookie", &self.cookie).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn post(&self, server: &Server, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut fields: Vec<(&str, &str)> = fields.to_vec();
        fields.push(("csrf", &self.csrf));
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let response = self
            .client
            .post(server.url(path))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

/// `(card type, indicator)` of each card shown in a preview page.
fn shown_cards(html: &str) -> Vec<(String, String)> {
    let mut cards: Vec<(String, String)> = html
        .split("<article class=\"card ")
        .skip(1)
        .map(|part| {
            let attribute = |name: &str| {
                let start = part.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                part[start..start + part[start..].find('"').unwrap()].to_owned()
            };
            (attribute("data-card-type"), attribute("data-indicator"))
        })
        .collect();
    cards.sort();
    cards
}

fn shifted_fixture(name: &str, today: &str) -> Vec<u8> {
    let output = Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .arg("fixture")
        .arg(root().join(format!("fixtures/requests/{name}.json")))
        .args(["--today", today])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// The README's first example on a date far from the fixtures' own: `lbp-cds fixture ... | curl`
/// shows the acute-pain imaging warning it is named for; the unshifted request does not.
#[tokio::test]
async fn the_shifted_first_example_shows_its_card_on_any_date() {
    let server = Server::start(&tempdir(), &[]);
    let post = |body: Vec<u8>| {
        let client = client();
        let url = server.url("/cds-services/lbp-order-select");
        async move {
            let response = client.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let shifted = post(shifted_fixture("order-select-mri-acute-lbp", FAR_DATE)).await;
    assert_eq!(card_types(&shifted), vec!["imaging-not-indicated", "pt-referral"]);
    assert_eq!(
        shifted["systemActions"][0]["resource"]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "not-appropriate"
    );
    let unshifted =
        post(std::fs::read(root().join("fixtures/requests/order-select-mri-acute-lbp.json")).unwrap()).await;
    assert!(
        !card_types(&unshifted).contains(&"imaging-not-indicated".to_owned()),
        "without the shift the fixture is five years old: {:?}",
        card_types(&unshifted)
    );
}

/// Every fixture with a 200 answer in `fixtures/expected.json`, moved to a date five years on,
/// gets the cards it was written for.
#[test]
fn every_shifted_fixture_gets_its_expected_cards_far_from_its_date() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/expected.json")).unwrap()).unwrap();
    let content = lbp_cds::content::Content::embedded().unwrap();
    let today = time::Date::parse(FAR_DATE, time::macros::format_description!("[year]-[month]-[day]")).unwrap();
    let days = lbp_cds::console::shift::days_from_fixture_date(today);
    let options = lbp_cds::evaluate::Options::default();
    let mut checked = 0;
    for (name, want) in expected["requests"].as_object().unwrap() {
        if want["status"] != 200 {
            continue;
        }
        let text = std::fs::read_to_string(root().join(format!("fixtures/requests/{name}.json"))).unwrap();
        let mut request: Value = serde_json::from_str(&text).unwrap();
        lbp_cds::console::shift::shift_request(&mut request, days);
        let service = content.service(want["service"].as_str().unwrap()).unwrap();
        let body = serde_json::to_vec(&request).unwrap();
        let outcome = lbp_cds::evaluate::evaluate_body(&content, service, &body, today, &options)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let response = serde_json::to_value(&outcome.response).unwrap();
        let mut want_cards: Vec<String> =
            want["cards"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        want_cards.sort();
        assert_eq!(card_types(&response), want_cards, "{name} on {FAR_DATE}");
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} fixtures checked");
}

#[tokio::test]
async fn preview_feedback_content_and_charts_over_http_without_authentication() {
    // A card text with markup in it: the console must show it as text.
    let dir = tempdir();
    let content = dir.join("cards");
    copy_dir(&root().join("cards"), &content);
    let card = content.join("pt-referral.toml");
    let text = std::fs::read_to_string(&card).unwrap();
    let marked = text.replacen("summary = \"", "summary = \"<script>alert('card')</script> ", 1);
    assert_ne!(text, marked, "pt-referral.toml has a one-line summary");
    std::fs::write(&card, marked).unwrap();
    let server = Server::start(&dir, &["--content".into(), content.display().to_string()]);

    let response = client().get(server.url("/console")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (_, cookie) = set_cookie(&response).expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/console"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http on loopback: {cookie}");
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("Authentication is off (development)"), "every page says so");

    let visitor = Visitor::arrive(&server, "/console/preview").await;
    let (status, html) = visitor
        .post(
            &server,
            "/console/preview",
            &[("source", "fixture"), ("fixture", "order-select-mri-acute-lbp"), ("shift", "on"), ("service", "auto")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(
        shown_cards(&html),
        vec![("imaging-not-indicated".into(), "warning".into()), ("pt-referral".into(), "info".into())],
        "moved to {FAR_DATE}, the fixture shows the acute-pain warning"
    );
    assert!(html.contains("PAMA rating <strong class=\"pama\">not-appropriate</strong>"), "system action shown");
    assert!(html.contains("class=\"episode\">since "), "the episode is shown");
    assert!(!html.contains("<script>alert('card')"), "card text is escaped");
    assert!(html.contains("&lt;script&gt;alert(&#39;card&#39;)&lt;/script&gt;"), "and shown as text");

    // A pasted request with markup in it is shown escaped too (request echo and error message).
    let pasted = json!({"hook": "patient-view", "hookInstance": "<script>alert('pasted')</script>",
        "context": {"patientId": "p1", "userId": "Practitioner/1"}, "prefetch": {}});
    let (status, html) = visitor
        .post(&server, "/console/preview", &[("source", "paste"), ("pasted", &pasted.to_string()), ("service", "auto")])
        .await;
    assert!([200, 400, 412].contains(&status), "{status}");
    assert!(!html.contains("<script>alert('pasted')"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;pasted&#39;)"), "the pasted text is shown escaped");
    let (status, html) = visitor
        .post(&server, "/console/preview", &[("source", "paste"), ("pasted", "{not json"), ("service", "auto")])
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("not valid JSON"), "a clear error, not a 500");

    // Accepting a card posts real feedback, which the acceptance chart counts.
    let (_, charts) = visitor.get(&server, "/console/charts").await;
    assert!(!charts.contains("data-accepted-total=\"1\""), "nothing accepted yet: {charts}");
    let (_, html) = visitor
        .post(
            &server,
            "/console/preview",
            &[("source", "fixture"), ("fixture", "order-select-mri-acute-lbp"), ("shift", "on"), ("service", "auto")],
        )
        .await;
    let card = html.split("data-card-type=\"imaging-not-indicated\"").nth(1).unwrap();
    let field = |name: &str| {
        let start = card.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
        card[start..start + card[start..].find('"').unwrap()].to_owned()
    };
    let (uuid, suggestion) = (field("card"), field("suggestion"));
    let (status, html) = visitor
        .post(
            &server,
            "/console/feedback",
            &[("service", "lbp-order-select"), ("card", &uuid), ("outcome", "accepted"), ("suggestion", &suggestion)],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Accepted: 1 stored, 0 already stored, 0 flagged."), "trusted feedback: {html}");
    let (_, charts) = visitor.get(&server, "/console/charts").await;
    assert!(charts.contains("data-accepted-total=\"1\""), "{charts}");
    assert!(
        charts.contains("data-card-type=\"imaging-not-indicated\" data-shown=\"1\" data-accepted=\"1\""),
        "{charts}"
    );
    let analytics: Value = client().get(server.url("/analytics")).send().await.unwrap().json().await.unwrap();
    let row =
        analytics["cardTypes"].as_array().unwrap().iter().find(|r| r["cardType"] == "imaging-not-indicated").unwrap();
    assert_eq!(row["accepted"], 1, "the same storage as the feedback endpoint: {analytics}");

    // Overriding with a reason shows in the reasons chart.
    let (status, _) = visitor
        .post(
            &server,
            "/console/feedback",
            &[
                ("service", "lbp-order-select"),
                ("card", &field("card")),
                ("outcome", "overridden"),
                ("reason", "urn:lbp-cds:override-reason|specialist-request|Requested by a specialist"),
                ("comment", "<b>x</b>"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let (_, charts) = visitor.get(&server, "/console/charts").await;
    assert!(charts.contains("class=\"chart reasons\""), "{charts}");
    assert!(charts.contains("data-value=\"1\""), "{charts}");
    assert_eq!(visitor.get(&server, "/console/charts?days=0").await.0, 400);
    assert_eq!(visitor.get(&server, "/console/charts?days=x").await.0, 400);

    // "Which rule knows M54.50?"
    let (status, html) = visitor.get(&server, "/console/content?q=M54.50").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-value-set=\"lbp-diagnosis\""), "{html}");
    assert!(html.contains("<code>M54.50</code>"));
    assert!(html.contains("href=\"/console/content/cards/imaging-not-indicated\""));
    let (status, html) = visitor.get(&server, "/console/content/cards/red-flag-cauda-equina").await;
    assert_eq!(status, 200);
    assert!(html.contains("within 365 days") && html.contains("href=\"/console/content/value-sets/cauda-equina\""));
    let (status, html) = visitor.get(&server, "/console/content/value-sets/lbp-diagnosis").await;
    assert_eq!(status, 200);
    assert!(html.contains("class=\"status-V\">V<") || html.contains("class=\"status-S\">S<"));
    assert_eq!(visitor.get(&server, "/console/content/cards/%3Cscript%3E").await.0, 404);

    // CSRF: no token, a wrong one, or another Origin are refused; the refusal changes nothing.
    let refused = client()
        .post(server.url("/console/feedback"))
        .header("cookie", &visitor.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("service=lbp-order-select&card={uuid}&outcome=accepted"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("CSRF token"));
    let wrong = client()
        .post(server.url("/console/preview"))
        .header("cookie", &visitor.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}&source=fixture&fixture=order-select-mri-acute-lbp", "0".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let other_origin = client()
        .post(server.url("/console/preview"))
        .header("cookie", &visitor.cookie)
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}&source=fixture&fixture=order-select-mri-acute-lbp", visitor.csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(other_origin.status(), 403);
    let same_origin = client()
        .post(server.url("/console/preview"))
        .header("cookie", &visitor.cookie)
        .header("origin", format!("http://{}", server.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}&source=fixture&fixture=order-select-mri-acute-lbp&shift=on&service=auto", visitor.csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200);
    let (_, charts) = visitor.get(&server, "/console/charts").await;
    assert!(charts.contains("data-accepted-total=\"1\""), "refused posts stored nothing");
}

#[tokio::test]
async fn with_authentication_the_console_needs_its_own_login() {
    let server = Server::start_with_auth(&[], true);
    let anonymous = client().get(server.url("/console/preview")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/console/login");
    let behind_proxy =
        client().get(server.url("/console/login")).header("host", "cds.example.org").send().await.unwrap();
    let (_, cookie) = set_cookie(&behind_proxy).unwrap();
    assert!(cookie.ends_with("; Secure"), "not loopback: {cookie}");

    let visitor = Visitor::arrive(&server, "/console/login").await;
    let (status, html) = visitor.post(&server, "/console/login", &[("token", "not-the-console-token")]).await;
    assert_eq!(status, 401);
    assert!(html.contains("That is not the console token"));
    assert_eq!(visitor.get(&server, "/console/preview").await.0, 303, "still signed out");
    let (status, _) = visitor
        .post(&server, "/console/preview", &[("source", "fixture"), ("fixture", "order-select-mri-acute-lbp")])
        .await;
    assert_eq!(status, 401, "a POST before login is refused");

    // The right token without the CSRF field is refused too (login CSRF).
    let no_csrf = client()
        .post(server.url("/console/login"))
        .header("cookie", &visitor.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={CONSOLE_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);

    let body = format!("token={CONSOLE_TOKEN}&csrf={}", visitor.csrf);
    let signed_in = client()
        .post(server.url("/console/login"))
        .header("cookie", &visitor.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let (cookie, full) = set_cookie(&signed_in).expect("a new session");
    assert_ne!(cookie, visitor.cookie, "a new session id at login");
    assert!(full.contains("HttpOnly") && full.contains("SameSite=Strict"));
    assert_eq!(visitor.get(&server, "/console/preview").await.0, 303, "the old session id gives nothing");

    let page = client().get(server.url("/console/preview")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(!html.contains("Authentication is off"));
    assert!(html.contains("Sign out"));
    let member = Visitor { client: client(), cookie: cookie.clone(), csrf: csrf_of(&html) };
    let (status, html) = member
        .post(
            &server,
            "/console/preview",
            &[("source", "fixture"), ("fixture", "order-select-mri-acute-lbp"), ("shift", "on"), ("service", "auto")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown_cards(&html).len(), 2, "the preview works behind the login");
    let without = client()
        .post(server.url("/console/preview"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("source=fixture&fixture=order-select-mri-acute-lbp")
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 403, "signed in, but no CSRF token");

    // The hook API keeps its own authentication.
    let hook = client()
        .post(server.url("/cds-services/lbp-order-select"))
        .header("content-type", "application/json")
        .body(shifted_fixture("order-select-mri-acute-lbp", FAR_DATE))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 401);
    let (status, _) = member.post(&server, "/console/logout", &[]).await;
    assert_eq!(status, 303);
    assert_eq!(member.get(&server, "/console").await.0, 303, "signed out");
    let log = server.log();
    assert!(!log.contains(CONSOLE_TOKEN), "the console token is never logged");
    assert!(log.contains("console login with a wrong token refused"));
}

#[tokio::test]
async fn with_authentication_and_no_console_token_the_console_stays_closed() {
    let server = Server::start_with_auth(&[], false);
    let response = client().get(server.url("/console")).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("--console-token-file"));
}

#[tokio::test]
async fn no_console_serves_none() {
    let server = Server::start(&tempdir(), &["--no-console".into()]);
    let response = client().get(server.url("/console")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(client().get(server.url("/health")).send().await.unwrap().status(), 200);
}

#[test]
fn a_short_console_token_stops_start_up() {
    let dir = tempdir();
    std::fs::write(dir.join("token"), "short").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .args(["serve", "--listen", "127.0.0.1:0", "--console-token-file"])
        .arg(dir.join("token"))
        .env("LBP_CDS_DATABASE_URL", format!("sqlite://{}", dir.join("db").display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 16 characters") && !stderr.contains("short\""), "{stderr}");
}

// ----------------------------------------------------------------------------------------------
// Headless Chromium through chromedriver (W3C WebDriver over HTTP, plain reqwest).

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Tallest card allowed in the preview at 1280 px: a brief card (issue 16) with its action
/// buttons leaves room on one screen for the next card (they measured 850 to 1,220 px before).
const MAX_CARD_HEIGHT: Option<i64> = Some(650);

struct Browser {
    http: reqwest::Client,
    base: String,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Chromium and its driver, or `None` (with the reason printed) when they are not installed.
    async fn start() -> Option<Browser> {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists());
        let driver = ["/usr/bin/chromedriver"].into_iter().find(|p| Path::new(p).exists());
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            assert!(
                std::env::var("LBP_CDS_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
                "LBP_CDS_REQUIRE_CHROMIUM=1 but chromium or chromedriver is missing"
            );
            eprintln!(
                "SKIPPED: the browser tests need Debian's chromium and chromium-driver (scripts/test installs them)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempdir();
        let mut browser = Browser { http: client(), base: format!("http://127.0.0.1:{port}"), driver, profile };
        let deadline = Instant::now() + Duration::from_secs(20);
        while browser.http.get(format!("{}/status", browser.base)).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--hide-scrollbars", "--window-size=1280,1000",
                         format!("--user-data-dir={}", browser.profile.display())]
            }
        }}});
        let session = browser.call("POST", "/session", Some(capabilities)).await;
        let id = session["sessionId"].as_str().expect("a WebDriver session").to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        Some(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if let Some(error) = value.get("error") {
            panic!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        answer.get("sessionId").map_or(value, |_| answer.clone())
    }

    async fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.script("return document.querySelector(arguments[0]) !== null", json!([css])).await;
            if found == json!(true) {
                break;
            }
            assert!(Instant::now() < deadline, "no element {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let element = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css}))).await;
        element[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/click"), None).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call("POST", &format!("/element/{element}/clear"), None).await;
        self.call("POST", &format!("/element/{element}/value"), Some(json!({"text": text}))).await;
    }

    async fn script(&self, source: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": source, "args": args}))).await
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await;
        self.script("return document.querySelector(arguments[0]).textContent", json!([css]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn current_url(&self) -> String {
        self.call("GET", "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Screenshots of the page at 1280 and 800 px wide, into `target/console-screenshots/`.
    async fn screenshots(&self, name: &str) {
        use base64::Engine;
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("console-screenshots");
        std::fs::create_dir_all(&folder).unwrap();
        // The first screen at 1280 x 900 (what `docs/console/` holds for the README), then the
        // whole page, up to 4,000 px tall, at 1280 and 800 px wide.
        self.call("POST", "/window/rect", Some(json!({"width": 1280, "height": 900}))).await;
        let png = self.call("GET", "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::write(folder.join(format!("{name}-first-screen.png")), bytes).unwrap();
        for width in [1280, 800] {
            self.call("POST", "/window/rect", Some(json!({"width": width, "height": 1000}))).await;
            let tall = self.script("return document.documentElement.scrollHeight", json!([])).await.as_i64().unwrap();
            self.call("POST", "/window/rect", Some(json!({"width": width, "height": (tall + 140).min(4000)}))).await;
            let shown: i64 =
                self.script("return document.documentElement.clientWidth", json!([])).await.as_i64().unwrap();
            let overflow: i64 =
                self.script("return document.documentElement.scrollWidth", json!([])).await.as_i64().unwrap();
            assert!(overflow <= shown + 1, "{name} at {width} px: no sideways scrolling ({overflow} > {shown})");
            let png = self.call("GET", "/screenshot", None).await;
            let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
            std::fs::write(folder.join(format!("{name}-{width}.png")), bytes).unwrap();
        }
        self.call("POST", "/window/rect", Some(json!({"width": 1280, "height": 1000}))).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One browser session through every page: login, preview with the cards' indicators, an
/// accepted card changing the acceptance chart, the content browser searched by code, a POST
/// without the CSRF token refused, keyboard focus, and screenshots of each page.
#[tokio::test]
async fn the_console_in_headless_chromium() {
    let Some(browser) = Browser::start().await else { return };
    let cohort = tempdir();
    let output = Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .args(["cohort"])
        .arg(root().join("fixtures/cohort/bundles"))
        .args(["--today", "2026-11-25", "--quiet", "--out"])
        .arg(&cohort)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = cohort.join("cohort.json");
    let server = Server::start_with_auth(&["--cohort-report".into(), report.display().to_string()], true);

    browser.go(&server.url("/console/preview")).await;
    assert!(browser.current_url().await.ends_with("/console/login"), "signed out: sent to the login");
    browser.screenshots("login").await;
    browser.type_into("#token", CONSOLE_TOKEN).await;
    browser.click("main button[type=submit]").await;
    browser.find("nav a[aria-current=page]").await;
    browser.screenshots("overview").await;

    // Keyboard: the first Tab lands on the skip link, and focus is visible.
    browser
        .call(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
        {"type": "keyDown", "value": "\u{E004}"}, {"type": "keyUp", "value": "\u{E004}"}]}]})),
        )
        .await;
    let focused = browser
        .script(
            "return document.activeElement.className + ' ' + getComputedStyle(document.activeElement).outlineStyle",
            json!([]),
        )
        .await;
    assert_eq!(focused, json!("skip solid"), "the skip link takes the first Tab, with a focus outline");

    browser.go(&server.url("/console/charts")).await;
    let before = browser.script("return document.querySelector('svg.acceptance') ? document.querySelector('svg.acceptance').dataset.acceptedTotal : '0'", json!([])).await;
    assert_eq!(before, json!("0"));

    browser.go(&server.url("/console/preview")).await;
    browser.click("#source-fixture").await;
    let checked = browser.script("return document.getElementById('shift').checked", json!([])).await;
    assert_eq!(checked, json!(true), "stored requests are moved to the clinical date by default");
    browser.click(".preview-form button[type=submit]").await;
    browser.find("article.card").await;
    let cards = browser
        .script(
            "return [...document.querySelectorAll('article.card')].map(c => [c.dataset.cardType, c.dataset.indicator, getComputedStyle(c).borderLeftColor])",
            json!([]),
        )
        .await;
    let cards = cards.as_array().unwrap();
    assert_eq!(cards.len(), 2, "{cards:?}");
    assert_eq!(cards[0][0], "imaging-not-indicated");
    assert_eq!(cards[0][1], "warning");
    assert_eq!(cards[0][2], "rgb(179, 89, 0)", "the warning colour");
    assert_eq!(cards[1][0], "pt-referral");
    assert_eq!(cards[1][1], "info");
    assert_eq!(cards[1][2], "rgb(9, 105, 218)", "the info colour");
    let heights = browser
        .script("return [...document.querySelectorAll('article.card')].map(c => Math.round(c.getBoundingClientRect().height))", json!([]))
        .await;
    eprintln!("card heights at 1280 px (order-select-mri-acute-lbp): {heights}");
    browser.screenshots("preview").await;

    browser.click("article.card[data-card-type=imaging-not-indicated] button.accept").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = browser.text("article.card[data-card-type=imaging-not-indicated] .status").await;
        if status.contains("Accepted: 1 stored") {
            break;
        }
        assert!(Instant::now() < deadline, "no receipt: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.go(&server.url("/console/charts")).await;
    let after =
        browser.script("return document.querySelector('svg.acceptance').dataset.acceptedTotal", json!([])).await;
    assert_eq!(after, json!("1"), "the accepted card shows in the acceptance chart");
    let row = browser.text("tr[data-card-type=imaging-not-indicated] .accepted-count").await;
    assert_eq!(row, "1");
    let burden = browser.script("return document.querySelectorAll('svg.burden g').length", json!([])).await;
    assert!(burden.as_i64().unwrap() >= 3, "the cohort's cards per type and indicator: {burden}");
    assert_eq!(browser.text(".cohort").await.split(' ').next(), Some("40"), "patients of the committed cohort");
    browser.screenshots("charts").await;

    browser.go(&server.url("/console/content")).await;
    browser.type_into("#q", "M54.50").await;
    browser.click(".search button").await;
    browser.find("article.hit[data-value-set=lbp-diagnosis]").await;
    let users = browser.script("return [...document.querySelectorAll('article.hit[data-value-set=lbp-diagnosis] a.card-type')].map(a => a.textContent)", json!([])).await;
    assert!(users.as_array().unwrap().iter().any(|u| u == "imaging-not-indicated"), "{users}");
    browser.screenshots("content-search").await;
    browser.go(&server.url("/console/content/cards/imaging-not-indicated")).await;
    browser.find("dl.thresholds").await;
    browser.screenshots("content-card-type").await;
    browser.go(&server.url("/console/content/value-sets/lbp-diagnosis")).await;
    browser.find("table.codes").await;
    browser.screenshots("content-value-set").await;

    // A POST from this page without the CSRF token is refused, though the cookie goes with it.
    let status = browser
        .call("POST", "/execute/async", Some(json!({"script":
            "const done = arguments[0]; fetch('/console/preview', {method: 'POST', credentials: 'same-origin', \
             headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'source=fixture&fixture=order-select-mri-acute-lbp'}) \
             .then(r => done(r.status), e => done(String(e)));", "args": []})))
        .await;
    assert_eq!(status, json!(403));
    // Every stored request through the preview at 1280 px: the cards `fixtures/expected.json`
    // names, and each card's height (the brevity target of issue 16 is 400 px; measured here,
    // asserted once cards are brief).
    browser.go(&server.url("/console/preview")).await;
    browser.call("POST", "/timeouts", Some(json!({"script": 180_000}))).await;
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/expected.json")).unwrap()).unwrap();
    let names: Vec<&String> = expected["requests"].as_object().unwrap().keys().collect();
    let shown = browser
        .call("POST", "/execute/async", Some(json!({"script": r#"
            const [names, done] = arguments;
            (async () => {
              const csrf = document.querySelector('input[name=csrf]').value;
              const box = document.createElement('div');
              document.querySelector('main').prepend(box);
              const out = {};
              for (const name of names) {
                const body = new URLSearchParams({csrf, source: 'fixture', fixture: name, shift: 'on', service: 'auto'});
                const response = await fetch('/console/preview', {method: 'POST', body, credentials: 'same-origin'});
                const page = new DOMParser().parseFromString(await response.text(), 'text/html');
                box.replaceChildren(...page.querySelectorAll('div.cards'));
                out[name] = [response.status, [...box.querySelectorAll('article.card')]
                  .map(c => [c.dataset.cardType, Math.round(c.getBoundingClientRect().height)])];
              }
              done(out);
            })().catch(e => done(String(e)));"#, "args": [names]})))
        .await;
    let mut tallest = (String::new(), 0);
    let mut over_400 = 0;
    for (name, want) in expected["requests"].as_object().unwrap() {
        let (status, cards) = (&shown[name][0], shown[name][1].as_array().unwrap());
        assert_eq!(status, &want["status"], "{name}: {shown}");
        let mut types: Vec<&str> = cards.iter().map(|c| c[0].as_str().unwrap()).collect();
        types.sort();
        let mut want_types: Vec<&str> = want["cards"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        want_types.sort();
        assert_eq!(types, want_types, "{name} in the preview on {FAR_DATE}");
        for card in cards {
            let height = card[1].as_i64().unwrap();
            over_400 += usize::from(height > 400);
            if height > tallest.1 {
                tallest = (format!("{name} {}", card[0]), height);
            }
        }
    }
    eprintln!(
        "preview of {} fixtures at 1280 px: {over_400} cards over 400 px; tallest {} at {} px",
        names.len(),
        tallest.0,
        tallest.1
    );
    if let Some(limit) = MAX_CARD_HEIGHT {
        assert!(tallest.1 <= limit, "{} is {} px tall at 1280 px (limit {limit})", tallest.0, tallest.1);
    }
    browser.call("DELETE", "", None).await;
    let _ = std::fs::remove_dir_all(&cohort);
}
