//! Regression tests for defects found by trying the product as a new user would. Each test is
//! named after the behaviour it pins.

mod common;

use std::time::Duration;

use common::{TestVault, options};
use nanu::{Code, Context, ErrorCode, UsageQuery, Vault, VerifyRequest};

#[test]
fn a_secret_passed_where_a_key_id_belongs_is_never_echoed() {
    let t = TestVault::new();
    let minted = t.mint("acme", &[]);
    let secret = minted.secret.expose();
    let err = t.vault.get(secret).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert!(!err.to_string().contains(secret), "{err}");
    let usage = nanu::Usage {
        cost: Some(1),
        ..nanu::Usage::default()
    };
    let err = t.vault.charge(secret, &usage).unwrap_err();
    assert!(!err.to_string().contains(secret), "{err}");
    let err = t.vault.revoke(secret, &Context::default()).unwrap_err();
    assert!(!err.to_string().contains(secret), "{err}");
    // An ordinary unknown id is still named.
    let err = t.vault.get("key_nope").unwrap_err();
    assert!(err.to_string().contains("key_nope"), "{err}");
}

#[test]
fn a_grace_period_longer_than_a_year_is_refused() {
    let t = TestVault::new();
    let minted = t.mint("acme", &[]);
    let forever = Duration::from_secs(100_000_000_000 * 3600);
    let err = t
        .vault
        .rotate(&minted.key_id, forever, &Context::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    // Nothing changed: the secret still verifies and is not in a grace period.
    let verdict = t.verify(&minted);
    assert!(verdict.allowed && !verdict.grace);
}

#[test]
fn a_truncated_vault_is_reported_as_corrupt_not_as_another_kind_of_file() {
    let t = TestVault::new();
    t.mint("acme", &[]);
    t.close();
    let bytes = std::fs::read(&t.path).unwrap();
    std::fs::write(&t.path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Vault::open(&t.path, &options()).unwrap_err();
    assert!(
        matches!(err.code(), ErrorCode::Corrupt | ErrorCode::Storage),
        "a damaged vault is corrupt (or unreadable), not a different file: {err}"
    );
}

#[test]
fn a_denied_verify_logs_the_requested_model_whatever_check_denied() {
    let t = TestVault::new();
    let minted = t.mint_json(serde_json::json!({"owner": "acme", "scopes": ["chat"]}));
    let request = VerifyRequest {
        model: Some("gpt-4o"),
        scope: Some("admin"),
        ..VerifyRequest::default()
    };
    let verdict = t.vault.verify(minted.secret.expose(), &request).unwrap();
    assert_eq!(verdict.code, Code::ScopeDenied);
    assert_eq!(verdict.model.as_deref(), Some("gpt-4o"));
    let records = t.vault.usage_records(&UsageQuery::default(), 10).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].model.as_deref(), Some("gpt-4o"));
    assert_eq!(records[0].outcome, "scope_denied");
}

#[test]
fn a_zero_flush_interval_is_refused_instead_of_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spin.vault");
    let mut opts = options();
    opts.flush_interval = Duration::ZERO;
    let err = Vault::create(&path, &opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(!path.exists(), "nothing was created");
}

#[test]
fn a_key_first_seen_after_its_expiry_fires_expired_and_never_expiring_after_it() {
    let t = TestVault::with(|mut o| {
        o.expiring_lead = Duration::from_secs(86_400);
        o
    });
    let mut spec = common::spec("acme", &[]);
    spec.expires_at = Some(common::ts("2025-01-01T01:00:00Z"));
    let key = t.vault.mint(&spec, &Context::default()).unwrap();
    // Nothing looked at the key before it expired; a verify after its expiry fires `expired`.
    t.clock.set("2025-01-01T02:00:00Z");
    assert_eq!(t.verify(&key).code, Code::Expired);
    t.vault.tick(None).unwrap();
    t.clock.set("2025-01-01T03:00:00Z");
    t.vault.tick(None).unwrap();
    let kinds: Vec<_> = t
        .vault
        .events(0, 10)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [nanu::EventKind::Expired]);
}
