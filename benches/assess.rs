//! Cost of one hook call by record size: parsing the request into a record, then assessing and
//! rendering; and the whole call (body to response bytes) on the load test's patient-view bodies
//! beside the floor of reading them (`IgnoredAny`: only checking that the body is JSON).
//! Run with `cargo bench --bench assess`.

#[path = "common/mod.rs"]
mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lbp_cds::cards::{RenderContext, render};
use lbp_cds::content::Content;
use lbp_cds::evaluate::{Options, evaluate_body};
use lbp_cds::hooks::{Hook, HookRequest};
use lbp_cds::{assess, record};
use std::hint::black_box;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn benches(c: &mut Criterion) {
    let content = Content::embedded().expect("content");
    let service = content.service("lbp-order-select").expect("service").clone();
    let keys = content.prefetch_keys(&service);
    let today = time::macros::date!(2026 - 03 - 02);

    let mut parse = c.benchmark_group("parse");
    for size in SIZES {
        let body = serde_json::to_vec(&common::request("order-select", size)).unwrap();
        parse.throughput(Throughput::Bytes(body.len() as u64));
        parse.bench_with_input(BenchmarkId::from_parameter(size), &body, |b, body| {
            b.iter(|| {
                let request = HookRequest::parse(black_box(body)).unwrap();
                let (builder, _) = record::from_prefetch(&request, &keys, record::DEFAULT_RESOURCE_LIMIT);
                builder.finish()
            })
        });
    }
    parse.finish();

    let mut assess_group = c.benchmark_group("assess_and_render");
    for size in SIZES {
        let body = serde_json::to_vec(&common::request("order-select", size)).unwrap();
        let request = HookRequest::parse(&body).unwrap();
        let (builder, _) = record::from_prefetch(&request, &keys, record::DEFAULT_RESOURCE_LIMIT);
        let record = builder.finish();
        assess_group.throughput(Throughput::Elements(size as u64));
        assess_group.bench_with_input(BenchmarkId::from_parameter(size), &record, |b, record| {
            b.iter(|| {
                let ctx = RenderContext {
                    hook: Hook::OrderSelect,
                    hook_instance: "5b0c2c5e-8d5a-4a53-9f62-0f3a0c0e7a11",
                    patient_id: "synthetic-1",
                    mirror_system_actions: false,
                    start_back_app_url: None,
                    detail: Default::default(),
                    public_url: None,
                };
                let assessment = assess::assess(black_box(record), &content, today, ctx.scope());
                render(&assessment, record, &content, &ctx)
            })
        });
    }
    assess_group.finish();

    // The load test's bodies (300 and 2,000 resources), patient-view: the whole call against
    // the floor of reading the same bytes, so the ratio needs no HTTP.
    let patient_view = content.service("lbp-patient-view").expect("service").clone();
    let mut call = c.benchmark_group("call");
    for size in [300, 2_000] {
        let body = serde_json::to_vec(&common::request("patient-view", size)).unwrap();
        call.throughput(Throughput::Bytes(body.len() as u64));
        call.bench_with_input(BenchmarkId::new("validate", size), &body, |b, body| {
            b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(body)).is_ok())
        });
        call.bench_with_input(BenchmarkId::new("patient-view", size), &body, |b, body| {
            b.iter(|| {
                let outcome = evaluate_body(&content, &patient_view, black_box(body), today, &Options::default())
                    .expect("answered");
                serde_json::to_vec(&outcome.response).unwrap()
            })
        });
    }
    call.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(group);
