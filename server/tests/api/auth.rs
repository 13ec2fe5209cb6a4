//! Admin keys: 401 without a usable one, 403 without the scope, the key id as audit actor.

use reqwest::Method;
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_openapi_need_no_key() {
    let server = TestServer::start().await;
    let health = server.send(Method::GET, "/healthz", None, None).await;
    health.expect(200);
    assert_eq!(health.json, json!({"status": "ok"}));

    let doc = server.send(Method::GET, "/openapi.json", None, None).await;
    doc.expect(200);
    assert_eq!(doc.headers["content-type"], "application/json");
    assert_eq!(doc.text, nanu_server::openapi_json());
    assert_eq!(doc.json["openapi"], "3.1.0");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unusable_key_is_401() {
    let server = TestServer::start().await;

    let none = server.send(Method::GET, "/v1/keys", None, None).await;
    none.expect_error(401, "unauthorized");
    assert_eq!(none.headers["www-authenticate"], "Bearer");

    let garbage = server
        .send(Method::GET, "/v1/keys", Some("not-a-key"), None)
        .await;
    garbage.expect_error(401, "unauthorized");

    // Shaped like a secret, but no key of this vault (its checksum fails, too).
    let other = "nanu_admin_0000000000000000000000000000000000000000000AAAAAA";
    server
        .send(Method::GET, "/v1/keys", Some(other), None)
        .await
        .expect_error(401, "unauthorized");

    let basic = server
        .client
        .get(server.url("/v1/keys"))
        .header("authorization", format!("Basic {}", server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);

    // An ordinary (live) key is not an admin key, whatever its scopes.
    let (_, live) = server
        .mint(json!({"owner": "acme", "scopes": ["admin"]}))
        .await;
    let answer = server
        .send(Method::GET, "/v1/keys", Some(&live), None)
        .await;
    answer.expect_error(401, "unauthorized");
    assert!(answer.text.contains("not an admin key"), "{}", answer.text);

    // Revoked and disabled admin keys stop working at once.
    let (revoked_id, revoked) = server.admin_key(&["admin"]);
    server
        .send(Method::GET, "/v1/stats", Some(&revoked), None)
        .await
        .expect(200);
    server
        .post(&format!("/v1/keys/{revoked_id}/revoke"), json!({}))
        .await
        .expect(200);
    server
        .send(Method::GET, "/v1/stats", Some(&revoked), None)
        .await
        .expect_error(401, "unauthorized");

    let (disabled_id, disabled) = server.admin_key(&["admin"]);
    server
        .call(
            Method::PATCH,
            &format!("/v1/keys/{disabled_id}"),
            json!({"disabled": true}),
        )
        .await
        .expect(200);
    server
        .send(Method::GET, "/v1/stats", Some(&disabled), None)
        .await
        .expect_error(401, "unauthorized");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_the_scope_is_403_and_with_it_passes() {
    let server = TestServer::start().await;
    let (_, reader) = server.admin_key(&["keys:read"]);

    server
        .send(Method::GET, "/v1/keys", Some(&reader), None)
        .await
        .expect(200);
    let body = serde_json::to_vec(&json!({"owner": "acme"})).unwrap();
    let mint = server
        .send(Method::POST, "/v1/keys", Some(&reader), Some(body))
        .await;
    mint.expect_error(403, "forbidden");
    assert!(mint.text.contains("keys:write"), "{}", mint.text);
    for path in [
        "/v1/owners",
        "/v1/prices",
        "/v1/usage",
        "/v1/stats",
        "/v1/events",
        "/v1/audit",
    ] {
        server
            .send(Method::GET, path, Some(&reader), None)
            .await
            .expect_error(403, "forbidden");
    }
    let verify = serde_json::to_vec(&json!({"secret": "x"})).unwrap();
    server
        .send(Method::POST, "/v1/verify", Some(&reader), Some(verify))
        .await
        .expect_error(403, "forbidden");

    // The scope is checked before the body is read: a bad body from a key without the scope
    // is still 403.
    server
        .send(
            Method::POST,
            "/v1/keys",
            Some(&reader),
            Some(b"{not json".to_vec()),
        )
        .await
        .expect_error(403, "forbidden");

    // Each scope opens its own routes.
    let cases: [(&str, Method, &str); 9] = [
        ("owners:read", Method::GET, "/v1/owners"),
        ("prices:read", Method::GET, "/v1/prices"),
        ("usage:read", Method::GET, "/v1/usage"),
        ("usage:read", Method::GET, "/v1/stats"),
        ("events:read", Method::GET, "/v1/events"),
        ("audit:read", Method::GET, "/v1/audit"),
        ("audit:read", Method::GET, "/v1/audit/verify"),
        ("webhooks:read", Method::GET, "/v1/webhooks"),
        ("keys:read", Method::GET, "/v1/keys"),
    ];
    for (scope, method, path) in cases {
        let (_, secret) = server.admin_key(&[scope]);
        server
            .send(method, path, Some(&secret), None)
            .await
            .expect(200);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_are_changed_only_with_the_admin_scope() {
    let server = TestServer::start().await;
    let (_, writer) = server.admin_key(&["keys:write", "keys:read", "owners:write"]);
    let send = |body: serde_json::Value| serde_json::to_vec(&body).unwrap();

    let escalate = server
        .send(
            Method::POST,
            "/v1/keys",
            Some(&writer),
            Some(send(
                json!({"owner": "ops", "env": "admin", "scopes": ["admin"]}),
            )),
        )
        .await;
    escalate.expect_error(403, "forbidden");
    let message = escalate.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"admin\""), "{message}");

    let target = format!("/v1/keys/{}", server.admin_id);
    server
        .send(
            Method::POST,
            &format!("{target}/revoke"),
            Some(&writer),
            None,
        )
        .await
        .expect_error(403, "forbidden");
    server
        .send(
            Method::POST,
            &format!("{target}/rotate"),
            Some(&writer),
            None,
        )
        .await
        .expect_error(403, "forbidden");
    server
        .send(
            Method::PATCH,
            &target,
            Some(&writer),
            Some(send(json!({"scopes": ["admin"]}))),
        )
        .await
        .expect_error(403, "forbidden");
    server
        .send(Method::POST, "/v1/owners/ops/revoke", Some(&writer), None)
        .await
        .expect_error(403, "forbidden");
    server
        .send(
            Method::PUT,
            "/v1/owners/ops/limits",
            Some(&writer),
            Some(send(json!({"limits": ["requests=1/24h"]}))),
        )
        .await
        .expect_error(403, "forbidden");
    // The admin key is untouched.
    server.get("/v1/stats").await.expect(200);

    // Ordinary keys are fine with keys:write.
    let minted = server
        .send(
            Method::POST,
            "/v1/keys",
            Some(&writer),
            Some(send(json!({"owner": "acme"}))),
        )
        .await;
    minted.expect(201);
    server
        .send(Method::POST, "/v1/owners/acme/revoke", Some(&writer), None)
        .await
        .expect(200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_key_id_is_the_audit_actor() {
    let server = TestServer::start().await;
    let (writer_id, writer) = server.admin_key(&["keys:write"]);
    let body = serde_json::to_vec(&json!({"owner": "acme", "name": "first"})).unwrap();
    let minted = server
        .send(Method::POST, "/v1/keys", Some(&writer), Some(body))
        .await;
    minted.expect(201);
    let key_id = minted.json["key_id"].as_str().unwrap().to_owned();
    server
        .post(&format!("/v1/keys/{key_id}/revoke"), json!({}))
        .await
        .expect(200);

    let audit = server.get("/v1/audit?limit=1000").await;
    audit.expect(200);
    let records = audit.json["records"].as_array().unwrap();
    let mint = records
        .iter()
        .find(|r| r["action"] == "mint" && r["target"] == key_id.as_str())
        .expect("the mint is audited");
    assert_eq!(mint["actor"], writer_id.as_str());
    let revoke = records
        .iter()
        .find(|r| r["action"] == "revoke" && r["target"] == key_id.as_str())
        .expect("the revoke is audited");
    assert_eq!(revoke["actor"], server.admin_id.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_key_over_its_own_rate_is_429() {
    let server = TestServer::start().await;
    let mut spec = nanu::KeySpec::new("ops");
    spec.env = "admin".to_owned();
    spec.scopes = vec!["usage:read".to_owned()];
    spec.limits = vec!["requests=2/24h".parse().unwrap()];
    let minted = server.vault.mint(&spec, &nanu::Context::default()).unwrap();
    let secret = minted.secret.expose().to_owned();
    for _ in 0..2 {
        server
            .send(Method::GET, "/v1/stats", Some(&secret), None)
            .await
            .expect(200);
    }
    let third = server
        .send(Method::GET, "/v1/stats", Some(&secret), None)
        .await;
    third.expect_error(429, "rate_limited");
    let retry: u64 = third.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_key_outside_its_ip_allowlist_is_403() {
    let server = TestServer::start().await;
    let mut spec = nanu::KeySpec::new("ops");
    spec.env = "admin".to_owned();
    spec.scopes = vec!["admin".to_owned()];
    spec.ips = Some(vec!["192.0.2.0/24".to_owned()]);
    let far = server.vault.mint(&spec, &nanu::Context::default()).unwrap();
    spec.ips = Some(vec!["127.0.0.1".to_owned()]);
    let near = server.vault.mint(&spec, &nanu::Context::default()).unwrap();
    server
        .send(Method::GET, "/v1/stats", Some(far.secret.expose()), None)
        .await
        .expect_error(403, "forbidden");
    server
        .send(Method::GET, "/v1/stats", Some(near.secret.expose()), None)
        .await
        .expect(200);
    server.stop().await;
}
