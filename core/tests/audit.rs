//! The audit trail (every administrative call, with its actor, hash-chained; tampering found)
//! and the event log (thresholds, exhaustion, rotation, revocation, expiry; paging and
//! subscriptions).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestVault, edit_str_row, flip, limit, options, rewrite_u64_table, spec, ts};
use nanu::{
    Context, EventKind, KdfParams, KeyPatch, Level, Price, Unit, Unlock, Usage, Vault,
    VerifyRequest,
};

/// A vault with one record of every administrative action, each by a named actor.
fn every_admin_call(tv: &TestVault) {
    let by = |who: &str| Context::actor(who);
    let mut s = spec("acme", &["requests=100"]);
    s.rotate_every = Some("1 day".into());
    let a = tv.vault.mint(&s, &by("alice")).unwrap();
    tv.vault
        .mint_many(&[spec("beta", &[]), spec("beta", &[])], &by("bob"))
        .unwrap();
    let patch = KeyPatch {
        name: Some("renamed".into()),
        ..KeyPatch::default()
    };
    tv.vault.update(&a.key_id, &patch, &by("carol")).unwrap();
    tv.vault
        .rotate(&a.key_id, Duration::from_secs(60), &by("dave"))
        .unwrap();
    tv.clock.set("2025-01-03T00:00:00Z");
    assert_eq!(
        tv.vault
            .rotate_due(Duration::ZERO, &by("cron"))
            .unwrap()
            .len(),
        1
    );
    tv.vault
        .set_owner_policy("acme", &[limit("cost=$5/month")], &by("erin"))
        .unwrap();
    tv.vault
        .set_default_owner_policy(&[limit("requests=10/min")], &by("frank"))
        .unwrap();
    let price = Price {
        input_per_mtok: 1,
        output_per_mtok: 2,
        per_request: 3,
    };
    tv.vault.set_price("m1", Some(price), &by("grace")).unwrap();
    tv.vault
        .import_prices(r#"{"m2": {"input_cost_per_token": 1e-06}}"#, &by("heidi"))
        .unwrap();
    tv.vault.revoke(&a.key_id, &by("ivan")).unwrap();
    tv.vault.revoke_owner("beta", &by("judy")).unwrap();
    tv.vault
        .rekey(
            &Unlock::passphrase(common::PASSPHRASE),
            KdfParams::INSECURE_FOR_TESTS,
            &by("mallory"),
        )
        .unwrap();
}

const ACTIONS: [(&str, Option<&str>); 13] = [
    ("create", None),
    ("mint", Some("alice")),
    ("mint", Some("bob")),
    ("update", Some("carol")),
    ("rotate", Some("dave")),
    ("rotate_due", Some("cron")),
    ("set_owner_policy", Some("erin")),
    ("set_default_owner_policy", Some("frank")),
    ("set_price", Some("grace")),
    ("import_prices", Some("heidi")),
    ("revoke", Some("ivan")),
    ("revoke_owner", Some("judy")),
    ("rekey", Some("mallory")),
];

#[test]
fn every_administrative_call_appends_a_record_naming_its_actor() {
    let tv = TestVault::new();
    every_admin_call(&tv);
    // Calls that are not administrative add nothing.
    let m = tv.mint("zeta", &["cost=$1"]);
    let before = tv.vault.audit(0, 1000).unwrap().len();
    let v = tv.verify(&m);
    assert!(v.allowed);
    let usage = Usage {
        cost: Some(5),
        ..Usage::default()
    };
    tv.vault.charge(&m.key_id, &usage).unwrap();
    tv.vault.tick(None).unwrap();
    assert_eq!(tv.vault.audit(0, 1000).unwrap().len(), before);

    let records = tv.vault.audit(0, 1000).unwrap();
    let found: Vec<(&str, Option<&str>)> = records
        .iter()
        .take(ACTIONS.len())
        .map(|r| (r.action.as_str(), r.actor.as_deref()))
        .collect();
    assert_eq!(found, ACTIONS);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.hash.len(), 64);
    }
    assert_eq!(records[3].detail["changed"]["name"], "renamed");
    assert_eq!(records[2].target, "2 keys");
    assert_eq!(records[11].detail["revoked"], 2);
    // No secret is ever written into the trail.
    let text = serde_json::to_string(&records.iter().map(|r| &r.detail).collect::<Vec<_>>());
    assert!(!text.unwrap().contains(&m.secret.expose()[10..]));

    let check = tv.vault.verify_audit().unwrap();
    assert!(check.ok, "{check:?}");
    assert_eq!(check.records, records.len() as u64);
    assert_eq!(check.first_bad, None);
    // Paging.
    let page = tv.vault.audit(5, 3).unwrap();
    let seqs: Vec<u64> = page.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![6, 7, 8]);
}

/// Builds a vault with a trail, closes it and returns it with the number of records.
fn closed_vault_with_a_trail() -> (TestVault, u64) {
    let tv = TestVault::new();
    every_admin_call(&tv);
    let records = tv.vault.verify_audit().unwrap().records;
    tv.close();
    (tv, records)
}

fn reopen_and_check(tv: &TestVault) -> nanu::AuditCheck {
    let vault = Vault::open(&tv.path, &tv.options()).expect("a damaged trail does not stop open");
    let check = vault.verify_audit().expect("verify_audit");
    vault.close().unwrap();
    check
}

#[test]
fn a_deleted_audit_record_is_found() {
    let (tv, records) = closed_vault_with_a_trail();
    rewrite_u64_table(&tv.path, "audit", |rows| {
        rows.into_iter().filter(|(seq, _)| *seq != 5).collect()
    });
    let check = reopen_and_check(&tv);
    assert!(!check.ok);
    let (seq, why) = check.first_bad.unwrap();
    assert_eq!(seq, 5);
    assert!(why.contains("missing"), "{why}");
    assert_eq!(check.records, 4);
    assert!(records > 5);
}

#[test]
fn a_deleted_last_audit_record_is_found() {
    let (tv, records) = closed_vault_with_a_trail();
    rewrite_u64_table(&tv.path, "audit", |rows| {
        rows.into_iter()
            .filter(|(seq, _)| *seq != records)
            .collect()
    });
    let check = reopen_and_check(&tv);
    assert!(!check.ok);
    assert_eq!(check.first_bad.unwrap().0, records);
}

#[test]
fn an_altered_audit_record_is_found() {
    let (tv, _) = closed_vault_with_a_trail();
    rewrite_u64_table(&tv.path, "audit", |rows| {
        rows.into_iter()
            .map(|(seq, mut value)| {
                if seq == 7 {
                    flip(&mut value);
                }
                (seq, value)
            })
            .collect()
    });
    let check = reopen_and_check(&tv);
    assert!(!check.ok);
    assert_eq!(check.first_bad.unwrap().0, 7);
    assert_eq!(check.records, 6);
}

#[test]
fn swapped_audit_records_are_found() {
    let (tv, _) = closed_vault_with_a_trail();
    rewrite_u64_table(&tv.path, "audit", |rows| {
        let four = rows[3].1.clone();
        let nine = rows[8].1.clone();
        rows.into_iter()
            .map(|(seq, value)| match seq {
                4 => (4, nine.clone()),
                9 => (9, four.clone()),
                _ => (seq, value),
            })
            .collect()
    });
    let check = reopen_and_check(&tv);
    assert!(!check.ok);
    assert_eq!(check.first_bad.unwrap().0, 4);
}

#[test]
fn an_untouched_trail_checks_out_after_a_reopen() {
    let (tv, records) = closed_vault_with_a_trail();
    let check = reopen_and_check(&tv);
    assert!(check.ok, "{check:?}");
    assert_eq!(check.records, records);
    // The head in the meta table is what a truncated trail is caught against: removing the
    // whole trail is found too.
    rewrite_u64_table(&tv.path, "audit", |_| Vec::new());
    let check = reopen_and_check(&tv);
    assert!(!check.ok);
    assert_eq!(check.first_bad.unwrap().0, 1);
}

#[test]
fn a_vault_whose_audit_head_fails_authentication_is_refused_as_corrupt() {
    // The head is what a truncated trail is caught against; a vault that went on without it
    // could neither continue the chain safely nor show a removed tail.
    let (tv, _) = closed_vault_with_a_trail();
    edit_str_row(&tv.path, "meta", "audit_head", flip);
    let err = Vault::open(&tv.path, &tv.options()).unwrap_err();
    assert_eq!(err.code(), nanu::ErrorCode::Corrupt);
    assert!(err.message().contains("audit_head"), "{err}");
}

// ---- events ----------------------------------------------------------------------------

fn kinds(events: &[nanu::Event]) -> Vec<(EventKind, Option<u8>)> {
    events.iter().map(|e| (e.kind, e.percent)).collect()
}

#[test]
fn request_thresholds_fire_once_per_window() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["requests=10/day"]);
    for _ in 0..12 {
        tv.verify(&m);
    }
    let events = tv.vault.events(0, 100).unwrap();
    assert_eq!(
        kinds(&events),
        vec![
            (EventKind::Threshold, Some(50)),
            (EventKind::Threshold, Some(80)),
            (EventKind::Threshold, Some(100)),
            (EventKind::Exhausted, None),
        ]
    );
    let used: Vec<u64> = events
        .iter()
        .map(|e| e.limit.as_ref().unwrap().used)
        .collect();
    assert_eq!(used, vec![5, 8, 10, 10]);
    for e in &events {
        assert_eq!(e.key_id.as_deref(), Some(m.key_id.as_str()));
        assert_eq!(e.owner.as_deref(), Some("acme"));
        let status = e.limit.as_ref().unwrap();
        assert_eq!(
            (status.level, status.index, status.limit.unit),
            (Level::Key, 0, Unit::Requests)
        );
    }
    // The next day is a new window: the thresholds fire again, once.
    tv.clock.set("2025-01-02T08:00:00Z");
    for _ in 0..6 {
        tv.verify(&m);
    }
    let events = tv.vault.events(0, 100).unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(kinds(&events[4..]), vec![(EventKind::Threshold, Some(50))]);
    assert_eq!(events[4].at, ts("2025-01-02T08:00:00Z"));
}

#[test]
fn cost_thresholds_and_exhaustion_fire_from_charges_for_key_and_owner() {
    let tv = TestVault::new();
    tv.vault
        .set_owner_policy("acme", &[limit("cost=$10;alert=10")], &Context::default())
        .unwrap();
    let m = tv.mint("acme", &["cost=$1;alert=50,90"]);
    let charge = |cost| {
        let usage = Usage {
            cost: Some(cost),
            ..Usage::default()
        };
        tv.vault.charge(&m.key_id, &usage).unwrap()
    };
    charge(499_999);
    assert!(tv.vault.events(0, 100).unwrap().is_empty());
    charge(1);
    charge(400_000);
    let out = charge(600_000);
    assert_eq!(out.exceeded.len(), 1);
    let events = tv.vault.events(0, 100).unwrap();
    assert_eq!(
        kinds(&events),
        vec![
            (EventKind::Threshold, Some(50)),
            (EventKind::Threshold, Some(90)),
            (EventKind::Exhausted, None),
            (EventKind::Threshold, Some(10)),
        ]
    );
    let owner_event = &events[3];
    assert_eq!(owner_event.key_id, None);
    assert_eq!(owner_event.owner.as_deref(), Some("acme"));
    assert_eq!(owner_event.limit.as_ref().unwrap().level, Level::Owner);
    assert_eq!(owner_event.limit.as_ref().unwrap().used, 1_500_000);
    charge(1);
    assert_eq!(
        tv.vault.events(0, 100).unwrap().len(),
        4,
        "each fires once per window"
    );
}

#[test]
fn rotated_revoked_expiring_and_expired_events_are_logged_in_order() {
    let tv = TestVault::with(|o| {
        let mut o = o;
        o.expiring_lead = Duration::from_secs(86_400);
        o
    });
    let mut s = spec("acme", &[]);
    s.expires_at = Some(ts("2025-01-10T00:00:00Z"));
    let touched = tv.vault.mint(&s, &Context::default()).unwrap();
    let untouched = tv.vault.mint(&s, &Context::default()).unwrap();
    let other = tv.mint("beta", &[]);

    tv.clock.set("2025-01-08T23:59:59Z");
    assert!(tv.verify(&touched).allowed);
    tv.vault.tick(None).unwrap();
    assert!(tv.vault.events(0, 100).unwrap().is_empty());

    tv.clock.set("2025-01-09T00:00:00Z");
    assert!(tv.verify(&touched).allowed);
    assert!(tv.verify(&touched).allowed);
    tv.vault
        .rotate(&other.key_id, Duration::ZERO, &Context::default())
        .unwrap();
    tv.vault.tick(Some(ts("2025-01-09T00:00:01Z"))).unwrap();
    tv.clock.set("2025-01-10T00:00:00Z");
    assert!(!tv.verify(&touched).allowed);
    assert!(!tv.verify(&touched).allowed);
    tv.vault.revoke(&other.key_id, &Context::default()).unwrap();
    tv.vault.tick(None).unwrap();
    tv.vault.tick(None).unwrap();

    let events = tv.vault.events(0, 100).unwrap();
    let found: Vec<(EventKind, Option<&str>)> = events
        .iter()
        .map(|e| (e.kind, e.key_id.as_deref()))
        .collect();
    let (t, u, o) = (
        Some(touched.key_id.as_str()),
        Some(untouched.key_id.as_str()),
        Some(other.key_id.as_str()),
    );
    assert_eq!(
        found,
        vec![
            (EventKind::Expiring, t),
            (EventKind::Rotated, o),
            (EventKind::Expiring, u),
            (EventKind::Expired, t),
            (EventKind::Revoked, o),
            (EventKind::Expired, u),
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    assert_eq!(events[0].at, ts("2025-01-09T00:00:00Z"));
    assert_eq!(events[3].at, ts("2025-01-10T00:00:00Z"));
}

#[test]
fn events_page_by_sequence_number() {
    let tv = TestVault::new();
    for _ in 0..7 {
        let m = tv.mint("acme", &[]);
        tv.vault.revoke(&m.key_id, &Context::default()).unwrap();
    }
    let all = tv.vault.events(0, 1000).unwrap();
    assert_eq!(all.len(), 7);
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = tv.vault.events(after, 3).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().unwrap().seq;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(tv.vault.events(7, 10).unwrap().is_empty());
    assert_eq!(tv.vault.events(2, 0).unwrap().len(), 0);
    assert_eq!(tv.vault.events(5, 10).unwrap()[0].seq, 6);
}

#[test]
fn a_subscriber_receives_every_event_until_it_unsubscribes() {
    let tv = TestVault::new();
    let got: Arc<Mutex<Vec<nanu::Event>>> = Arc::default();
    let sink = got.clone();
    let id = tv
        .vault
        .subscribe(move |e| sink.lock().unwrap().push(e.clone()));
    let m = tv.mint("acme", &["requests=2"]);
    tv.verify(&m);
    tv.verify(&m);
    tv.vault
        .rotate(&m.key_id, Duration::ZERO, &Context::default())
        .unwrap();
    tv.vault.flush().unwrap();
    let expected = tv.vault.events(0, 100).unwrap();
    // 50, 80 and 100 percent, exhausted, rotated.
    assert_eq!(expected.len(), 5);
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < expected.len() {
        assert!(Instant::now() < deadline, "events never delivered");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut delivered = got.lock().unwrap().clone();
    delivered.sort_by_key(|e| e.seq);
    assert_eq!(delivered, expected);

    assert!(tv.vault.unsubscribe(id));
    assert!(!tv.vault.unsubscribe(id));
    tv.vault.revoke(&m.key_id, &Context::default()).unwrap();
    tv.vault.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(got.lock().unwrap().len(), expected.len());
    assert_eq!(tv.vault.events(0, 100).unwrap().len(), 6);
}

#[test]
fn a_verify_of_a_key_denied_before_its_limits_raises_no_threshold() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["requests=2"]);
    let request = VerifyRequest {
        env: Some("test"),
        ..VerifyRequest::default()
    };
    for _ in 0..5 {
        let v = tv.vault.verify(m.secret.expose(), &request).unwrap();
        assert!(!v.allowed);
    }
    assert!(tv.vault.events(0, 10).unwrap().is_empty());
    let opened = Vault::open(&tv.path, &options());
    assert_eq!(opened.unwrap_err().code(), nanu::ErrorCode::Locked);
}
