//! Fetching missing prefetch keys costs about one round trip, not one per key: a FHIR server
//! double on loopback answers each query after a fixed 25 ms, and the service fetches 1 to 6
//! missing keys. Run with `cargo bench --bench fetch`.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lbp_cds::content::Content;
use lbp_cds::evaluate::{FhirAccess, gather_record};
use lbp_cds::fhir::FetchLimits;
use lbp_cds::hooks::HookRequest;
use serde_json::json;

const DELAY: Duration = Duration::from_millis(25);
const KEYS: [&str; 6] = ["patient", "conditions", "observations", "medications", "procedures", "serviceRequests"];

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let base = runtime.block_on(async {
        let app = axum::Router::new().fallback(|request: axum::extract::Request| async move {
            tokio::time::sleep(DELAY).await;
            let path = request.uri().path().to_owned();
            if path.ends_with("/Patient/synthetic-1") {
                axum::Json(json!({"resourceType": "Patient", "id": "synthetic-1", "birthDate": "1980-04-12"}))
            } else {
                axum::Json(json!({"resourceType": "Bundle", "type": "searchset", "total": 0}))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/r4", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    });
    let content = Content::embedded().unwrap();
    let service = content.service("lbp-patient-view").unwrap().clone();
    let http = lbp_cds::outbound::client().expect("outbound client");
    let limits = FetchLimits { allow_http: true, ..FetchLimits::default() };
    let scope = lbp_cds::outbound::UrlScope::parse(&base, true, false).unwrap();

    let mut group = c.benchmark_group("fetch_missing_keys");
    for missing in 1..=KEYS.len() {
        let mut body = common::request("patient-view", 50);
        body["fhirServer"] = json!(base);
        for key in KEYS.iter().take(missing) {
            body["prefetch"].as_object_mut().unwrap().remove(*key);
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(missing), &bytes, |b, bytes| {
            b.to_async(&runtime).iter(|| async {
                let request = HookRequest::parse(bytes).unwrap();
                let access = FhirAccess { base: &scope, token: Some("bench-token"), http: &http, limits: &limits };
                gather_record(&content, &service, &request, Some(access)).await.unwrap()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(group);
