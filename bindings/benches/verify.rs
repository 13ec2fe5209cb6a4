//! The cost of the C ABI: one verify of a valid key with three limits and every check (IP
//! allowlist, scope, model with a price, environment), through `nanu_vault_verify` and
//! through `Vault::verify` directly, on the same vault.
//!
//! `cargo bench -p nanu-ffi --bench verify`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use nanu::{nanu_status, nanu_vault, nanu_verdict, nanu_verify_request};
use nanu_core::{Context, KdfParams, KeySpec, Options, Price, Vault, VerifyRequest};

const SPEC: &str = r#"{
    "owner": "acme",
    "env": "live",
    "scopes": ["chat"],
    "models": ["gpt-4o"],
    "ips": ["10.0.0.0/8"],
    "limits": ["requests=1000000000000/min", "tokens=1000000000000/day",
               "cost=$1000000000/month"]
}"#;

fn setup(dir: &std::path::Path) -> (Vault, String) {
    let options = Options::passphrase("bench").kdf(KdfParams::INSECURE_FOR_TESTS);
    let vault = Vault::create(dir.join("bench.vault"), &options).expect("create");
    let price = Price {
        input_per_mtok: 2_500_000,
        output_per_mtok: 10_000_000,
        per_request: 0,
    };
    vault
        .set_price("gpt-4o", Some(price), &Context::default())
        .expect("price");
    let spec: KeySpec = serde_json::from_str(SPEC).expect("spec");
    let minted = vault.mint(&spec, &Context::default()).expect("mint");
    (vault, minted.secret.expose().to_owned())
}

fn verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vault, secret) = setup(dir.path());
    let handle = Box::into_raw(Box::new(nanu_vault::new(vault)));
    // SAFETY: `handle` was just made from a Box and is freed at the end of this function,
    // after every use.
    let vault = unsafe { (*handle).vault() };

    let rust_request = VerifyRequest {
        ip: Some("10.1.2.3".parse().expect("ip")),
        scope: Some("chat"),
        model: Some("gpt-4o"),
        env: Some("live"),
        ..VerifyRequest::default()
    };
    assert!(
        vault
            .verify(&secret, &rust_request)
            .expect("verify")
            .allowed
    );
    c.bench_function("verify/rust", |b| {
        b.iter(|| vault.verify(black_box(&secret), black_box(&rust_request)))
    });
    // What a Rust gateway pays too: the client address arrives as text.
    c.bench_function("verify/rust-ip-from-text", |b| {
        b.iter(|| {
            let request = VerifyRequest {
                ip: black_box("10.1.2.3").parse().ok(),
                ..rust_request
            };
            vault.verify(black_box(&secret), &request)
        })
    });

    let (ip, scope, model, env) = ("10.1.2.3", "chat", "gpt-4o", "live");
    let c_request = nanu_verify_request {
        ip: ip.as_ptr().cast(),
        ip_len: ip.len(),
        scope: scope.as_ptr().cast(),
        scope_len: scope.len(),
        model: model.as_ptr().cast(),
        model_len: model.len(),
        env: env.as_ptr().cast(),
        env_len: env.len(),
        hold_input_tokens: 0,
        hold_output_tokens: 0,
        hold_cost: 0,
        at_us: 0,
    };
    let mut verdict = std::mem::MaybeUninit::<nanu_verdict>::uninit();
    let call = |verdict: *mut nanu_verdict| {
        // SAFETY: the handle is live, the secret and request texts outlive the call, and
        // `verdict` points to writable memory for one nanu_verdict.
        unsafe {
            nanu::nanu_vault_verify(
                handle,
                secret.as_ptr().cast(),
                secret.len(),
                black_box(&c_request),
                verdict,
            )
        }
    };
    assert_eq!(call(verdict.as_mut_ptr()), nanu_status::Ok);
    // SAFETY: the call returned NANU_STATUS_OK, so the verdict was written.
    assert!(unsafe { verdict.assume_init_ref() }.allowed);
    c.bench_function("verify/c-abi", |b| {
        b.iter(|| call(black_box(verdict.as_mut_ptr())))
    });

    // SAFETY: no other reference to the handle is used after this point.
    let status = unsafe { nanu::nanu_vault_close(handle) };
    assert_eq!(status, nanu_status::Ok);
}

criterion_group!(benches, verify);
criterion_main!(benches);
