//! Replaying a trace through a vault, in trace time.
//!
//! Setup mints one key per tenant (owner `tenant-NN`) with its plan's limits, sets the
//! tenants' owner limits, and makes sure every model the plans use has a price (importing
//! the bundled LiteLLM table if one is missing). Then, for each row, in file order:
//!
//! 1. the vault's clock is set to the row's time (so that hold expiry and expiry scans on
//!    the vault's own thread follow the trace), and any scripted action due is done;
//! 2. the row's tenant and model are drawn (see `tenants`);
//! 3. `verify` runs at the row's time, with the model and a hold of the prompt tokens and of
//!    their cost at the model's input price (the completion's size is not known yet);
//! 4. when allowed, `charge` records the row's prompt and completion tokens at the row's
//!    time, priced from the table, with the request id `line-<N>`, settling the hold.
//!
//! The replay opens its vault at the `relaxed` durability by default: a replay can be run
//! again from its trace, so losing its last 100 ms in a crash costs nothing, and the numbers
//! then show the vault's own work rather than the disk's. `--durability process` measures
//! the level a production gateway would use.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::Timestamp;
use nanu::{Context, HoldAmounts, KeySpec, Limit, Price, Secret, Usage, Vault, VerifyRequest};

use crate::args::{DurabilityArg, ReplayOptions};
use crate::bundled;
use crate::failure::{Failure, Outcome};
use crate::tenants::{self, Plan, Zipf};
use crate::trace::{BrokenRow, Trace};

/// The most tenants a replay assigns.
pub const MAX_TENANTS: u32 = 10_000;

/// A vault clock that follows the trace.
#[derive(Clone, Debug)]
pub struct TraceClock(Arc<AtomicI64>);

impl TraceClock {
    /// A clock reading `at`.
    pub fn new(at: Timestamp) -> TraceClock {
        TraceClock(Arc::new(AtomicI64::new(at.as_microsecond())))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.as_microsecond(), Ordering::Relaxed);
    }

    /// The clock as the vault's options take it.
    pub fn clock(&self) -> nanu::Clock {
        let micros = self.0.clone();
        Arc::new(move || {
            Timestamp::from_microsecond(micros.load(Ordering::Relaxed)).unwrap_or(Timestamp::MIN)
        })
    }
}

/// How fast the trace is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speed {
    /// As fast as the vault goes.
    Max,
    /// Trace time runs this many thousandths as fast as wall time (1000 is real time).
    Milli(u64),
}

impl Speed {
    /// Parses `max`, `1`, `60`, `0.5` or `60x`.
    pub fn parse(text: &str) -> Outcome<Speed> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let number = text.strip_suffix(['x', 'X']).unwrap_or(text);
        let bad = || {
            Failure::invalid(format!(
                "--speed {text:?}: expected max or a positive factor such as 1, 60 or 0.5"
            ))
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty()
            || fraction.len() > 3
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let fraction: u64 = format!("{fraction:0<3}").parse().map_err(|_| bad())?;
        let milli = whole
            .checked_mul(1000)
            .and_then(|w| w.checked_add(fraction))
            .filter(|&m| m > 0)
            .ok_or_else(bad)?;
        Ok(Speed::Milli(milli))
    }

    /// The name shown in the report.
    pub fn describe(self) -> String {
        match self {
            Speed::Max => "as fast as possible".to_owned(),
            Speed::Milli(m) => format!("{}.{:03}x trace time", m / 1000, m % 1000),
        }
    }
}

impl DurabilityArg {
    /// The core's level.
    pub fn level(self) -> nanu::Durability {
        match self {
            DurabilityArg::Durable => nanu::Durability::Durable,
            DurabilityArg::Process => nanu::Durability::Process,
            DurabilityArg::Relaxed => nanu::Durability::Relaxed,
        }
    }
}

/// An administrative action done at a moment of the trace (the demo's rotation and
/// revocation).
#[derive(Clone, Debug)]
pub enum Action {
    /// Rotate a tenant's key with a grace period. Most of its clients switch to the new
    /// secret `switch_after` the rotation; `stale_percent` of its requests keep coming from a
    /// client that never got the new secret.
    Rotate {
        /// The tenant's rank.
        rank: u32,
        /// When, after the first request of the trace.
        after: Duration,
        /// How long the old secret keeps working.
        grace: Duration,
        /// When most clients switch to the new secret, after the rotation.
        switch_after: Duration,
        /// The share of requests (in percent) from a client still holding the old secret.
        stale_percent: u64,
    },
    /// Revoke a tenant's key (a leaked key, say).
    Revoke {
        /// The tenant's rank.
        rank: u32,
        /// When, after the first request of the trace.
        after: Duration,
    },
}

impl Action {
    fn after(&self) -> Duration {
        match self {
            Action::Rotate { after, .. } | Action::Revoke { after, .. } => *after,
        }
    }
}

/// What a scripted action did, for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Done {
    /// When, in trace time.
    pub at: Timestamp,
    /// `rotate` or `revoke`.
    pub action: &'static str,
    /// The tenant.
    pub owner: String,
    /// The key.
    pub key_id: String,
    /// For a rotation: how long the old secret kept working, in the friendly form.
    pub grace: Option<String>,
}

/// One tenant of the replay: its plan, key and secrets.
#[derive(Debug)]
pub struct Tenant {
    /// The owner name.
    pub owner: String,
    /// The plan.
    pub plan: &'static Plan,
    /// The key.
    pub key_id: String,
    secret: Secret,
    rotation: Option<Rotation>,
}

#[derive(Debug)]
struct Rotation {
    new_secret: Secret,
    switch_at: Timestamp,
    stale_percent: u64,
}

impl Tenant {
    /// The secret a client of this tenant sends for a request at `at`.
    fn secret_at(&self, at: Timestamp, draw: u64) -> &str {
        match &self.rotation {
            Some(r) if at >= r.switch_at && draw % 100 >= r.stale_percent => r.new_secret.expose(),
            _ => self.secret.expose(),
        }
    }
}

/// The replay's setup, done before the first row.
#[derive(Debug)]
pub struct Setup {
    /// The tenants, by rank.
    pub tenants: Vec<Tenant>,
    /// Models priced by importing the bundled table (`None` when every model had a price).
    pub prices_imported: Option<u64>,
    /// Prices of the models the plans use, as read from the vault.
    pub prices: BTreeMap<&'static str, Price>,
}

/// The owner name of a tenant: `tenant-07` (zero-padded to the width of the tenant count).
pub fn owner_name(rank: u32, tenants: u32) -> String {
    let width = tenants.to_string().len().max(2);
    format!("tenant-{rank:0width$}")
}

fn plan_limits(texts: &[&str]) -> Outcome<Vec<Limit>> {
    texts
        .iter()
        .map(|t| {
            t.parse::<Limit>()
                .map_err(|e| Failure::invalid(format!("plan limit {t:?}: {}", e.message())))
        })
        .collect()
}

/// Mints the tenants' keys, sets their owner limits and makes sure the plans' models have
/// prices. Every change is made at `start`, the trace's first instant.
pub fn prepare(
    vault: &Vault,
    start: Timestamp,
    options: &ReplayOptions,
    label: &str,
) -> Outcome<Setup> {
    if options.tenants == 0 || options.tenants > MAX_TENANTS {
        return Err(Failure::invalid(format!(
            "--tenants must be 1 to {MAX_TENANTS}"
        )));
    }
    let ctx = Context {
        at: Some(start),
        actor: Some(format!("replay:{label}")),
    };
    let plans: Vec<&'static Plan> = (1..=options.tenants).map(Plan::of_rank).collect();

    let mut models: Vec<&'static str> = plans.iter().flat_map(|p| p.models_used()).collect();
    models.sort_unstable();
    models.dedup();
    let mut prices_imported = None;
    if models.iter().any(|m| vault.price(m).is_none()) {
        let import = vault.import_prices(bundled::PRICES, &ctx)?;
        prices_imported = Some(import.imported);
    }
    let mut prices = BTreeMap::new();
    for model in models {
        let price = vault.price(model).ok_or_else(|| {
            Failure::invalid(format!(
                "model {model} has no price, even in the bundled table {}",
                bundled::PRICES_NAME
            ))
        })?;
        prices.insert(model, price);
    }

    let mut specs = Vec::with_capacity(plans.len());
    for (i, plan) in plans.iter().enumerate() {
        let rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let owner = owner_name(rank, options.tenants);
        vault.set_owner_policy(&owner, &plan_limits(plan.owner_limits)?, &ctx)?;
        let mut spec = KeySpec::new(owner);
        spec.name = format!("{} plan", plan.name);
        spec.limits = plan_limits(plan.key_limits)?;
        spec.models = plan
            .models
            .map(|m| m.iter().map(|s| (*s).to_owned()).collect());
        spec.aliases = plan
            .aliases
            .iter()
            .map(|(a, m)| ((*a).to_owned(), (*m).to_owned()))
            .collect();
        spec.expires_at = match plan.expires_after_minutes {
            Some(minutes) => Some(
                start
                    .checked_add(jiff::SignedDuration::from_mins(minutes))
                    .map_err(|e| Failure::invalid(format!("plan expiry: {e}")))?,
            ),
            None => None,
        };
        spec.metadata.insert("plan".to_owned(), plan.name.into());
        spec.metadata.insert("replay".to_owned(), label.into());
        spec.metadata.insert("seed".to_owned(), options.seed.into());
        specs.push(spec);
    }
    let minted = vault.mint_many(&specs, &ctx)?;
    let tenants = minted
        .into_iter()
        .zip(plans)
        .enumerate()
        .map(|(i, (minted, plan))| {
            let rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
            Tenant {
                owner: owner_name(rank, options.tenants),
                plan,
                key_id: minted.key_id,
                secret: minted.secret,
                rotation: None,
            }
        })
        .collect();
    Ok(Setup {
        tenants,
        prices_imported,
        prices,
    })
}

/// What the replay loop measured itself (everything else comes from the vault).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Measured {
    /// Rows replayed.
    pub rows: u64,
    /// Verify calls.
    pub verifies: u64,
    /// Charge calls.
    pub charges: u64,
    /// Wall time of the loop, in microseconds.
    pub loop_us: u64,
    /// Time spent inside verify and charge, in microseconds.
    pub vault_us: u64,
    /// Time spent in scripted administrative changes and periodic ticks, in microseconds
    /// (an administrative change waits for its commit, behind the charges queued before it).
    pub admin_us: u64,
    /// Time of the flush after the loop (what `relaxed` and `process` deferred), in
    /// microseconds.
    pub flush_us: u64,
    /// Rows read well but skipped because their amounts overflow (the report lists them with
    /// the trace's broken rows).
    #[serde(skip)]
    pub broken: Vec<BrokenRow>,
}

/// Replays the trace's rows. The vault must have been opened with `clock`'s clock.
pub fn run(
    vault: &Vault,
    setup: &mut Setup,
    trace: &Trace,
    clock: &TraceClock,
    options: &ReplayOptions,
    script: &[Action],
) -> Outcome<(Measured, Vec<Done>)> {
    let speed = Speed::parse(&options.speed)?;
    let Some((start, _)) = trace.span() else {
        return Ok((Measured::default(), Vec::new()));
    };
    let zipf = Zipf::new(options.tenants);
    let mut pending: Vec<&Action> = script.iter().collect();
    pending.sort_by_key(|a| a.after());
    let mut pending = pending.into_iter().peekable();
    let mut done = Vec::new();

    let progress = progress_bar(trace.requests.len() as u64);
    let mut measured = Measured::default();
    let mut next_tick = start;
    let wall_start = Instant::now();
    for (i, request) in trace.requests.iter().enumerate() {
        let at = request.at;
        clock.set(at);
        let timer = Instant::now();
        while let Some(action) = pending.next_if(|a| later(start, a.after()) <= at) {
            done.push(act(vault, setup, action, later(start, action.after()))?);
        }
        if at >= next_tick {
            vault.tick(Some(at))?;
            next_tick = later(at, Duration::from_secs(60));
        }
        measured.admin_us = measured.admin_us.saturating_add(micros(timer.elapsed()));
        if let Speed::Milli(milli) = speed {
            pace(wall_start, start, at, milli);
        }

        let rank = zipf.rank(tenants::draw(options.seed, request.line, 0));
        let tenant = &setup.tenants[(rank - 1) as usize];
        let asked = tenant
            .plan
            .pick(tenants::draw(options.seed, request.line, 1));
        let model = tenant.plan.resolve(asked);
        let price = setup.prices.get(model).copied().unwrap_or_default();
        // A row whose amounts overflow is broken like a malformed one: reported and skipped.
        // The full cost bounds the hold's (prompt only), so one check covers both.
        let overflow = if request
            .context_tokens
            .checked_add(request.generated_tokens)
            .is_none()
        {
            Some("the token counts add up to more than 2^64-1".to_owned())
        } else {
            price
                .cost(request.context_tokens, request.generated_tokens)
                .err()
                .map(|_| {
                    format!(
                        "the cost of {} input and {} output tokens at {model}'s price \
                         overflows",
                        request.context_tokens, request.generated_tokens
                    )
                })
        };
        if let Some(reason) = overflow {
            measured.broken.push(BrokenRow {
                line: request.line,
                reason,
            });
            continue;
        }
        let hold = HoldAmounts {
            input_tokens: request.context_tokens,
            output_tokens: 0,
            cost: price.cost(request.context_tokens, 0)?,
        };
        let secret = tenant.secret_at(at, tenants::draw(options.seed, request.line, 2));
        let verify = VerifyRequest {
            model: Some(asked),
            hold,
            at: Some(at),
            ..VerifyRequest::default()
        };

        let timer = Instant::now();
        let verdict = vault.verify(secret, &verify)?;
        let mut in_vault = timer.elapsed();
        measured.verifies += 1;
        if verdict.allowed
            && let Some(key_id) = &verdict.key_id
        {
            let usage = Usage {
                model: Some(asked.to_owned()),
                endpoint: None,
                input_tokens: request.context_tokens,
                output_tokens: request.generated_tokens,
                cost: None,
                request_id: Some(format!("line-{}", request.line)),
                hold_id: verdict.hold_id,
                at: Some(at),
            };
            let timer = Instant::now();
            vault.charge(key_id, &usage)?;
            in_vault += timer.elapsed();
            measured.charges += 1;
        }
        measured.vault_us = measured.vault_us.saturating_add(micros(in_vault));
        measured.rows += 1;
        if i % 512 == 0 {
            progress.set_position(i as u64);
        }
    }
    for action in pending {
        done.push(act(vault, setup, action, later(start, action.after()))?);
    }
    measured.loop_us = micros(wall_start.elapsed());
    progress.finish_and_clear();

    let timer = Instant::now();
    vault.flush()?;
    measured.flush_us = micros(timer.elapsed());
    Ok((measured, done))
}

/// `at + d`, saturating at the end of time (a trace near year 9999 must not panic).
fn later(at: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn progress_bar(len: u64) -> ProgressBar {
    let target = if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) =
        ProgressStyle::with_template("replaying {bar:40} {human_pos}/{human_len} rows, {per_sec}")
    {
        bar.set_style(style);
    }
    bar
}

/// Sleeps until wall time has caught up with trace time at the chosen speed.
fn pace(wall_start: Instant, trace_start: Timestamp, at: Timestamp, milli: u64) {
    let trace_us = at
        .as_microsecond()
        .saturating_sub(trace_start.as_microsecond())
        .max(0) as u64;
    let wall_us = u128::from(trace_us) * 1000 / u128::from(milli);
    let target = Duration::from_micros(u64::try_from(wall_us).unwrap_or(u64::MAX));
    if let Some(wait) = target.checked_sub(wall_start.elapsed()) {
        std::thread::sleep(wait);
    }
}

fn act(vault: &Vault, setup: &mut Setup, action: &Action, at: Timestamp) -> Outcome<Done> {
    let ctx = Context {
        at: Some(at),
        actor: Some("replay:script".to_owned()),
    };
    let rank = match action {
        Action::Rotate { rank, .. } | Action::Revoke { rank, .. } => *rank,
    };
    let tenant = setup
        .tenants
        .get_mut(rank.saturating_sub(1) as usize)
        .ok_or_else(|| Failure::invalid(format!("the script names tenant {rank}")))?;
    match action {
        Action::Rotate {
            grace,
            switch_after,
            stale_percent,
            ..
        } => {
            let minted = vault.rotate(&tenant.key_id, *grace, &ctx)?;
            tenant.rotation = Some(Rotation {
                new_secret: minted.secret,
                switch_at: later(at, *switch_after),
                stale_percent: *stale_percent,
            });
            Ok(Done {
                at,
                action: "rotate",
                owner: tenant.owner.clone(),
                key_id: tenant.key_id.clone(),
                grace: Some(nanu::format_duration(*grace)),
            })
        }
        Action::Revoke { .. } => {
            vault.revoke(&tenant.key_id, &ctx)?;
            Ok(Done {
                at,
                action: "revoke",
                owner: tenant.owner.clone(),
                key_id: tenant.key_id.clone(),
                grace: None,
            })
        }
    }
}

/// Sets up, replays and reports: shared by `nanu replay` and `nanu demo`.
pub fn replay_and_report(
    vault: &Vault,
    clock: &TraceClock,
    trace: &Trace,
    file: &str,
    options: &ReplayOptions,
    script: &[Action],
) -> Outcome<crate::report::Report> {
    Speed::parse(&options.speed)?;
    let Some((start, _)) = trace.span() else {
        return Err(Failure::invalid(format!(
            "{file}: no row to replay ({} broken)",
            trace.broken.len()
        )));
    };
    clock.set(start);
    let mut setup = prepare(vault, start, options, file)?;
    let before = crate::report::Before::read(vault)?;
    let (measured, done) = run(vault, &mut setup, trace, clock, options, script)?;
    crate::report::build(
        vault,
        crate::report::Inputs {
            file,
            trace,
            setup: &setup,
            script: done,
            measured,
            before,
            options,
        },
    )
}

/// Checks the options before anything is read or opened.
pub fn validate(options: &ReplayOptions) -> Outcome {
    Speed::parse(&options.speed)?;
    if options.tenants == 0 || options.tenants > MAX_TENANTS {
        return Err(Failure::invalid(format!(
            "--tenants must be 1 to {MAX_TENANTS}"
        )));
    }
    Ok(())
}

/// `nanu replay TRACE.csv`: replays into the selected vault (which must exist).
pub fn command(global: &crate::args::Global, args: &crate::args::ReplayArgs) -> Outcome {
    validate(&args.options)?;
    let file = std::fs::File::open(&args.trace).map_err(|e| Failure::input(&args.trace, &e))?;
    let name = args.trace.display().to_string();
    let trace = crate::trace::read(std::io::BufReader::new(file), &name, args.limit_rows)?;
    let start = trace.span().map_or(Timestamp::UNIX_EPOCH, |s| s.0);

    let (path, unlock) = crate::access::locate(global)?;
    let clock = TraceClock::new(start);
    let options = nanu::Options::new(unlock)
        .durability(args.options.durability.level())
        .clock(clock.clock());
    let vault = Vault::open(&path, &options)?;
    let report = replay_and_report(&vault, &clock, &trace, &name, &args.options, &[])?;
    vault.close()?;
    if global.json {
        crate::output::print_json(&report)
    } else {
        crate::output::print(&crate::report::render(&report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds() {
        assert_eq!(Speed::parse("max").unwrap(), Speed::Max);
        assert_eq!(Speed::parse("1").unwrap(), Speed::Milli(1000));
        assert_eq!(Speed::parse("60x").unwrap(), Speed::Milli(60_000));
        assert_eq!(Speed::parse("0.5").unwrap(), Speed::Milli(500));
        assert_eq!(Speed::parse(".25").unwrap(), Speed::Milli(250));
        for bad in ["0", "-1", "fast", "1.2345", "", ".", "1e3"] {
            assert!(Speed::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn owner_names_sort_by_rank() {
        assert_eq!(owner_name(7, 12), "tenant-07");
        assert_eq!(owner_name(7, 120), "tenant-007");
        assert_eq!(owner_name(1, 3), "tenant-01");
    }
}
