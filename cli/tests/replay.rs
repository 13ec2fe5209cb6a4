//! `nanu replay` and `nanu demo` through the built binary, on the real Azure trace.

mod common;

use common::{Scratch, fails_with};
use serde_json::Value;

const TRACE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/azure-llm-trace-2023-conv.csv"
);

/// The header and the first `rows` rows of the real trace.
fn trace_head(rows: usize) -> Vec<String> {
    std::fs::read_to_string(TRACE)
        .expect("the bundled trace")
        .lines()
        .take(rows + 1)
        .map(str::to_owned)
        .collect()
}

fn write_lines(s: &Scratch, name: &str, lines: &[String]) {
    std::fs::write(s.path(name), lines.join("\n") + "\n").unwrap();
}

#[test]
fn broken_rows_are_reported_by_line_and_the_rest_is_replayed() {
    let s = Scratch::with_vault();
    let mut lines = trace_head(400);
    // Lines are 1-based and line 1 is the header; each insert shifts the ones after it.
    lines.insert(4, "2023-11-16 18:15:52.0000000,-12,40".to_owned());
    lines.insert(9, "yesterday at noon,100,40".to_owned());
    lines.insert(20, "2023-11-16 18:16:00.0000000,100".to_owned());
    lines.insert(30, "2023-11-16 18:16:10.0000000,12x,40".to_owned());
    lines.insert(41, "2023-11-16 18:16:20.0000000,1,2,3".to_owned());
    write_lines(&s, "trace.csv", &lines);

    let report = s.json(&["replay", "trace.csv", "--tenants", "5", "--seed", "3"]);
    let broken = report["trace"]["broken"].as_array().unwrap();
    let at: Vec<u64> = broken.iter().map(|b| b["line"].as_u64().unwrap()).collect();
    assert_eq!(at, [5, 10, 21, 31, 42], "{broken:?}");
    assert!(broken[0]["reason"].as_str().unwrap().contains("negative"));
    assert!(broken[1]["reason"].as_str().unwrap().contains("TIMESTAMP"));
    assert!(broken[2]["reason"].as_str().unwrap().contains("found 2"));
    assert!(
        broken[3]["reason"]
            .as_str()
            .unwrap()
            .contains("not a whole number")
    );
    assert!(broken[4]["reason"].as_str().unwrap().contains("found 4"));
    assert_eq!(report["trace"]["rows"], 405);
    assert_eq!(report["trace"]["replayed"], 400);

    // Every replayed row got a verdict that the vault recorded or counted.
    let requests = &report["requests"];
    assert_eq!(requests["verdicts"], 400);
    let admitted = requests["admitted"].as_u64().unwrap();
    let denied = requests["denied"].as_u64().unwrap();
    assert_eq!(admitted + denied, 400);
    let by_reason: u64 = requests["denied_by"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_reason, denied);
    assert_eq!(report["throughput"]["rows"], 400);
    assert_eq!(report["throughput"]["verifies"], 400);
    assert_eq!(report["throughput"]["charges"].as_u64().unwrap(), admitted);

    // The report's numbers are the vault's: the usage log agrees with it.
    let usage = s.json(&["usage"]);
    assert_eq!(usage[0]["requests"].as_u64().unwrap(), admitted);
    let spend: u64 = report["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["cost"].as_u64().unwrap())
        .sum();
    assert_eq!(usage[0]["cost"].as_u64().unwrap(), spend);
    assert!(spend > 0);

    // The human report names the broken lines too.
    let s2 = Scratch::with_vault();
    write_lines(&s2, "trace.csv", &lines);
    let out = s2
        .nanu()
        .args(["replay", "trace.csv", "--tenants", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("line 5: ContextTokens -12 is negative"),
        "{text}"
    );
    assert!(
        text.contains("line 42: expected 3 columns, found 4"),
        "{text}"
    );
}

#[test]
fn the_same_seed_gives_the_same_replay() {
    let lines = trace_head(300);
    let reports: Vec<Value> = (0..2)
        .map(|_| {
            let s = Scratch::with_vault();
            write_lines(&s, "trace.csv", &lines);
            s.json(&["replay", "trace.csv", "--tenants", "7", "--seed", "11"])
        })
        .collect();
    for part in ["requests", "models", "hours", "alerts"] {
        assert_eq!(reports[0][part], reports[1][part], "{part} differs");
    }
    let tenants = |r: &Value| -> Vec<(u64, u64, u64)> {
        r["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["admitted"].as_u64().unwrap(),
                    t["denied"].as_u64().unwrap(),
                    t["cost"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(tenants(&reports[0]), tenants(&reports[1]));
    // Zipf: the first tenant sends the most requests.
    let t = tenants(&reports[0]);
    let sent = |i: usize| t[i].0 + t[i].1;
    assert!(sent(0) > sent(1) && sent(0) > sent(6), "{t:?}");
}

#[test]
fn a_trace_without_its_header_is_refused_and_changes_nothing() {
    let s = Scratch::with_vault();
    let before = s.snapshot();
    let lines = trace_head(10);
    write_lines(&s, "headless.csv", &lines[1..]);
    let line = fails_with(s.nanu().args(["replay", "headless.csv"]), 1);
    assert!(line.contains("header"), "{line}");
    write_lines(
        &s,
        "only-broken.csv",
        &[lines[0].clone(), "x,y,z".to_owned()],
    );
    let line = fails_with(s.nanu().args(["replay", "only-broken.csv"]), 1);
    assert!(line.contains("no row to replay"), "{line}");
    assert_eq!(s.snapshot(), before);
}

#[test]
fn the_demo_prints_every_section_of_the_report() {
    let s = Scratch::empty();
    let out = s.nanu().args(["demo", "--rows", "3000"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for section in [
        "nanu replay of azure-llm-trace-2023-conv.csv",
        "3,000 rows read, 3,000 replayed, 0 broken",
        "Scripted changes",
        "rotated the key of tenant-04",
        "revoked the key of tenant-06",
        "Requests",
        "denied because",
        "Spend per tenant",
        "Spend per model",
        "Busiest model by tokens per hour",
        "Alerts fired",
        "Throughput",
        "rows/s",
        "verify+charge per second",
    ] {
        assert!(
            stdout.contains(section),
            "missing {section:?} in:\n{stdout}"
        );
    }
    // Nothing is left behind in the working folder.
    assert_eq!(std::fs::read_dir(s.dir.path()).unwrap().count(), 0);
}

#[test]
fn a_kept_demo_vault_opens_with_its_key_file() {
    let s = Scratch::empty();
    let report = s.json(&["demo", "--rows", "1500", "--keep", "kept"]);
    assert_eq!(report["trace"]["replayed"], 1500);
    let admitted = report["requests"]["admitted"].as_u64().unwrap();
    assert!(admitted > 0);
    let usage = s.json(&[
        "--vault",
        "kept/demo.vault",
        "--key-file",
        "kept/demo.key",
        "usage",
    ]);
    assert_eq!(usage[0]["requests"].as_u64().unwrap(), admitted);
    // A second demo into the same folder refuses to overwrite it.
    fails_with(s.nanu().args(["demo", "--rows", "10", "--keep", "kept"]), 1);
}

#[test]
fn request_ids_follow_the_line_numbers_whatever_the_line_endings() {
    let s = Scratch::with_vault();
    let lines = trace_head(3);
    // An LF after the header and CRLF after the rows, as a shell-built trace may have.
    let text = format!("{}\n{}\r\n", lines[0], lines[1..].join("\r\n"));
    std::fs::write(s.path("mixed.csv"), text).unwrap();

    let report = s.json(&["replay", "mixed.csv", "--tenants", "1"]);
    assert_eq!(report["trace"]["replayed"], 3, "{report}");
    assert_eq!(report["throughput"]["charges"], 3, "{report}");
    let usage = s.json(&["usage"]);
    assert_eq!(usage[0]["requests"], 3, "{usage}");
}

#[test]
fn rows_whose_amounts_overflow_are_reported_and_skipped() {
    let s = Scratch::with_vault();
    let mut lines = trace_head(3);
    let max = u64::MAX;
    lines.insert(2, format!("2023-11-16 18:15:47.4,{max},{max}"));
    // With seed 2, line 4 asks for gpt-4o, whose price makes these counts overflow the cost.
    let half = i64::MAX;
    lines.insert(3, format!("2023-11-16 18:15:47.5,{half},{half}"));
    write_lines(&s, "huge.csv", &lines);

    let report = s.json(&["replay", "huge.csv", "--tenants", "1", "--seed", "2"]);
    let broken = report["trace"]["broken"].as_array().unwrap();
    let at: Vec<u64> = broken.iter().map(|b| b["line"].as_u64().unwrap()).collect();
    assert_eq!(at, [3, 4], "{broken:?}");
    assert!(
        broken[0]["reason"].as_str().unwrap().contains("more than"),
        "{broken:?}"
    );
    let reason = broken[1]["reason"].as_str().unwrap();
    assert!(
        reason.contains("cost") && reason.contains("overflows"),
        "{reason}"
    );
    assert_eq!(report["trace"]["rows"], 5);
    assert_eq!(report["trace"]["replayed"], 3);
}

#[test]
fn a_row_beyond_the_range_of_times_is_reported_as_out_of_range() {
    let s = Scratch::with_vault();
    let mut lines = trace_head(2);
    lines.insert(2, "9999-12-31 23:59:59.0,1,1".to_owned());
    write_lines(&s, "far.csv", &lines);

    let report = s.json(&["replay", "far.csv"]);
    let broken = report["trace"]["broken"].as_array().unwrap();
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0]["line"], 3);
    let reason = broken[0]["reason"].as_str().unwrap();
    assert!(reason.contains("out of range"), "{reason}");
}
