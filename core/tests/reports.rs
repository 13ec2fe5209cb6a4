//! Usage reports (filters, groups, buckets in whole-, half- and quarter-hour zones, exact sums
//! that agree across groupings) and prices (LiteLLM import, computed and unpriced costs).

mod common;

use std::collections::BTreeMap;

use common::{TestVault, spec, ts};
use jiff::Timestamp;
use nanu::{
    Bucket, Code, Context, Dim, EventKind, HoldAmounts, Price, Usage, UsageQuery, UsageRow,
    VerifyRequest,
};

const LITELLM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/litellm-model-prices-1.110.2.json"
);

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

/// One charge as the reference model sees it.
#[derive(Clone, Debug)]
struct Charge {
    at: i64,
    key: usize,
    model: Option<&'static str>,
    endpoint: Option<&'static str>,
    input: u64,
    output: u64,
    cost: u64,
}

/// Sums by hand: requests, denied, input, output, tokens, cost.
type Sums = (u64, u64, u64, u64, u64, u64);

fn add(sums: &mut Sums, c: &Charge, denied: bool) {
    if denied {
        sums.1 += 1;
    } else {
        sums.0 += 1;
    }
    sums.2 += c.input;
    sums.3 += c.output;
    sums.4 += c.input + c.output;
    sums.5 += c.cost;
}

fn sums_of(row: &UsageRow) -> Sums {
    (
        row.requests,
        row.denied,
        row.input_tokens,
        row.output_tokens,
        row.tokens,
        row.cost,
    )
}

/// The start of the bucket of `at` in a zone with a fixed offset (no daylight saving).
fn fixed_bucket(at: i64, offset_us: i64, size: i64) -> i64 {
    (at + offset_us).div_euclid(size) * size - offset_us
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

const OWNERS: [&str; 3] = ["acme", "beta", "gamma"];
const MODELS: [Option<&str>; 4] = [Some("m1"), Some("m2"), Some("openai/m3"), None];
const ENDPOINTS: [Option<&str>; 3] = [Some("/chat"), Some("/embed"), None];

/// A vault with six keys (two per owner, the last one refusing every request) and a few
/// hundred charges and denied verifies over three days, with the same events by hand.
fn populated() -> (TestVault, Vec<String>, Vec<(Charge, bool)>) {
    let tv = TestVault::new();
    let mut keys = Vec::new();
    let mut minted = Vec::new();
    for i in 0..6 {
        let limits: &[&str] = if i == 5 { &["requests=0"] } else { &[] };
        let mut s = spec(OWNERS[i / 2], limits);
        s.env = if i % 2 == 0 {
            "live".into()
        } else {
            "test".into()
        };
        let m = tv.vault.mint(&s, &Context::default()).unwrap();
        keys.push(m.key_id.clone());
        minted.push(m);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = ts("2025-01-01T00:00:00Z").as_microsecond();
    let mut times: Vec<i64> = (0..400)
        .map(|_| start + rng.next(3 * DAY as u64) as i64)
        .collect();
    // Times near local midnights, where a bucket in the wrong zone would show.
    for day in 0..3 {
        for delta in [-1, 0, 1] {
            times.push(start + day * DAY + 18 * HOUR + HOUR / 2 + delta);
        }
    }
    times.sort();
    let mut done = Vec::new();
    for at in times {
        let key = rng.next(6) as usize;
        let c = Charge {
            at,
            key,
            model: MODELS[rng.next(4) as usize],
            endpoint: ENDPOINTS[rng.next(3) as usize],
            input: rng.next(5_000_000_000),
            output: rng.next(1_000_000),
            cost: rng.next(50_000_000),
        };
        let when = Some(Timestamp::from_microsecond(at).unwrap());
        if key == 5 {
            // A denied verify: logged with its model, no tokens, no cost.
            let request = VerifyRequest {
                model: c.model,
                at: when,
                ..VerifyRequest::default()
            };
            let v = tv
                .vault
                .verify(minted[5].secret.expose(), &request)
                .unwrap();
            assert_eq!(v.code, Code::UsageExceeded);
            let denied = Charge {
                endpoint: None,
                input: 0,
                output: 0,
                cost: 0,
                ..c
            };
            done.push((denied, true));
        } else {
            let usage = Usage {
                model: c.model.map(str::to_owned),
                endpoint: c.endpoint.map(str::to_owned),
                input_tokens: c.input,
                output_tokens: c.output,
                cost: Some(c.cost),
                at: when,
                ..Usage::default()
            };
            tv.vault.charge(&keys[key], &usage).unwrap();
            done.push((c, false));
        }
    }
    (tv, keys, done)
}

/// Runs a query and returns its rows keyed by (bucket, group values in `group_by` order).
fn report(tv: &TestVault, query: &UsageQuery) -> BTreeMap<(Option<i64>, Vec<String>), Sums> {
    let rows = tv.vault.usage(query).expect("usage");
    let keyed: BTreeMap<_, _> = rows
        .iter()
        .map(|row| {
            let group: Vec<String> = query
                .group_by
                .iter()
                .map(|d| {
                    let name = match d {
                        Dim::Key => "key",
                        Dim::Owner => "owner",
                        Dim::Env => "env",
                        Dim::Model => "model",
                        Dim::Endpoint => "endpoint",
                        Dim::Outcome => "outcome",
                    };
                    row.group[name].clone()
                })
                .collect();
            (
                (row.bucket.map(|b| b.as_microsecond()), group),
                sums_of(row),
            )
        })
        .collect();
    assert_eq!(keyed.len(), rows.len(), "every row is distinct");
    // Rows come out ordered by bucket, then group values.
    let order: Vec<_> = rows
        .iter()
        .map(|r| (r.bucket, r.group.values().cloned().collect::<Vec<_>>()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    if query.group_by.len() <= 1 {
        assert_eq!(order, sorted);
    }
    keyed
}

/// A dimension and how the reference model reads it off a charge.
type GroupBy<'a> = (Dim, &'a dyn Fn(&Charge) -> String);

/// A bucket, its zone, and the reference grid: (zone offset, bucket size) in µs.
type Bucketing = (Option<Bucket>, Option<&'static str>, Option<(i64, i64)>);

#[test]
fn reports_group_and_bucket_exactly_and_agree_across_groupings() {
    let (tv, keys, done) = populated();
    let owner_of = |key: usize| OWNERS[key / 2].to_owned();
    let env_of = |key: usize| {
        if key.is_multiple_of(2) {
            "live"
        } else {
            "test"
        }
        .to_owned()
    };
    let dims: [GroupBy; 5] = [
        (Dim::Key, &|c| keys[c.key].clone()),
        (Dim::Owner, &|c| owner_of(c.key)),
        (Dim::Env, &|c| env_of(c.key)),
        (Dim::Model, &|c| c.model.unwrap_or("").to_owned()),
        (Dim::Endpoint, &|c| c.endpoint.unwrap_or("").to_owned()),
    ];
    let kolkata = 19_800_000_000;
    let kathmandu = 20_700_000_000;
    let buckets: [Bucketing; 7] = [
        (None, None, None),
        (Some(Bucket::Hour), None, Some((0, HOUR))),
        (Some(Bucket::Day), None, Some((0, DAY))),
        (
            Some(Bucket::Day),
            Some("Asia/Kolkata"),
            Some((kolkata, DAY)),
        ),
        (
            Some(Bucket::Hour),
            Some("Asia/Kolkata"),
            Some((kolkata, HOUR)),
        ),
        (
            Some(Bucket::Day),
            Some("Asia/Kathmandu"),
            Some((kathmandu, DAY)),
        ),
        (
            Some(Bucket::Hour),
            Some("Asia/Kathmandu"),
            Some((kathmandu, HOUR)),
        ),
    ];

    let mut total: Sums = Default::default();
    for (c, denied) in &done {
        add(&mut total, c, *denied);
    }
    assert!(total.1 > 0 && total.0 > 300, "{total:?}");
    assert!(total.4 > u64::from(u32::MAX), "token sums beyond 32 bits");

    for (bucket, tz, grid) in buckets {
        let mut groupings: Vec<Vec<GroupBy>> = vec![vec![]];
        groupings.extend(dims.iter().map(|d| vec![*d]));
        groupings.push(vec![dims[1], dims[3]]);
        for grouping in groupings {
            let query = UsageQuery {
                group_by: grouping.iter().map(|(d, _)| *d).collect(),
                bucket,
                tz: tz.map(str::to_owned),
                ..UsageQuery::default()
            };
            let mut expected: BTreeMap<(Option<i64>, Vec<String>), Sums> = BTreeMap::new();
            for (c, denied) in &done {
                let b = grid.map(|(offset, size)| fixed_bucket(c.at, offset, size));
                let group = grouping.iter().map(|(_, f)| f(c)).collect();
                add(expected.entry((b, group)).or_default(), c, *denied);
            }
            let found = report(&tv, &query);
            assert_eq!(found, expected, "{query:?}");
            // Every grouping adds up to the same totals.
            let mut sum: Sums = Default::default();
            for s in found.values() {
                sum = (
                    sum.0 + s.0,
                    sum.1 + s.1,
                    sum.2 + s.2,
                    sum.3 + s.3,
                    sum.4 + s.4,
                    sum.5 + s.5,
                );
            }
            assert_eq!(sum, total, "{query:?}");
        }
    }
}

#[test]
fn filters_select_records_by_time_key_owner_env_model_and_endpoint() {
    let (tv, keys, done) = populated();
    let from = ts("2025-01-02T00:00:00Z");
    let to = ts("2025-01-02T18:30:00Z");
    let query = UsageQuery {
        from: Some(from),
        to: Some(to),
        owner: Some("beta".into()),
        model: Some("m2".into()),
        ..UsageQuery::default()
    };
    let mut expected: Sums = Default::default();
    for (c, denied) in &done {
        let in_range = c.at >= from.as_microsecond() && c.at < to.as_microsecond();
        if in_range && OWNERS[c.key / 2] == "beta" && c.model == Some("m2") {
            add(&mut expected, c, *denied);
        }
    }
    let rows = tv.vault.usage(&query).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(sums_of(&rows[0]), expected);

    let query = UsageQuery {
        key_id: Some(keys[0].clone()),
        endpoint: Some("/embed".into()),
        env: Some("live".into()),
        ..UsageQuery::default()
    };
    let mut expected: Sums = Default::default();
    let mut count = 0;
    for (c, denied) in &done {
        if c.key == 0 && c.endpoint == Some("/embed") {
            add(&mut expected, c, *denied);
            count += 1;
        }
    }
    let rows = tv.vault.usage(&query).unwrap();
    assert_eq!(sums_of(&rows[0]), expected);
    let records = tv.vault.usage_records(&query, 10_000).unwrap();
    assert_eq!(records.len(), count);
    assert!(records.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(
        records
            .iter()
            .all(|r| r.outcome == "charged" && r.env == "live")
    );
    assert_eq!(
        tv.vault.usage_records(&query, 3).unwrap().len(),
        3.min(count)
    );

    // The time range is [from, to): a record exactly at `to` is left out.
    let edge = ts("2025-01-01T18:30:00Z");
    let at_edge: u64 = done
        .iter()
        .filter(|(c, d)| !d && c.at == edge.as_microsecond())
        .count() as u64;
    let before = UsageQuery {
        to: Some(edge),
        from: Some(ts("2025-01-01T18:29:59.999999Z")),
        ..UsageQuery::default()
    };
    let from_edge = UsageQuery {
        from: Some(edge),
        to: Some(ts("2025-01-01T18:30:00.000001Z")),
        ..UsageQuery::default()
    };
    let requests = |q: &UsageQuery| {
        tv.vault
            .usage(q)
            .unwrap()
            .first()
            .map_or(0, |r| r.requests + r.denied)
    };
    let denied_at_edge = done
        .iter()
        .filter(|(c, d)| *d && c.at == edge.as_microsecond())
        .count() as u64;
    assert_eq!(requests(&from_edge), at_edge + denied_at_edge);
    assert!(
        at_edge + denied_at_edge >= 1,
        "the populated log has a record at the edge"
    );
    assert!(requests(&before) >= 1);

    let bad = UsageQuery {
        from: Some(to),
        to: Some(from),
        ..UsageQuery::default()
    };
    assert_eq!(
        tv.vault.usage(&bad).unwrap_err().code(),
        nanu::ErrorCode::InvalidArgument
    );
    let twice = UsageQuery {
        group_by: vec![Dim::Model, Dim::Model],
        ..UsageQuery::default()
    };
    assert!(tv.vault.usage(&twice).is_err());
}

#[test]
fn a_daily_report_in_kolkata_sums_the_records_of_each_local_day() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &[]);
    let charges = [
        ("2025-01-01T18:29:59.999999Z", 1),
        ("2025-01-01T18:30:00Z", 10),
        ("2025-01-02T00:00:00Z", 100),
        ("2025-01-02T18:29:59Z", 1_000),
        ("2025-01-02T18:30:00Z", 10_000),
    ];
    for (at, cost) in charges {
        let usage = Usage {
            cost: Some(cost),
            at: Some(ts(at)),
            ..Usage::default()
        };
        tv.vault.charge(&m.key_id, &usage).unwrap();
    }
    let query = UsageQuery {
        bucket: Some(Bucket::Day),
        tz: Some("Asia/Kolkata".into()),
        ..UsageQuery::default()
    };
    let rows = tv.vault.usage(&query).unwrap();
    let got: Vec<(Timestamp, u64, u64)> = rows
        .iter()
        .map(|r| (r.bucket.unwrap(), r.requests, r.cost))
        .collect();
    assert_eq!(
        got,
        vec![
            (ts("2024-12-31T18:30:00Z"), 1, 1),
            (ts("2025-01-01T18:30:00Z"), 3, 1_110),
            (ts("2025-01-02T18:30:00Z"), 1, 10_000),
        ]
    );
    // Week and month buckets: weeks from Monday, months from the 1st, local.
    let week = UsageQuery {
        bucket: Some(Bucket::Week),
        tz: Some("Asia/Kolkata".into()),
        ..UsageQuery::default()
    };
    let rows = tv.vault.usage(&week).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bucket, Some(ts("2024-12-29T18:30:00Z")));
    let month = UsageQuery {
        bucket: Some(Bucket::Month),
        tz: Some("Asia/Kathmandu".into()),
        ..UsageQuery::default()
    };
    let rows = tv.vault.usage(&month).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bucket, Some(ts("2024-12-31T18:15:00Z")));
    assert_eq!(rows[0].cost, 11_111);
}

// ---- prices ----------------------------------------------------------------------------

#[test]
fn the_real_litellm_price_file_imports_exact_integer_prices() {
    let mut tv = TestVault::new();
    let json = std::fs::read_to_string(LITELLM).expect("the shared LiteLLM price file");
    let report = tv
        .vault
        .import_prices(&json, &Context::actor("ops"))
        .expect("import");
    assert!(report.imported > 2_000, "{}", report.imported);
    let price = |model: &str| tv.vault.price(model).unwrap_or_else(|| panic!("{model}"));
    let p = |i, o, r| Price {
        input_per_mtok: i,
        output_per_mtok: o,
        per_request: r,
    };
    // $2.50 and $10 per million tokens.
    assert_eq!(price("gpt-4o"), p(2_500_000, 10_000_000, 0));
    assert_eq!(price("gpt-4o-mini"), p(150_000, 600_000, 0));
    assert_eq!(price("deepseek-chat"), p(280_000, 420_000, 0));
    // Billed per query: $0.001 a request.
    assert_eq!(price("amazon.rerank-v1:0"), p(0, 0, 1_000));
    // 0.0000029999900000000002 $/token is 2,999,990.0000000002 micro-dollars per million
    // tokens: rounded up, never down, and reported.
    assert_eq!(
        price("databricks/databricks-claude-sonnet-4-1"),
        p(2_999_991, 15_000_021, 0)
    );
    let rounded =
        |model: &str, field: &str| report.rounded.iter().any(|(m, f)| m == model && f == field);
    assert!(rounded(
        "databricks/databricks-claude-sonnet-4-1",
        "input_cost_per_token"
    ));
    assert!(!rounded("gpt-4o", "input_cost_per_token"));
    for skipped in ["whisper-1", "tts-1"] {
        assert!(tv.vault.price(skipped).is_none(), "{skipped}");
        assert!(
            report.skipped.iter().any(|(m, _)| m == skipped),
            "{skipped}"
        );
    }
    assert!(tv.vault.price("sample_spec").is_none());

    // Costs computed from imported prices, rounded up once per request.
    let mut s = spec("acme", &["cost=$10"]);
    s.aliases.insert("small".into(), "gpt-4o-mini".into());
    let m = tv.vault.mint(&s, &Context::default()).unwrap();
    let charge = |model: &str, input, output| {
        let usage = Usage {
            model: Some(model.into()),
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        };
        tv.vault.charge(&m.key_id, &usage).unwrap()
    };
    let out = charge("gpt-4o", 1_234, 567);
    assert_eq!((out.cost, out.priced), (8_755, true));
    // 1001 * 0.15 + 3 * 0.6 = 151.95 micro-dollars, billed as 152.
    assert_eq!(charge("small", 1_001, 3).cost, 152);
    assert_eq!(charge("amazon.rerank-v1:0", 0, 0).cost, 1_000);
    assert_eq!(
        tv.vault.remaining(&m.key_id, None).unwrap().cost,
        Some(10_000_000 - 8_755 - 152 - 1_000)
    );
    let request = VerifyRequest {
        model: Some("gpt-4o"),
        hold: HoldAmounts {
            cost: 1,
            ..HoldAmounts::default()
        },
        ..VerifyRequest::default()
    };
    assert!(
        tv.vault
            .verify(m.secret.expose(), &request)
            .unwrap()
            .allowed
    );

    // Prices are stored: they survive a reopen, and the import is audited.
    let count = tv.vault.prices().len();
    tv.reopen();
    assert_eq!(tv.vault.prices().len(), count);
    assert_eq!(tv.vault.price("gpt-4o"), Some(p(2_500_000, 10_000_000, 0)));
    let audit = tv.vault.audit(0, 100).unwrap();
    let import = audit.iter().find(|r| r.action == "import_prices").unwrap();
    assert_eq!(import.actor.as_deref(), Some("ops"));
    assert_eq!(import.detail["imported"], report.imported);
}

#[test]
fn an_unpriced_charge_costs_zero_and_raises_an_unpriced_event() {
    let tv = TestVault::new();
    let m = tv.mint("acme", &[]);
    let usage = Usage {
        model: Some("mystery-model".into()),
        input_tokens: 1_000,
        output_tokens: 10,
        ..Usage::default()
    };
    let out = tv.vault.charge(&m.key_id, &usage).unwrap();
    assert_eq!((out.cost, out.priced), (0, false));
    let events = tv.vault.events(0, 100).unwrap();
    let unpriced: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Unpriced)
        .collect();
    assert_eq!(unpriced.len(), 1);
    assert_eq!(unpriced[0].model.as_deref(), Some("mystery-model"));
    assert_eq!(unpriced[0].key_id.as_deref(), Some(m.key_id.as_str()));
    // A cost given by the caller is used as it is, priced or not.
    let given = Usage {
        cost: Some(77),
        ..usage.clone()
    };
    assert_eq!(tv.vault.charge(&m.key_id, &given).unwrap().cost, 77);
    // Setting a price prices later charges; removing it unprices them again.
    let price = Price {
        input_per_mtok: 1_000_000,
        output_per_mtok: 0,
        per_request: 5,
    };
    tv.vault
        .set_price("mystery-model", Some(price), &Context::default())
        .unwrap();
    assert_eq!(tv.vault.charge(&m.key_id, &usage).unwrap().cost, 1_005);
    tv.vault
        .set_price("mystery-model", None, &Context::default())
        .unwrap();
    assert!(!tv.vault.charge(&m.key_id, &usage).unwrap().priced);
    let rows = tv.vault.usage(&UsageQuery::default()).unwrap();
    assert_eq!(rows[0].cost, 77 + 1_005);
    assert_eq!(rows[0].requests, 4);
}
