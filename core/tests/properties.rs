//! Property tests: money arithmetic against a u128 reference, money text round trips, and
//! admission of random verify / charge / release sequences on a lifetime budget and a calendar
//! day limit against a model that sums by hand.

mod common;

use std::collections::BTreeSet;

use common::options;
use jiff::Timestamp;
use nanu::{
    Code, Context, Durability, HoldAmounts, Limit, Price, Unit, Usage, Vault, VerifyRequest,
    Window, format_money, parse_money,
};
use proptest::prelude::*;

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..1_000u64,
        0..10_000_000_000u64,
        any::<u64>(),
        Just(u64::MAX)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn price_cost_is_exact_and_rounds_up_once(
        input in amount(),
        output in amount(),
        input_per_mtok in amount(),
        output_per_mtok in amount(),
        per_request in amount(),
    ) {
        let price = Price { input_per_mtok, output_per_mtok, per_request };
        let scaled = (u128::from(input) * u128::from(input_per_mtok))
            .checked_add(u128::from(output) * u128::from(output_per_mtok));
        let expected = scaled
            .map(|s| s.div_ceil(1_000_000) + u128::from(per_request))
            .and_then(|total| u64::try_from(total).ok());
        match (price.cost(input, output), expected) {
            (Ok(cost), Some(want)) => prop_assert_eq!(cost, want),
            (Err(err), None) => {
                prop_assert_eq!(err.code(), nanu::ErrorCode::InvalidArgument);
            }
            (got, want) => prop_assert!(false, "cost {:?}, reference {:?}", got, want),
        }
    }

    #[test]
    fn money_text_round_trips(micros in amount()) {
        let text = format_money(micros);
        prop_assert_eq!(parse_money(&text), Ok(micros));
        prop_assert_eq!(parse_money(&format!(" ${text} ")), Ok(micros));
        let (whole, fraction) = text.split_once('.').unwrap();
        prop_assert!((2..=6).contains(&fraction.len()));
        prop_assert_eq!(whole, (micros / 1_000_000).to_string());
        // The same amount written with six fraction digits, or in units with an exponent.
        let padded = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
        prop_assert_eq!(parse_money(&padded), Ok(micros));
        prop_assert_eq!(parse_money(&format!("{micros}e-6")), Ok(micros));
    }

    #[test]
    fn money_finer_than_a_micro_unit_or_negative_is_refused(
        whole in 0..1_000_000u64,
        fraction in 1..10u64,
    ) {
        let seventh = format!("{whole}.000000{fraction}");
        prop_assert!(parse_money(&seventh).is_err());
        let negative = format!("-{whole}.{fraction}");
        prop_assert!(parse_money(&negative).is_err());
    }

    #[test]
    fn cost_limits_round_trip_through_their_text(micros in amount(), day in 1..=31u8) {
        let limit = Limit::new(
            Unit::Cost,
            micros,
            Window::Calendar {
                period: nanu::Period::Month,
                tz: "Asia/Kolkata".into(),
                anchor: Some(day),
            },
        );
        let text = limit.to_string();
        prop_assert_eq!(text.parse::<Limit>(), Ok(limit), "{}", text);
    }
}

// ---- admission against a model ---------------------------------------------------------

const DAY: i64 = 86_400_000_000;

#[derive(Clone, Debug)]
enum Op {
    Verify { hold: u64 },
    Charge { cost: u64, settle: Option<usize> },
    Release { which: usize },
    Wait { us: i64 },
}

fn op(budget: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..=budget / 2).prop_map(|hold| Op::Verify { hold }),
        1 => Just(Op::Verify { hold: 0 }),
        3 => (0..=budget / 3, proptest::option::of(0..8usize))
            .prop_map(|(cost, settle)| Op::Charge { cost, settle }),
        1 => (0..8usize).prop_map(|which| Op::Release { which }),
        // Mostly forward, sometimes back (a wall clock that steps back).
        2 => (-DAY / 2..2 * DAY).prop_map(|us| Op::Wait { us }),
    ]
}

/// What the key's two limits should hold, summed by hand.
#[derive(Debug)]
struct Model {
    budget: u64,
    per_day: u64,
    cost_used: u64,
    holds: Vec<(u64, u64)>,
    day: i64,
    requests: u64,
    /// The latest time the key has seen (`i64::MIN` before the first): windows never move
    /// backwards.
    seen: i64,
}

impl Model {
    fn held(&self) -> u64 {
        self.holds.iter().map(|(_, amount)| amount).sum()
    }

    fn advance(&mut self, t: i64) {
        self.seen = self.seen.max(t);
        let day = self.seen.div_euclid(DAY);
        if day != self.day {
            self.day = day;
            self.requests = 0;
        }
    }

    fn cost_left(&self) -> u64 {
        self.budget
            .saturating_sub(self.cost_used)
            .saturating_sub(self.held())
    }

    /// Requests left at `t` without moving the model's time.
    fn requests_left(&self) -> u64 {
        self.per_day - self.requests
    }
}

fn run_model(budget: u64, per_day: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let opts = options().durability(Durability::Relaxed);
    let vault = Vault::create(dir.path().join("p.vault"), &opts).unwrap();
    let mut spec = nanu::KeySpec::new("acme");
    spec.limits = vec![
        Limit::new(Unit::Cost, budget, Window::Lifetime),
        format!("requests={per_day}/day").parse().unwrap(),
    ];
    let key = vault.mint(&spec, &Context::default()).unwrap();
    let start = "2025-01-01T00:00:00Z"
        .parse::<Timestamp>()
        .unwrap()
        .as_microsecond();
    let mut t = start;
    let mut model = Model {
        budget,
        per_day,
        cost_used: 0,
        holds: Vec::new(),
        // The key's windows start with the first time it sees (not its mint), so a time
        // before `start` opens that earlier day.
        day: i64::MIN,
        requests: 0,
        seen: i64::MIN,
    };
    let at = |t: i64| Some(Timestamp::from_microsecond(t).unwrap());

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Wait { us } => t += us,
            Op::Verify { hold } => {
                model.advance(t);
                let request = VerifyRequest {
                    hold: HoldAmounts {
                        cost: hold,
                        ..HoldAmounts::default()
                    },
                    at: at(t),
                    ..VerifyRequest::default()
                };
                let v = vault.verify(key.secret.expose(), &request).unwrap();
                // Strict admission: room for the hold (at least one micro-unit) on the budget,
                // then room for one more request today.
                let need = u128::from(hold.max(1));
                let cost_fits = u128::from(model.cost_used) + u128::from(model.held()) + need
                    <= u128::from(budget);
                let expected = if !cost_fits {
                    Some((Code::BudgetExceeded, 0))
                } else if model.requests + 1 > per_day {
                    Some((Code::UsageExceeded, 1))
                } else {
                    None
                };
                match expected {
                    Some((code, index)) => {
                        prop_assert!(!v.allowed, "step {}: {:?}", step, v);
                        prop_assert_eq!(v.code, code, "step {}", step);
                        prop_assert_eq!(v.denied_by.as_ref().map(|d| d.index), Some(index));
                        prop_assert_eq!(v.hold_id, None);
                    }
                    None => {
                        prop_assert!(v.allowed, "step {}: {:?} vs {:?}", step, v, model);
                        model.requests += 1;
                        if hold > 0 {
                            let id = v.hold_id.expect("a hold id");
                            model.holds.push((id, hold));
                        } else {
                            prop_assert_eq!(v.hold_id, None);
                        }
                    }
                }
                let remaining = v.remaining.expect("a known key has remaining figures");
                prop_assert_eq!(remaining.cost, Some(model.cost_left()), "step {}", step);
                prop_assert_eq!(remaining.requests, Some(model.requests_left()));
            }
            Op::Charge { cost, settle } => {
                model.advance(t);
                let hold = settle.and_then(|i| model.holds.get(i).copied());
                let usage = Usage {
                    cost: Some(cost),
                    hold_id: hold.map(|(id, _)| id),
                    at: at(t),
                    ..Usage::default()
                };
                let out = vault.charge(&key.key_id, &usage).unwrap();
                if let Some((id, _)) = hold {
                    model.holds.retain(|(h, _)| *h != id);
                }
                model.cost_used += cost;
                let exceeded: BTreeSet<usize> = out.exceeded.iter().map(|s| s.index).collect();
                let mut expected = BTreeSet::new();
                if model.cost_left() == 0 {
                    expected.insert(0);
                }
                if model.requests_left() == 0 {
                    expected.insert(1);
                }
                prop_assert_eq!(exceeded, expected, "step {}", step);
            }
            Op::Release { which } => {
                match model.holds.get(which).copied() {
                    Some((id, _)) => {
                        // Only a hold that is found moves its key's time.
                        model.advance(t);
                        prop_assert!(vault.release_at(id, at(t)).unwrap());
                        prop_assert!(!vault.release_at(id, at(t)).unwrap());
                        model.holds.retain(|(h, _)| *h != id);
                    }
                    None => prop_assert!(!vault.release_at(u64::MAX - 1, at(t)).unwrap()),
                }
            }
        }
        let r = vault.remaining(&key.key_id, at(t)).unwrap();
        prop_assert_eq!(r.cost, Some(model.cost_left()), "step {} remaining", step);
        let today = t.max(model.seen).div_euclid(DAY);
        let requests_left = if today == model.day {
            model.requests_left()
        } else {
            per_day
        };
        prop_assert_eq!(r.requests, Some(requests_left), "step {} remaining", step);
        prop_assert_eq!(vault.stats().holds, model.holds.len() as u64);
    }
    vault.close().unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn admission_matches_a_model_that_sums_by_hand(
        budget in 1..20_000u64,
        per_day in 1..6u64,
        ops in proptest::collection::vec(op(20_000), 1..60),
    ) {
        run_model(budget, per_day, ops)?;
    }
}
