//! Reading what happened: usage reports, counts, events and the audit trail.

use axum::Json;
use axum::extract::State;
use nanu::{AuditCheck, AuditRecord, Bucket, Dim, Event, UsageQuery, UsageRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Admin, AuditRead, EventsRead, UsageRead};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, NoQuery, param};
use crate::state::{AppState, blocking};

/// The most events or audit records one call returns.
const MAX_PAGE: u64 = 10_000;

/// The filters, grouping and buckets of a usage report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Records at or after this instant (RFC 3339, or a date meaning midnight UTC).
    #[param(value_type = Option<String>, example = "2026-05-01T00:00:00Z")]
    from: Option<String>,
    /// Records before this instant.
    #[param(value_type = Option<String>, example = "2026-06-01")]
    to: Option<String>,
    /// Only this key.
    key_id: Option<String>,
    /// Only this owner.
    owner: Option<String>,
    /// Only this environment.
    env: Option<String>,
    /// Only this model.
    model: Option<String>,
    /// Only this endpoint.
    endpoint: Option<String>,
    /// Group by these, comma-separated: `key`, `owner`, `env`, `model`, `endpoint`, `outcome`.
    #[param(example = "model,owner")]
    group_by: Option<String>,
    /// Bucket rows by time: `minute`, `hour`, `day`, `week` or `month`.
    #[param(value_type = Option<Bucket>)]
    bucket: Option<String>,
    /// IANA time zone of the buckets (default UTC).
    #[param(example = "Europe/Paris")]
    tz: Option<String>,
}

/// The rows of a usage report.
#[derive(Serialize, ToSchema)]
pub struct UsageReport {
    /// Sums per bucket and group, in bucket then group order.
    pub rows: Vec<UsageRow>,
}

/// Counts of keys, owners, holds and refused garbage (the core's `Stats`), and the vault's
/// currency.
#[derive(Serialize, ToSchema)]
#[schema(as = Stats)]
pub struct StatsView {
    /// The currency every money amount is in (integer micro-units of it), e.g. `usd`.
    pub currency: String,
    /// Keys in the vault (all statuses).
    pub keys: u64,
    /// Owners known.
    pub owners: u64,
    /// Verifies refused as malformed since the vault was created.
    pub malformed: u64,
    /// Verifies of well-formed secrets that match no key.
    pub not_found: u64,
    /// Outstanding holds.
    pub holds: u64,
    /// Key records that failed to open (corrupt).
    pub corrupt_keys: u64,
    /// The sequence number of the newest event (0 when there is none); event numbers have no
    /// gaps, so `/v1/events?after=<last_event_seq - n>` reads the newest `n`.
    pub last_event_seq: u64,
}

impl StatsView {
    fn new(stats: nanu::Stats, currency: String, last_event_seq: u64) -> StatsView {
        StatsView {
            currency,
            last_event_seq,
            keys: stats.keys,
            owners: stats.owners,
            malformed: stats.malformed,
            not_found: stats.not_found,
            holds: stats.holds,
            corrupt_keys: stats.corrupt_keys,
        }
    }
}

/// Paging by sequence number.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeqParams {
    /// Only entries after this sequence number (default 0: from the first).
    #[param(value_type = Option<u64>, minimum = 0)]
    after: Option<String>,
    /// At most this many entries (1 to 10000, default 100).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
}

impl SeqParams {
    fn parse(&self) -> ApiResult<(u64, usize)> {
        let after = param::number("after", self.after.as_deref(), 0, u64::MAX)?.unwrap_or(0);
        let limit = param::number("limit", self.limit.as_deref(), 1, MAX_PAGE)?.unwrap_or(100);
        Ok((after, limit as usize))
    }
}

/// Events, oldest first.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// The events; pass the last one's `seq` as `after` to read on.
    pub events: Vec<Event>,
}

/// Audit records, oldest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// The records; pass the last one's `seq` as `after` to read on.
    pub records: Vec<AuditRecord>,
}

/// Sum the usage log, filtered, grouped and bucketed.
#[utoipa::path(
    get, path = "/v1/usage", operation_id = "usage", tag = "reports",
    params(UsageParams),
    responses((status = 200, description = "the report", body = UsageReport)),
    security(("admin_key" = ["usage:read"])),
)]
pub async fn usage(
    State(state): State<AppState>,
    _admin: Admin<UsageRead>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<Json<UsageReport>> {
    let group_by = match param::text("group_by", params.group_by)? {
        None => Vec::new(),
        Some(list) => group_by(&list)?,
    };
    let bucket = param::text("bucket", params.bucket)?
        .map(|text| {
            text.parse::<Bucket>().map_err(|_| {
                ApiError::invalid(format!(
                    "query parameter bucket must be minute, hour, day, week or month, not {text:?}"
                ))
            })
        })
        .transpose()?;
    let query = UsageQuery {
        from: param::time("from", params.from.as_deref())?,
        to: param::time("to", params.to.as_deref())?,
        key_id: param::text("key_id", params.key_id)?,
        owner: param::text("owner", params.owner)?,
        env: param::text("env", params.env)?,
        model: param::text("model", params.model)?,
        endpoint: param::text("endpoint", params.endpoint)?,
        group_by,
        bucket,
        tz: param::text("tz", params.tz)?,
    };
    let vault = state.vault.clone();
    blocking(move || {
        Ok(UsageReport {
            rows: vault.usage(&query)?,
        })
    })
    .await
    .map(Json)
}

/// The dimensions of `group_by`, comma-separated, each at most once.
fn group_by(list: &str) -> ApiResult<Vec<Dim>> {
    let mut dims = Vec::new();
    for text in list.split(',') {
        let dim = text.trim().parse::<Dim>().map_err(|_| {
            ApiError::invalid(format!(
                "query parameter group_by: unknown dimension {text:?} (key, owner, env, model, \
                 endpoint or outcome)"
            ))
        })?;
        // Checked here rather than left to the vault, so that the message names the dimension
        // as the API does (`key_id` and `key` are one).
        if dims.contains(&dim) {
            return Err(ApiError::invalid(format!(
                "query parameter group_by names the dimension {:?} twice",
                dim_name(dim)
            )));
        }
        dims.push(dim);
    }
    Ok(dims)
}

/// A dimension's name in the API (its serde name).
fn dim_name(dim: Dim) -> String {
    match serde_json::to_value(dim) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{dim:?}").to_lowercase(),
    }
}

/// Counts of keys, owners, outstanding holds and refused garbage, and the vault's currency.
#[utoipa::path(
    get, path = "/v1/stats", operation_id = "stats", tag = "reports",
    responses((status = 200, description = "the counts", body = StatsView)),
    security(("admin_key" = ["usage:read"])),
)]
pub async fn stats(
    State(state): State<AppState>,
    _admin: Admin<UsageRead>,
    _query: NoQuery,
) -> ApiResult<Json<StatsView>> {
    let vault = state.vault.clone();
    blocking(move || {
        let last = vault.last_event_seq()?;
        Ok(StatsView::new(vault.stats(), vault.currency(), last))
    })
    .await
    .map(Json)
}

/// Events (thresholds, exhausted limits, expiring, expired, rotated and revoked keys, unpriced
/// models) after a sequence number.
#[utoipa::path(
    get, path = "/v1/events", operation_id = "events", tag = "reports",
    params(SeqParams),
    responses((status = 200, description = "the events", body = EventPage)),
    security(("admin_key" = ["events:read"])),
)]
pub async fn events(
    State(state): State<AppState>,
    _admin: Admin<EventsRead>,
    ApiQuery(params): ApiQuery<SeqParams>,
) -> ApiResult<Json<EventPage>> {
    let (after, limit) = params.parse()?;
    let vault = state.vault.clone();
    blocking(move || {
        Ok(EventPage {
            events: vault.events(after, limit)?,
        })
    })
    .await
    .map(Json)
}

/// The audit trail of administrative changes after a sequence number.
#[utoipa::path(
    get, path = "/v1/audit", operation_id = "audit", tag = "reports",
    params(SeqParams),
    responses((status = 200, description = "the records", body = AuditPage)),
    security(("admin_key" = ["audit:read"])),
)]
pub async fn audit(
    State(state): State<AppState>,
    _admin: Admin<AuditRead>,
    ApiQuery(params): ApiQuery<SeqParams>,
) -> ApiResult<Json<AuditPage>> {
    let (after, limit) = params.parse()?;
    let vault = state.vault.clone();
    blocking(move || {
        Ok(AuditPage {
            records: vault.audit(after, limit)?,
        })
    })
    .await
    .map(Json)
}

/// Check the audit trail's hash chain.
#[utoipa::path(
    get, path = "/v1/audit/verify", operation_id = "verify_audit", tag = "reports",
    responses((status = 200, description = "whether the chain is intact", body = AuditCheck)),
    security(("admin_key" = ["audit:read"])),
)]
pub async fn audit_verify(
    State(state): State<AppState>,
    _admin: Admin<AuditRead>,
    _query: NoQuery,
) -> ApiResult<Json<AuditCheck>> {
    let vault = state.vault.clone();
    blocking(move || Ok(vault.verify_audit()?)).await.map(Json)
}
