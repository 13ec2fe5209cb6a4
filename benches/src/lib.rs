//! Fixtures shared by the benchmarks: vaults of many keys and a large usage log, built in a
//! temporary directory with cheap KDF parameters (the KDF is not what is measured).

use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nanu::{
    Context, Durability, KdfParams, KeySpec, Limit, Options, Price, Usage, Vault, VerifyRequest,
};

/// The model every benchmark key may use; it has a price, as a key with a cost limit needs.
pub const MODEL: &str = "openai/gpt-4o";

/// Vault options for benchmarks at a durability level.
pub fn options(durability: Durability) -> Options {
    Options::passphrase("bench")
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .durability(durability)
}

/// A key with three limits that a benchmark never exhausts (a rolling request rate, a daily
/// token quota, a monthly budget) and every access check: IP allowlist, scopes, model
/// allowlist.
pub fn full_spec(owner: &str) -> KeySpec {
    let mut spec = KeySpec::new(owner);
    spec.env = "live".to_owned();
    spec.scopes = vec!["chat".to_owned(), "embed".to_owned()];
    spec.models = Some(vec!["openai/*".to_owned(), "anthropic/claude-3".to_owned()]);
    spec.ips = Some(vec![
        "10.0.0.0/8".to_owned(),
        "192.168.1.0/24".to_owned(),
        "2001:db8::/32".to_owned(),
    ]);
    spec.limits = [
        "requests=1000000000000/min",
        "tokens=1000000000000/day",
        "cost=$1000000000/month",
    ]
    .iter()
    .map(|l| l.parse::<Limit>().expect("limit"))
    .collect();
    spec
}

/// The request that passes every check of `full_spec`.
pub fn full_request() -> VerifyRequest<'static> {
    VerifyRequest {
        ip: Some("10.1.2.3".parse().expect("ip")),
        scope: Some("chat"),
        model: Some(MODEL),
        env: Some("live"),
        ..VerifyRequest::default()
    }
}

/// Prices `MODEL`.
pub fn set_price(vault: &Vault) {
    let price = Price {
        input_per_mtok: 2_500_000,
        output_per_mtok: 10_000_000,
        per_request: 0,
    };
    vault
        .set_price(MODEL, Some(price), &Context::default())
        .expect("price");
}

/// Mints `count` keys with `full_spec`, in batches of 1,000, spread over 1,000 owners.
/// Returns each key's id and secret.
pub fn mint_keys(vault: &Vault, count: usize) -> Vec<(String, String)> {
    let mut keys = Vec::with_capacity(count);
    while keys.len() < count {
        let batch: Vec<KeySpec> = (keys.len()..count.min(keys.len() + 1000))
            .map(|i| full_spec(&format!("owner-{}", i % 1000)))
            .collect();
        let minted = vault
            .mint_many(&batch, &Context::default())
            .expect("mint_many");
        keys.extend(
            minted
                .into_iter()
                .map(|m| (m.key_id, m.secret.expose().to_owned())),
        );
    }
    keys
}

/// Creates a vault at `path` holding `count` keys made by `full_spec`, with `MODEL` priced.
pub fn key_vault(
    path: &Path,
    count: usize,
    durability: Durability,
) -> (Vault, Vec<(String, String)>) {
    let started = Instant::now();
    let vault = Vault::create(path, &options(durability)).expect("create");
    set_price(&vault);
    let keys = mint_keys(&vault, count);
    eprintln!("fixture: {count} keys minted in {:.1?}", started.elapsed());
    (vault, keys)
}

/// The first instant of the usage fixture.
pub fn usage_start() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("timestamp")
}

/// Creates a vault at `path` with 100 keys and `count` charges spread evenly over 30 days from
/// `usage_start`, across 5 models and 4 endpoints, at the relaxed level (the fastest to
/// build). Returns the vault and the key ids.
pub fn usage_vault(path: &Path, count: u64) -> (Vault, Vec<String>) {
    let started = Instant::now();
    let vault = Vault::create(path, &options(Durability::Relaxed)).expect("create");
    let keys: Vec<String> = mint_keys(&vault, 100)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let models = [
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "openai/o3",
        "openai/o4-mini",
    ];
    let endpoints = ["/v1/chat", "/v1/embed", "/v1/images", "/v1/audio"];
    let span_us = 30 * 86_400 * 1_000_000u64;
    let start = usage_start().as_microsecond();
    for i in 0..count {
        let offset = i64::try_from(span_us / count * i).expect("offset");
        let at = Timestamp::from_microsecond(start + offset).expect("at");
        let usage = Usage {
            model: Some(models[(i % 4) as usize].to_owned()),
            endpoint: Some(endpoints[(i / 4 % 4) as usize].to_owned()),
            input_tokens: 100 + i % 900,
            output_tokens: 20 + i % 300,
            cost: Some(1_000 + i % 5_000),
            request_id: None,
            hold_id: None,
            at: Some(at),
        };
        let key = &keys[(i % 100) as usize];
        vault.charge(key, &usage).expect("charge");
    }
    vault.flush().expect("flush");
    eprintln!("fixture: {count} charges in {:.1?}", started.elapsed());
    (vault, keys)
}

/// This process's resident memory in bytes (`VmRSS` of `/proc/self/status`), where the
/// operating system tells it.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Per-call latencies of `call`, run `count` times after 10% as many warm-up calls: the
/// 50th, 90th, 99th and 99.9th percentiles.
pub fn percentiles(count: usize, mut call: impl FnMut()) -> [Duration; 4] {
    for _ in 0..count / 10 {
        call();
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        call();
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    [at(0.5), at(0.9), at(0.99), at(0.999)]
}

/// Whether the binary runs as a benchmark (`cargo bench`) rather than as a quick test
/// (`cargo test --benches`): extra measurements outside criterion run only then.
pub fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}
