//! The service as a fleet: real `lbp-cds serve` processes sharing a real Redis
//! (`redis-server`) and a real PostgreSQL, behind a real load balancer (HAProxy), stopped with
//! real signals. `scripts/test` installs redis-server and haproxy (Debian packages) when they are
//! missing and starts a throwaway PostgreSQL cluster (`LBP_CDS_TEST_POSTGRES_URL`); without it the
//! PostgreSQL tests say they were skipped (and fail with `LBP_CDS_REQUIRE_POSTGRES=1`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::databases::{self, Db};
use lbp_cds::auth::keys::{KeyPair, client_claims};
use lbp_cds::storage::Store;
use serde_json::{Value, json};

const ISSUER: &str = "https://ehr.example.org";
/// The fleet's public URL (the load balancer's), the `aud` prefix of every token.
const PUBLIC: &str = "http://cds.fleet.test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on port {port}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success(), "kill -{name} {}", child.id());
}

fn program(name: &str) -> String {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().unwrap();
    assert!(
        found.status.success(),
        "{name} is required by the fleet tests: run scripts/test (it installs it) or `apt-get install {name}`"
    );
    String::from_utf8(found.stdout).unwrap().trim().to_owned()
}

/// A real Redis on a random port in a temporary directory, without persistence; stopped on drop.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start() -> Redis {
        let dir = tempdir();
        Redis::start_on(free_port(), dir)
    }

    fn start_on(port: u16, dir: PathBuf) -> Redis {
        let child = Command::new(program("redis-server"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "redis-server");
        Redis { child, port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it, keeping the port and directory for a restart.
    fn stop(mut self) -> (u16, PathBuf) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let kept = (self.port, self.dir.clone());
        std::mem::forget(self);
        kept
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `lbp-cds serve` process; its log (stderr) is collected; killed on drop. Without a
/// `--database-url` among its arguments it gets a SQLite file of its own in a temporary directory.
struct Replica {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<String>>,
    own_database: Option<PathBuf>,
}

impl Replica {
    fn start(args: &[String]) -> Replica {
        let own_database = (!args.iter().any(|a| a == "--database-url")).then(tempdir);
        let database_args: Vec<String> = match &own_database {
            Some(dir) => vec!["--database-url".into(), format!("sqlite://{}", dir.join("replica.db").display())],
            None => Vec::new(),
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_lbp-cds"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--today", "2026-03-02"])
            .args(args)
            .args(database_args)
            .env("LBP_CDS_LOG", "info");
        let (Logged { child, log, .. }, address) = spawn_logged(command);
        Replica { child, address, log, own_database }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it holds `needle` (lines arrive through a pipe, a moment after the fact).
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "no {needle:?} in the log: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit (at most `limit`) and returns its exit code.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the replica did not exit within {limit:?}: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.own_database {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Keys, a JWKS server and an authentication configuration shared by the replicas.
struct Issuer {
    pair: KeyPair,
    jwks: JwksServer,
    config: PathBuf,
}

impl Issuer {
    async fn start(dir: &Path) -> Issuer {
        let pair = KeyPair::generate("ES384", "fleet-1").unwrap();
        let jwks = JwksServer::start(serde_json::to_value(pair.jwks()).unwrap()).await;
        let config = dir.join("auth.toml");
        std::fs::write(
            &config,
            format!(
                "public_base_url = \"{PUBLIC}\"\nallow_insecure_http = true\n\n[[issuers]]\niss = \"{ISSUER}\"\njwks_url = \"{}\"\nfhir_servers = [\"https://fhir.example.org/r4\"]\n",
                jwks.url
            ),
        )
        .unwrap();
        Issuer { pair, jwks, config }
    }

    fn token(&self, service: &str) -> String {
        self.pair.sign(&client_claims(ISSUER, &format!("{PUBLIC}/cds-services/{service}"), 300, None)).unwrap()
    }

    fn args(&self, redis: &Redis) -> Vec<String> {
        vec!["--auth-config".into(), self.config.display().to_string(), "--redis-url".into(), redis.url()]
    }
}

fn fresh_client() -> reqwest::Client {
    // The service's own client installs the TLS provider reqwest needs (rustls-no-provider).
    let _ = lbp_cds::outbound::client();
    // A new connection per call, as calls from many EHR sessions arrive.
    reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(20)).build().unwrap()
}

async fn call(client: &reqwest::Client, url: &str, token: Option<&str>) -> Result<(u16, Value), reqwest::Error> {
    let mut request = client.post(url).json(&Scenario::new("patient-view", 45).low_back_pain(7).body());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

async fn get(url: &str) -> (u16, Value) {
    let response = fresh_client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

const SERVICE: &str = "lbp-patient-view";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_replay_cache_and_fetched_key_sets_through_redis() {
    let dir = tempdir();
    let redis = Redis::start();
    let issuer = Issuer::start(&dir).await;
    let a = Replica::start(&issuer.args(&redis));
    let b = Replica::start(&issuer.args(&redis));
    let client = fresh_client();
    let path = format!("/cds-services/{SERVICE}");

    let token = issuer.token(SERVICE);
    let (status, response) = call(&client, &a.url(&path), Some(&token)).await.unwrap();
    assert_eq!(status, 200, "{response}");
    assert_eq!(issuer.jwks.fetch_count(), 1, "replica a fetched the key set");
    let (status, _) = call(&client, &b.url(&path), Some(&token)).await.unwrap();
    assert_eq!(status, 401, "the jti used on replica a is refused by replica b");
    b.wait_for_log("jti was already used");
    assert_eq!(issuer.jwks.fetch_count(), 1, "replica b read the key set replica a fetched, from Redis");

    // A fresh token is accepted on b, once.
    let fresh = issuer.token(SERVICE);
    assert_eq!(call(&client, &b.url(&path), Some(&fresh)).await.unwrap().0, 200);
    assert_eq!(call(&client, &a.url(&path), Some(&fresh)).await.unwrap().0, 401);
    assert_eq!(call(&client, &b.url(&path), Some(&fresh)).await.unwrap().0, 401, "and refused again by b itself");

    // Concurrent use of one token on both replicas: exactly one call is accepted.
    let race = issuer.token(SERVICE);
    let (url_a, url_b) = (a.url(&path), b.url(&path));
    let (first, second) = tokio::join!(call(&client, &url_a, Some(&race)), call(&client, &url_b, Some(&race)));
    let mut statuses = vec![first.unwrap().0, second.unwrap().0];
    statuses.sort();
    assert_eq!(statuses, vec![200, 401]);

    let (status, ready) = get(&a.url("/ready")).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["cache"]["kind"], "redis");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_waits_for_redis_with_bounded_retries() {
    // Redis starts a second after the replica: the replica waits, then serves.
    let port = free_port();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        Redis::start_on(port, tempdir())
    });
    let url = format!("redis://127.0.0.1:{port}/0");
    let started = Instant::now();
    let replica = Replica::start(&["--redis-url".into(), url, "--dependency-wait-ms".into(), "20000".into()]);
    let _redis = late.join().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900), "it listened only once Redis answered");
    replica.wait_for_log("connected to the shared cache");
    let (status, ready) = get(&replica.url("/ready")).await;
    assert_eq!((status, &ready["cache"]["status"]), (200, &json!("ok")), "{ready}");

    // Redis never comes: start-up gives up after the wait, exit code 2, the reason on stderr.
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .args(["serve", "--listen", "127.0.0.1:0", "--dependency-wait-ms", "1000", "--redis-url"])
        .arg(format!("redis://127.0.0.1:{}/0", free_port()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the shared cache"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(8), "bounded: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_refuses_calls_loudly_and_recovers_when_redis_returns() {
    let dir = tempdir();
    let redis = Redis::start();
    let issuer = Issuer::start(&dir).await;
    let replica = Replica::start(&issuer.args(&redis));
    let client = fresh_client();
    let url = replica.url(&format!("/cds-services/{SERVICE}"));
    assert_eq!(call(&client, &url, Some(&issuer.token(SERVICE))).await.unwrap().0, 200);

    let (port, redis_dir) = redis.stop();
    let (status, _) = call(&client, &url, Some(&issuer.token(SERVICE))).await.unwrap();
    assert_eq!(status, 401, "without the shared replay cache a token cannot be checked: refused, never accepted");
    replica.wait_for_log("replay check unavailable");
    replica.wait_for_log("shared cache operation failed");
    let (status, ready) = get(&replica.url("/ready")).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["cache"]["status"], "error", "{ready}");
    let metrics = client.get(replica.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("lbp_cds_shared_cache_errors_total{reason=\"replay\"}"), "{metrics}");
    assert!(metrics.contains("lbp_cds_auth_failures_total{reason=\"replay_check_unavailable\"}"), "{metrics}");

    // Redis comes back on the same address: the replica reconnects by itself.
    let _redis = Redis::start_on(port, redis_dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = call(&client, &url, Some(&issuer.token(SERVICE))).await.unwrap();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not recover after Redis returned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(&replica.url("/ready")).await.0, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_load_completes_every_accepted_call_and_exits_zero() {
    // Delays generous enough for a busy shared machine; the checks below are timed from SIGTERM.
    let mut replica =
        Replica::start(&["--shutdown-delay-ms".into(), "3000".into(), "--shutdown-grace-ms".into(), "10000".into()]);
    let url = replica.url(&format!("/cds-services/{SERVICE}"));

    // A call in flight across the whole shutdown: its head and half its body now, the rest
    // after the replica has stopped accepting connections.
    let body = serde_json::to_vec(&Scenario::new("patient-view", 45).low_back_pain(7).body()).unwrap();
    let mut slow = TcpStream::connect(replica.address).unwrap();
    let head = format!(
        "POST /cds-services/{SERVICE} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        replica.address,
        body.len()
    );
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&body[..body.len() / 2]).unwrap();

    // Load: eight callers, each calling again as soon as answered, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let after_sigterm = Arc::new(AtomicBool::new(false));
    let answered_after_sigterm = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for _ in 0..8 {
        let (url, stop, after, counted) =
            (url.clone(), stop.clone(), after_sigterm.clone(), answered_after_sigterm.clone());
        callers.push(tokio::spawn(async move {
            let client = fresh_client();
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let sent_after = after.load(Ordering::SeqCst);
                let outcome =
                    call(&client, &url, None).await.map(|(status, response)| (status, response["cards"].is_array()));
                if sent_after && matches!(outcome, Ok((200, true))) {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                outcomes.push(outcome.map_err(|e| e.to_string()));
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&replica.child, "TERM");
    let sigterm_at = tokio::time::Instant::now();
    after_sigterm.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, ready) = get(&replica.url("/ready")).await;
    assert_eq!(status, 503, "readiness turns false at once: {ready}");
    assert_eq!(ready["reasons"], json!(["shutting down"]));
    // A load balancer stops sending once readiness fails; the callers stop within the delay.
    tokio::time::sleep_until(sigterm_at + Duration::from_millis(1000)).await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for caller in callers {
        outcomes.extend(caller.await.unwrap());
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| !matches!(o, Ok((200, true)))).collect();
    assert!(failed.is_empty(), "every call sent before and during the drain was answered with cards: {failed:?}");
    assert!(outcomes.len() >= 16, "the load was real: {} calls", outcomes.len());
    eprintln!(
        "SIGTERM under load: {} calls, {} sent after SIGTERM, all answered",
        outcomes.len(),
        answered_after_sigterm.load(Ordering::SeqCst)
    );
    assert!(answered_after_sigterm.load(Ordering::SeqCst) > 0, "calls sent after SIGTERM were served too");

    // Past the delay the listener is closed, while the slow call is still in flight.
    tokio::time::sleep_until(sigterm_at + Duration::from_millis(3600)).await;
    assert!(TcpStream::connect(replica.address).is_err(), "no new connections after the drain delay");
    slow.write_all(&body[body.len() / 2..]).unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "the call in flight completed: {answer}");
    assert!(answer.contains("\"cards\""), "{answer}");
    assert_eq!(replica.wait_exit(Duration::from_secs(10)), Some(0), "exit 0 after a graceful stop: {}", replica.log());
}

/// Replaces a file in one step, as a ConfigMap update does (a reader never sees half a file).
/// The temporary name starts with a dot: the content loader skips such names.
fn replace_file(path: &Path, text: &str) {
    let temporary = path.with_file_name(format!(".{}.new", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

async fn served_version(client: &reqwest::Client, replica: &Replica) -> String {
    let (status, response) = call(client, &replica.url(&format!("/cds-services/{SERVICE}")), None).await.unwrap();
    assert_eq!(status, 200, "{response}");
    assert_valid_response(&response);
    response["extension"]["lbp-cds"]["contentVersion"]
        .as_str()
        .expect("every response names its content version")
        .to_owned()
}

async fn wait_until(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_content_change_keeps_the_old_content_and_a_good_one_replaces_it_without_restart() {
    let dir = tempdir();
    let cards = dir.join("cards");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cards"), &cards);
    let replica =
        Replica::start(&["--content".into(), cards.display().to_string(), "--content-poll-ms".into(), "200".into()]);
    let client = fresh_client();
    let original = served_version(&client, &replica).await;
    assert_eq!(get(&replica.url("/ready")).await.1["content"]["version"], original.as_str());

    // A bad change (a threshold of zero weeks): refused, the old content keeps serving.
    let rules = cards.join("rules.toml");
    let good_rules = std::fs::read_to_string(&rules).unwrap();
    replace_file(&rules, &good_rules.replace("imaging_threshold_weeks = 6", "imaging_threshold_weeks = 0"));
    wait_until(Duration::from_secs(10), "the refused change shows in /ready", async || {
        get(&replica.url("/ready")).await.1["content"].get("rejectedChange").is_some()
    })
    .await;
    let (status, ready) = get(&replica.url("/ready")).await;
    assert_eq!(status, 200, "a refused change does not take the replica out of service: {ready}");
    assert_eq!(ready["content"]["rejectedChange"]["file"], "rules.toml", "{ready}");
    assert_eq!(ready["content"]["rejectedChange"]["field"], "thresholds.imaging_threshold_weeks", "{ready}");
    assert_ne!(ready["content"]["rejectedChange"]["version"], original.as_str(), "{ready}");
    assert_eq!(ready["content"]["version"], original.as_str());
    assert_eq!(served_version(&client, &replica).await, original, "the old content still answers");
    let metrics = client.get(replica.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("lbp_cds_content_reload_failing 1"), "{metrics}");
    assert!(metrics.contains("lbp_cds_content_reloads_total{reason=\"rejected\"} 1"), "{metrics}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = replica.wait_for_log("content change refused");
    assert!(log.contains("thresholds.imaging_threshold_weeks"), "{log}");
    assert_eq!(log.matches("content change refused").count(), 1, "logged once, not at every poll: {log}");

    // A good change: validated, swapped in, named by the new version in every answer.
    replace_file(&rules, &format!("{good_rules}\n# reviewed again\n"));
    wait_until(Duration::from_secs(10), "the good change is served", async || {
        served_version(&client, &replica).await != original
    })
    .await;
    let (_, ready) = get(&replica.url("/ready")).await;
    assert!(ready["content"].get("rejectedChange").is_none(), "{ready}");
    assert_eq!(ready["content"]["version"], served_version(&client, &replica).await.as_str());
    let metrics = client.get(replica.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("lbp_cds_content_reload_failing 0"), "{metrics}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_content_directory() {
    let dir = tempdir();
    let cards = dir.join("cards");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cards"), &cards);
    // No polling: only the signal can reload.
    let replica =
        Replica::start(&["--content".into(), cards.display().to_string(), "--content-poll-ms".into(), "0".into()]);
    let client = fresh_client();
    let original = served_version(&client, &replica).await;
    let rules = cards.join("rules.toml");
    replace_file(&rules, &format!("{}\n# signed off\n", std::fs::read_to_string(&rules).unwrap()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_version(&client, &replica).await, original, "nothing reloads without the signal");
    signal(&replica.child, "HUP");
    wait_until(Duration::from_secs(10), "SIGHUP reloads", async || served_version(&client, &replica).await != original)
        .await;
    replica.wait_for_log("SIGHUP: reloading content");
    let _ = std::fs::remove_dir_all(&dir);
}

/// HAProxy in front of the replicas, health-checking `/ready`, retrying a call refused by a dead
/// replica on the other (hook calls are idempotent: card uuids derive from `hookInstance`).
struct LoadBalancer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl LoadBalancer {
    fn start(backends: &[SocketAddr]) -> LoadBalancer {
        let dir = tempdir();
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, address)| format!("    server replica{i} {address} check inter 200ms fall 1 rise 2\n"))
            .collect();
        let config = format!(
            "global\n    maxconn 512\n\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 20s\n    timeout server 20s\n    retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response response-timeout\n\nfrontend fleet\n    bind 127.0.0.1:{port}\n    http-request wait-for-body time 2s\n    default_backend replicas\n\nbackend replicas\n    balance roundrobin\n    option httpchk GET /ready\n{servers}"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new(program("haproxy")).arg("-c").arg("-f").arg(&path).output().unwrap();
        assert!(check.status.success(), "haproxy configuration: {}", String::from_utf8_lossy(&check.stderr));
        let child = Command::new(program("haproxy"))
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "haproxy");
        LoadBalancer { child, port, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_replica_behind_a_load_balancer_and_the_other_keeps_answering() {
    let mut a = Replica::start(&[]);
    let b = Replica::start(&[]);
    let balancer = LoadBalancer::start(&[a.address, b.address]);
    let client = fresh_client();
    let url = balancer.url(&format!("/cds-services/{SERVICE}"));
    // Both replicas are in service (each answers some calls).
    wait_until(Duration::from_secs(10), "the load balancer sees both replicas ready", async || {
        call(&client, &url, None).await.is_ok_and(|(status, _)| status == 200)
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (url, stop) = (url.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            let client = fresh_client();
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let outcome =
                    call(&client, &url, None).await.map(|(status, response)| (status, response["cards"].is_array()));
                outcomes.push(outcome.map_err(|e| e.to_string()));
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.child.kill().unwrap();
    let _ = a.child.wait();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for caller in callers {
        outcomes.extend(caller.await.unwrap());
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| !matches!(o, Ok((200, true)))).collect();
    assert!(failed.is_empty(), "every call through the load balancer was answered with cards: {failed:?}");
    assert!(outcomes.len() >= 8, "the load was real: {} calls", outcomes.len());
    eprintln!("SIGKILL behind the load balancer: {} calls, all answered", outcomes.len());
    b.wait_for_log("hook answered");
    // And afterwards, the survivor alone answers.
    for _ in 0..5 {
        assert_eq!(call(&client, &url, None).await.unwrap().0, 200);
    }
}

// ---- One database for the fleet: feedback and the audit trail in a shared PostgreSQL ----

const ORDER_SERVICE: &str = "lbp-order-select";

/// The MRI order for acute low back pain (an imaging warning offering suggestions), under a fresh
/// `hookInstance`: every call issues cards of its own (card uuids derive from it).
fn imaging_request() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/requests/order-select-mri-acute-lbp.json");
    let mut request: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    request["hookInstance"] = json!(uuid::Uuid::new_v4().to_string());
    request
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> Result<(u16, Value), reqwest::Error> {
    let response = client.post(url).json(body).send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// The imaging card of an answer: its uuid and its first suggestion's.
fn imaging_card(response: &Value) -> (String, String) {
    let card = card(response, "imaging-not-indicated");
    (card["uuid"].as_str().unwrap().to_owned(), card["suggestions"][0]["uuid"].as_str().unwrap().to_owned())
}

fn accepted(card: &str, suggestion: &str) -> Value {
    json!({"feedback": [{"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}],
        "outcomeTimestamp": "2026-03-02T10:15:00Z"}]})
}

/// Arguments for a replica on `db`, with the tests' id key in a file in `dir`.
fn database_args(db: &Db, dir: &Path) -> Vec<String> {
    let key = dir.join("id.key");
    std::fs::write(&key, databases::KEY).unwrap();
    vec!["--database-url".into(), db.url.clone(), "--audit-id-key-file".into(), key.display().to_string()]
}

async fn metric(client: &reqwest::Client, replica: &Replica, name: &str) -> Option<f64> {
    let text = client.get(replica.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).map(|v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_postgres_feedback_and_audit_store() {
    let Some(db) = Db::postgres().await else { return };
    let dir = tempdir();
    let args = database_args(&db, &dir);
    let a = Replica::start(&args);
    let b = Replica::start(&args);
    let client = fresh_client();
    let store = Store::open(&db.url).await.unwrap();

    // Cards issued by A; feedback posted to B as soon as A has answered, when A's audit row is
    // usually still in A's queue (its writer gathers calls for 50 ms before a commit).
    let mut cards = Vec::new();
    let mut pending_when_posted = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let (status, response) =
            post_json(&client, &a.url(&format!("/cds-services/{ORDER_SERVICE}")), &imaging_request()).await.unwrap();
        assert_eq!(status, 200, "{response}");
        let (card, suggestion) = imaging_card(&response);
        if store.issued(&card).await.unwrap().is_none() {
            pending_when_posted += 1;
        }
        let posted = Instant::now();
        let (status, receipt) = post_json(
            &client,
            &b.url(&format!("/cds-services/{ORDER_SERVICE}/feedback")),
            &accepted(&card, &suggestion),
        )
        .await
        .unwrap();
        slowest = slowest.max(posted.elapsed());
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(receipt, json!({"stored": 1, "duplicates": 0, "flagged": 0}), "B found the card A issued: {card}");
        cards.push(card);
    }
    eprintln!(
        "shared PostgreSQL: {pending_when_posted} of 10 cards were not yet in the store when their feedback was \
         posted to the other replica; slowest feedback answer {slowest:?}"
    );
    assert!(pending_when_posted > 0, "the race was exercised: feedback arrived before A's audit row");

    // The feedback listing: one trusted row per card, posted to B, about a card A issued.
    for card in &cards {
        let rows = store.feedback_for(card).await.unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].trusted(), "{:?}", rows[0].flags);
        assert_eq!(store.audit_rows(card).await.unwrap().len(), 1, "A's audit row for {card}");
    }
    // A's analytics see the feedback B stored.
    let (status, report) = get(&a.url("/analytics?from=2020-01-01&to=2100-01-01")).await;
    assert_eq!(status, 200, "{report}");
    let imaging =
        report["cardTypes"].as_array().unwrap().iter().find(|c| c["cardType"] == "imaging-not-indicated").unwrap();
    assert_eq!((imaging["shown"].as_i64(), imaging["accepted"].as_i64()), (Some(10), Some(10)), "{imaging}");
    // And so does the report command on the same database.
    let output = Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .args(["report", "--database-url", &db.url, "--from", "2020-01-01", "--to", "2100-01-01"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("imaging-not-indicated: shown 10, accepted 10"), "{text}");

    // A card nobody issued is still stored, flagged, after a bounded wait (2 s by default).
    let started = Instant::now();
    let (status, receipt) = post_json(
        &client,
        &b.url(&format!("/cds-services/{ORDER_SERVICE}/feedback")),
        &accepted(&uuid::Uuid::new_v4().to_string(), "none"),
    )
    .await
    .unwrap();
    assert_eq!((status, &receipt["flagged"]), (200, &json!(1)), "{receipt}");
    assert!(started.elapsed() < Duration::from_secs(5), "the wait is bounded: {:?}", started.elapsed());
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_of_two_replicas_sharing_postgres_loses_no_acknowledged_feedback() {
    let Some(db) = Db::postgres().await else { return };
    let dir = tempdir();
    let args = database_args(&db, &dir);
    let mut a = Replica::start(&args);
    let b = Replica::start(&args);
    let balancer = LoadBalancer::start(&[a.address, b.address]);
    let client = fresh_client();
    let hook_url = balancer.url(&format!("/cds-services/{ORDER_SERVICE}"));
    let feedback_url = balancer.url(&format!("/cds-services/{ORDER_SERVICE}/feedback"));
    wait_until(Duration::from_secs(10), "the load balancer sees both replicas ready", async || {
        post_json(&client, &hook_url, &imaging_request()).await.is_ok_and(|(status, _)| status == 200)
    })
    .await;

    // Four callers: a hook call, then feedback on its card, again and again, through HAProxy.
    let stop = Arc::new(AtomicBool::new(false));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (hook_url, feedback_url, stop, killed_at) =
            (hook_url.clone(), feedback_url.clone(), stop.clone(), killed_at.clone());
        callers.push(tokio::spawn(async move {
            let client = fresh_client();
            let (mut calls, mut acknowledged, mut refused) = (Vec::new(), Vec::new(), Vec::new());
            while !stop.load(Ordering::SeqCst) {
                let outcome = post_json(&client, &hook_url, &imaging_request()).await;
                let Ok((200, response)) = &outcome else {
                    calls.push(outcome.map(|(status, _)| status).map_err(|e| e.to_string()));
                    continue;
                };
                calls.push(Ok(200));
                let (card, suggestion) = imaging_card(response);
                let sent = Instant::now();
                match post_json(&client, &feedback_url, &accepted(&card, &suggestion)).await {
                    Ok((status, _)) if (200..300).contains(&status) => acknowledged.push(card),
                    other => {
                        let after_kill = killed_at.lock().unwrap().map(|at| sent.saturating_duration_since(at));
                        refused.push((other.map(|(status, _)| status).map_err(|e| e.to_string()), after_kill));
                    }
                }
            }
            (calls, acknowledged, refused)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.child.kill().unwrap();
    *killed_at.lock().unwrap() = Some(Instant::now());
    let _ = a.child.wait();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut calls, mut acknowledged, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for caller in callers {
        let (c, a, r) = caller.await.unwrap();
        calls.extend(c);
        acknowledged.extend(a);
        refused.extend(r);
    }
    let failed: Vec<_> = calls.iter().filter(|c| !matches!(c, Ok(200))).collect();
    assert!(failed.is_empty(), "every hook call through the load balancer was answered: {failed:?}");
    // Only a post in flight when the replica died may go unacknowledged (the client retries it).
    assert!(refused.len() <= 4, "feedback refused: {refused:?}");
    assert!(
        refused.iter().all(|(_, after)| after.is_none_or(|after| after < Duration::from_millis(500))),
        "feedback sent well after the kill was acknowledged by the survivor: {refused:?}"
    );
    assert!(acknowledged.len() >= 20, "the load was real: {} acknowledged", acknowledged.len());

    // Every acknowledged item is in the shared store.
    let store = Store::open(&db.url).await.unwrap();
    let mut missing = Vec::new();
    let mut flagged = 0;
    for card in &acknowledged {
        let rows = store.feedback_for(card).await.unwrap();
        if rows.is_empty() {
            missing.push(card.clone());
        }
        flagged += rows.iter().filter(|r| !r.trusted()).count();
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged items are missing: {missing:?}",
        missing.len(),
        acknowledged.len()
    );
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM feedback")
        .fetch_one(&mut <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    assert!(stored >= acknowledged.len() as i64, "{stored} rows for {} acknowledged items", acknowledged.len());
    eprintln!(
        "SIGKILL of one of two replicas on PostgreSQL: {} hook calls answered, {} feedback posts acknowledged and \
         all {stored} stored ({flagged} flagged unknown-card: cards whose audit rows died with the replica), \
         {} refused in flight",
        calls.len(),
        acknowledged.len(),
        refused.len()
    );
    // The survivor keeps answering.
    for _ in 0..5 {
        let (status, response) = post_json(&client, &hook_url, &imaging_request()).await.unwrap();
        assert_eq!(status, 200, "{response}");
        let (card, suggestion) = imaging_card(&response);
        let (status, receipt) = post_json(&client, &feedback_url, &accepted(&card, &suggestion)).await.unwrap();
        assert_eq!((status, receipt), (200, json!({"stored": 1, "duplicates": 0, "flagged": 0})));
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PostgreSQL server of the test's own (through `scripts/test-postgres`), stopped on drop.
struct OwnPostgres {
    dir: PathBuf,
}

impl OwnPostgres {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-postgres")
    }

    fn start(dir: PathBuf, port: u16) -> OwnPostgres {
        let output = Command::new(OwnPostgres::script()).arg("start").arg(&dir).arg(port.to_string()).output().unwrap();
        assert!(output.status.success(), "PostgreSQL did not start: {}", String::from_utf8_lossy(&output.stderr));
        OwnPostgres { dir }
    }

    fn stop(&self) {
        let _ = Command::new(OwnPostgres::script()).arg("stop").arg(&self.dir).output();
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_waits_for_postgres_and_ready_says_when_it_is_gone() {
    if databases::postgres_admin_url().is_none() {
        return;
    }
    // PostgreSQL starts a second after the replica: the replica waits, then serves.
    let port = free_port();
    let cluster = tempdir().join("cluster");
    let late = {
        let cluster = cluster.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1000));
            OwnPostgres::start(cluster, port)
        })
    };
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let started = Instant::now();
    let replica = Replica::start(&[
        "--database-url".into(),
        url,
        "--audit-plain-ids".into(),
        "--dependency-wait-ms".into(),
        "60000".into(),
    ]);
    let postgres = late.join().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900), "it served only once PostgreSQL answered");
    replica.wait_for_log("database not reachable yet; retrying");
    replica.wait_for_log("database ready");
    let client = fresh_client();
    let (status, ready) = get(&replica.url("/ready")).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["database"], json!({"kind": "postgres", "status": "ok"}));
    assert_eq!(metric(&client, &replica, "lbp_cds_database_up").await, Some(1.0));

    // PostgreSQL stops: /ready answers 503 with the reason, the log says why, the metric shows it.
    postgres.stop();
    let mut ready = Value::Null;
    wait_until(Duration::from_secs(10), "/ready answers 503 once the database is gone", async || {
        let (status, body) = get(&replica.url("/ready")).await;
        ready = body;
        status == 503
    })
    .await;
    assert_eq!(ready["reasons"], json!(["the database does not answer"]), "{ready}");
    assert_eq!(ready["database"]["status"], "error", "{ready}");
    let error = ready["database"]["error"].as_str().unwrap().to_owned();
    assert!(!error.is_empty());
    let log = replica.wait_for_log("database check failed");
    let line = log.lines().find(|l| l.contains("database check failed")).unwrap();
    assert!(line.contains(&error), "the log line gives the reason `{error}`: {line}");
    assert_eq!(metric(&client, &replica, "lbp_cds_database_up").await, Some(0.0));
    assert!(metric(&client, &replica, "lbp_cds_database_check_failures_total").await.unwrap() >= 1.0);
    // The process stays up (liveness): restarting it would not bring the database back.
    assert_eq!(get(&replica.url("/health")).await.0, 200);

    // PostgreSQL never comes: start-up gives up after the wait, exit code 2, the reason on stderr.
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .args(["serve", "--listen", "127.0.0.1:0", "--dependency-wait-ms", "1000", "--audit-plain-ids"])
        .arg("--database-url")
        .arg(format!("postgres://postgres@127.0.0.1:{}/postgres", free_port()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the database at postgres://postgres@127.0.0.1:"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(8), "bounded: {:?}", started.elapsed());
    drop(postgres);
    let _ = std::fs::remove_dir_all(cluster.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_name_the_content_version_that_produced_the_card() {
    let dir = tempdir();
    let cards = dir.join("cards");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cards"), &cards);
    let database = format!("sqlite://{}", dir.join("audit.db").display());
    let replica = Replica::start(&[
        "--content".into(),
        cards.display().to_string(),
        "--content-poll-ms".into(),
        "200".into(),
        "--database-url".into(),
        database.clone(),
    ]);
    let client = fresh_client();
    let url = replica.url(&format!("/cds-services/{ORDER_SERVICE}"));
    let issue = async || {
        let (status, response) = post_json(&client, &url, &imaging_request()).await.unwrap();
        assert_eq!(status, 200, "{response}");
        let version = response["extension"]["lbp-cds"]["contentVersion"].as_str().unwrap().to_owned();
        (imaging_card(&response).0, version)
    };
    let (before, original) = issue().await;

    // Content reloaded in the running server.
    let rules = cards.join("rules.toml");
    replace_file(&rules, &format!("{}\n# reviewed\n", std::fs::read_to_string(&rules).unwrap()));
    wait_until(Duration::from_secs(10), "the new content is served", async || {
        served_version(&client, &replica).await != original
    })
    .await;
    let (after, reloaded) = issue().await;
    assert_ne!(reloaded, original);

    let store = Store::open(&database).await.unwrap();
    let mut versions = Vec::new();
    for card in [&before, &after] {
        let mut rows = Vec::new();
        wait_until(Duration::from_secs(5), "the audit row is written", async || {
            rows = store.audit_rows(card).await.unwrap();
            !rows.is_empty()
        })
        .await;
        versions.push(rows[0].6.clone());
    }
    assert_eq!(versions, vec![original, reloaded], "each audit row names the version that produced its card");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn sigterm_writes_the_audit_queue_out_before_exit(db: Db) {
    let dir = tempdir();
    let mut args = database_args(&db, &dir);
    args.extend(["--shutdown-delay-ms".into(), "0".into()]);
    let mut replica = Replica::start(&args);
    let url = replica.url(&format!("/cds-services/{ORDER_SERVICE}"));
    // Twenty calls at once; SIGTERM as soon as the last is answered, while the audit writer is
    // still gathering the last rows (it commits every 50 ms).
    let mut calls = Vec::new();
    for _ in 0..20 {
        let url = url.clone();
        calls.push(tokio::spawn(async move {
            let (status, response) = post_json(&fresh_client(), &url, &imaging_request()).await.unwrap();
            assert_eq!(status, 200, "{response}");
            response["cards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["uuid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }));
    }
    let mut issued = Vec::new();
    for call in calls {
        issued.extend(call.await.unwrap());
    }
    signal(&replica.child, "TERM");
    assert_eq!(replica.wait_exit(Duration::from_secs(20)), Some(0), "{}", replica.log());
    let log = replica.wait_for_log("audit trail written out");
    let line = log.lines().find(|l| l.contains("audit trail written out")).unwrap();
    eprintln!("SIGTERM: {line}");

    let store = Store::open(&db.url).await.unwrap();
    let mut missing = Vec::new();
    for card in &issued {
        if store.issued(card).await.unwrap().is_none() {
            missing.push(card.clone());
        }
    }
    assert!(missing.is_empty(), "{} of {} cards have no audit row: {missing:?}", missing.len(), issued.len());
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigterm_writes_the_audit_queue_out_before_exit() {
    sigterm_writes_the_audit_queue_out_before_exit(Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigterm_writes_the_audit_queue_out_before_exit() {
    if let Some(db) = Db::postgres().await {
        sigterm_writes_the_audit_queue_out_before_exit(db).await;
    }
}
