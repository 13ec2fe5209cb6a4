//! Compatibility with stored vault files: a file written by this version of nanu
//! (`tests/fixtures/schema-1.vault`, with what it holds in `schema-1.json`) must open and read
//! back exactly, now and in every later version.
//!
//! The fixture is regenerated only when the file format changes on purpose, and then under a
//! new name (`schema-2.vault`, ...), keeping the old files so that migrations stay tested:
//!
//! ```text
//! cargo test -p nanu --test compat -- --ignored regenerate_the_fixture
//! ```
//!
//! writes `schema-<n>.vault` and `schema-<n>.json` for the current schema into
//! `core/tests/fixtures/`; then add a test like `a_schema_1_vault_opens_and_reads_back` for it.

mod common;

use std::path::{Path, PathBuf};

use common::{TestClock, limit, spec, ts};
use nanu::{
    Code, Context, Dim, EventKind, KdfParams, KeyPatch, Options, Price, Status, Usage, UsageQuery,
    Vault, VerifyRequest,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const PASSPHRASE: &str = "nanu fixture";

fn fixture_options(clock: &TestClock) -> Options {
    Options::passphrase(PASSPHRASE)
        .kdf(KdfParams::INSECURE_FOR_TESTS)
        .clock(clock.clock())
}

/// Copies a fixture to a temporary directory (opening a vault writes to it).
fn copy_of(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::copy(Path::new(FIXTURES).join(name), &path)
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    (dir, path)
}

#[test]
fn a_schema_1_vault_opens_and_reads_back() {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURES).join("schema-1.json")).unwrap(),
    )
    .unwrap();
    let id = |name: &str| {
        manifest["keys"][name]["key_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let secret = |name: &str| {
        manifest["keys"][name]["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (_dir, path) = copy_of("schema-1.vault");
    let clock = TestClock::new("2025-01-31T20:00:00Z");
    let mut vault = Vault::open(&path, &fixture_options(&clock)).expect("the fixture opens");
    assert_eq!(vault.prefix(), "fx");
    assert_eq!(vault.currency(), "eur");

    // Keys and every field of a full one.
    let primary = vault.get(&id("primary")).unwrap();
    assert_eq!(primary.owner, "acme");
    assert_eq!(primary.name, "primary");
    assert_eq!(primary.env, "live");
    assert_eq!(primary.status, Status::Active);
    assert_eq!(primary.created_at, ts("2025-01-01T00:00:00Z"));
    assert_eq!(primary.scopes, vec!["chat".to_owned()]);
    assert_eq!(
        primary.models,
        Some(vec!["gpt-4o".into(), "bedrock/*".into()])
    );
    assert_eq!(primary.aliases["fast"], "gpt-4o");
    assert_eq!(
        primary.ips,
        Some(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()])
    );
    assert_eq!(primary.metadata["tier"], "gold");
    assert_eq!(
        primary.limits,
        vec![
            limit("requests=100/day"),
            limit("cost=$10/month@Europe/Berlin;alert=50,90"),
            limit("tokens=30B"),
            limit("requests=5/10s"),
        ]
    );
    let expiring = vault.get(&id("expiring")).unwrap();
    assert_eq!(expiring.expires_at, Some(ts("2025-06-01T00:00:00Z")));
    assert_eq!(expiring.rotate_every.as_deref(), Some("90 days"));
    assert_eq!(vault.get(&id("revoked")).unwrap().status, Status::Revoked);
    assert_eq!(
        vault.get(&id("rotated_new")).unwrap().grace_until,
        Some(ts("2100-01-01T00:00:00Z"))
    );
    assert_eq!(vault.stats().keys, 4);
    assert_eq!(vault.owners(), vec!["acme".to_owned(), "beta".to_owned()]);

    // Owners, default policy and prices.
    assert_eq!(
        vault.owner("acme").unwrap().limits,
        vec![limit("requests=1000/month")]
    );
    assert_eq!(
        vault.owner("beta").unwrap().limits,
        vec![limit("cost=$1/day")]
    );
    assert_eq!(vault.default_owner_policy(), vec![limit("cost=$1/day")]);
    let gpt = Price {
        input_per_mtok: 2_500_000,
        output_per_mtok: 10_000_000,
        per_request: 0,
    };
    assert_eq!(vault.price("gpt-4o"), Some(gpt));

    // Counters of every kind of window, as they were left.
    let r = vault.remaining(&id("primary"), None).unwrap();
    assert_eq!(r.limits[0].used, 2);
    assert_eq!(r.limits[0].resets_at, Some(ts("2025-02-01T00:00:00Z")));
    assert_eq!(r.limits[1].used, 8_755 + 1_000_000);
    assert_eq!(r.limits[1].resets_at, Some(ts("2025-01-31T23:00:00Z")));
    assert_eq!(r.limits[2].used, 20_000_000_000 + 1_801);
    assert_eq!(r.limits[3].used, 0, "the rolling window has refilled");
    let later = vault
        .remaining(&id("primary"), Some(ts("2025-02-01T12:00:00Z")))
        .unwrap();
    assert_eq!(later.limits[1].used, 0, "a new month in Berlin");
    let acme = vault.owner("acme").unwrap();
    assert_eq!(acme.remaining.requests, Some(1000 - 3));

    // Secrets, in and out of their grace period, and every check on a full key.
    let request = VerifyRequest {
        model: Some("fast"),
        scope: Some("chat"),
        ip: Some("10.2.3.4".parse().unwrap()),
        ..VerifyRequest::default()
    };
    let v = vault.verify(&secret("primary"), &request).unwrap();
    assert!(v.allowed, "{v:?}");
    assert_eq!(v.model.as_deref(), Some("gpt-4o"));
    let v = vault
        .verify(&secret("rotated_old"), &VerifyRequest::default())
        .unwrap();
    assert!(v.allowed && v.grace);
    let v = vault
        .verify(&secret("rotated_new"), &VerifyRequest::default())
        .unwrap();
    assert!(v.allowed && !v.grace);
    assert_eq!(v.env.as_deref(), Some("test"));
    let v = vault
        .verify(&secret("revoked"), &VerifyRequest::default())
        .unwrap();
    assert_eq!(v.code, Code::Revoked);
    let late = VerifyRequest {
        at: Some(ts("2025-06-01T00:00:00Z")),
        ..VerifyRequest::default()
    };
    assert_eq!(
        vault.verify(&secret("expiring"), &late).unwrap().code,
        Code::Expired
    );

    // The usage log, the idempotency memory, events and the audit trail.
    let query = UsageQuery {
        group_by: vec![Dim::Model],
        ..UsageQuery::default()
    };
    let rows = vault.usage(&query).unwrap();
    let models: Vec<(&str, u64, u64, u64)> = rows
        .iter()
        .map(|r| (r.group["model"].as_str(), r.requests, r.denied, r.cost))
        .collect();
    assert_eq!(
        models,
        // The two denials without a model are this test's own (revoked, expired).
        vec![
            ("", 1, 2, 1_000_000),
            ("bedrock/x", 0, 1, 0),
            ("gpt-4o", 1, 0, 8_755)
        ]
    );
    let replay = Usage {
        model: Some("gpt-4o".into()),
        input_tokens: 1_234,
        output_tokens: 567,
        request_id: Some("fixture-1".into()),
        at: Some(ts("2025-01-31T12:00:00Z")),
        ..Usage::default()
    };
    assert!(vault.charge(&id("primary"), &replay).unwrap().replayed);
    let events = vault.events(0, 100).unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Rotated,
            EventKind::Revoked,
            EventKind::Threshold,
            EventKind::Expired,
        ]
    );
    // Two thirds of thirty billion tokens crossed 50 %; the expiry is this test's own verify.
    assert_eq!(events[2].percent, Some(50));
    assert_eq!(
        events[2].limit.as_ref().unwrap().limit,
        limit("tokens=30B").into()
    );
    let check = vault.verify_audit().unwrap();
    assert!(check.ok, "{check:?}");
    assert_eq!(check.records, manifest["audit_records"].as_u64().unwrap());

    // It stays writable and reopens.
    let patch = KeyPatch {
        name: Some("still writable".into()),
        ..KeyPatch::default()
    };
    vault
        .update(&id("primary"), &patch, &Context::default())
        .unwrap();
    vault.close().unwrap();
    vault = Vault::open(&path, &fixture_options(&clock)).unwrap();
    assert_eq!(vault.get(&id("primary")).unwrap().name, "still writable");
    assert!(vault.verify_audit().unwrap().ok);
}

#[test]
fn the_fixture_is_small_and_refuses_a_wrong_passphrase() {
    let size = std::fs::metadata(Path::new(FIXTURES).join("schema-1.vault"))
        .unwrap()
        .len();
    assert!(size < 200 * 1024, "the fixture is {size} bytes");
    let (_dir, path) = copy_of("schema-1.vault");
    let wrong = Options::passphrase("not it").kdf(KdfParams::INSECURE_FOR_TESTS);
    let err = Vault::open(&path, &wrong).unwrap_err();
    assert_eq!(err.code(), nanu::ErrorCode::WrongPassphrase);
}

/// Writes the fixture of the current schema. See the module documentation.
#[test]
#[ignore = "writes into the source tree; run by hand when the file format changes"]
fn regenerate_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("fixture.vault");
    let clock = TestClock::new("2025-01-01T00:00:00Z");
    let mut options = fixture_options(&clock);
    options.prefix = "fx".into();
    options.currency = "eur".into();
    let vault = Vault::create(&work, &options).unwrap();
    let ctx = Context::actor("fixture");

    vault
        .set_default_owner_policy(&[limit("cost=$1/day")], &ctx)
        .unwrap();
    vault
        .set_owner_policy("acme", &[limit("requests=1000/month")], &ctx)
        .unwrap();
    let gpt = Price {
        input_per_mtok: 2_500_000,
        output_per_mtok: 10_000_000,
        per_request: 0,
    };
    vault.set_price("gpt-4o", Some(gpt), &ctx).unwrap();

    let primary_spec: nanu::KeySpec = serde_json::from_value(serde_json::json!({
        "owner": "acme",
        "name": "primary",
        "scopes": ["chat"],
        "models": ["gpt-4o", "bedrock/*"],
        "aliases": {"fast": "gpt-4o"},
        "ips": ["10.0.0.0/8", "2001:db8::/32"],
        "limits": ["requests=100/day", "cost=$10/month@Europe/Berlin;alert=50,90", "tokens=30B",
                   "requests=5/10s"],
        "metadata": {"tier": "gold"},
    }))
    .unwrap();
    let primary = vault.mint(&primary_spec, &ctx).unwrap();
    let mut rotated_spec = spec("acme", &[]);
    rotated_spec.env = "test".into();
    let rotated_old = vault.mint(&rotated_spec, &ctx).unwrap();
    let revoked = vault.mint(&spec("beta", &[]), &ctx).unwrap();
    let mut expiring_spec = spec("beta", &[]);
    expiring_spec.expires_at = Some(ts("2025-06-01T00:00:00Z"));
    expiring_spec.rotate_every = Some("90 days".into());
    let expiring = vault.mint(&expiring_spec, &ctx).unwrap();

    let grace = ts("2100-01-01T00:00:00Z").duration_since(clock.now());
    let rotated_new = vault
        .rotate(&rotated_old.key_id, grace.unsigned_abs(), &ctx)
        .unwrap();
    vault.revoke(&revoked.key_id, &ctx).unwrap();

    clock.set("2025-01-31T12:00:00Z");
    let request = VerifyRequest {
        model: Some("fast"),
        ip: Some("10.0.0.1".parse().unwrap()),
        ..VerifyRequest::default()
    };
    let v = vault.verify(primary.secret.expose(), &request).unwrap();
    assert!(v.allowed, "{v:?}");
    let usage = Usage {
        model: Some("gpt-4o".into()),
        input_tokens: 1_234,
        output_tokens: 567,
        request_id: Some("fixture-1".into()),
        hold_id: v.hold_id,
        at: Some(clock.now()),
        ..Usage::default()
    };
    assert_eq!(vault.charge(&primary.key_id, &usage).unwrap().cost, 8_755);
    let bulk = Usage {
        input_tokens: 20_000_000_000,
        cost: Some(1_000_000),
        ..Usage::default()
    };
    assert!(
        vault
            .verify(primary.secret.expose(), &request)
            .unwrap()
            .allowed
    );
    vault.charge(&primary.key_id, &bulk).unwrap();
    let denied = VerifyRequest {
        model: Some("bedrock/x"),
        ..request
    };
    let v = vault.verify(primary.secret.expose(), &denied).unwrap();
    assert_eq!(v.code, Code::ModelUnpriced);
    let v = vault.verify(rotated_new.secret.expose(), &VerifyRequest::default());
    assert!(v.unwrap().allowed);
    let audit_records = vault.verify_audit().unwrap().records;
    vault.close().unwrap();
    drop(vault);

    // Compact the file so that the checked-in copy stays small.
    let mut db = redb::Database::open(&work).unwrap();
    while db.compact(redb::CompactionMode::default()).unwrap() {}
    drop(db);

    let manifest = serde_json::json!({
        "note": "Test secrets of the fixture vault; see core/tests/compat.rs.",
        "passphrase": PASSPHRASE,
        "audit_records": audit_records,
        "keys": {
            "primary": {"key_id": primary.key_id, "secret": primary.secret.expose()},
            "rotated_old": {"key_id": rotated_old.key_id, "secret": rotated_old.secret.expose()},
            "rotated_new": {"key_id": rotated_new.key_id, "secret": rotated_new.secret.expose()},
            "revoked": {"key_id": revoked.key_id, "secret": revoked.secret.expose()},
            "expiring": {"key_id": expiring.key_id, "secret": expiring.secret.expose()},
        },
    });
    std::fs::create_dir_all(FIXTURES).unwrap();
    std::fs::copy(&work, Path::new(FIXTURES).join("schema-1.vault")).unwrap();
    let text = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
    std::fs::write(Path::new(FIXTURES).join("schema-1.json"), text).unwrap();
}
