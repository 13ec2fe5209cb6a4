//! Usage reports over a log of 1,000,000 charges (100 keys, 4 models, 4 endpoints, 30 days),
//! built once per run at the relaxed level: the grand total; by key and by day in a zone
//! with a DST change; one key over one week.
//!
//! `cargo bench -p nanu-benches --bench usage -- --warm-up-time 1 --measurement-time 3`

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use nanu::{Bucket, Dim, UsageQuery};
use nanu_benches::{benchmarking, usage_start, usage_vault};

fn usage(c: &mut Criterion) {
    let records = if benchmarking() { 1_000_000 } else { 10_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let (vault, keys) = usage_vault(&dir.path().join("usage.vault"), records);

    let total = UsageQuery::default();
    let started = Instant::now();
    let rows = vault.usage(&total).expect("usage");
    eprintln!("first total query: {:.1?}", started.elapsed());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].requests, records);

    let by_key_day = UsageQuery {
        group_by: vec![Dim::Key],
        bucket: Some(Bucket::Day),
        tz: Some("America/New_York".to_owned()),
        ..UsageQuery::default()
    };
    let from = usage_start()
        .checked_add(jiff::SignedDuration::from_hours(24 * 10))
        .expect("from");
    let one_key_week = UsageQuery {
        key_id: Some(keys[7].clone()),
        from: Some(from),
        to: Some(
            from.checked_add(jiff::SignedDuration::from_hours(24 * 7))
                .expect("to"),
        ),
        ..UsageQuery::default()
    };

    let mut group = c.benchmark_group(format!("usage_{records}_records"));
    group.sample_size(10);
    group.bench_function("total", |b| b.iter(|| vault.usage(&total).expect("usage")));
    group.bench_function("by_key_by_day_new_york", |b| {
        b.iter(|| vault.usage(&by_key_day).expect("usage"))
    });
    group.bench_function("one_key_one_week", |b| {
        b.iter(|| vault.usage(&one_key_week).expect("usage"))
    });
    group.finish();
    vault.close().expect("close");
}

criterion_group!(benches, usage);
criterion_main!(benches);
