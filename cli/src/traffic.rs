//! The request path from the command line: verify and charge.

use std::io::BufRead;

use nanu::{Durability, HoldAmounts, LimitStatus, Remaining, Usage, Verdict, VerifyRequest};
use serde::Serialize;

use crate::access;
use crate::args::{ChargeArgs, Global, VerifyArgs};
use crate::failure::{Exit, Failure, Outcome};
use crate::output::{self, print, print_json};
use crate::parse;

/// A verdict as `verify --json` prints it. Holds live only inside the process that placed
/// them, so the hold id is not shown: a hold given with `--hold-*` takes part in admission
/// and is given back when the command exits.
#[derive(Serialize)]
struct VerdictView<'a> {
    allowed: bool,
    code: &'static str,
    http_status: u16,
    key_id: Option<&'a str>,
    owner: Option<&'a str>,
    env: Option<&'a str>,
    model: Option<&'a str>,
    grace: bool,
    retry_after_ms: Option<u64>,
    resets_at: Option<jiff::Timestamp>,
    denied_by: Option<&'a LimitStatus>,
    remaining: Option<&'a Remaining>,
}

impl<'a> VerdictView<'a> {
    fn of(verdict: &'a Verdict) -> VerdictView<'a> {
        VerdictView {
            allowed: verdict.allowed,
            code: verdict.code.as_str(),
            http_status: verdict.code.http_status(),
            key_id: verdict.key_id.as_deref(),
            owner: verdict.owner.as_deref(),
            env: verdict.env.as_deref(),
            model: verdict.model.as_deref(),
            grace: verdict.grace,
            retry_after_ms: verdict
                .retry_after
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            resets_at: verdict.resets_at,
            denied_by: verdict.denied_by.as_ref(),
            remaining: verdict.remaining.as_ref(),
        }
    }
}

/// Reads the secret from the first line of stdin.
fn secret_from_stdin() -> Outcome<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::invalid(format!("cannot read the secret from stdin: {e}")))?;
    Ok(line.trim().to_owned())
}

/// `nanu verify SECRET|-`. Returns `Exit::Denied` (10) when the request is denied.
pub fn verify(global: &Global, args: &VerifyArgs) -> Outcome<Exit> {
    let hold = HoldAmounts {
        input_tokens: args.hold_input_tokens.unwrap_or(0),
        output_tokens: args.hold_output_tokens.unwrap_or(0),
        cost: match &args.hold_cost {
            Some(text) => parse::money("--hold-cost", text)?,
            None => 0,
        },
    };
    let ip = args.ip.as_deref().map(parse::ip).transpose()?;
    let at = parse::time_opt("--at", args.at.as_deref())?;
    let secret = if args.secret == "-" {
        secret_from_stdin()?
    } else {
        args.secret.clone()
    };
    let request = VerifyRequest {
        ip,
        scope: args.scope.as_deref(),
        model: args.model.as_deref(),
        env: args.env.as_deref(),
        hold,
        at,
    };

    let vault = access::open(global, Durability::Durable)?;
    let currency = vault.currency();
    let verdict = vault.verify(&secret, &request)?;
    // A hold is worthless once this process ends; giving it back keeps the counters exact.
    if let Some(hold_id) = verdict.hold_id {
        vault.release(hold_id)?;
    }
    vault.close()?;

    let exit = if verdict.allowed {
        Exit::Ok
    } else {
        Exit::Denied
    };
    if global.json {
        print_json(&VerdictView::of(&verdict))?;
        return Ok(exit);
    }
    print(&verdict_text(&verdict, &currency))?;
    Ok(exit)
}

fn verdict_text(verdict: &Verdict, currency: &str) -> String {
    let mut text = verdict.code.as_str().to_owned();
    let mut details = Vec::new();
    if let Some(key) = &verdict.key_id {
        details.push(format!("key {key}"));
    }
    if let Some(owner) = &verdict.owner {
        details.push(format!("owner {owner}"));
    }
    if let Some(model) = &verdict.model {
        details.push(format!("model {model}"));
    }
    if verdict.grace {
        details.push("old secret in its rotation grace period".to_owned());
    }
    if let Some(limit) = &verdict.denied_by {
        details.push(format!("denied by {} limit {}", level(limit), limit.limit));
    }
    if let Some(retry) = verdict.retry_after {
        details.push(format!("retry after {}", nanu::format_duration(retry)));
    }
    if let Some(at) = verdict.resets_at {
        details.push(format!("resets {}", output::time(at)));
    }
    if !details.is_empty() {
        text.push_str(": ");
        text.push_str(&details.join(", "));
    }
    if let Some(remaining) = &verdict.remaining
        && !remaining.limits.is_empty()
    {
        text.push('\n');
        text.push_str(&output::limits_table(remaining, currency).to_string());
    }
    text
}

fn level(limit: &LimitStatus) -> &'static str {
    match limit.level {
        nanu::Level::Key => "key",
        nanu::Level::Owner => "owner",
    }
}

/// `nanu charge KEY`.
pub fn charge(global: &Global, args: &ChargeArgs) -> Outcome {
    let usage = Usage {
        model: args.model.clone(),
        endpoint: args.endpoint.clone(),
        input_tokens: args.input_tokens,
        output_tokens: args.output_tokens,
        cost: args
            .cost
            .as_deref()
            .map(|text| parse::money("--cost", text))
            .transpose()?,
        request_id: args.request_id.clone(),
        hold_id: None,
        at: parse::time_opt("--at", args.at.as_deref())?,
    };

    let vault = access::open(global, Durability::Durable)?;
    let currency = vault.currency();
    let outcome = vault.charge(&args.key, &usage)?;
    vault.close()?;

    if global.json {
        return print_json(&outcome);
    }
    let mut text = format!(
        "charged {}: {}",
        outcome.key_id,
        output::money(outcome.cost, &currency)
    );
    if outcome.replayed {
        text.push_str(" (request id seen before: first outcome, nothing recorded)");
    }
    if !outcome.priced {
        text.push_str(" (model has no price: cost recorded as zero)");
    }
    for limit in &outcome.exceeded {
        text.push_str(&format!(
            "\nexceeded: {} limit {} (used {})",
            level(limit),
            limit.limit,
            output::amount(limit.limit.unit, limit.used, &currency)
        ));
    }
    print(&text)
}
