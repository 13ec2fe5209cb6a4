//! `/v1/owners`: owners, their limits, and revoking all their keys.

use reqwest::Method;
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_limits_are_set_read_and_enforced() {
    let server = TestServer::start().await;
    let (_, first) = server.mint(json!({"owner": "acme"})).await;
    let (_, second) = server.mint(json!({"owner": "acme"})).await;

    let set = server
        .call(
            Method::PUT,
            "/v1/owners/acme/limits",
            json!({"limits": [{"unit": "requests", "amount": 3, "window": "lifetime"}]}),
        )
        .await;
    set.expect(200);
    assert_eq!(set.json["owner"], "acme");
    assert_eq!(set.json["keys"], 2);
    assert_eq!(set.json["limits"][0]["amount"], 3);

    // The owner's limit is shared by both keys.
    assert_eq!(server.verify(&first).await["allowed"], true);
    assert_eq!(server.verify(&second).await["allowed"], true);
    assert_eq!(server.verify(&first).await["allowed"], true);
    let denied = server.verify(&second).await;
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["code"], "usage_exceeded");
    assert_eq!(denied["denied_by"]["level"], "owner");

    let got = server.get("/v1/owners/acme").await;
    got.expect(200);
    assert_eq!(got.json["remaining"]["requests"], 0);

    // `[]` removes every limit.
    let cleared = server
        .call(Method::PUT, "/v1/owners/acme/limits", json!({"limits": []}))
        .await;
    cleared.expect(200);
    assert_eq!(cleared.json["limits"], json!([]));
    assert_eq!(server.verify(&second).await["allowed"], true);

    // Setting limits on a new owner creates it.
    server
        .call(
            Method::PUT,
            "/v1/owners/newco/limits",
            json!({"limits": ["cost=$5/month"]}),
        )
        .await
        .expect(200);
    assert_eq!(server.get("/v1/owners/newco").await.json["keys"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_are_listed_in_pages() {
    let server = TestServer::start().await;
    for owner in ["b-corp", "a-corp", "c-corp"] {
        server.mint(json!({"owner": owner})).await;
    }
    let first = server.get("/v1/owners?limit=2").await;
    first.expect(200);
    let names: Vec<&str> = first.json["owners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["owner"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-corp", "b-corp"]);
    assert_eq!(first.json["next"], "b-corp");
    let rest = server.get("/v1/owners?limit=2&after=b-corp").await;
    let names: Vec<&str> = rest.json["owners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["owner"].as_str().unwrap())
        .collect();
    // "ops" owns the admin key.
    assert_eq!(names, ["c-corp", "ops"]);
    assert!(rest.json["next"].is_null());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_owner_revokes_every_key_once() {
    let server = TestServer::start().await;
    let (_, first) = server.mint(json!({"owner": "acme"})).await;
    let (_, second) = server.mint(json!({"owner": "acme"})).await;
    let (_, other) = server.mint(json!({"owner": "globex"})).await;

    let revoked = server.post("/v1/owners/acme/revoke", json!({})).await;
    revoked.expect(200);
    assert_eq!(revoked.json, json!({"revoked": 2}));
    assert_eq!(server.verify(&first).await["code"], "revoked");
    assert_eq!(server.verify(&second).await["code"], "revoked");
    assert_eq!(server.verify(&other).await["code"], "valid");

    let again = server.post("/v1/owners/acme/revoke", json!({})).await;
    assert_eq!(again.json, json!({"revoked": 0}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_owners_are_404_and_bad_limits_400() {
    let server = TestServer::start().await;
    server
        .get("/v1/owners/nobody")
        .await
        .expect_error(404, "not_found");
    server
        .post("/v1/owners/nobody/revoke", json!({}))
        .await
        .expect_error(404, "not_found");
    for limits in [
        json!(["requests=lots"]),
        json!([{"unit": "requests", "amount": 1, "window": "fortnight"}]),
        json!([{"unit": "requests", "amount": 1, "window": "day", "tz": "Mars/Olympus"}]),
        json!([{"unit": "requests", "amount": -1, "window": "day"}]),
        json!([{"unit": "requests", "amount": 1, "window": "rolling"}]),
        json!([{"unit": "requests", "amount": 1, "window": "day", "colour": "red"}]),
        json!([{"unit": "requests", "amount": 1, "window": "day", "alert_at": [80, 50]}]),
        json!("requests=1/day"),
    ] {
        server
            .call(
                Method::PUT,
                "/v1/owners/acme/limits",
                json!({ "limits": limits }),
            )
            .await
            .expect_error(400, "invalid_argument");
    }
    // Nothing was created by the refused calls.
    server
        .get("/v1/owners/acme")
        .await
        .expect_error(404, "not_found");
    server.stop().await;
}
