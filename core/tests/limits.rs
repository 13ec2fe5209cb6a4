//! Admission: access checks (env, IP, scope, model, price) and every kind of limit of a key and
//! its owner, holds, charges past a limit, exact big numbers and idempotent charges.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{TestVault, limit, ts};
use nanu::{
    Code, Context, ErrorCode, HoldAmounts, KeyPatch, Level, Price, Unit, Usage, UsageQuery,
    VerifyRequest,
};

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().expect("ip"))
}

fn hold_cost(cost: u64) -> VerifyRequest<'static> {
    VerifyRequest {
        hold: HoldAmounts {
            cost,
            ..HoldAmounts::default()
        },
        ..VerifyRequest::default()
    }
}

fn usage_cost(cost: u64) -> Usage {
    Usage {
        cost: Some(cost),
        ..Usage::default()
    }
}

fn usage_tokens(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cost: Some(0),
        ..Usage::default()
    }
}

/// The number of rows in the usage log (charges and denied verifies).
fn log_len(tv: &TestVault) -> usize {
    tv.vault
        .usage_records(&UsageQuery::default(), usize::MAX)
        .expect("usage records")
        .len()
}

// ---- access checks ---------------------------------------------------------------------

#[test]
fn env_mismatch_is_denied_and_the_stored_env_decides() {
    let tv = TestVault::new();
    let m = tv.mint_json(serde_json::json!({"owner": "acme", "env": "test"}));
    let check = |env| {
        let request = VerifyRequest {
            env,
            ..VerifyRequest::default()
        };
        tv.vault.verify(m.secret.expose(), &request).unwrap()
    };
    assert_eq!(check(Some("live")).code, Code::EnvMismatch);
    assert_eq!(check(Some("live")).env.as_deref(), Some("test"));
    assert!(check(Some("test")).allowed);
    assert!(check(None).allowed);
}

#[test]
fn ip_allowlists_match_v4_v6_and_ipv4_mapped_clients() {
    let tv = TestVault::new();
    let m = tv.mint_json(serde_json::json!({
        "owner": "acme",
        "ips": ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"],
    }));
    let check = |addr: Option<IpAddr>| {
        let request = VerifyRequest {
            ip: addr,
            ..VerifyRequest::default()
        };
        tv.vault.verify(m.secret.expose(), &request).unwrap().code
    };
    for allowed in [
        "10.1.2.3",
        "10.255.255.255",
        "192.168.1.7",
        "2001:db8::1",
        "2001:db8:ffff::9",
        "::ffff:10.9.8.7",
        "::ffff:192.168.1.7",
    ] {
        assert_eq!(check(ip(allowed)), Code::Valid, "{allowed}");
    }
    for denied in [
        "11.0.0.1",
        "192.168.1.8",
        "2001:db9::1",
        "::ffff:11.0.0.1",
        "::1",
        "127.0.0.1",
    ] {
        assert_eq!(check(ip(denied)), Code::IpDenied, "{denied}");
    }
    // An allowlist needs an address to check.
    assert_eq!(check(None), Code::IpDenied);

    // An empty list allows no address; no list allows every address.
    let none = tv.mint_json(serde_json::json!({"owner": "acme", "ips": []}));
    let request = VerifyRequest {
        ip: ip("10.0.0.1"),
        ..VerifyRequest::default()
    };
    let verdict = tv.vault.verify(none.secret.expose(), &request).unwrap();
    assert_eq!(verdict.code, Code::IpDenied);
    let any = tv.mint("acme", &[]);
    assert!(
        tv.vault
            .verify(any.secret.expose(), &request)
            .unwrap()
            .allowed
    );

    let bad = serde_json::from_value::<nanu::KeySpec>(serde_json::json!({
        "owner": "acme", "ips": ["10.0.0.0/33"]
    }))
    .unwrap();
    let err = tv.vault.mint(&bad, &Context::default()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

#[test]
fn an_allowlist_written_in_ipv4_mapped_form_matches_v4_clients() {
    let tv = TestVault::new();
    let m = tv.mint_json(serde_json::json!({
        "owner": "acme",
        "ips": ["::ffff:10.0.0.0/104", "::ffff:192.168.1.7"],
    }));
    let check = |addr: &str| {
        let request = VerifyRequest {
            ip: ip(addr),
            ..VerifyRequest::default()
        };
        tv.vault.verify(m.secret.expose(), &request).unwrap().code
    };
    for allowed in [
        "10.1.2.3",
        "::ffff:10.1.2.3",
        "192.168.1.7",
        "::ffff:192.168.1.7",
    ] {
        assert_eq!(check(allowed), Code::Valid, "{allowed}");
    }
    for denied in ["11.1.2.3", "::ffff:11.1.2.3", "192.168.1.8", "::a00:1"] {
        assert_eq!(check(denied), Code::IpDenied, "{denied}");
    }
    // The allowlist is kept as it was written.
    let ips = tv.vault.get(&m.key_id).unwrap().ips.unwrap();
    assert_eq!(ips[0], "::ffff:10.0.0.0/104");
}

#[test]
fn scopes_models_and_aliases_are_checked_and_the_verdict_names_the_resolved_model() {
    let tv = TestVault::new();
    let m = tv.mint_json(serde_json::json!({
        "owner": "acme",
        "scopes": ["chat", "embed"],
        "models": ["gpt-4o", "bedrock/*"],
        "aliases": {"fast": "gpt-4o", "claude": "bedrock/anthropic.claude-3", "bad": "gpt-5"},
    }));
    let check = |scope: Option<&str>, model: Option<&str>| {
        let request = VerifyRequest {
            scope,
            model,
            ..VerifyRequest::default()
        };
        tv.vault.verify(m.secret.expose(), &request).unwrap()
    };
    assert!(check(Some("chat"), None).allowed);
    assert_eq!(check(Some("admin"), None).code, Code::ScopeDenied);
    assert_eq!(check(Some("Chat"), None).code, Code::ScopeDenied);

    let v = check(None, Some("fast"));
    assert!(v.allowed);
    assert_eq!(v.model.as_deref(), Some("gpt-4o"));
    let v = check(None, Some("claude"));
    assert!(v.allowed);
    assert_eq!(v.model.as_deref(), Some("bedrock/anthropic.claude-3"));
    let v = check(None, Some("bad"));
    assert_eq!(v.code, Code::ModelDenied);
    assert_eq!(v.model.as_deref(), Some("gpt-5"));
    for model in ["bedrock/x", "bedrock/a/b", "gpt-4o"] {
        assert!(check(None, Some(model)).allowed, "{model}");
    }
    for model in [
        "bedrock",
        "bedrock/",
        "bedrockx/y",
        "bedrock/../openai/gpt-4o",
        "bedrock/./x",
        "GPT-4o",
        "gpt-4o-mini",
        "",
    ] {
        assert_eq!(
            check(None, Some(model)).code,
            Code::ModelDenied,
            "{model:?}"
        );
    }
}

#[test]
fn update_changes_scopes_models_aliases_ips_and_metadata() {
    let tv = TestVault::new();
    let m = tv.mint_json(serde_json::json!({
        "owner": "acme", "scopes": ["chat"], "models": ["gpt-4o"]
    }));
    let request = VerifyRequest {
        scope: Some("embed"),
        model: Some("fast"),
        ip: ip("2001:db8::5"),
        ..VerifyRequest::default()
    };
    assert_eq!(
        tv.vault.verify(m.secret.expose(), &request).unwrap().code,
        Code::ScopeDenied
    );
    let patch: KeyPatch = serde_json::from_value(serde_json::json!({
        "scopes": ["chat", "embed"],
        "models": ["bedrock/*"],
        "aliases": {"fast": "bedrock/titan"},
        "ips": ["2001:db8::/48", "10.0.0.0/8"],
        "metadata": {"tier": "gold"},
        "name": "renamed",
    }))
    .unwrap();
    let info = tv
        .vault
        .update(&m.key_id, &patch, &Context::actor("ops"))
        .unwrap();
    assert_eq!(info.name, "renamed");
    assert_eq!(info.metadata["tier"], "gold");
    let v = tv.vault.verify(m.secret.expose(), &request).unwrap();
    assert!(v.allowed, "{v:?}");
    assert_eq!(v.model.as_deref(), Some("bedrock/titan"));
    let v4 = VerifyRequest {
        ip: ip("::ffff:10.1.1.1"),
        ..request
    };
    assert!(tv.vault.verify(m.secret.expose(), &v4).unwrap().allowed);

    // `null` clears an allowlist: every model and address.
    let patch: KeyPatch =
        serde_json::from_value(serde_json::json!({"models": null, "ips": null})).unwrap();
    tv.vault
        .update(&m.key_id, &patch, &Context::default())
        .unwrap();
    let anywhere = VerifyRequest {
        model: Some("anything/at-all"),
        ip: ip("8.8.8.8"),
        ..VerifyRequest::default()
    };
    assert!(
        tv.vault
            .verify(m.secret.expose(), &anywhere)
            .unwrap()
            .allowed
    );
    let got = tv.vault.get(&m.key_id).unwrap();
    assert_eq!(got.models, None);
    assert_eq!(got.ips, None);
    assert_eq!(got.metadata["tier"], "gold");

    // A bad patch changes nothing.
    let patch: KeyPatch =
        serde_json::from_value(serde_json::json!({"models": ["*"], "name": "x"})).unwrap();
    let err = tv
        .vault
        .update(&m.key_id, &patch, &Context::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(tv.vault.get(&m.key_id).unwrap().name, "renamed");
    let err = tv
        .vault
        .update("key_nope", &KeyPatch::default(), &Context::default())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
}

#[test]
fn a_key_with_a_cost_limit_is_denied_an_unpriced_model() {
    let tv = TestVault::new();
    let budget = tv.mint("acme", &["cost=$5"]);
    let free = tv.mint("acme", &["requests=100"]);
    let request = VerifyRequest {
        model: Some("gpt-4o"),
        ..VerifyRequest::default()
    };
    let v = tv.vault.verify(budget.secret.expose(), &request).unwrap();
    assert_eq!(v.code, Code::ModelUnpriced);
    assert!(!v.allowed);
    assert!(
        tv.vault
            .verify(free.secret.expose(), &request)
            .unwrap()
            .allowed
    );
    // A verify that names no model is not priced.
    assert!(tv.verify(&budget).allowed);

    let price = Price {
        input_per_mtok: 2_500_000,
        output_per_mtok: 10_000_000,
        per_request: 0,
    };
    tv.vault
        .set_price("gpt-4o", Some(price), &Context::default())
        .unwrap();
    assert!(
        tv.vault
            .verify(budget.secret.expose(), &request)
            .unwrap()
            .allowed
    );

    // An owner's cost limit counts too.
    tv.vault
        .set_owner_policy("acme", &[limit("cost=$100/month")], &Context::default())
        .unwrap();
    let other = VerifyRequest {
        model: Some("o3"),
        ..VerifyRequest::default()
    };
    let v = tv.vault.verify(free.secret.expose(), &other).unwrap();
    assert_eq!(v.code, Code::ModelUnpriced);
}

// ---- limits ----------------------------------------------------------------------------

#[test]
fn a_request_limit_admits_exactly_its_amount() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["requests=3"]);
    for left in [2, 1, 0] {
        let v = tv.verify(&m);
        assert!(v.allowed);
        assert_eq!(v.remaining.unwrap().requests, Some(left));
    }
    let v = tv.verify(&m);
    assert_eq!(v.code, Code::UsageExceeded);
    assert_eq!(v.retry_after, None);
    assert_eq!(v.resets_at, None);
    let by = v.denied_by.expect("denied by a limit");
    assert_eq!(
        (by.level, by.index, by.limit.unit),
        (Level::Key, 0, Unit::Requests)
    );
    assert_eq!((by.used, by.remaining), (3, 0));
    // A denial consumes nothing, and is logged as denied.
    let r = tv.vault.remaining(&m.key_id, None).unwrap();
    assert_eq!(r.requests, Some(0));
    assert_eq!(r.limits[0].used, 3);
    let rows = tv.vault.usage(&UsageQuery::default()).unwrap();
    assert_eq!((rows[0].requests, rows[0].denied), (0, 1));
}

#[test]
fn an_owner_limit_denies_a_key_far_from_its_own_limit() {
    let tv = TestVault::new();
    tv.vault
        .set_owner_policy("acme", &[limit("requests=3/day")], &Context::default())
        .unwrap();
    let a = tv.mint("acme", &["requests=1000"]);
    let b = tv.mint("acme", &["requests=1000"]);
    let elsewhere = tv.mint("zeta", &["requests=1000"]);
    assert!(tv.verify(&a).allowed);
    assert!(tv.verify(&b).allowed);
    let v = tv.verify(&a);
    assert!(v.allowed);
    let remaining = v.remaining.unwrap();
    assert_eq!(remaining.requests, Some(0));
    assert_eq!(remaining.limits.len(), 2);
    assert_eq!(remaining.limits[0].remaining, 998);
    assert_eq!(remaining.limits[1].level, Level::Owner);

    let v = tv.verify(&b);
    assert_eq!(v.code, Code::UsageExceeded);
    let by = v.denied_by.unwrap();
    assert_eq!((by.level, by.index), (Level::Owner, 0));
    assert_eq!(v.resets_at, Some(ts("2025-01-02T00:00:00Z")));
    assert_eq!(v.retry_after, Some(Duration::from_secs(86_400)));
    // The key's own counter was not touched by the denial.
    assert_eq!(
        tv.vault.remaining(&b.key_id, None).unwrap().limits[0].used,
        1
    );
    // Other owners are not affected.
    assert!(tv.verify(&elsewhere).allowed);
    let owner = tv.vault.owner("acme").unwrap();
    assert_eq!(owner.keys, 2);
    assert_eq!(owner.remaining.requests, Some(0));

    tv.clock.set("2025-01-02T00:00:00Z");
    assert!(tv.verify(&b).allowed);
}

#[test]
fn the_default_owner_policy_applies_to_new_owners_only() {
    let mut tv = TestVault::new();
    let old = tv.mint("old", &[]);
    tv.vault
        .set_default_owner_policy(&[limit("requests=1")], &Context::default())
        .unwrap();
    assert_eq!(tv.vault.default_owner_policy(), vec![limit("requests=1")]);
    let new = tv.mint("new", &[]);
    let old2 = tv.mint("old", &[]);
    assert!(tv.vault.owner("old").unwrap().limits.is_empty());
    assert_eq!(
        tv.vault.owner("new").unwrap().limits,
        vec![limit("requests=1")]
    );
    for _ in 0..3 {
        assert!(tv.verify(&old).allowed);
        assert!(tv.verify(&old2).allowed);
    }
    assert!(tv.verify(&new).allowed);
    assert_eq!(tv.verify(&new).code, Code::UsageExceeded);

    // An owner named first by set_owner_policy gets what it is given.
    tv.vault
        .set_owner_policy("third", &[limit("requests=5")], &Context::default())
        .unwrap();
    assert_eq!(
        tv.vault.owner("third").unwrap().limits,
        vec![limit("requests=5")]
    );

    // All of it survives a reopen.
    tv.reopen();
    assert_eq!(tv.vault.default_owner_policy(), vec![limit("requests=1")]);
    assert!(tv.vault.owner("old").unwrap().limits.is_empty());
    assert_eq!(tv.verify(&new).code, Code::UsageExceeded);
    let fourth = tv.mint("fourth", &[]);
    assert!(tv.verify(&fourth).allowed);
    assert_eq!(tv.verify(&fourth).code, Code::UsageExceeded);
}

#[test]
fn token_limits_count_input_output_and_both() {
    let tv = TestVault::new();
    let both = tv.mint("acme", &["tokens=1000"]);
    let input = tv.mint("acme", &["input_tokens=100"]);
    let output = tv.mint("acme", &["output_tokens=100"]);
    for m in [&both, &input, &output] {
        assert!(tv.verify(m).allowed);
        tv.vault.charge(&m.key_id, &usage_tokens(99, 99)).unwrap();
    }
    assert_eq!(
        tv.vault.remaining(&both.key_id, None).unwrap().tokens,
        Some(802)
    );
    assert_eq!(
        tv.vault
            .remaining(&input.key_id, None)
            .unwrap()
            .input_tokens,
        Some(1)
    );
    assert_eq!(
        tv.vault
            .remaining(&output.key_id, None)
            .unwrap()
            .output_tokens,
        Some(1)
    );
    assert!(tv.verify(&input).allowed);
    let out = tv
        .vault
        .charge(&input.key_id, &usage_tokens(1, 500))
        .unwrap();
    assert_eq!(out.exceeded.len(), 1);
    assert_eq!(out.exceeded[0].limit.unit, Unit::InputTokens);
    assert_eq!(tv.verify(&input).code, Code::UsageExceeded);
    // A hold of tokens larger than what is left is denied.
    let request = VerifyRequest {
        hold: HoldAmounts {
            input_tokens: 500,
            output_tokens: 303,
            cost: 0,
        },
        ..VerifyRequest::default()
    };
    let v = tv.vault.verify(both.secret.expose(), &request).unwrap();
    assert_eq!(v.code, Code::UsageExceeded);
    let request = VerifyRequest {
        hold: HoldAmounts {
            input_tokens: 500,
            output_tokens: 302,
            cost: 0,
        },
        ..request
    };
    let v = tv.vault.verify(both.secret.expose(), &request).unwrap();
    assert!(v.allowed);
    assert_eq!(v.remaining.unwrap().tokens, Some(0));
}

#[test]
fn a_cost_budget_is_strict_and_a_charge_past_it_is_recorded_and_denies_the_next_verify() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["cost=$1", "requests=100"]);
    assert!(tv.verify(&m).allowed);
    let out = tv.vault.charge(&m.key_id, &usage_cost(999_999)).unwrap();
    assert!(out.exceeded.is_empty());
    assert!(out.priced);
    // One micro-unit left: a verify with no hold still needs room for one.
    let v = tv.verify(&m);
    assert!(v.allowed);
    assert_eq!(v.remaining.unwrap().cost, Some(1));
    let before = log_len(&tv);
    let out = tv.vault.charge(&m.key_id, &usage_cost(5_000_000)).unwrap();
    assert_eq!(out.cost, 5_000_000);
    assert_eq!(out.exceeded.len(), 1);
    let ex = &out.exceeded[0];
    assert_eq!(
        (ex.level, ex.index, ex.limit.unit),
        (Level::Key, 0, Unit::Cost)
    );
    assert_eq!((ex.used, ex.remaining), (5_999_999, 0));
    assert_eq!(
        log_len(&tv),
        before + 1,
        "delivered usage is always recorded"
    );

    let v = tv.verify(&m);
    assert_eq!(v.code, Code::BudgetExceeded);
    assert_eq!(v.denied_by.unwrap().used, 5_999_999);
    let rows = tv.vault.usage(&UsageQuery::default()).unwrap();
    assert_eq!(rows[0].cost, 5_999_999);
    assert_eq!(rows[0].requests, 2);
    assert_eq!(rows[0].denied, 1);
}

#[test]
fn a_rolling_limit_rate_limits_with_an_exact_retry_after() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["requests=2/10s"]);
    assert!(tv.verify(&m).allowed);
    assert!(tv.verify(&m).allowed);
    let v = tv.verify(&m);
    assert_eq!(v.code, Code::RateLimited);
    // Two per ten seconds: one unit drips back every five seconds.
    assert_eq!(v.retry_after, Some(Duration::from_secs(5)));
    assert_eq!(v.resets_at, Some(ts("2025-01-01T00:00:10Z")));
    tv.clock
        .advance(Duration::from_secs(5) - Duration::from_micros(1));
    let v = tv.verify(&m);
    assert_eq!(v.code, Code::RateLimited);
    assert_eq!(v.retry_after, Some(Duration::from_micros(1)));
    tv.clock.advance(Duration::from_micros(1));
    assert!(tv.verify(&m).allowed);
    assert_eq!(tv.verify(&m).retry_after, Some(Duration::from_secs(5)));
    tv.clock.advance(Duration::from_secs(3600));
    assert!(tv.verify(&m).allowed);
    assert!(tv.verify(&m).allowed);
    assert!(!tv.verify(&m).allowed);
}

#[test]
fn a_huge_hold_against_a_small_rolling_limit_is_denied_without_changing_state() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["cost=$1/min", "requests=10/min"]);
    assert!(tv.verify(&m).allowed);
    let before = tv.vault.remaining(&m.key_id, None).unwrap();
    for cost in [u64::MAX, 1_000_001, u64::MAX / 2] {
        let v = tv
            .vault
            .verify(m.secret.expose(), &hold_cost(cost))
            .unwrap();
        assert_eq!(v.code, Code::RateLimited);
        assert_eq!(v.retry_after, None, "it can never fit");
        assert_eq!(v.denied_by.unwrap().index, 0);
    }
    assert_eq!(tv.vault.remaining(&m.key_id, None).unwrap(), before);
    assert_eq!(tv.vault.stats().holds, 0);
    let v = tv
        .vault
        .verify(m.secret.expose(), &hold_cost(1_000_000))
        .unwrap();
    assert!(v.allowed, "exactly the amount fits");
}

#[test]
fn thirty_billion_tokens_are_stored_and_read_back_exactly() {
    let mut tv = TestVault::new();
    let m = tv.mint("acme", &["tokens=30B", "tokens=60000000001/month"]);
    assert_eq!(
        tv.vault.get(&m.key_id).unwrap().limits[0].amount,
        30_000_000_000
    );
    assert!(tv.verify(&m).allowed);
    let out = tv
        .vault
        .charge(&m.key_id, &usage_tokens(20_000_000_000, 9_999_999_999))
        .unwrap();
    assert!(out.exceeded.is_empty());
    let r = tv.vault.remaining(&m.key_id, None).unwrap();
    assert_eq!(r.limits[0].used, 29_999_999_999);
    assert_eq!(r.tokens, Some(1));
    tv.reopen();
    let r = tv.vault.remaining(&m.key_id, None).unwrap();
    assert_eq!(r.limits[0].used, 29_999_999_999);
    assert_eq!(r.limits[1].remaining, 30_000_000_002);
    let rows = tv.vault.usage(&UsageQuery::default()).unwrap();
    assert_eq!(rows[0].input_tokens, 20_000_000_000);
    assert_eq!(rows[0].tokens, 29_999_999_999);
    let records = tv.vault.usage_records(&UsageQuery::default(), 10).unwrap();
    assert_eq!(records[0].output_tokens, 9_999_999_999);
    assert!(tv.verify(&m).allowed);
    tv.vault.charge(&m.key_id, &usage_tokens(1, 0)).unwrap();
    assert_eq!(tv.verify(&m).code, Code::UsageExceeded);
}

#[test]
fn overflowing_token_counts_are_rejected_and_change_nothing() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["tokens=1000", "cost=$1"]);
    let v = tv.vault.verify(m.secret.expose(), &hold_cost(10)).unwrap();
    let hold = v.hold_id.unwrap();
    let before = tv.vault.remaining(&m.key_id, None).unwrap();
    let rows_before = log_len(&tv);
    let bad = Usage {
        input_tokens: u64::MAX,
        output_tokens: 1,
        request_id: Some("r1".into()),
        hold_id: Some(hold),
        ..Usage::default()
    };
    let err = tv.vault.charge(&m.key_id, &bad).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(tv.vault.remaining(&m.key_id, None).unwrap(), before);
    assert_eq!(log_len(&tv), rows_before);
    assert_eq!(tv.vault.stats().holds, 1);
    // The request id was not used up by the failed charge.
    let good = Usage {
        input_tokens: 5,
        cost: Some(3),
        request_id: Some("r1".into()),
        hold_id: Some(hold),
        ..Usage::default()
    };
    let out = tv.vault.charge(&m.key_id, &good).unwrap();
    assert!(!out.replayed);
    assert_eq!(tv.vault.stats().holds, 0);
    assert_eq!(
        tv.vault.remaining(&m.key_id, None).unwrap().cost,
        Some(999_997)
    );
}

#[test]
fn a_priced_cost_that_overflows_is_rejected_and_leaves_the_hold_outstanding() {
    let tv = TestVault::new();
    let price = Price {
        input_per_mtok: u64::MAX,
        output_per_mtok: u64::MAX,
        per_request: 0,
    };
    tv.vault
        .set_price("pricey", Some(price), &Context::default())
        .unwrap();
    let m = tv.mint("acme", &["cost=$1"]);
    let request = VerifyRequest {
        model: Some("pricey"),
        hold: HoldAmounts {
            cost: 400_000,
            ..HoldAmounts::default()
        },
        ..VerifyRequest::default()
    };
    let v = tv.vault.verify(m.secret.expose(), &request).unwrap();
    let hold = v.hold_id.expect("hold");
    let before = tv.vault.remaining(&m.key_id, None).unwrap();
    assert_eq!(before.cost, Some(600_000));
    let usage = Usage {
        model: Some("pricey".into()),
        input_tokens: 1 << 40,
        output_tokens: 1 << 40,
        hold_id: Some(hold),
        ..Usage::default()
    };
    let err = tv.vault.charge(&m.key_id, &usage).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.message().contains("overflows"), "{err}");
    assert_eq!(tv.vault.remaining(&m.key_id, None).unwrap(), before);
    assert_eq!(tv.vault.stats().holds, 1);
    assert!(
        tv.vault.release(hold).unwrap(),
        "the hold is still there to give back"
    );
    assert_eq!(
        tv.vault.remaining(&m.key_id, None).unwrap().cost,
        Some(1_000_000)
    );
}

#[test]
fn idempotent_charges_replay_the_first_outcome_and_refuse_other_amounts() {
    let mut tv = TestVault::new();
    let m = tv.mint("acme", &["cost=$1"]);
    let other = tv.mint("acme", &["cost=$1"]);
    let first = Usage {
        model: Some("m".into()),
        input_tokens: 10,
        cost: Some(600_000),
        request_id: Some("req-1".into()),
        ..Usage::default()
    };
    let out = tv.vault.charge(&m.key_id, &first).unwrap();
    assert!(!out.replayed);
    let remaining = tv.vault.remaining(&m.key_id, None).unwrap();
    let rows = log_len(&tv);

    let again = tv.vault.charge(&m.key_id, &first).unwrap();
    assert!(again.replayed);
    assert_eq!(again.cost, out.cost);
    assert_eq!(again.exceeded, out.exceeded);

    for changed in [
        Usage {
            cost: Some(600_001),
            ..first.clone()
        },
        Usage {
            input_tokens: 11,
            ..first.clone()
        },
        Usage {
            model: Some("n".into()),
            ..first.clone()
        },
        Usage {
            cost: None,
            ..first.clone()
        },
    ] {
        let err = tv.vault.charge(&m.key_id, &changed).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Conflict);
        assert!(err.message().contains("req-1"), "{err}");
        assert!(err.message().contains(&m.key_id), "{err}");
    }
    assert_eq!(tv.vault.remaining(&m.key_id, None).unwrap(), remaining);
    assert_eq!(log_len(&tv), rows);

    // Request ids are per key.
    let on_other = tv.vault.charge(&other.key_id, &first).unwrap();
    assert!(!on_other.replayed);

    // Remembered across a reopen.
    tv.reopen();
    let again = tv.vault.charge(&m.key_id, &first).unwrap();
    assert!(again.replayed);
    assert_eq!(again.cost, 600_000);
    let err = tv
        .vault
        .charge(
            &m.key_id,
            &Usage {
                cost: Some(1),
                ..first.clone()
            },
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert_eq!(
        tv.vault.remaining(&m.key_id, None).unwrap().cost,
        Some(400_000)
    );
    let err = tv
        .vault
        .charge(
            &m.key_id,
            &Usage {
                request_id: Some(String::new()),
                ..first
            },
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

#[test]
fn changing_a_limit_keeps_the_usage_already_counted() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["requests=10/day", "cost=$1"]);
    for _ in 0..3 {
        assert!(tv.verify(&m).allowed);
    }
    tv.vault.charge(&m.key_id, &usage_cost(250_000)).unwrap();
    let patch = KeyPatch {
        limits: Some(vec![
            limit("cost=$2"),
            limit("requests=5/day"),
            limit("tokens=100"),
        ]),
        ..KeyPatch::default()
    };
    tv.vault
        .update(&m.key_id, &patch, &Context::default())
        .unwrap();
    let r = tv.vault.remaining(&m.key_id, None).unwrap();
    assert_eq!(r.cost, Some(1_750_000));
    assert_eq!(r.requests, Some(2));
    assert_eq!(r.tokens, Some(100));
    // A limit on another window starts from zero.
    let patch = KeyPatch {
        limits: Some(vec![limit("requests=5/hour")]),
        ..KeyPatch::default()
    };
    tv.vault
        .update(&m.key_id, &patch, &Context::default())
        .unwrap();
    assert_eq!(
        tv.vault.remaining(&m.key_id, None).unwrap().requests,
        Some(5)
    );
    // The usage log is untouched.
    let rows = tv.vault.usage(&UsageQuery::default()).unwrap();
    assert_eq!(rows[0].cost, 250_000);
}

// ---- holds -----------------------------------------------------------------------------

#[test]
fn a_hold_is_placed_settled_by_its_charge_or_released() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["cost=$0.001", "tokens=1000/day"]);
    let request = VerifyRequest {
        hold: HoldAmounts {
            input_tokens: 100,
            output_tokens: 200,
            cost: 300,
        },
        ..VerifyRequest::default()
    };
    let v = tv.vault.verify(m.secret.expose(), &request).unwrap();
    let h1 = v.hold_id.expect("a hold id");
    let r = v.remaining.unwrap();
    assert_eq!((r.cost, r.tokens), (Some(700), Some(700)));
    assert_eq!((r.limits[0].held, r.limits[0].used), (300, 0));

    // Settled for less than held: the difference comes back.
    let usage = Usage {
        input_tokens: 50,
        output_tokens: 10,
        cost: Some(120),
        hold_id: Some(h1),
        ..Usage::default()
    };
    tv.vault.charge(&m.key_id, &usage).unwrap();
    let r = tv.vault.remaining(&m.key_id, None).unwrap();
    assert_eq!((r.cost, r.tokens), (Some(880), Some(940)));
    assert_eq!(r.limits[0].held, 0);
    assert!(!tv.vault.release(h1).unwrap(), "a settled hold is gone");

    // Released: everything comes back.
    let v = tv.vault.verify(m.secret.expose(), &request).unwrap();
    let h2 = v.hold_id.unwrap();
    assert_eq!(v.remaining.unwrap().cost, Some(580));
    assert!(tv.vault.release(h2).unwrap());
    assert!(!tv.vault.release(h2).unwrap());
    let r = tv.vault.remaining(&m.key_id, None).unwrap();
    assert_eq!((r.cost, r.tokens), (Some(880), Some(940)));

    // Settled for more than held: usage is recorded in full.
    let v = tv.vault.verify(m.secret.expose(), &request).unwrap();
    let usage = Usage {
        cost: Some(1_000),
        hold_id: v.hold_id,
        ..Usage::default()
    };
    let out = tv.vault.charge(&m.key_id, &usage).unwrap();
    assert_eq!(out.exceeded.len(), 1);
    assert_eq!(tv.vault.remaining(&m.key_id, None).unwrap().cost, Some(0));

    // A hold of another key cannot be settled here.
    let other = tv.mint("acme", &["cost=$1"]);
    let v = tv
        .vault
        .verify(other.secret.expose(), &hold_cost(5))
        .unwrap();
    let usage = Usage {
        cost: Some(1),
        hold_id: v.hold_id,
        ..Usage::default()
    };
    let err = tv.vault.charge(&m.key_id, &usage).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(tv.vault.stats().holds, 1);
}

#[test]
fn holds_count_against_the_budget_until_settled() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &["cost=$0.10"]);
    let mut holds = Vec::new();
    for left in [70_000, 40_000, 10_000] {
        let v = tv
            .vault
            .verify(m.secret.expose(), &hold_cost(30_000))
            .unwrap();
        assert!(v.allowed);
        assert_eq!(v.remaining.unwrap().cost, Some(left));
        holds.push(v.hold_id.unwrap());
    }
    let v = tv
        .vault
        .verify(m.secret.expose(), &hold_cost(30_000))
        .unwrap();
    assert_eq!(v.code, Code::BudgetExceeded);
    assert_eq!(v.hold_id, None);
    let v = tv
        .vault
        .verify(m.secret.expose(), &hold_cost(10_000))
        .unwrap();
    assert!(v.allowed, "exactly what is left fits");
    assert_eq!(tv.vault.stats().holds, 4);
}

#[test]
fn a_hold_expires_at_its_timeout_by_tick_and_gives_back_exactly_what_it_held() {
    let tv = TestVault::with(|o| {
        let mut o = o;
        o.hold_timeout = Duration::from_secs(60);
        o
    });
    let m = tv.mint("acme", &["cost=$1", "tokens=10k/day", "cost=$1/10s"]);
    let placed = ts("2025-01-01T00:00:00Z");
    let request = VerifyRequest {
        hold: HoldAmounts {
            input_tokens: 1_000,
            output_tokens: 0,
            cost: 250_000,
        },
        at: Some(placed),
        ..VerifyRequest::default()
    };
    let untouched = tv.vault.remaining(&m.key_id, Some(placed)).unwrap();
    let v = tv.vault.verify(m.secret.expose(), &request).unwrap();
    assert!(v.allowed);
    assert_eq!(v.remaining.unwrap().cost, Some(750_000));

    let just_before = ts("2025-01-01T00:00:59.999999Z");
    tv.vault.tick(Some(just_before)).unwrap();
    assert_eq!(tv.vault.stats().holds, 1);
    let r = tv.vault.remaining(&m.key_id, Some(just_before)).unwrap();
    assert_eq!(r.limits[0].held, 250_000);
    assert_eq!(r.limits[1].held, 1_000);

    let at_timeout = ts("2025-01-01T00:01:00Z");
    tv.vault.tick(Some(at_timeout)).unwrap();
    assert_eq!(tv.vault.stats().holds, 0);
    let r = tv.vault.remaining(&m.key_id, Some(at_timeout)).unwrap();
    assert_eq!(r.limits[0], untouched.limits[0]);
    assert_eq!(r.limits[1].remaining, 10_000);
    assert_eq!(r.limits[2].remaining, 1_000_000);
    assert_eq!(r.cost, Some(1_000_000));
    assert_eq!(r.tokens, Some(10_000));
}

#[test]
fn the_commit_thread_expires_holds_placed_at_the_vault_clock() {
    let tv = TestVault::with(|o| {
        let mut o = o;
        o.hold_timeout = Duration::from_secs(60);
        o.flush_interval = Duration::from_millis(10);
        o
    });
    let m = tv.mint("acme", &["cost=$1"]);
    let v = tv.vault.verify(m.secret.expose(), &hold_cost(100)).unwrap();
    assert!(v.hold_id.is_some());
    tv.clock.advance(Duration::from_secs(60));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tv.vault.stats().holds > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the hold never expired"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        tv.vault.remaining(&m.key_id, None).unwrap().cost,
        Some(1_000_000)
    );
}

#[test]
fn holds_placed_at_an_explicit_past_time_are_left_to_tick() {
    // A replay runs far behind the clock: the commit thread must not expire its holds (nor
    // move its windows) by the wall clock.
    let tv = TestVault::with(|o| {
        let mut o = o;
        o.flush_interval = Duration::from_millis(5);
        o
    });
    tv.clock.set("2026-06-01T00:00:00Z");
    let m = tv.mint("acme", &["cost=$1", "requests=5/day"]);
    let at = ts("2025-03-01T12:00:00Z");
    let request = VerifyRequest {
        at: Some(at),
        ..hold_cost(100)
    };
    let v = tv.vault.verify(m.secret.expose(), &request).unwrap();
    let hold = v.hold_id.unwrap();
    // Several commit cycles, with the clock far past the hold's timeout.
    for _ in 0..5 {
        tv.vault.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(tv.vault.stats().holds, 1);
    let r = tv.vault.remaining(&m.key_id, Some(at)).unwrap();
    assert_eq!((r.cost, r.requests), (Some(999_900), Some(4)));
    assert_eq!(r.limits[1].resets_at, Some(ts("2025-03-02T00:00:00Z")));
    assert!(tv.vault.release_at(hold, Some(at)).unwrap());
    let r = tv.vault.remaining(&m.key_id, Some(at)).unwrap();
    assert_eq!(r.cost, Some(1_000_000));
    assert_eq!(r.limits[1].resets_at, Some(ts("2025-03-02T00:00:00Z")));
}
