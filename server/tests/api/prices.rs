//! `/v1/prices`: set, list, remove and import prices.

use reqwest::Method;
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_are_set_listed_used_and_removed() {
    let server = TestServer::start().await;
    let price =
        json!({"input_per_mtok": 2_500_000, "output_per_mtok": 10_000_000, "per_request": 0});

    // A model name with a slash, sent percent-encoded and as is.
    server
        .call(Method::PUT, "/v1/prices/openai%2Fgpt-4o", price.clone())
        .await
        .expect(200);
    let raw = server
        .call(
            Method::PUT,
            "/v1/prices/anthropic/claude-3",
            json!({"input_per_mtok": 3}),
        )
        .await;
    raw.expect(200);
    assert_eq!(
        raw.json,
        json!({"input_per_mtok": 3, "output_per_mtok": 0, "per_request": 0})
    );
    // The import route does not hide a model named "import".
    server
        .call(Method::PUT, "/v1/prices/import", json!({"per_request": 7}))
        .await
        .expect(200);

    let list = server.get("/v1/prices").await;
    list.expect(200);
    assert_eq!(list.json["prices"]["openai/gpt-4o"], price);
    assert_eq!(
        list.json["prices"]["anthropic/claude-3"]["input_per_mtok"],
        3
    );
    assert_eq!(list.json["prices"]["import"]["per_request"], 7);
    assert_eq!(
        server.vault.price("openai/gpt-4o").unwrap().output_per_mtok,
        10_000_000
    );

    // A charge without a cost is priced from the table.
    let (key_id, _) = server.mint(json!({"owner": "acme"})).await;
    let charged = server
        .post(
            "/v1/charge",
            json!({
                "key_id": key_id, "request_id": "r1", "model": "openai/gpt-4o",
                "input_tokens": 1000, "output_tokens": 100
            }),
        )
        .await;
    charged.expect(200);
    assert_eq!(charged.json["cost"], 3500);
    assert_eq!(charged.json["priced"], true);

    let removed = server
        .send(
            Method::DELETE,
            "/v1/prices/openai%2Fgpt-4o",
            Some(&server.admin),
            None,
        )
        .await;
    assert_eq!(removed.status, 204);
    assert!(server.vault.price("openai/gpt-4o").is_none());
    server
        .send(
            Method::DELETE,
            "/v1/prices/openai%2Fgpt-4o",
            Some(&server.admin),
            None,
        )
        .await
        .expect_error(404, "not_found");
    server
        .send(
            Method::DELETE,
            "/v1/prices/import",
            Some(&server.admin),
            None,
        )
        .await;
    assert!(server.vault.price("import").is_none());

    for bad in [
        json!({"input_per_mtok": -1}),
        json!({"input_per_mtok": 1.5}),
        json!({"input_per_mtok": "3"}),
        json!({"input": 3}),
        json!([1, 2]),
    ] {
        server
            .call(Method::PUT, "/v1/prices/some-model", bad)
            .await
            .expect_error(400, "invalid_argument");
    }
    server
        .call(
            Method::PUT,
            "/v1/prices/a%2F..%2Fb",
            json!({"per_request": 1}),
        )
        .await
        .expect_error(400, "invalid_argument");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litellm_prices_are_imported() {
    let server = TestServer::start().await;
    let litellm = json!({
        "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
        "gpt-4o-mini": {
            "input_cost_per_token": 1.5e-7,
            "output_cost_per_token": 6e-7,
            "litellm_provider": "openai",
            "mode": "chat"
        },
        "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation"}
    });
    let import = server.post("/v1/prices/import", litellm).await;
    import.expect(200);
    assert_eq!(import.json["imported"], 1);
    assert_eq!(import.json["skipped"][0][0], "dall-e-3");
    let price = server.vault.price("gpt-4o-mini").unwrap();
    assert_eq!(price.input_per_mtok, 150_000);
    assert_eq!(price.output_per_mtok, 600_000);

    server
        .send(
            Method::POST,
            "/v1/prices/import",
            Some(&server.admin),
            Some(b"[1, 2, 3]".to_vec()),
        )
        .await
        .expect_error(400, "invalid_argument");
    server
        .send(
            Method::POST,
            "/v1/prices/import",
            Some(&server.admin),
            Some(vec![0xff, 0xfe]),
        )
        .await
        .expect_error(400, "invalid_argument");

    let audit = server.get("/v1/audit?limit=1000").await;
    let imported = audit.json["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "import_prices" && r["actor"] == server.admin_id.as_str());
    assert!(
        imported,
        "the import is audited with the admin key as actor"
    );
    server.stop().await;
}
