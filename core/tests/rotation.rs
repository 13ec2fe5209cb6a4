//! The life of a key: rotation and its grace period, rotate_due, revoke (seen at once by
//! other threads), revoke_owner, disable, expiry and ttl.

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::{TestVault, spec, ts};
use nanu::{
    Code, Context, ErrorCode, KeyFilter, KeyPatch, Minted, Status, Usage, Vault, VerifyRequest,
};

fn verify(vault: &Vault, secret: &Minted) -> nanu::Verdict {
    vault
        .verify(secret.secret.expose(), &VerifyRequest::default())
        .expect("verify")
}

#[test]
fn an_old_secret_works_until_its_grace_ends_and_not_at_that_instant() {
    let tv = TestVault::new();
    let old = tv.mint("acme", &[]);
    tv.clock.set("2025-01-01T10:00:00Z");
    let new = tv
        .vault
        .rotate(&old.key_id, Duration::from_secs(60), &Context::default())
        .expect("rotate");
    assert_eq!(new.key_id, old.key_id);
    assert_ne!(new.secret.expose(), old.secret.expose());
    let info = tv.vault.get(&old.key_id).unwrap();
    assert_eq!(info.rotated_at, ts("2025-01-01T10:00:00Z"));
    assert_eq!(info.grace_until, Some(ts("2025-01-01T10:01:00Z")));

    tv.clock.set("2025-01-01T10:00:59.999Z");
    let v = tv.verify(&old);
    assert!(v.allowed);
    assert!(v.grace, "an old secret in its grace period is flagged");
    assert_eq!(v.key_id.as_deref(), Some(old.key_id.as_str()));
    let v = tv.verify(&new);
    assert!(v.allowed);
    assert!(!v.grace);

    tv.clock.set("2025-01-01T10:01:00Z");
    let v = tv.verify(&old);
    assert_eq!(v.code, Code::NotFound);
    assert_eq!(v.key_id, None);
    assert!(tv.verify(&new).allowed);
    assert_eq!(tv.vault.get(&old.key_id).unwrap().grace_until, None);
}

#[test]
fn a_second_rotation_never_extends_the_first_secrets_deadline() {
    let mut tv = TestVault::new();
    let first = tv.mint("acme", &[]);
    let second = tv
        .vault
        .rotate(&first.key_id, Duration::from_secs(60), &Context::default())
        .unwrap();
    tv.clock.set("2025-01-01T00:00:10Z");
    let third = tv
        .vault
        .rotate(
            &first.key_id,
            Duration::from_secs(3600),
            &Context::default(),
        )
        .unwrap();
    let info = tv.vault.get(&first.key_id).unwrap();
    assert_eq!(info.grace_until, Some(ts("2025-01-01T01:00:10Z")));

    // Still true after a reopen: the deadlines are stored.
    tv.reopen();
    tv.clock.set("2025-01-01T00:00:59.999999Z");
    assert!(tv.verify(&first).grace);
    tv.clock.set("2025-01-01T00:01:00Z");
    assert_eq!(tv.verify(&first).code, Code::NotFound);
    let v = tv.verify(&second);
    assert!(v.allowed && v.grace);
    tv.clock.set("2025-01-01T01:00:10Z");
    assert_eq!(tv.verify(&second).code, Code::NotFound);
    assert!(tv.verify(&third).allowed);
}

#[test]
fn a_grace_of_zero_ends_every_old_secret_at_once() {
    let tv = TestVault::new();
    let first = tv.mint("acme", &[]);
    let second = tv
        .vault
        .rotate(
            &first.key_id,
            Duration::from_secs(86_400),
            &Context::default(),
        )
        .unwrap();
    assert!(tv.verify(&first).grace);
    let third = tv
        .vault
        .rotate(&first.key_id, Duration::ZERO, &Context::default())
        .unwrap();
    assert_eq!(tv.verify(&first).code, Code::NotFound);
    assert_eq!(tv.verify(&second).code, Code::NotFound);
    let v = tv.verify(&third);
    assert!(v.allowed && !v.grace);
    assert_eq!(tv.vault.get(&first.key_id).unwrap().grace_until, None);
}

#[test]
fn usage_and_windows_carry_over_across_rotation() {
    let tv = TestVault::new();
    let old = tv.mint("acme", &["requests=3/day", "cost=$1"]);
    assert!(tv.verify(&old).allowed);
    tv.vault
        .charge(
            &old.key_id,
            &Usage {
                cost: Some(400_000),
                ..Usage::default()
            },
        )
        .unwrap();
    tv.clock.set("2025-01-01T12:00:00Z");
    let new = tv
        .vault
        .rotate(&old.key_id, Duration::from_secs(600), &Context::default())
        .unwrap();
    let v = tv.verify(&old);
    assert!(v.allowed);
    let v = tv.verify(&new);
    assert!(v.allowed);
    let r = v.remaining.unwrap();
    assert_eq!((r.requests, r.cost), (Some(0), Some(600_000)));
    let v = tv.verify(&new);
    assert_eq!(v.code, Code::UsageExceeded);
    assert_eq!(v.resets_at, Some(ts("2025-01-02T00:00:00Z")));
    tv.clock.set("2025-01-02T00:00:00Z");
    assert!(tv.verify(&new).allowed);
}

#[test]
fn rotate_due_rotates_keys_whose_secret_is_as_old_as_their_rotate_every() {
    let tv = TestVault::new();
    let mut due_spec = spec("acme", &["requests=5"]);
    due_spec.rotate_every = Some("30 days".into());
    let due = tv.vault.mint(&due_spec, &Context::default()).unwrap();
    let plain = tv.mint("acme", &[]);
    let revoked = tv.vault.mint(&due_spec, &Context::default()).unwrap();
    tv.vault
        .revoke(&revoked.key_id, &Context::default())
        .unwrap();
    let disabled = tv.vault.mint(&due_spec, &Context::default()).unwrap();
    let off = KeyPatch {
        disabled: Some(true),
        ..KeyPatch::default()
    };
    tv.vault
        .update(&disabled.key_id, &off, &Context::default())
        .unwrap();
    assert!(tv.verify(&due).allowed);

    tv.clock.set("2025-01-30T23:59:59Z");
    let grace = Duration::from_secs(3600);
    assert!(
        tv.vault
            .rotate_due(grace, &Context::default())
            .unwrap()
            .is_empty()
    );
    tv.clock.set("2025-01-31T00:00:00Z");
    let rotated = tv.vault.rotate_due(grace, &Context::actor("cron")).unwrap();
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0].key_id, due.key_id);
    assert!(
        tv.vault
            .rotate_due(grace, &Context::default())
            .unwrap()
            .is_empty()
    );
    let v = tv.verify(&due);
    assert!(v.allowed && v.grace);
    let v = tv.verify(&rotated[0]);
    assert!(v.allowed && !v.grace);
    assert_eq!(v.remaining.unwrap().requests, Some(2));
    assert!(tv.verify(&plain).allowed);
    let info = tv.vault.get(&due.key_id).unwrap();
    assert_eq!(info.rotated_at, ts("2025-01-31T00:00:00Z"));
    assert_eq!(info.rotate_every.as_deref(), Some("30 days"));

    tv.clock.set("2025-03-01T23:59:59Z");
    assert!(
        tv.vault
            .rotate_due(grace, &Context::default())
            .unwrap()
            .is_empty()
    );
    tv.clock.set("2025-03-02T00:00:00Z");
    assert_eq!(
        tv.vault
            .rotate_due(grace, &Context::default())
            .unwrap()
            .len(),
        1
    );
    let audit = tv.vault.audit(0, 1000).unwrap();
    let record = audit.iter().find(|r| r.action == "rotate_due").unwrap();
    assert_eq!(record.actor.as_deref(), Some("cron"));
}

#[test]
fn rotating_a_revoked_or_unknown_key_fails() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &[]);
    tv.vault.revoke(&m.key_id, &Context::default()).unwrap();
    let err = tv
        .vault
        .rotate(&m.key_id, Duration::ZERO, &Context::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(tv.verify(&m).code, Code::Revoked);
    let err = tv
        .vault
        .rotate("key_missing", Duration::ZERO, &Context::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert!(err.message().contains("key_missing"));
}

#[test]
fn a_revoke_on_one_thread_is_seen_by_the_next_verify_on_another() {
    let tv = TestVault::new();
    let vault = Arc::new(tv.vault);
    let specs: Vec<_> = (0..200).map(|_| spec("acme", &[])).collect();
    let keys = vault.mint_many(&specs, &Context::default()).unwrap();
    let secrets: Vec<String> = keys.iter().map(|m| m.secret.expose().to_owned()).collect();
    let (revoked_tx, revoked_rx) = mpsc::channel::<usize>();
    let (seen_tx, seen_rx) = mpsc::channel::<(usize, Code)>();
    let checker = {
        let vault = vault.clone();
        std::thread::spawn(move || {
            for i in revoked_rx {
                let v = vault
                    .verify(&secrets[i], &VerifyRequest::default())
                    .expect("verify");
                seen_tx.send((i, v.code)).expect("send");
            }
        })
    };
    for (i, m) in keys.iter().enumerate() {
        assert!(verify(&vault, m).allowed);
        vault.revoke(&m.key_id, &Context::default()).unwrap();
        revoked_tx.send(i).unwrap();
        let (j, code) = seen_rx.recv().unwrap();
        assert_eq!((j, code), (i, Code::Revoked));
    }
    drop(revoked_tx);
    checker.join().unwrap();
    let revoked = vault
        .list(&KeyFilter {
            status: Some(Status::Revoked),
            limit: Some(1000),
            ..KeyFilter::default()
        })
        .unwrap();
    assert_eq!(revoked.keys.len(), 200);
}

#[test]
fn revoke_owner_counts_the_keys_it_revoked() {
    let tv = TestVault::new();
    let keys: Vec<_> = (0..5).map(|_| tv.mint("acme", &[])).collect();
    let other = tv.mint("beta", &[]);
    tv.vault
        .revoke(&keys[0].key_id, &Context::default())
        .unwrap();
    let off = KeyPatch {
        disabled: Some(true),
        ..KeyPatch::default()
    };
    tv.vault
        .update(&keys[1].key_id, &off, &Context::default())
        .unwrap();
    assert_eq!(
        tv.vault.revoke_owner("acme", &Context::default()).unwrap(),
        4
    );
    assert_eq!(
        tv.vault.revoke_owner("acme", &Context::default()).unwrap(),
        0
    );
    assert_eq!(
        tv.vault
            .revoke_owner("nobody", &Context::default())
            .unwrap(),
        0
    );
    for m in &keys {
        assert_eq!(tv.verify(m).code, Code::Revoked);
        assert_eq!(tv.vault.get(&m.key_id).unwrap().status, Status::Revoked);
    }
    assert!(tv.verify(&other).allowed);
    let on = KeyPatch {
        disabled: Some(false),
        ..KeyPatch::default()
    };
    let err = tv
        .vault
        .update(&keys[1].key_id, &on, &Context::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

#[test]
fn a_disabled_key_is_refused_until_enabled_again() {
    let mut tv = TestVault::new();
    let m = tv.mint("acme", &["requests=5"]);
    let off = KeyPatch {
        disabled: Some(true),
        metadata: Some(
            serde_json::json!({"why": "late payment"})
                .as_object()
                .unwrap()
                .clone(),
        ),
        ..KeyPatch::default()
    };
    tv.vault
        .update(&m.key_id, &off, &Context::default())
        .unwrap();
    let v = tv.verify(&m);
    assert_eq!(v.code, Code::Disabled);
    assert_eq!(v.key_id.as_deref(), Some(m.key_id.as_str()));
    tv.reopen();
    assert_eq!(tv.verify(&m).code, Code::Disabled);
    let info = tv.vault.get(&m.key_id).unwrap();
    assert_eq!(info.status, Status::Disabled);
    assert_eq!(info.metadata["why"], "late payment");
    let on = KeyPatch {
        disabled: Some(false),
        ..KeyPatch::default()
    };
    tv.vault
        .update(&m.key_id, &on, &Context::default())
        .unwrap();
    let v = tv.verify(&m);
    assert!(v.allowed);
    assert_eq!(
        v.remaining.unwrap().requests,
        Some(4),
        "denials consumed nothing"
    );
}

#[test]
fn a_ttl_of_one_month_from_january_31st_ends_on_the_last_day_of_february() {
    let tv = TestVault::new();
    let mut s = spec("acme", &[]);
    s.ttl = Some("1 month".into());
    for (now, end) in [
        ("2025-01-31T10:00:00Z", "2025-02-28T10:00:00Z"),
        ("2024-01-31T10:00:00Z", "2024-02-29T10:00:00Z"),
        ("2025-03-31T00:00:00Z", "2025-04-30T00:00:00Z"),
    ] {
        tv.clock.set(now);
        let m = tv.vault.mint(&s, &Context::default()).unwrap();
        assert_eq!(
            tv.vault.get(&m.key_id).unwrap().expires_at,
            Some(ts(end)),
            "from {now}"
        );
    }
    let mut s = spec("acme", &[]);
    s.ttl = Some("12h".into());
    let m = tv
        .vault
        .mint(&s, &Context::at(ts("2025-06-01T00:00:00Z")))
        .unwrap();
    assert_eq!(
        tv.vault.get(&m.key_id).unwrap().expires_at,
        Some(ts("2025-06-01T12:00:00Z"))
    );
    for bad in ["-1 day", "0s", "forever"] {
        let mut s = spec("acme", &[]);
        s.ttl = Some(bad.into());
        let err = tv.vault.mint(&s, &Context::default()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{bad}");
    }
}

#[test]
fn a_key_is_expired_from_its_expiry_instant() {
    let tv = TestVault::new();
    let mut s = spec("acme", &[]);
    s.expires_at = Some(ts("2025-01-10T00:00:00Z"));
    let m = tv.vault.mint(&s, &Context::default()).unwrap();
    tv.clock.set("2025-01-09T23:59:59.999999Z");
    assert!(tv.verify(&m).allowed);
    assert_eq!(tv.vault.get(&m.key_id).unwrap().status, Status::Active);
    tv.clock.set("2025-01-10T00:00:00Z");
    let v = tv.verify(&m);
    assert_eq!(v.code, Code::Expired);
    assert!(!v.allowed);
    assert_eq!(tv.vault.get(&m.key_id).unwrap().status, Status::Expired);
    let expired = tv
        .vault
        .list(&KeyFilter {
            status: Some(Status::Expired),
            ..KeyFilter::default()
        })
        .unwrap();
    assert_eq!(expired.keys.len(), 1);
    // Removing the expiry brings it back.
    let patch: KeyPatch = serde_json::from_value(serde_json::json!({"expires_at": null})).unwrap();
    tv.vault
        .update(&m.key_id, &patch, &Context::default())
        .unwrap();
    assert!(tv.verify(&m).allowed);
}

#[test]
fn list_pages_through_keys_in_id_order_with_filters() {
    let tv = TestVault::new();
    let mut specs = Vec::new();
    for i in 0..25 {
        let mut s = spec(if i % 2 == 0 { "even" } else { "odd" }, &[]);
        s.env = if i % 5 == 0 {
            "test".into()
        } else {
            String::new()
        };
        specs.push(s);
    }
    tv.vault.mint_many(&specs, &Context::default()).unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = tv
            .vault
            .list(&KeyFilter {
                owner: Some("even".into()),
                after: after.clone(),
                limit: Some(4),
                ..KeyFilter::default()
            })
            .unwrap();
        assert!(page.keys.len() <= 4);
        seen.extend(page.keys.iter().map(|k| k.key_id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 13);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let test_env = tv
        .vault
        .list(&KeyFilter {
            env: Some("test".into()),
            ..KeyFilter::default()
        })
        .unwrap();
    assert_eq!(test_env.keys.len(), 5);
    let err = tv
        .vault
        .list(&KeyFilter {
            limit: Some(0),
            ..KeyFilter::default()
        })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}
