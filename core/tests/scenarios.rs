//! The Rust runner of the shared conformance scenarios in `tests/scenarios/*.json`. The format
//! and every op and expectation are specified in `tests/scenarios/README.md`; the C, Python
//! and Node runners follow the same text.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use nanu::{
    Context, HoldAmounts, KdfParams, KeyPatch, KeySpec, Limit, Options, Price, Remaining, Unit,
    Usage, UsageQuery, UsageRow, Vault, Verdict, VerifyRequest,
};
use serde_json::{Map, Value};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/scenarios");
const FIRST_TIME: &str = "2025-01-01T00:00:00Z";

type Fields = Map<String, Value>;

/// Fields every step may carry.
const COMMON: &[&str] = &["op", "at", "expect", "expect_error", "note"];

/// What an op may carry besides the common fields, and whether it defines `expect`.
fn op_fields(op: &str) -> Option<(&'static [&'static str], bool)> {
    Some(match op {
        "mint" => (&["spec", "as"], false),
        "verify" => (&["key", "secret", "request", "as_hold"], true),
        "charge" => (&["key", "usage"], true),
        "release" => (&["hold"], true),
        "rotate" => (&["key", "grace_ms", "as"], false),
        "revoke" => (&["key"], false),
        "revoke_owner" => (&["owner"], true),
        "update" => (&["key", "patch"], false),
        "set_owner_policy" => (&["owner", "limits"], false),
        "set_default_owner_policy" => (&["limits"], false),
        "set_price" => (&["model", "price"], false),
        "remaining" => (&["key"], true),
        "tick" => (&[], false),
        "usage" => (&["query"], true),
        _ => return None,
    })
}

/// What a step produced, for comparison with its `expect`.
enum Answer {
    Nothing,
    Verdict(Box<Verdict>),
    Charge(nanu::ChargeOutcome),
    Flag(bool),
    Count(u64),
    Remaining(Remaining),
    Rows(Vec<UsageRow>),
}

struct Label {
    key_id: String,
    secret: String,
}

/// One scenario's vault and names.
struct Run {
    _dir: tempfile::TempDir,
    vault: Vault,
    at: Timestamp,
    labels: HashMap<String, Label>,
    /// Hold names to hold ids; `None` for a verify that placed no hold.
    holds: HashMap<String, Option<u64>>,
}

fn ts(text: &str) -> Result<Timestamp, String> {
    text.parse()
        .map_err(|e| format!("bad RFC 3339 time {text:?}: {e}"))
}

/// Decodes an op's payload (spec, patch, limits, price, usage, query, hold): a payload that
/// does not decode is the op's `invalid_argument` error, as in every binding.
fn payload<T: serde::de::DeserializeOwned>(what: &str, value: &Value) -> Result<T, nanu::Error> {
    serde_json::from_value(value.clone())
        .map_err(|e| nanu::Error::new(nanu::ErrorCode::InvalidArgument, format!("bad {what}: {e}")))
}

/// Returns the op's error from a payload that does not decode.
macro_rules! decode {
    ($what:expr, $value:expr) => {
        match payload($what, $value) {
            Ok(value) => value,
            Err(err) => return Ok(Err(err)),
        }
    };
}

fn str_field<'a>(step: &'a Fields, name: &str) -> Result<&'a str, String> {
    step.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing or non-text field {name:?}"))
}

fn u64_of(what: &str, value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("{what} must be an integer from 0 to 2^64 - 1, not {value}"))
}

/// Checks an object's fields against a list.
fn only(what: &str, object: &Fields, allowed: &[&str]) -> Result<(), String> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown field {k:?} in {what}")),
        None => Ok(()),
    }
}

fn object<'a>(what: &str, value: &'a Value) -> Result<&'a Fields, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} must be an object"))
}

impl Run {
    fn new() -> Result<Run, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let options = Options::passphrase("scenario").kdf(KdfParams::INSECURE_FOR_TESTS);
        let vault = Vault::create(dir.path().join("scenario.vault"), &options)
            .map_err(|e| format!("cannot create the vault: {e}"))?;
        Ok(Run {
            _dir: dir,
            vault,
            at: ts(FIRST_TIME)?,
            labels: HashMap::new(),
            holds: HashMap::new(),
        })
    }

    fn label(&self, step: &Fields) -> Result<&Label, String> {
        let name = str_field(step, "key")?;
        self.labels
            .get(name)
            .ok_or_else(|| format!("unknown label {name:?}"))
    }

    fn hold(&self, name: &Value) -> Result<Option<u64>, String> {
        let name = name.as_str().ok_or("a hold name must be text")?;
        self.holds
            .get(name)
            .copied()
            .ok_or_else(|| format!("unknown hold name {name:?}"))
    }

    fn ctx(&self) -> Context {
        Context::at(self.at)
    }

    fn limits(step: &Fields) -> Result<&Value, String> {
        step.get("limits")
            .ok_or_else(|| "missing field \"limits\"".to_owned())
    }

    /// Runs one step, returning its answer or the vault's error.
    fn step(&mut self, op: &str, step: &Fields) -> Result<Result<Answer, nanu::Error>, String> {
        let at = self.at;
        let ctx = self.ctx();
        let vault = &self.vault;
        Ok(match op {
            "mint" => {
                let spec: KeySpec = decode!("spec", step.get("spec").ok_or("missing spec")?);
                let name = str_field(step, "as")?.to_owned();
                if self.labels.contains_key(&name) {
                    return Err(format!("label {name:?} used twice"));
                }
                vault.mint(&spec, &ctx).map(|minted| {
                    let label = Label {
                        key_id: minted.key_id.clone(),
                        secret: minted.secret.expose().to_owned(),
                    };
                    self.labels.insert(name, label);
                    Answer::Nothing
                })
            }
            "verify" => {
                let secret = match (step.get("key"), step.get("secret")) {
                    (Some(_), None) => self.label(step)?.secret.clone(),
                    (None, Some(Value::String(text))) => text.clone(),
                    _ => return Err("verify needs exactly one of \"key\" and \"secret\"".into()),
                };
                let empty = Value::Object(Fields::new());
                let request = object("request", step.get("request").unwrap_or(&empty))?;
                only("request", request, &["ip", "scope", "model", "env", "hold"])?;
                let text = |name: &str| -> Result<Option<&str>, String> {
                    match request.get(name) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(Some(s.as_str())),
                        Some(other) => Err(format!("request {name} must be text, not {other}")),
                    }
                };
                let ip = match text("ip")? {
                    Some(ip) => Some(ip.parse().map_err(|e| format!("bad ip {ip:?}: {e}"))?),
                    None => None,
                };
                let hold: HoldAmounts = match request.get("hold") {
                    Some(hold) => decode!("hold", hold),
                    None => HoldAmounts::default(),
                };
                let request = VerifyRequest {
                    ip,
                    scope: text("scope")?,
                    model: text("model")?,
                    env: text("env")?,
                    hold,
                    at: Some(at),
                };
                let result = vault.verify(&secret, &request);
                if let (Ok(verdict), Some(name)) = (&result, step.get("as_hold")) {
                    let name = name.as_str().ok_or("as_hold must be text")?.to_owned();
                    if self.holds.contains_key(&name) {
                        return Err(format!("hold name {name:?} used twice"));
                    }
                    self.holds.insert(name, verdict.hold_id);
                }
                result.map(|v| Answer::Verdict(Box::new(v)))
            }
            "charge" => {
                let key_id = self.label(step)?.key_id.clone();
                let empty = Value::Object(Fields::new());
                let fields = object("usage", step.get("usage").unwrap_or(&empty))?;
                let mut fields = fields.clone();
                let hold_id = match fields.remove("hold") {
                    Some(name) => self.hold(&name)?,
                    None => None,
                };
                let usage = Usage {
                    hold_id,
                    at: Some(at),
                    ..decode!("usage", &Value::Object(fields))
                };
                self.vault.charge(&key_id, &usage).map(Answer::Charge)
            }
            "release" => match self.hold(step.get("hold").ok_or("missing field \"hold\"")?)? {
                Some(id) => vault.release_at(id, Some(at)).map(Answer::Flag),
                None => Ok(Answer::Flag(false)),
            },
            "rotate" => {
                let key_id = self.label(step)?.key_id.clone();
                let grace = match step.get("grace_ms") {
                    Some(ms) => Duration::from_millis(u64_of("grace_ms", ms)?),
                    None => Duration::ZERO,
                };
                let name = str_field(step, "as")?.to_owned();
                if self.labels.contains_key(&name) {
                    return Err(format!("label {name:?} used twice"));
                }
                vault.rotate(&key_id, grace, &ctx).map(|minted| {
                    let label = Label {
                        key_id,
                        secret: minted.secret.expose().to_owned(),
                    };
                    self.labels.insert(name, label);
                    Answer::Nothing
                })
            }
            "revoke" => vault
                .revoke(&self.label(step)?.key_id, &ctx)
                .map(|()| Answer::Nothing),
            "revoke_owner" => vault
                .revoke_owner(str_field(step, "owner")?, &ctx)
                .map(Answer::Count),
            "update" => {
                let patch: KeyPatch =
                    decode!("patch", step.get("patch").ok_or("missing field \"patch\"")?);
                vault
                    .update(&self.label(step)?.key_id, &patch, &ctx)
                    .map(|_| Answer::Nothing)
            }
            "set_owner_policy" => {
                let limits: Vec<Limit> = decode!("limits", Run::limits(step)?);
                vault
                    .set_owner_policy(str_field(step, "owner")?, &limits, &ctx)
                    .map(|()| Answer::Nothing)
            }
            "set_default_owner_policy" => {
                let limits: Vec<Limit> = decode!("limits", Run::limits(step)?);
                vault
                    .set_default_owner_policy(&limits, &ctx)
                    .map(|()| Answer::Nothing)
            }
            "set_price" => {
                let price: Option<Price> =
                    decode!("price", step.get("price").ok_or("missing field \"price\"")?);
                vault
                    .set_price(str_field(step, "model")?, price, &ctx)
                    .map(|()| Answer::Nothing)
            }
            "remaining" => vault
                .remaining(&self.label(step)?.key_id, Some(at))
                .map(Answer::Remaining),
            "tick" => vault.tick(Some(at)).map(|()| Answer::Nothing),
            "usage" => {
                let query: UsageQuery = match step.get("query") {
                    Some(query) => decode!("query", query),
                    None => UsageQuery::default(),
                };
                vault.usage(&query).map(Answer::Rows)
            }
            _ => return Err(format!("unknown op {op:?}")),
        })
    }
}

/// Compares one expected value with what was found.
fn same(field: &str, expected: &Value, found: Value) -> Result<(), String> {
    if *expected == found {
        Ok(())
    } else {
        Err(format!("{field}: expected {expected}, found {found}"))
    }
}

/// Compares an expected instant (RFC 3339 or null) with a found one.
fn same_instant(field: &str, expected: &Value, found: Option<Timestamp>) -> Result<(), String> {
    let want = match expected {
        Value::Null => None,
        Value::String(text) => Some(ts(text)?),
        other => {
            return Err(format!(
                "{field}: expected must be RFC 3339 or null, not {other}"
            ));
        }
    };
    if want == found {
        Ok(())
    } else {
        let shown = found.map_or("null".to_owned(), |t| t.to_string());
        Err(format!("{field}: expected {expected}, found {shown}"))
    }
}

fn unit_name(unit: Unit) -> &'static str {
    unit.as_str()
}

fn check_remaining(field: &str, expected: &Value, found: Option<&Remaining>) -> Result<(), String> {
    let expected = object(field, expected)?;
    for (name, want) in expected {
        let unit: Unit = name
            .parse()
            .map_err(|_| format!("{field}: unknown unit {name:?}"))?;
        let have = found.and_then(|r| r.get(unit));
        same(&format!("{field}.{name}"), want, serde_json::json!(have))?;
    }
    Ok(())
}

fn check_verdict(expected: &Fields, v: &Verdict) -> Result<(), String> {
    only(
        "verify expect",
        expected,
        &[
            "allowed",
            "code",
            "grace",
            "model",
            "hold",
            "retry_after_ms",
            "resets_at",
            "denied_by",
            "remaining",
        ],
    )?;
    for (name, want) in expected {
        match name.as_str() {
            "allowed" => same(name, want, Value::Bool(v.allowed))?,
            "code" => same(name, want, Value::from(v.code.as_str()))?,
            "grace" => same(name, want, Value::Bool(v.grace))?,
            "model" => same(name, want, serde_json::json!(v.model))?,
            "hold" => same(name, want, Value::Bool(v.hold_id.is_some()))?,
            "retry_after_ms" => {
                let ms = v.retry_after.map(|d| d.as_micros().div_ceil(1000) as u64);
                same(name, want, serde_json::json!(ms))?;
            }
            "resets_at" => same_instant(name, want, v.resets_at)?,
            "denied_by" => match (want, &v.denied_by) {
                (Value::Null, None) => {}
                (Value::Null, Some(by)) => {
                    return Err(format!("denied_by: expected null, found {by:?}"));
                }
                (want, None) => return Err(format!("denied_by: expected {want}, found null")),
                (want, Some(by)) => {
                    let want = object("denied_by", want)?;
                    only("denied_by", want, &["level", "index", "unit"])?;
                    for (sub, value) in want {
                        let found = match sub.as_str() {
                            "level" => serde_json::to_value(by.level).unwrap_or_default(),
                            "index" => Value::from(by.index as u64),
                            _ => Value::from(unit_name(by.limit.unit)),
                        };
                        same(&format!("denied_by.{sub}"), value, found)?;
                    }
                }
            },
            _ => check_remaining(name, want, v.remaining.as_ref())?,
        }
    }
    Ok(())
}

fn check_rows(expected: &Fields, rows: &[UsageRow]) -> Result<(), String> {
    only("usage expect", expected, &["rows"])?;
    let Some(want) = expected.get("rows") else {
        return Ok(());
    };
    let want = want.as_array().ok_or("rows must be a list")?;
    if want.len() != rows.len() {
        return Err(format!(
            "rows: expected {} rows, found {}: {rows:?}",
            want.len(),
            rows.len()
        ));
    }
    for (i, (want, row)) in want.iter().zip(rows).enumerate() {
        let want = object("row", want)?;
        for (name, value) in want {
            let field = format!("rows[{i}].{name}");
            let number = |n: u64| Value::from(n);
            match name.as_str() {
                "bucket" => same_instant(&field, value, row.bucket)?,
                "group" => same(&field, value, serde_json::json!(row.group))?,
                "requests" => same(&field, value, number(row.requests))?,
                "denied" => same(&field, value, number(row.denied))?,
                "input_tokens" => same(&field, value, number(row.input_tokens))?,
                "output_tokens" => same(&field, value, number(row.output_tokens))?,
                "tokens" => same(&field, value, number(row.tokens))?,
                "cost" => same(&field, value, number(row.cost))?,
                other => return Err(format!("unknown row field {other:?}")),
            }
        }
    }
    Ok(())
}

fn check(expected: &Value, answer: &Answer) -> Result<(), String> {
    match answer {
        Answer::Flag(found) => same("result", expected, Value::Bool(*found)),
        Answer::Count(found) => same("result", expected, Value::from(*found)),
        Answer::Verdict(v) => check_verdict(object("expect", expected)?, v),
        Answer::Charge(out) => {
            let expected = object("expect", expected)?;
            only(
                "charge expect",
                expected,
                &["cost", "priced", "replayed", "exceeded"],
            )?;
            for (name, want) in expected {
                let found = match name.as_str() {
                    "cost" => Value::from(out.cost),
                    "priced" => Value::Bool(out.priced),
                    "replayed" => Value::Bool(out.replayed),
                    _ => Value::from(out.exceeded.len() as u64),
                };
                same(name, want, found)?;
            }
            Ok(())
        }
        Answer::Remaining(r) => check_remaining("remaining", expected, Some(r)),
        Answer::Rows(rows) => check_rows(object("expect", expected)?, rows),
        Answer::Nothing => Err("this op defines no expect".into()),
    }
}

/// Runs a scenario; `Err` describes the first step that did not give its answer.
fn run(scenario: &Value) -> Result<(), String> {
    let top = object("scenario", scenario)?;
    only("scenario", top, &["name", "description", "steps"])?;
    let steps = top
        .get("steps")
        .and_then(Value::as_array)
        .ok_or("a scenario needs a list of steps")?;
    if steps.is_empty() {
        return Err("a scenario needs at least one step".into());
    }
    let mut run = Run::new()?;
    for (i, step) in steps.iter().enumerate() {
        let fail = |why: String| format!("step {i} ({step}): {why}");
        let step = object("step", step).map_err(fail)?;
        let op = str_field(step, "op").map_err(fail)?;
        let (fields, defines_expect) = op_fields(op).ok_or_else(|| fail(format!("op {op:?}")))?;
        let allowed: Vec<&str> = COMMON.iter().chain(fields).copied().collect();
        only("step", step, &allowed).map_err(fail)?;
        if step.contains_key("expect") && !defines_expect {
            return Err(fail(format!("op {op:?} defines no expect")));
        }
        if step.contains_key("expect") && step.contains_key("expect_error") {
            return Err(fail("give expect or expect_error, not both".into()));
        }
        if let Some(at) = step.get("at") {
            run.at = ts(at
                .as_str()
                .ok_or("at must be text")
                .map_err(|e| fail(e.into()))?)
            .map_err(fail)?;
        }

        let result = run.step(op, step).map_err(fail)?;
        match (result, step.get("expect"), step.get("expect_error")) {
            (Ok(_), _, Some(code)) => {
                return Err(fail(format!("expected error {code}, the op succeeded")));
            }
            (Err(err), _, Some(code)) => same("error", code, Value::from(err.code().as_str()))
                .map_err(|e| fail(format!("{e} ({err})")))?,
            (Err(err), _, None) => return Err(fail(format!("failed: {err}"))),
            (Ok(answer), Some(expected), None) => check(expected, &answer).map_err(fail)?,
            (Ok(_), None, None) => {}
        }
    }
    run.vault
        .close()
        .map_err(|e| format!("closing the vault: {e}"))
}

fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_gives_its_answers() {
    let files = scenario_files(Path::new(SCENARIOS));
    assert!(
        !files.is_empty(),
        "no scenario (*.json) in {SCENARIOS}: the runner must fail rather than pass on nothing"
    );
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read the scenario");
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let outcome = serde_json::from_str::<Value>(&text)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|scenario| run(&scenario));
        if let Err(why) = outcome {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn the_folder_holds_at_least_ten_scenarios_using_every_op() {
    let files = scenario_files(Path::new(SCENARIOS));
    assert!(files.len() >= 10, "{} scenarios", files.len());
    let mut ops = std::collections::BTreeSet::new();
    for path in &files {
        let scenario: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for step in scenario["steps"].as_array().into_iter().flatten() {
            ops.insert(step["op"].as_str().unwrap_or_default().to_owned());
        }
    }
    let all = [
        "mint",
        "verify",
        "charge",
        "release",
        "rotate",
        "revoke",
        "revoke_owner",
        "update",
        "set_owner_policy",
        "set_default_owner_policy",
        "set_price",
        "remaining",
        "tick",
        "usage",
    ];
    for op in all {
        assert!(ops.contains(op), "no scenario uses {op}");
        assert!(op_fields(op).is_some());
    }
}

/// The runner itself: a wrong answer, a typo and a missing error each fail the scenario.
#[test]
fn the_runner_fails_a_scenario_that_does_not_give_its_answers() {
    let base = |step: Value| {
        serde_json::json!({
            "name": "t",
            "steps": [
                {"op": "mint", "as": "k", "spec": {"owner": "o", "limits": ["requests=1"]}},
                step,
            ],
        })
    };
    let good = base(serde_json::json!({
        "op": "verify", "key": "k",
        "expect": {"allowed": true, "remaining": {"requests": 0, "cost": null}}
    }));
    assert_eq!(run(&good), Ok(()));
    for bad in [
        serde_json::json!({"op": "verify", "key": "k", "expect": {"allowed": false}}),
        serde_json::json!({"op": "verify", "key": "k", "expect": {"remaining": {"requests": 1}}}),
        serde_json::json!({"op": "verify", "key": "k", "expect": {"alowed": true}}),
        serde_json::json!({"op": "verify", "key": "nope"}),
        serde_json::json!({"op": "verify", "key": "k", "requst": {}}),
        serde_json::json!({"op": "verfy", "key": "k"}),
        serde_json::json!({"op": "revoke", "key": "k", "expect": {}}),
        serde_json::json!({"op": "remaining", "key": "k", "expect_error": "not_found"}),
        serde_json::json!({"op": "usage", "expect": {"rows": [{"requests": 1}]}}),
        serde_json::json!({
            "op": "charge", "key": "k", "usage": {"cost": 1}, "expect": {"cost": 2}
        }),
    ] {
        let scenario = base(bad.clone());
        assert!(run(&scenario).is_err(), "{bad} passed");
    }
}
