//! Value-set matching stays a hash lookup: the same lookups against the shipped low back pain
//! expansion and against one ten times larger (synthetic SNOMED CT codes added), and the RxNorm
//! ingredient map likewise. Run with `cargo bench --bench valueset`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lbp_cds::content::{Content, ValueSet};
use lbp_cds::record::{Code, Concept};
use serde_json::{Value, json};
use std::hint::black_box;

const SHIPPED: &str = include_str!("../cards/valuesets/lbp-diagnosis.json");

/// The shipped value set with synthetic codes added until it holds `factor` times as many.
fn scaled(factor: usize) -> ValueSet {
    let mut set: Value = serde_json::from_str(SHIPPED).unwrap();
    let contains = set["expansion"]["contains"].as_array_mut().unwrap();
    let shipped = contains.len();
    for index in 0..shipped * (factor - 1) {
        contains.push(
            json!({"system": "http://snomed.info/sct", "code": format!("{}", 900_000_000_000_000u64 + index as u64),
            "display": "synthetic", "extension": [{"url": "urn:lbp-cds:confirmation", "valueCode": "U"}]}),
        );
    }
    ValueSet::parse("valuesets/lbp-diagnosis.json", &set.to_string()).unwrap()
}

fn code(system: &str, code: &str) -> Code {
    Code { system: Some(system.into()), code: Some(code.into()), display: None }
}

fn benches(c: &mut Criterion) {
    let hit = code("http://snomed.info/sct", "278860009");
    let icd = code("http://hl7.org/fhir/sid/icd-10-cm", "m5450");
    let miss = code("http://snomed.info/sct", "38341003");
    let problem = Concept {
        codes: vec![code("http://snomed.info/sct", "38341003"), code("urn:oid:2.16.840.1.113883.6.90", "M54.16")],
        text: Some("Lumbar radiculopathy".into()),
    };
    let mut group = c.benchmark_group("valueset_lookup");
    for factor in [1, 10] {
        let set = scaled(factor);
        let label = format!("{factor}x ({} codes)", set.concepts().len());
        group.bench_with_input(BenchmarkId::new("snomed_hit", &label), &set, |b, set| {
            b.iter(|| set.lookup(black_box(&hit)).is_some())
        });
        group.bench_with_input(BenchmarkId::new("icd_normalised_hit", &label), &set, |b, set| {
            b.iter(|| set.lookup(black_box(&icd)).is_some())
        });
        group.bench_with_input(BenchmarkId::new("miss", &label), &set, |b, set| {
            b.iter(|| set.lookup(black_box(&miss)).is_some())
        });
        group.bench_with_input(BenchmarkId::new("concept_two_codings", &label), &set, |b, set| {
            b.iter(|| set.match_concept(black_box(&problem)).is_some())
        });
    }
    group.finish();

    let content = Content::embedded().unwrap();
    let order = Concept {
        codes: vec![code("http://www.nlm.nih.gov/research/umls/rxnorm", "1049221")],
        text: Some("Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet".into()),
    };
    c.bench_function("drug_class/opioid_by_product_code", |b| {
        b.iter(|| content.drug_in_class(lbp_cds::content::ValueSetId::Opioids, black_box(&order)).is_some())
    });
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
