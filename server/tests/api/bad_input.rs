//! Malformed input gets a clear JSON error, never a 500, and changes nothing.

use reqwest::Method;
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400() {
    let server = TestServer::start().await;
    let (key_id, _) = server.mint(json!({"owner": "acme"})).await;
    let keys_before = server.vault.stats().keys;
    let audit_before = server.vault.audit(0, 10_000).unwrap().len();

    let raw_cases: [(&str, &[u8]); 6] = [
        ("not json", b"{\"owner\": "),
        ("not json either", b"owner=acme"),
        ("a json string", b"\"acme\""),
        ("an array", b"[]"),
        ("an empty body", b""),
        ("invalid utf-8", &[0x7b, 0xff, 0x7d]),
    ];
    for (what, body) in raw_cases {
        let answer = server
            .send(
                Method::POST,
                "/v1/keys",
                Some(&server.admin),
                Some(body.to_vec()),
            )
            .await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.text);
        assert_eq!(answer.code(), "invalid_argument", "{what}");
    }

    let json_cases = [
        ("/v1/keys", json!({"owner": 42})),
        ("/v1/keys", json!({"owner": "acme", "unknown_field": 1})),
        ("/v1/keys", json!({"owner": "acme", "scopes": "chat"})),
        (
            "/v1/keys",
            json!({"owner": "acme", "limits": ["cost=10/month"]}),
        ),
        (
            "/v1/keys",
            json!({"owner": "acme", "expires_at": "tomorrow"}),
        ),
        ("/v1/keys", json!({"owner": "acme", "ttl": "-5 days"})),
        ("/v1/keys", json!({"owner": "acme", "ips": ["10.0.0.0/33"]})),
        ("/v1/keys", json!({"owner": "acme", "env": "Not An Env"})),
        ("/v1/keys", json!({"owner": "acme", "metadata": [1]})),
        ("/v1/keys", json!({"owner": ""})),
        ("/v1/keys", json!({"owner": "a".repeat(201)})),
        ("/v1/keys", json!({})),
        ("/v1/verify", json!({})),
        ("/v1/verify", json!({"secret": 5})),
        ("/v1/verify", json!({"secret": "x", "hold": {"cost": -1}})),
        ("/v1/verify", json!({"secret": "x", "hold": {"tokens": 1}})),
        ("/v1/verify", json!({"secret": "x", "extra": true})),
        (
            "/v1/charge",
            json!({"key_id": key_id, "request_id": "r", "input_tokens": -5}),
        ),
        (
            "/v1/charge",
            json!({"key_id": key_id, "request_id": "r", "input_tokens": 1e3}),
        ),
        (
            "/v1/charge",
            json!({"key_id": key_id, "request_id": "r", "cost": "NaN"}),
        ),
        (
            "/v1/charge",
            json!({"key_id": key_id, "request_id": "r", "input_tokens": 18446744073709551616u128}),
        ),
        (
            "/v1/charge",
            json!({"key_id": key_id, "request_id": "r", "model": "a/../b"}),
        ),
        (
            "/v1/charge",
            json!({"key_id": key_id, "request_id": "r", "at": "2026-01-01T00:00:00Z"}),
        ),
        ("/v1/release", json!({"hold_id": "1"})),
        ("/v1/release", json!({})),
        (&format!("/v1/keys/{key_id}/rotate"), json!({"grace": 60})),
        (
            &format!("/v1/keys/{key_id}/rotate"),
            json!({"grace": "-1h"}),
        ),
    ];
    for (path, body) in json_cases {
        let answer = server.post(path, body.clone()).await;
        assert_eq!(answer.status, 400, "{path} {body}: {}", answer.text);
        assert_eq!(answer.code(), "invalid_argument", "{path} {body}");
        assert!(!answer.json["error"]["message"].as_str().unwrap().is_empty());
    }
    let patch = server
        .call(
            Method::PATCH,
            &format!("/v1/keys/{key_id}"),
            json!({"status": "active"}),
        )
        .await;
    patch.expect_error(400, "invalid_argument");
    assert!(patch.text.contains("unknown field"), "{}", patch.text);

    // Nothing was minted, charged or audited by the refused calls.
    assert_eq!(server.vault.stats().keys, keys_before);
    assert_eq!(server.vault.audit(0, 10_000).unwrap().len(), audit_before);
    assert_eq!(
        server.vault.remaining(&key_id, None).unwrap().limits.len(),
        0
    );
    let usage = server.vault.usage(&nanu::UsageQuery::default()).unwrap();
    assert!(usage.is_empty(), "no charge was recorded: {usage:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_values_are_400() {
    let server = TestServer::start().await;
    let paths = [
        "/v1/keys?limit=abc",
        "/v1/keys?limit=0",
        "/v1/keys?limit=10001",
        "/v1/keys?limit=-1",
        "/v1/keys?status=sleeping",
        "/v1/keys?colour=red",
        "/v1/keys?limit=1&limit=2",
        "/v1/owners?limit=1001",
        "/v1/usage?group_by=colour",
        "/v1/usage?group_by=model,model",
        "/v1/usage?bucket=fortnight",
        "/v1/usage?bucket=hour&tz=Mars/Olympus",
        "/v1/usage?from=yesterday",
        "/v1/usage?from=2026-02-01&to=2026-01-01",
        "/v1/usage?to=2026-13-01",
        "/v1/events?after=-1",
        "/v1/events?limit=1e3",
        "/v1/events?after=18446744073709551616",
        "/v1/audit?limit=100000",
        "/v1/audit?before=3",
    ];
    for path in paths {
        let answer = server.get(path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text);
        assert_eq!(answer.code(), "invalid_argument", "{path}");
    }
    let message = server.get("/v1/keys?limit=abc").await;
    assert!(message.text.contains("limit"), "{}", message.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413() {
    let server = TestServer::start_with(|config| config.max_body = 1024).await;
    let big = json!({"owner": "acme", "name": "x".repeat(2000)});
    server
        .post("/v1/keys", big)
        .await
        .expect_error(413, "payload_too_large");

    // Without a length up front (chunked), the limit holds while reading.
    let answer = chunked_post(&server, "/v1/keys", 64, 100).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");

    // Under the limit is fine, and the price import gets a larger limit of its own.
    server
        .post("/v1/keys", json!({"owner": "acme"}))
        .await
        .expect(201);
    let mut litellm = serde_json::Map::new();
    for i in 0..100 {
        litellm.insert(
            format!("model-{i}"),
            json!({"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}),
        );
    }
    let import = server
        .post("/v1/prices/import", serde_json::Value::Object(litellm))
        .await;
    import.expect(200);
    assert_eq!(import.json["imported"], 100);
    server.stop().await;
}

/// Sends a POST with a chunked body of `chunks` chunks of `size` spaces over a raw connection,
/// and returns the whole answer as text.
async fn chunked_post(server: &TestServer, path: &str, chunks: usize, size: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.addr, server.admin
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{size:x}\r\n{}\r\n", " ".repeat(size));
    for _ in 0..chunks {
        // The server may answer and close before the whole body is sent.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_json_errors() {
    let server = TestServer::start().await;
    let missing = server.get("/v1/nothing-here").await;
    missing.expect_error(404, "not_found");
    let wrong = server
        .send(Method::DELETE, "/v1/keys", Some(&server.admin), None)
        .await;
    wrong.expect_error(405, "method_not_allowed");
    let wrong = server
        .send(Method::GET, "/v1/verify", Some(&server.admin), None)
        .await;
    wrong.expect_error(405, "method_not_allowed");
    let post_root = server.send(Method::POST, "/", None, None).await;
    assert!(
        post_root.status == 404 || post_root.status == 405,
        "{}",
        post_root.text
    );

    // Percent-encoding that is not utf-8 in a path parameter.
    let bad_path = server.get("/v1/keys/%FF%FE").await;
    bad_path.expect_error(400, "invalid_argument");
    let long = format!("/v1/keys/key_{}", "a".repeat(5000));
    server.get(&long).await.expect_error(404, "not_found");
    let secret_as_id = server.get(&format!("/v1/keys/{}", server.admin)).await;
    secret_as_id.expect_error(404, "not_found");
    assert!(
        !secret_as_id.text.contains(&server.admin),
        "a secret given as a key id is not echoed"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_query_parameters_are_400_on_every_route() {
    let server = TestServer::start().await;
    let (key_id, _) = server.mint(json!({"owner": "acme"})).await;
    let price = json!({"input_per_mtok": 1_000_000, "output_per_mtok": 2_000_000});
    server
        .call(Method::PUT, "/v1/prices/a", price.clone())
        .await
        .expect(200);
    let keys_before = server.vault.stats().keys;
    let audit_before = server.vault.audit(0, 10_000).unwrap().len();

    let key = |rest: &str| format!("/v1/keys/{key_id}{rest}");
    // (method, path with its query, the parameter the error must name, body)
    let cases: Vec<(Method, String, &str, Option<serde_json::Value>)> = vec![
        // The tester's cases, as they were sent.
        (Method::GET, "/v1/stats?x=1".into(), "x", None),
        (Method::GET, "/v1/audit/verify?x=1".into(), "x", None),
        (
            Method::POST,
            "/v1/keys?foo=1".into(),
            "foo",
            Some(json!({"owner": "acme"})),
        ),
        (
            Method::PUT,
            "/v1/prices/a?b".into(),
            "b",
            Some(price.clone()),
        ),
        // Every other route.
        (Method::GET, "/healthz?colour=red".into(), "colour", None),
        (
            Method::GET,
            "/openapi.json?colour=red".into(),
            "colour",
            None,
        ),
        (Method::GET, "/v1/keys?colour=red".into(), "colour", None),
        (Method::GET, key("?colour=red"), "colour", None),
        (
            Method::PATCH,
            key("?colour=red"),
            "colour",
            Some(json!({"name": "renamed"})),
        ),
        (Method::POST, key("/rotate?colour=red"), "colour", None),
        (Method::POST, key("/revoke?colour=red"), "colour", None),
        (Method::GET, key("/remaining?colour=red"), "colour", None),
        (Method::GET, "/v1/owners?colour=red".into(), "colour", None),
        (
            Method::GET,
            "/v1/owners/acme?colour=red".into(),
            "colour",
            None,
        ),
        (
            Method::PUT,
            "/v1/owners/acme/limits?colour=red".into(),
            "colour",
            Some(json!({"limits": ["requests=5/min"]})),
        ),
        (
            Method::POST,
            "/v1/owners/acme/revoke?colour=red".into(),
            "colour",
            None,
        ),
        (Method::GET, "/v1/prices?colour=red".into(), "colour", None),
        (
            Method::DELETE,
            "/v1/prices/a?colour=red".into(),
            "colour",
            None,
        ),
        (
            Method::POST,
            "/v1/prices/import?colour=red".into(),
            "colour",
            Some(json!({"m": {"input_cost_per_token": 1e-6}})),
        ),
        (
            Method::PUT,
            "/v1/prices/import?colour=red".into(),
            "colour",
            Some(price.clone()),
        ),
        (
            Method::DELETE,
            "/v1/prices/import?colour=red".into(),
            "colour",
            None,
        ),
        (Method::GET, "/v1/usage?colour=red".into(), "colour", None),
        (Method::GET, "/v1/events?colour=red".into(), "colour", None),
        (Method::GET, "/v1/audit?colour=red".into(), "colour", None),
        (
            Method::GET,
            "/v1/webhooks?colour=red".into(),
            "colour",
            None,
        ),
        (
            Method::POST,
            "/v1/verify?colour=red".into(),
            "colour",
            Some(json!({"secret": "x"})),
        ),
        (
            Method::POST,
            "/v1/charge?colour=red".into(),
            "colour",
            Some(json!({"key_id": key_id, "request_id": "r1", "cost": 5})),
        ),
        (
            Method::POST,
            "/v1/release?colour=red".into(),
            "colour",
            Some(json!({"hold_id": 1})),
        ),
    ];
    for (method, path, name, body) in cases {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        let answer = server
            .send(method.clone(), &path, Some(&server.admin), body)
            .await;
        assert_eq!(answer.status, 400, "{method} {path}: {}", answer.text);
        assert_eq!(answer.code(), "invalid_argument", "{method} {path}");
        let message = answer.json["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(&format!("`{name}`")) || message.contains(&format!("\"{name}\"")),
            "{method} {path}: the message names the parameter: {message}"
        );
    }

    // None of the refused calls changed anything.
    assert_eq!(server.vault.stats().keys, keys_before);
    assert_eq!(server.vault.audit(0, 10_000).unwrap().len(), audit_before);
    assert!(server.vault.price("a").is_some(), "the price is still set");
    assert_eq!(server.vault.get(&key_id).unwrap().name, "");
    let usage = server.vault.usage(&nanu::UsageQuery::default()).unwrap();
    assert!(usage.is_empty(), "no charge was recorded: {usage:?}");

    // The error names the route, not the path: a secret sent where a key id belongs is not
    // echoed.
    let answer = server
        .get(&format!("/v1/keys/{}?colour=red", server.admin))
        .await;
    answer.expect_error(400, "invalid_argument");
    assert!(!answer.text.contains(&server.admin), "{}", answer.text);
    assert!(answer.text.contains("/v1/keys/{key_id}"), "{}", answer.text);

    // An empty query is no parameter at all.
    server.get("/v1/stats?").await.expect(200);
    server.get("/healthz?").await.expect(200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_messages_say_what_is_wrong_in_the_apis_words() {
    let server = TestServer::start().await;
    let (key_id, _) = server.mint(json!({"owner": "acme"})).await;
    let message = |answer: &crate::harness::Answer| {
        answer.expect_error(400, "invalid_argument");
        answer.json["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };

    // A dimension named twice, also under its other name: named as the API names it.
    for path in [
        "/v1/usage?group_by=key,key",
        "/v1/usage?group_by=key, key_id",
    ] {
        let text = message(&server.get(path).await);
        assert_eq!(
            text, "query parameter group_by names the dimension \"key\" twice",
            "{path}"
        );
    }

    // Well-formed instants and dates beyond the range of time are out of range, not malformed.
    for path in [
        "/v1/usage?from=9999-12-31T23:59:59Z",
        "/v1/usage?to=9999-12-31",
        "/v1/usage?from=9999-12-31T23:59:59%2B05:00",
    ] {
        let text = message(&server.get(path).await);
        assert!(text.contains("is out of range"), "{path}: {text}");
        assert!(!text.contains("must be an RFC 3339"), "{path}: {text}");
    }
    let text = message(&server.get("/v1/usage?from=yesterday").await);
    assert!(text.contains("must be an RFC 3339 instant"), "{text}");

    // No message repeats its code as a prefix.
    let answers = [
        server.get("/v1/usage?group_by=key,key").await,
        server.get("/v1/usage?from=2026-02-01&to=2026-01-01").await,
        server.get("/v1/usage?bucket=hour&tz=Mars/Olympus").await,
        server.get("/v1/stats?x=1").await,
        server
            .post(
                &format!("/v1/keys/{key_id}/rotate"),
                json!({"grace": "-1h"}),
            )
            .await,
        server
            .post("/v1/keys", json!({"owner": "acme", "ttl": "-5 days"}))
            .await,
    ];
    for answer in &answers {
        let text = message(answer);
        assert!(!text.contains("invalid_argument"), "{text}");
        assert!(
            text.starts_with(|c: char| !c.is_uppercase()),
            "lowercase: {text}"
        );
    }
    server.stop().await;
}
