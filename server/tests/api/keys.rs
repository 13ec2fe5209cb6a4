//! `/v1/keys`: mint, list, read, change, rotate, revoke, remaining.

use reqwest::Method;
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mint_returns_the_secret_once_and_the_stored_key() {
    let server = TestServer::start().await;
    let answer = server
        .post(
            "/v1/keys",
            json!({
                "owner": "acme",
                "name": "ci",
                "env": "test",
                "scopes": ["chat"],
                "limits": [
                    "requests=100/min",
                    {"unit": "cost", "amount": 5000000, "window": "month"}
                ],
                "metadata": {"team": "ml"}
            }),
        )
        .await;
    answer.expect(201);
    let key_id = answer.json["key_id"].as_str().unwrap();
    let secret = answer.json["secret"].as_str().unwrap();
    assert!(key_id.starts_with("key_"));
    assert!(secret.starts_with("nanu_test_"));
    let key = &answer.json["key"];
    assert_eq!(key["key_id"], key_id);
    assert_eq!(key["owner"], "acme");
    assert_eq!(key["env"], "test");
    assert_eq!(key["status"], "active");
    assert_eq!(key["metadata"], json!({"team": "ml"}));
    assert_eq!(key["limits"][0]["unit"], "requests");
    assert_eq!(key["limits"][1]["amount"], 5_000_000);
    assert!(key.get("secret").is_none());

    // The secret verifies through the library, and GET never shows it.
    let verdict = server
        .vault
        .verify(secret, &nanu::VerifyRequest::default())
        .unwrap();
    assert!(verdict.allowed);
    let got = server.get(&format!("/v1/keys/{key_id}")).await;
    got.expect(200);
    assert_eq!(got.json["name"], "ci");
    assert!(!got.text.contains(secret));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_pages() {
    let server = TestServer::start().await;
    let mut acme = Vec::new();
    for i in 0..5 {
        let name = if i % 2 == 0 { "even" } else { "odd" };
        let (id, _) = server.mint(json!({"owner": "acme", "name": name})).await;
        acme.push(id);
    }
    let (other, _) = server.mint(json!({"owner": "globex", "env": "test"})).await;
    acme.sort();

    let page = server.get("/v1/keys?owner=acme&limit=2").await;
    page.expect(200);
    let ids: Vec<&str> = page.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, &acme[..2]);
    let next = page.json["next"].as_str().unwrap();
    let rest = server
        .get(&format!("/v1/keys?owner=acme&limit=10&after={next}"))
        .await;
    rest.expect(200);
    assert_eq!(rest.json["keys"].as_array().unwrap().len(), 3);
    assert!(rest.json["next"].is_null());

    let test_env = server.get("/v1/keys?env=test").await;
    assert_eq!(test_env.json["keys"][0]["key_id"], other.as_str());
    assert_eq!(test_env.json["keys"].as_array().unwrap().len(), 1);

    // The name filter pages over the names that match.
    let even = server.get("/v1/keys?owner=acme&name=even&limit=2").await;
    even.expect(200);
    let first: Vec<&str> = even.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["even", "even"]);
    let after = even.json["next"].as_str().unwrap();
    let last = server
        .get(&format!(
            "/v1/keys?owner=acme&name=even&limit=2&after={after}"
        ))
        .await;
    assert_eq!(last.json["keys"].as_array().unwrap().len(), 1);
    assert!(last.json["next"].is_null());

    server
        .post(&format!("/v1/keys/{other}/revoke"), json!({}))
        .await
        .expect(200);
    let revoked = server.get("/v1/keys?status=revoked").await;
    assert_eq!(revoked.json["keys"].as_array().unwrap().len(), 1);
    assert_eq!(revoked.json["keys"][0]["key_id"], other.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_changes_the_key_and_verify_sees_it() {
    let server = TestServer::start().await;
    let (key_id, secret) = server.mint(json!({"owner": "acme"})).await;
    let path = format!("/v1/keys/{key_id}");

    let disabled = server
        .call(
            Method::PATCH,
            &path,
            json!({"disabled": true, "name": "paused"}),
        )
        .await;
    disabled.expect(200);
    assert_eq!(disabled.json["status"], "disabled");
    assert_eq!(disabled.json["name"], "paused");
    assert_eq!(server.verify(&secret).await["code"], "disabled");

    let enabled = server
        .call(
            Method::PATCH,
            &path,
            json!({"disabled": false, "models": ["openai/*"], "ips": ["10.0.0.0/8"]}),
        )
        .await;
    enabled.expect(200);
    assert_eq!(enabled.json["models"], json!(["openai/*"]));
    let denied = server
        .post(
            "/v1/verify",
            json!({"secret": secret, "model": "anthropic/claude", "ip": "10.1.2.3"}),
        )
        .await;
    assert_eq!(denied.json["code"], "model_denied");

    // `null` clears an optional field.
    let cleared = server
        .call(Method::PATCH, &path, json!({"models": null, "ips": null}))
        .await;
    cleared.expect(200);
    assert!(cleared.json["models"].is_null());
    assert_eq!(server.verify(&secret).await["code"], "valid");

    // A revoked key cannot be enabled again: 400, nothing changes.
    server
        .post(&format!("{path}/revoke"), json!({}))
        .await
        .expect(200);
    server
        .call(Method::PATCH, &path, json!({"disabled": false}))
        .await
        .expect_error(400, "invalid_argument");
    assert_eq!(server.get(&path).await.json["status"], "revoked");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_issues_a_new_secret_and_keeps_the_old_one_for_the_grace() {
    let server = TestServer::start().await;
    let (key_id, old) = server.mint(json!({"owner": "acme"})).await;

    let rotated = server
        .post(&format!("/v1/keys/{key_id}/rotate"), json!({"grace": "1h"}))
        .await;
    rotated.expect(200);
    assert_eq!(rotated.json["key_id"], key_id.as_str());
    let new = rotated.json["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated.json["grace_until"].is_string());

    let old_verdict = server.verify(&old).await;
    assert_eq!(old_verdict["code"], "valid");
    assert_eq!(old_verdict["grace"], true);
    let new_verdict = server.verify(&new).await;
    assert_eq!(new_verdict["code"], "valid");
    assert_eq!(new_verdict["grace"], false);

    // No body: a grace of zero ends every earlier secret at once.
    let again = server
        .send(
            Method::POST,
            &format!("/v1/keys/{key_id}/rotate"),
            Some(&server.admin),
            None,
        )
        .await;
    again.expect(200);
    assert!(again.json["grace_until"].is_null());
    let newest = again.json["secret"].as_str().unwrap();
    assert_eq!(server.verify(&old).await["code"], "not_found");
    assert_eq!(server.verify(&new).await["code"], "not_found");
    assert_eq!(server.verify(newest).await["code"], "valid");

    server
        .post(
            &format!("/v1/keys/{key_id}/rotate"),
            json!({"grace": "soon"}),
        )
        .await
        .expect_error(400, "invalid_argument");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_through_the_api_denies_the_next_verify() {
    let server = TestServer::start().await;
    let (key_id, secret) = server.mint(json!({"owner": "acme"})).await;
    assert_eq!(server.verify(&secret).await["allowed"], true);

    let revoked = server
        .post(&format!("/v1/keys/{key_id}/revoke"), json!({}))
        .await;
    revoked.expect(200);
    assert_eq!(revoked.json["status"], "revoked");

    let verdict = server.verify(&secret).await;
    assert_eq!(verdict["allowed"], false);
    assert_eq!(verdict["code"], "revoked");
    assert_eq!(verdict["http_status"], 401);
    let library = server
        .vault
        .verify(&secret, &nanu::VerifyRequest::default())
        .unwrap();
    assert_eq!(library.code, nanu::Code::Revoked);

    // Revoking again changes nothing more and is not an error.
    server
        .post(&format!("/v1/keys/{key_id}/revoke"), json!({}))
        .await
        .expect(200);
    let events = server.get("/v1/events").await;
    let revocations = events.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "revoked" && e["key_id"] == key_id.as_str())
        .count();
    assert_eq!(revocations, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remaining_shows_the_key_and_owner_limits() {
    let server = TestServer::start().await;
    let (key_id, secret) = server
        .mint(json!({"owner": "acme", "limits": ["requests=10"]}))
        .await;
    server
        .call(
            Method::PUT,
            "/v1/owners/acme/limits",
            json!({"limits": ["requests=100"]}),
        )
        .await
        .expect(200);
    server.verify(&secret).await;
    server.verify(&secret).await;

    let remaining = server.get(&format!("/v1/keys/{key_id}/remaining")).await;
    remaining.expect(200);
    assert_eq!(remaining.json["requests"], 8);
    let limits = remaining.json["limits"].as_array().unwrap();
    assert_eq!(limits.len(), 2);
    assert_eq!(limits[0]["level"], "key");
    assert_eq!(limits[0]["used"], 2);
    assert_eq!(limits[1]["level"], "owner");
    assert_eq!(limits[1]["remaining"], 98);

    let library = server.vault.remaining(&key_id, None).unwrap();
    assert_eq!(library.requests, Some(8));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_ids_are_404_on_every_key_route() {
    let server = TestServer::start().await;
    let missing = "key_doesnotexist";
    let path = format!("/v1/keys/{missing}");
    server.get(&path).await.expect_error(404, "not_found");
    server
        .get(&format!("{path}/remaining"))
        .await
        .expect_error(404, "not_found");
    server
        .call(Method::PATCH, &path, json!({"name": "x"}))
        .await
        .expect_error(404, "not_found");
    server
        .post(&format!("{path}/rotate"), json!({}))
        .await
        .expect_error(404, "not_found");
    server
        .post(&format!("{path}/revoke"), json!({}))
        .await
        .expect_error(404, "not_found");
    server
        .post(
            "/v1/charge",
            json!({"key_id": missing, "request_id": "r1", "input_tokens": 1}),
        )
        .await
        .expect_error(404, "not_found");
    server.stop().await;
}
