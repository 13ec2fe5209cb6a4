use nanu::*;

#[test]
fn mint_verify_charge_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.vault");
    let opts = Options::passphrase("pw").kdf(KdfParams::INSECURE_FOR_TESTS);
    let vault = Vault::create(&path, &opts).unwrap();
    let mut spec = KeySpec::new("acme");
    spec.limits.push("requests=2".parse().unwrap());
    spec.limits.push("cost=$1/month".parse().unwrap());
    let minted = vault.mint(&spec, &Context::default()).unwrap();
    vault
        .set_price(
            "gpt-4o",
            Some(Price {
                input_per_mtok: 2_500_000,
                output_per_mtok: 10_000_000,
                per_request: 0,
            }),
            &Context::default(),
        )
        .unwrap();
    let req = VerifyRequest {
        model: Some("gpt-4o"),
        ..VerifyRequest::default()
    };
    let v = vault.verify(minted.secret.expose(), &req).unwrap();
    assert!(v.allowed, "{v:?}");
    let out = vault
        .charge(
            &minted.key_id,
            &Usage {
                model: Some("gpt-4o".into()),
                input_tokens: 1000,
                output_tokens: 100,
                request_id: Some("r1".into()),
                ..Usage::default()
            },
        )
        .unwrap();
    assert_eq!(out.cost, 3500);
    let v = vault.verify(minted.secret.expose(), &req).unwrap();
    assert!(v.allowed);
    let v = vault.verify(minted.secret.expose(), &req).unwrap();
    assert_eq!(v.code, Code::UsageExceeded);
    let rows = vault.usage(&UsageQuery::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].cost, 3500);
    assert_eq!(rows[0].denied, 1);
    vault.close().unwrap();
    drop(vault);
    let vault = Vault::open(&path, &opts).unwrap();
    let r = vault.remaining(&minted.key_id, None).unwrap();
    assert_eq!(r.requests, Some(0));
    assert_eq!(r.cost, Some(1_000_000 - 3500));
    assert!(vault.verify_audit().unwrap().ok);
    let err = Vault::open(
        &path,
        &Options::passphrase("bad").kdf(KdfParams::INSECURE_FOR_TESTS),
    );
    assert!(err.is_err());
}
