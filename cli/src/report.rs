//! The replay's report. Every number except the throughput comes from the vault after the
//! replay: its usage log (charges and denied verifies of known keys), its event log, and its
//! counts of verifies that named no key.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use nanu::{Bucket, Dim, EventKind, UsageQuery, Vault};
use serde::Serialize;

use crate::failure::Outcome;
use crate::output::{self, count, money, percent};
use crate::replay::{Done, Measured, Setup};
use crate::trace::{BrokenRow, Trace};

/// The trace as read.
#[derive(Debug, Serialize)]
pub struct TraceSummary {
    /// The file.
    pub file: String,
    /// Data rows read.
    pub rows: u64,
    /// Rows replayed.
    pub replayed: u64,
    /// Rows skipped, with their line and reason.
    pub broken: Vec<BrokenRow>,
    /// Rows earlier than the row before.
    pub out_of_order: u64,
    /// The first request.
    pub first: Option<Timestamp>,
    /// The last request.
    pub last: Option<Timestamp>,
}

/// How the replay was set up.
#[derive(Debug, Serialize)]
pub struct SetupSummary {
    /// Tenants.
    pub tenants: u32,
    /// The seed of the draws.
    pub seed: u64,
    /// The durability level of the replay's vault handle.
    pub durability: &'static str,
    /// How fast the trace was played.
    pub speed: String,
    /// Models priced by importing the bundled table, when an import was needed.
    pub prices_imported: Option<u64>,
    /// The vault's currency.
    pub currency: String,
}

/// Verdicts, from the vault.
#[derive(Debug, Default, Serialize)]
pub struct Requests {
    /// Verdicts the vault recorded or counted: admitted plus denied.
    pub verdicts: u64,
    /// Admitted and charged.
    pub admitted: u64,
    /// Denied.
    pub denied: u64,
    /// Denials by reason code.
    pub denied_by: BTreeMap<String, u64>,
}

/// One tenant's line.
#[derive(Debug, Serialize)]
pub struct TenantLine {
    /// The owner.
    pub owner: String,
    /// The plan.
    pub plan: &'static str,
    /// The key.
    pub key_id: String,
    /// Admitted requests (charges).
    pub admitted: u64,
    /// Denied verifies of its key.
    pub denied: u64,
    /// Tokens charged.
    pub tokens: u64,
    /// Money charged, in micro-units.
    pub cost: u64,
}

/// One model's line.
#[derive(Debug, Default, Serialize)]
pub struct ModelLine {
    /// The model (aliases resolved).
    pub model: String,
    /// Charges.
    pub requests: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Money, in micro-units.
    pub cost: u64,
}

/// The busiest model of one hour.
#[derive(Clone, Debug, Serialize)]
pub struct HourLine {
    /// The hour's start (UTC).
    pub hour: Timestamp,
    /// The model with the most tokens in that hour.
    pub model: String,
    /// Its tokens.
    pub tokens: u64,
    /// Every model's tokens in that hour.
    pub all_tokens: u64,
}

/// Rates computed from [`Measured`], in whole units per second.
#[derive(Debug, Serialize)]
pub struct Throughput {
    /// What the loop measured.
    #[serde(flatten)]
    pub measured: Measured,
    /// Rows per second of loop wall time.
    pub rows_per_second: u64,
    /// Rows (one verify each, plus a charge when admitted) per second of time inside the
    /// vault's verify and charge.
    pub verify_charge_per_second: u64,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The trace.
    pub trace: TraceSummary,
    /// The setup.
    pub setup: SetupSummary,
    /// Scripted administrative actions.
    pub script: Vec<Done>,
    /// Verdicts.
    pub requests: Requests,
    /// Per tenant, by rank.
    pub tenants: Vec<TenantLine>,
    /// Per model, by spend.
    pub models: Vec<ModelLine>,
    /// The busiest model of each hour.
    pub hours: Vec<HourLine>,
    /// The busiest model-hour of the whole replay.
    pub busiest: Option<HourLine>,
    /// Events fired during the replay, by kind.
    pub alerts: BTreeMap<&'static str, u64>,
    /// Threshold events by percent crossed.
    pub thresholds: BTreeMap<u8, u64>,
    /// The replay's own speed.
    pub throughput: Throughput,
}

/// What the vault had counted before the replay's first row.
#[derive(Clone, Copy, Debug, Default)]
pub struct Before {
    /// The last event sequence number.
    pub event_seq: u64,
    /// Verifies of well-formed secrets that matched no key.
    pub not_found: u64,
    /// Malformed secrets.
    pub malformed: u64,
}

impl Before {
    /// Reads the counts from the vault.
    pub fn read(vault: &Vault) -> Outcome<Before> {
        let mut event_seq = 0;
        loop {
            let page = vault.events(event_seq, 10_000)?;
            match page.last() {
                Some(last) => event_seq = last.seq,
                None => break,
            }
        }
        let stats = vault.stats();
        Ok(Before {
            event_seq,
            not_found: stats.not_found,
            malformed: stats.malformed,
        })
    }
}

/// The inputs of [`build`] that are not read from the vault.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The trace's name.
    pub file: &'a str,
    /// The trace.
    pub trace: &'a Trace,
    /// The setup.
    pub setup: &'a Setup,
    /// The scripted actions done.
    pub script: Vec<Done>,
    /// The loop's own measurements.
    pub measured: Measured,
    /// The vault's counts before the replay.
    pub before: Before,
    /// Tenants, seed, durability, speed.
    pub options: &'a crate::args::ReplayOptions,
}

/// Builds the report from the vault's logs.
pub fn build(vault: &Vault, cx: Inputs<'_>) -> Outcome<Report> {
    let span = cx.trace.span();
    let (from, to) = match span {
        Some((first, last)) => (
            Some(first),
            last.checked_add(jiff::SignedDuration::from_secs(1)).ok(),
        ),
        None => (None, None),
    };
    let rank_of: HashMap<&str, usize> = cx
        .setup
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| (t.key_id.as_str(), i))
        .collect();

    // One pass over the usage log grouped by key, model and outcome gives the verdicts, the
    // tenants and the models; only this replay's keys are counted.
    let rows = vault.usage(&UsageQuery {
        from,
        to,
        group_by: vec![Dim::Key, Dim::Model, Dim::Outcome],
        ..UsageQuery::default()
    })?;
    let mut requests = Requests::default();
    let mut tenants: Vec<TenantLine> = cx
        .setup
        .tenants
        .iter()
        .map(|t| TenantLine {
            owner: t.owner.clone(),
            plan: t.plan.name,
            key_id: t.key_id.clone(),
            admitted: 0,
            denied: 0,
            tokens: 0,
            cost: 0,
        })
        .collect();
    let mut models: BTreeMap<String, ModelLine> = BTreeMap::new();
    for row in &rows {
        let key = row.group.get("key").map_or("", String::as_str);
        let Some(&index) = rank_of.get(key) else {
            continue;
        };
        let model = row.group.get("model").cloned().unwrap_or_default();
        let outcome = row.group.get("outcome").cloned().unwrap_or_default();
        let tenant = &mut tenants[index];
        tenant.admitted = tenant.admitted.saturating_add(row.requests);
        tenant.denied = tenant.denied.saturating_add(row.denied);
        tenant.tokens = tenant.tokens.saturating_add(row.tokens);
        tenant.cost = tenant.cost.saturating_add(row.cost);
        requests.admitted = requests.admitted.saturating_add(row.requests);
        requests.denied = requests.denied.saturating_add(row.denied);
        if row.denied > 0 {
            let n = requests.denied_by.entry(outcome).or_default();
            *n = n.saturating_add(row.denied);
        }
        if row.requests > 0 {
            let line = models.entry(model.clone()).or_insert_with(|| ModelLine {
                model,
                ..ModelLine::default()
            });
            line.requests = line.requests.saturating_add(row.requests);
            line.input_tokens = line.input_tokens.saturating_add(row.input_tokens);
            line.output_tokens = line.output_tokens.saturating_add(row.output_tokens);
            line.cost = line.cost.saturating_add(row.cost);
        }
    }
    // Secrets that matched no key (a client still sending a rotated-out secret) are not in
    // the usage log, since the vault cannot tell whose they were; it counts them.
    let stats = vault.stats();
    for (code, now, before) in [
        ("not_found", stats.not_found, cx.before.not_found),
        ("malformed", stats.malformed, cx.before.malformed),
    ] {
        let n = now.saturating_sub(before);
        if n > 0 {
            let count = requests.denied_by.entry(code.to_owned()).or_default();
            *count = count.saturating_add(n);
            requests.denied = requests.denied.saturating_add(n);
        }
    }
    requests.verdicts = requests.admitted.saturating_add(requests.denied);
    let mut models: Vec<ModelLine> = models.into_values().collect();
    models.sort_by(|a, b| b.cost.cmp(&a.cost).then_with(|| a.model.cmp(&b.model)));

    let (hours, busiest) = busiest_by_hour(vault, from, to, &rank_of)?;

    let mut alerts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut thresholds: BTreeMap<u8, u64> = BTreeMap::new();
    let mut after = cx.before.event_seq;
    loop {
        let events = vault.events(after, 10_000)?;
        let Some(last) = events.last() else {
            break;
        };
        after = last.seq;
        for event in &events {
            *alerts.entry(event.kind.as_str()).or_default() += 1;
            if event.kind == EventKind::Threshold
                && let Some(p) = event.percent
            {
                *thresholds.entry(p).or_default() += 1;
            }
        }
    }

    let mut measured = cx.measured;
    let mut broken = cx.trace.broken.clone();
    broken.append(&mut measured.broken);
    broken.sort_by_key(|b| b.line);
    let throughput = Throughput {
        rows_per_second: per_second(measured.rows, measured.loop_us),
        verify_charge_per_second: per_second(measured.rows, measured.vault_us),
        measured,
    };
    Ok(Report {
        trace: TraceSummary {
            file: cx.file.to_owned(),
            rows: (cx.trace.requests.len() + cx.trace.broken.len()) as u64,
            replayed: throughput.measured.rows,
            broken,
            out_of_order: cx.trace.out_of_order,
            first: span.map(|s| s.0),
            last: span.map(|s| s.1),
        },
        setup: SetupSummary {
            tenants: cx.options.tenants,
            seed: cx.options.seed,
            durability: cx.options.durability.level().as_str(),
            speed: crate::replay::Speed::parse(&cx.options.speed)?.describe(),
            prices_imported: cx.setup.prices_imported,
            currency: vault.currency(),
        },
        script: cx.script,
        requests,
        tenants,
        models,
        hours,
        busiest,
        alerts,
        thresholds,
        throughput,
    })
}

/// The busiest model of each hour by tokens, from a usage query bucketed by hour.
fn busiest_by_hour(
    vault: &Vault,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    rank_of: &HashMap<&str, usize>,
) -> Outcome<(Vec<HourLine>, Option<HourLine>)> {
    let rows = vault.usage(&UsageQuery {
        from,
        to,
        group_by: vec![Dim::Key, Dim::Model],
        bucket: Some(Bucket::Hour),
        tz: Some("UTC".to_owned()),
        ..UsageQuery::default()
    })?;
    let mut by_hour: BTreeMap<Timestamp, BTreeMap<String, u64>> = BTreeMap::new();
    for row in &rows {
        let key = row.group.get("key").map_or("", String::as_str);
        let (Some(hour), true) = (row.bucket, rank_of.contains_key(key)) else {
            continue;
        };
        if row.tokens == 0 {
            continue;
        }
        let model = row.group.get("model").cloned().unwrap_or_default();
        let tokens = by_hour.entry(hour).or_default().entry(model).or_default();
        *tokens = tokens.saturating_add(row.tokens);
    }
    let hours: Vec<HourLine> = by_hour
        .into_iter()
        .filter_map(|(hour, models)| {
            let all_tokens = models.values().fold(0u64, |a, b| a.saturating_add(*b));
            let (model, tokens) = models
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))?;
            Some(HourLine {
                hour,
                model,
                tokens,
                all_tokens,
            })
        })
        .collect();
    let busiest = hours.iter().max_by_key(|h| h.tokens).cloned();
    Ok((hours, busiest))
}

fn per_second(n: u64, micros: u64) -> u64 {
    if micros == 0 {
        return 0;
    }
    u64::try_from(u128::from(n) * 1_000_000 / u128::from(micros)).unwrap_or(u64::MAX)
}

/// Milliseconds with one decimal, from microseconds.
fn ms(micros: u64) -> String {
    format!("{}.{} ms", micros / 1000, (micros % 1000) / 100)
}

/// The report for people.
pub fn render(report: &Report) -> String {
    let cur = report.setup.currency.as_str();
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };

    let t = &report.trace;
    line(format!("nanu replay of {}", t.file));
    let span = match (t.first, t.last) {
        (Some(first), Some(last)) => format!(
            ", {} to {} UTC",
            first.strftime("%Y-%m-%d %H:%M:%S"),
            last.strftime("%H:%M:%S")
        ),
        _ => String::new(),
    };
    line(format!(
        "  trace      {} rows read, {} replayed, {} broken{span}",
        count(t.rows),
        count(t.replayed),
        count(t.broken.len() as u64)
    ));
    if t.out_of_order > 0 {
        line(format!(
            "             {} rows earlier than the row before (counted at the later time)",
            count(t.out_of_order)
        ));
    }
    let s = &report.setup;
    line(format!(
        "  tenants    {} (Zipf 1/k, seed {}), durability {}, {}",
        s.tenants, s.seed, s.durability, s.speed
    ));
    if let Some(n) = s.prices_imported {
        line(format!(
            "  prices     imported {} model prices from the bundled LiteLLM table",
            count(n)
        ));
    }
    if !t.broken.is_empty() {
        line(String::new());
        line(format!(
            "Broken rows (skipped): {}",
            count(t.broken.len() as u64)
        ));
        for broken in t.broken.iter().take(20) {
            line(format!("  line {}: {}", broken.line, broken.reason));
        }
        if t.broken.len() > 20 {
            line(format!(
                "  ... and {} more (all of them in --json)",
                t.broken.len() - 20
            ));
        }
    }
    if !report.script.is_empty() {
        line(String::new());
        line("Scripted changes".to_owned());
        for done in &report.script {
            let grace = done
                .grace
                .as_ref()
                .map(|g| format!(" with a {g} grace period"))
                .unwrap_or_default();
            line(format!(
                "  {}  {} the key of {} ({}){grace}",
                done.at.strftime("%H:%M:%S"),
                if done.action == "rotate" {
                    "rotated"
                } else {
                    "revoked"
                },
                done.owner,
                done.key_id
            ));
        }
    }

    let r = &report.requests;
    line(String::new());
    line("Requests".to_owned());
    line(format!(
        "  {} verdicts: {} admitted and charged ({}), {} denied ({})",
        count(r.verdicts),
        count(r.admitted),
        percent(r.admitted, r.verdicts),
        count(r.denied),
        percent(r.denied, r.verdicts)
    ));
    if r.verdicts != t.replayed {
        line(format!(
            "  note: the vault recorded {} verdicts for {} rows replayed",
            count(r.verdicts),
            count(t.replayed)
        ));
    }
    if !r.denied_by.is_empty() {
        let mut table = output::table(["denied because", "requests", "share of denials", "http"]);
        output::align_right(&mut table, &[1, 2, 3]);
        let mut reasons: Vec<(&String, &u64)> = r.denied_by.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for (code, n) in reasons {
            let http = code
                .parse::<nanu::Code>()
                .map_or_else(|_| "-".to_owned(), |c| c.http_status().to_string());
            table.add_row(vec![code.clone(), count(*n), percent(*n, r.denied), http]);
        }
        line(indent(&table.to_string()));
    }

    line(String::new());
    line("Spend per tenant".to_owned());
    let total: u64 = report
        .tenants
        .iter()
        .fold(0, |a, t| a.saturating_add(t.cost));
    let mut table = output::table([
        "tenant", "plan", "admitted", "denied", "tokens", "spend", "share",
    ]);
    output::align_right(&mut table, &[2, 3, 4, 5, 6]);
    for tenant in &report.tenants {
        table.add_row(vec![
            tenant.owner.clone(),
            tenant.plan.to_owned(),
            count(tenant.admitted),
            count(tenant.denied),
            count(tenant.tokens),
            money(tenant.cost, cur),
            percent(tenant.cost, total),
        ]);
    }
    line(indent(&table.to_string()));
    line(format!("  total spend {}", money(total, cur)));
    if r.denied_by.contains_key("not_found") {
        line(
            "  (denials of secrets that matched no key belong to no tenant: the vault cannot \
             tell whose they were)"
                .to_owned(),
        );
    }

    line(String::new());
    line("Spend per model".to_owned());
    let mut table = output::table([
        "model",
        "requests",
        "input tokens",
        "output tokens",
        "spend",
        "share",
    ]);
    output::align_right(&mut table, &[1, 2, 3, 4, 5]);
    for model in &report.models {
        table.add_row(vec![
            model.model.clone(),
            count(model.requests),
            count(model.input_tokens),
            count(model.output_tokens),
            money(model.cost, cur),
            percent(model.cost, total),
        ]);
    }
    line(indent(&table.to_string()));

    line(String::new());
    line("Busiest model by tokens per hour".to_owned());
    let mut table = output::table([
        "hour (UTC)",
        "busiest model",
        "its tokens",
        "all tokens",
        "share",
    ]);
    output::align_right(&mut table, &[2, 3, 4]);
    for hour in &report.hours {
        table.add_row(vec![
            hour.hour.strftime("%Y-%m-%d %H:00").to_string(),
            hour.model.clone(),
            count(hour.tokens),
            count(hour.all_tokens),
            percent(hour.tokens, hour.all_tokens),
        ]);
    }
    line(indent(&table.to_string()));
    if let Some(b) = &report.busiest {
        line(format!(
            "  busiest: {} with {} tokens in the hour from {} UTC",
            b.model,
            count(b.tokens),
            b.hour.strftime("%H:00")
        ));
    }

    line(String::new());
    line("Alerts fired".to_owned());
    if report.alerts.is_empty() {
        line("  none".to_owned());
    }
    for (kind, n) in &report.alerts {
        let detail = if *kind == "threshold" && !report.thresholds.is_empty() {
            let parts: Vec<String> = report
                .thresholds
                .iter()
                .map(|(p, n)| format!("{p}%: {}", count(*n)))
                .collect();
            format!(" ({})", parts.join(", "))
        } else {
            String::new()
        };
        line(format!("  {kind:<10} {:>7}{detail}", count(*n)));
    }

    let th = &report.throughput;
    let m = &th.measured;
    line(String::new());
    line("Throughput (measured by the replay itself)".to_owned());
    line(format!(
        "  {} rows in {}: {} rows/s (of which {} in scripted changes and ticks)",
        count(m.rows),
        ms(m.loop_us),
        count(th.rows_per_second),
        ms(m.admin_us)
    ));
    line(format!(
        "  {} verifies and {} charges took {} inside the vault: {} verify+charge per second \
         ({} per row)",
        count(m.verifies),
        count(m.charges),
        ms(m.vault_us),
        count(th.verify_charge_per_second),
        per_row(m.vault_us, m.rows)
    ));
    line(format!(
        "  final flush of deferred writes: {}",
        ms(m.flush_us)
    ));
    out
}

fn per_row(micros: u64, rows: u64) -> String {
    if rows == 0 {
        return "-".to_owned();
    }
    let nanos = u128::from(micros) * 1000 / u128::from(rows);
    format!("{}.{:02} us", nanos / 1000, (nanos % 1000) / 10)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
