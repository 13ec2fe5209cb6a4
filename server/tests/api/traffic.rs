//! `/v1/verify`, `/v1/charge`, `/v1/release`: the library's semantics over HTTP.

use serde_json::json;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_answers_allowed_and_denied_verdicts_with_200() {
    let server = TestServer::start().await;
    let (key_id, secret) = server
        .mint(json!({
            "owner": "acme", "scopes": ["chat"], "models": ["openai/*"],
            "aliases": {"fast": "openai/gpt-4o-mini"}, "ips": ["10.0.0.0/8", "2001:db8::/32"],
            "limits": ["requests=2/24h"]
        }))
        .await;

    let allowed = server
        .post(
            "/v1/verify",
            json!({"secret": secret, "scope": "chat", "model": "fast", "ip": "10.1.2.3"}),
        )
        .await;
    allowed.expect(200);
    assert_eq!(allowed.json["allowed"], true);
    assert_eq!(allowed.json["code"], "valid");
    assert_eq!(allowed.json["http_status"], 200);
    assert_eq!(allowed.json["key_id"], key_id.as_str());
    assert_eq!(allowed.json["owner"], "acme");
    assert_eq!(allowed.json["env"], "live");
    assert_eq!(allowed.json["model"], "openai/gpt-4o-mini");
    assert_eq!(allowed.json["remaining"]["requests"], 1);
    assert!(allowed.json["hold_id"].is_null());

    let cases = [
        (
            json!({"secret": secret, "ip": "192.0.2.1"}),
            "ip_denied",
            403,
        ),
        (
            json!({"secret": secret, "ip": "10.0.0.1", "scope": "admin"}),
            "scope_denied",
            403,
        ),
        (
            json!({"secret": secret, "ip": "10.0.0.1", "model": "anthropic/x"}),
            "model_denied",
            403,
        ),
        (
            json!({"secret": secret, "ip": "10.0.0.1", "env": "test"}),
            "env_mismatch",
            403,
        ),
        (json!({"secret": "nanu_live_garbage"}), "malformed", 401),
    ];
    for (body, code, http_status) in cases {
        let denied = server.post("/v1/verify", body).await;
        denied.expect(200);
        assert_eq!(denied.json["allowed"], false);
        assert_eq!(denied.json["code"], code);
        assert_eq!(denied.json["http_status"], http_status);
    }
    // Denials changed nothing: one request is still left.
    let v6 = server
        .post("/v1/verify", json!({"secret": secret, "ip": "2001:db8::1"}))
        .await;
    assert_eq!(v6.json["code"], "valid");
    let limited = server
        .post("/v1/verify", json!({"secret": secret, "ip": "10.0.0.1"}))
        .await;
    assert_eq!(limited.json["code"], "rate_limited");
    assert_eq!(limited.json["http_status"], 429);
    assert_eq!(limited.json["denied_by"]["limit"]["unit"], "requests");
    assert!(limited.json["retry_after_ms"].as_u64().unwrap() > 0);
    assert!(limited.json["resets_at"].is_string());

    server
        .post("/v1/verify", json!({"secret": secret, "ip": "10.0.0.300"}))
        .await
        .expect_error(400, "invalid_argument");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charge_is_idempotent_by_request_id_and_conflicts_on_other_numbers() {
    let server = TestServer::start().await;
    let (key_id, _) = server
        .mint(json!({"owner": "acme", "limits": ["tokens=1000"]}))
        .await;
    let body = json!({
        "key_id": key_id, "request_id": "req-1", "model": "m", "endpoint": "/chat",
        "input_tokens": 300, "output_tokens": 200, "cost": 1234
    });

    let first = server.post("/v1/charge", body.clone()).await;
    first.expect(200);
    assert_eq!(first.json["key_id"], key_id.as_str());
    assert_eq!(first.json["cost"], 1234);
    assert_eq!(first.json["replayed"], false);

    let again = server.post("/v1/charge", body.clone()).await;
    again.expect(200);
    assert_eq!(again.json["replayed"], true);
    assert_eq!(again.json["cost"], 1234);
    let remaining = server.vault.remaining(&key_id, None).unwrap();
    assert_eq!(remaining.tokens, Some(500), "the replay recorded nothing");

    let mut other = body.clone();
    other["input_tokens"] = json!(301);
    server
        .post("/v1/charge", other)
        .await
        .expect_error(409, "conflict");
    assert_eq!(
        server.vault.remaining(&key_id, None).unwrap().tokens,
        Some(500)
    );

    // Usage past a limit is recorded, and the outcome says the limit is exceeded.
    let over = server
        .post(
            "/v1/charge",
            json!({"key_id": key_id, "request_id": "req-2", "input_tokens": 600}),
        )
        .await;
    over.expect(200);
    assert_eq!(over.json["exceeded"][0]["limit"]["unit"], "tokens");
    assert_eq!(over.json["exceeded"][0]["used"], 1100);

    // The request id is required over HTTP, so that a retried call never charges twice.
    server
        .post("/v1/charge", json!({"key_id": key_id, "input_tokens": 1}))
        .await
        .expect_error(400, "invalid_argument");
    server
        .post(
            "/v1/charge",
            json!({"key_id": key_id, "request_id": "", "input_tokens": 1}),
        )
        .await
        .expect_error(400, "invalid_argument");
    server
        .post(
            "/v1/charge",
            json!({
                "key_id": key_id, "request_id": "huge",
                "input_tokens": u64::MAX, "output_tokens": 1
            }),
        )
        .await
        .expect_error(400, "invalid_argument");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_placed_by_verify_is_settled_by_the_charge() {
    let server = TestServer::start().await;
    let (key_id, secret) = server
        .mint(json!({"owner": "acme", "limits": ["tokens=1000"]}))
        .await;

    let verdict = server
        .post(
            "/v1/verify",
            json!({"secret": secret, "hold": {"input_tokens": 600, "output_tokens": 200}}),
        )
        .await;
    assert_eq!(verdict.json["allowed"], true);
    let hold_id = verdict.json["hold_id"].as_u64().expect("a hold id");
    assert_eq!(verdict.json["remaining"]["tokens"], 200);

    // While the hold stands, a second one that does not fit is denied.
    let second = server
        .post(
            "/v1/verify",
            json!({"secret": secret, "hold": {"input_tokens": 300}}),
        )
        .await;
    assert_eq!(second.json["code"], "usage_exceeded");
    assert_eq!(server.get("/v1/stats").await.json["holds"], 1);

    let charged = server
        .post(
            "/v1/charge",
            json!({
                "key_id": key_id, "request_id": "r1", "hold_id": hold_id,
                "input_tokens": 100, "output_tokens": 50
            }),
        )
        .await;
    charged.expect(200);
    assert_eq!(server.get("/v1/stats").await.json["holds"], 0);
    let remaining = server.get(&format!("/v1/keys/{key_id}/remaining")).await;
    assert_eq!(remaining.json["tokens"], 850);
    assert_eq!(remaining.json["limits"][0]["held"], 0);

    // A settled hold cannot be released again.
    let released = server
        .post("/v1/release", json!({"hold_id": hold_id}))
        .await;
    released.expect(200);
    assert_eq!(released.json, json!({"released": false}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_gives_a_hold_back() {
    let server = TestServer::start().await;
    let (key_id, secret) = server
        .mint(json!({"owner": "acme", "limits": ["cost=$1"]}))
        .await;
    let verdict = server
        .post(
            "/v1/verify",
            json!({"secret": secret, "hold": {"cost": 900000}}),
        )
        .await;
    let hold_id = verdict.json["hold_id"].as_u64().unwrap();
    assert_eq!(
        server.vault.remaining(&key_id, None).unwrap().cost,
        Some(100_000)
    );

    let released = server
        .post("/v1/release", json!({"hold_id": hold_id}))
        .await;
    released.expect(200);
    assert_eq!(released.json, json!({"released": true}));
    assert_eq!(
        server.vault.remaining(&key_id, None).unwrap().cost,
        Some(1_000_000)
    );
    let twice = server
        .post("/v1/release", json!({"hold_id": hold_id}))
        .await;
    assert_eq!(twice.json, json!({"released": false}));
    server
        .post("/v1/release", json!({"hold_id": -1}))
        .await
        .expect_error(400, "invalid_argument");
    server.stop().await;
}
