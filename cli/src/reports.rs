//! Reading what happened: usage reports and events.

use nanu::{Bucket, Dim, Durability, Event, UsageQuery, UsageRow, format_money};

use crate::access;
use crate::args::{EventsArgs, Format, Global, UsageArgs};
use crate::failure::{Failure, Outcome};
use crate::output::{self, print, print_json};
use crate::parse;

fn dims(texts: &[String]) -> Outcome<Vec<Dim>> {
    texts
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            t.trim().parse::<Dim>().map_err(|_| {
                Failure::invalid(format!(
                    "--group-by {t:?}: expected key, owner, env, model, endpoint or outcome"
                ))
            })
        })
        .collect()
}

fn bucket(text: &str) -> Outcome<Bucket> {
    match text.trim() {
        "minute" => Ok(Bucket::Minute),
        "hour" => Ok(Bucket::Hour),
        "day" => Ok(Bucket::Day),
        "week" => Ok(Bucket::Week),
        "month" => Ok(Bucket::Month),
        other => Err(Failure::invalid(format!(
            "--bucket {other:?}: expected minute, hour, day, week or month"
        ))),
    }
}

/// `nanu usage`.
pub fn usage(global: &Global, args: &UsageArgs) -> Outcome {
    let query = UsageQuery {
        from: parse::time_opt("--from", args.from.as_deref())?,
        to: parse::time_opt("--to", args.to.as_deref())?,
        key_id: args.key.clone(),
        owner: args.owner.clone(),
        env: args.env.clone(),
        model: args.model.clone(),
        endpoint: args.endpoint.clone(),
        group_by: dims(&args.group_by)?,
        bucket: args.bucket.as_deref().map(bucket).transpose()?,
        tz: args.tz.clone(),
    };
    let format = match (args.format, global.json) {
        (Some(format), _) => format,
        (None, true) => Format::Json,
        (None, false) => Format::Table,
    };

    let vault = access::open(global, Durability::Durable)?;
    let rows = vault.usage(&query)?;
    let currency = vault.currency();
    vault.close()?;

    match format {
        Format::Json => print_json(&rows),
        Format::Csv => print(&usage_csv(&query, &rows)?),
        Format::Table => print(&usage_table(&query, &rows, &currency).to_string()),
    }
}

fn dim_name(dim: Dim) -> &'static str {
    match dim {
        Dim::Key => "key",
        Dim::Owner => "owner",
        Dim::Env => "env",
        Dim::Model => "model",
        Dim::Endpoint => "endpoint",
        Dim::Outcome => "outcome",
    }
}

/// The bucket start in the report's zone, `2026-05-01T00:00:00+05:30`.
fn bucket_text(row: &UsageRow, query: &UsageQuery) -> String {
    let Some(at) = row.bucket else {
        return String::new();
    };
    let zone = query.tz.as_deref().unwrap_or("UTC");
    match at.in_tz(zone) {
        Ok(zoned) => zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        Err(_) => at.to_string(),
    }
}

fn usage_csv(query: &UsageQuery, rows: &[UsageRow]) -> Outcome<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = Vec::new();
    if query.bucket.is_some() {
        header.push("bucket");
    }
    header.extend(query.group_by.iter().map(|d| dim_name(*d)));
    header.extend([
        "requests",
        "denied",
        "input_tokens",
        "output_tokens",
        "tokens",
        "cost",
    ]);
    let encode = |e: csv::Error| Failure::invalid(format!("encoding csv: {e}"));
    writer.write_record(&header).map_err(encode)?;
    for row in rows {
        let mut record: Vec<String> = Vec::new();
        if query.bucket.is_some() {
            record.push(bucket_text(row, query));
        }
        for dim in &query.group_by {
            record.push(row.group.get(dim_name(*dim)).cloned().unwrap_or_default());
        }
        record.extend([
            row.requests.to_string(),
            row.denied.to_string(),
            row.input_tokens.to_string(),
            row.output_tokens.to_string(),
            row.tokens.to_string(),
            format_money(row.cost),
        ]);
        writer.write_record(&record).map_err(encode)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Failure::invalid(format!("encoding csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Failure::invalid(format!("encoding csv: {e}")))
}

fn usage_table(query: &UsageQuery, rows: &[UsageRow], currency: &str) -> comfy_table::Table {
    let mut header: Vec<&'static str> = Vec::new();
    if query.bucket.is_some() {
        header.push("bucket");
    }
    header.extend(query.group_by.iter().map(|d| dim_name(*d)));
    header.extend([
        "requests",
        "denied",
        "input tokens",
        "output tokens",
        "cost",
    ]);
    let numbers = header.len() - 5..header.len();
    let mut table = output::table(header);
    output::align_right(&mut table, &numbers.collect::<Vec<_>>());
    for row in rows {
        let mut cells: Vec<String> = Vec::new();
        if query.bucket.is_some() {
            cells.push(bucket_text(row, query));
        }
        for dim in &query.group_by {
            let value = row.group.get(dim_name(*dim)).cloned().unwrap_or_default();
            cells.push(if value.is_empty() {
                "-".to_owned()
            } else {
                value
            });
        }
        cells.extend([
            output::count(row.requests),
            output::count(row.denied),
            output::count(row.input_tokens),
            output::count(row.output_tokens),
            output::money(row.cost, currency),
        ]);
        table.add_row(cells);
    }
    table
}

/// The shortest `events --follow --interval`.
const MIN_FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// `nanu events`.
pub fn events(global: &Global, args: &EventsArgs) -> Outcome {
    let interval = parse::duration("--interval", &args.interval)?;
    // Each poll opens and closes the vault: a shorter interval would keep a core busy and the
    // vault locked against other processes most of the time.
    if interval < MIN_FOLLOW_INTERVAL {
        return Err(Failure::invalid(format!(
            "--interval {:?} is too short: polling needs at least 100ms between reads",
            args.interval
        )));
    }
    if args.limit == 0 {
        return Err(Failure::invalid("--limit must be at least 1"));
    }
    if !args.follow {
        let vault = access::open(global, Durability::Durable)?;
        let currency = vault.currency();
        let events = vault.events(args.after, args.limit)?;
        vault.close()?;
        if global.json {
            return print_json(&events);
        }
        let mut table = output::table(["seq", "at", "kind", "key", "owner", "detail"]);
        for event in &events {
            table.add_row(event_cells(event, &currency));
        }
        return print(&table.to_string());
    }
    follow(global, args.after, interval)
}

/// Prints events as they come, one line each (JSON lines with --json), until interrupted.
///
/// The vault is opened for each poll and closed again, so that other processes can write to
/// it in between; while another process keeps it open, the poll waits. An application that
/// keeps its vault open should subscribe to events in-process instead.
fn follow(global: &Global, mut after: u64, interval: std::time::Duration) -> Outcome {
    let (path, unlock) = access::locate(global)?;
    let mut warned = false;
    loop {
        let options = nanu::Options::new(unlock.clone());
        let vault = match nanu::Vault::open(&path, &options) {
            Ok(vault) => vault,
            Err(err) if err.code() == nanu::ErrorCode::Locked => {
                if !warned {
                    crate::output::note(&format!(
                        "nanu: {} is open in another process; waiting",
                        path.display()
                    ));
                    warned = true;
                }
                std::thread::sleep(interval);
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        warned = false;
        let currency = vault.currency();
        let events = vault.events(after, 1000)?;
        vault.close()?;
        drop(vault);
        for event in &events {
            if global.json {
                let line = serde_json::to_string(event)
                    .map_err(|e| Failure::invalid(format!("encoding json: {e}")))?;
                print(&line)?;
            } else {
                print(&event_cells(event, &currency).join("  "))?;
            }
            after = event.seq;
        }
        if events.len() < 1000 {
            std::thread::sleep(interval);
        }
    }
}

fn event_cells(event: &Event, currency: &str) -> Vec<String> {
    let mut detail = Vec::new();
    if let Some(percent) = event.percent {
        detail.push(format!("{percent}%"));
    }
    if let Some(limit) = &event.limit {
        detail.push(format!(
            "{} limit {} used {}",
            match limit.level {
                nanu::Level::Key => "key",
                nanu::Level::Owner => "owner",
            },
            limit.limit,
            output::amount(limit.limit.unit, limit.used, currency)
        ));
    }
    if let Some(model) = &event.model {
        detail.push(format!("model {model}"));
    }
    vec![
        event.seq.to_string(),
        output::time(event.at),
        event.kind.as_str().to_owned(),
        event.key_id.clone().unwrap_or_else(|| "-".to_owned()),
        event.owner.clone().unwrap_or_else(|| "-".to_owned()),
        if detail.is_empty() {
            "-".to_owned()
        } else {
            detail.join(", ")
        },
    ]
}
