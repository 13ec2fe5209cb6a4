//! LLM request traces: `TIMESTAMP,ContextTokens,GeneratedTokens`, as the Azure public
//! dataset publishes them (`2023-11-16 18:15:46.6805900,374,44`, times in UTC).
//!
//! A broken row (wrong column count, a bad timestamp, a negative or non-numeric token count)
//! is kept aside with its line number and reason; the rest of the trace is replayed.

use std::io::Read;

use jiff::Timestamp;
use serde::Serialize;

use crate::failure::{Failure, Outcome};
use crate::parse::TimeProblem;

/// The header a trace must start with (compared without case and surrounding spaces).
pub const HEADER: [&str; 3] = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"];

/// One request of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The line of the file (1 is the header).
    pub line: u64,
    /// When the request arrived.
    pub at: Timestamp,
    /// Prompt tokens.
    pub context_tokens: u64,
    /// Completion tokens.
    pub generated_tokens: u64,
}

/// A row that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokenRow {
    /// The line of the file.
    pub line: u64,
    /// What is wrong, naming the field.
    pub reason: String,
}

/// A trace read into memory.
#[derive(Debug, Default)]
pub struct Trace {
    /// The good rows, in file order.
    pub requests: Vec<Request>,
    /// The broken rows, in file order.
    pub broken: Vec<BrokenRow>,
    /// Rows whose time is earlier than the row before (replayed; the vault counts them at the
    /// later time, as its windows never move backwards).
    pub out_of_order: u64,
}

impl Trace {
    /// The first and last request times.
    pub fn span(&self) -> Option<(Timestamp, Timestamp)> {
        let first = self.requests.iter().map(|r| r.at).min()?;
        let last = self.requests.iter().map(|r| r.at).max()?;
        Some((first, last))
    }
}

/// Reads a trace. `limit_rows` counts data rows, broken ones included. `name` names the
/// source in errors.
pub fn read(mut source: impl Read, name: &str, limit_rows: Option<u64>) -> Outcome<Trace> {
    // The csv reader's own line numbers go wrong when LF and CRLF endings are mixed (every row
    // after an LF header got the same number), and a row's line number is its request id: so
    // the file is read whole and lines are counted here, from each record's byte offset.
    let mut bytes = Vec::new();
    source
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::invalid(format!("{name}: {e}")))?;
    let mut lines = LineCounter::new(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let mut records = reader.records();

    match records.next() {
        Some(Ok(header)) if is_header(&header) => {}
        Some(Ok(_)) | None => {
            return Err(Failure::invalid(format!(
                "{name}: the first line must be the header {}",
                HEADER.join(",")
            )));
        }
        Some(Err(e)) => return Err(Failure::invalid(format!("{name}: {e}"))),
    }

    let mut trace = Trace::default();
    let mut previous: Option<Timestamp> = None;
    let limit = limit_rows.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    for record in records.take(limit) {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.line_at(p.byte()));
                if let csv::ErrorKind::Io(io) = e.kind() {
                    return Err(Failure::invalid(format!("{name}: line {line}: {io}")));
                }
                trace.broken.push(BrokenRow {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        match parse_row(&record, line) {
            Ok(request) => {
                if previous.is_some_and(|p| request.at < p) {
                    trace.out_of_order += 1;
                }
                previous = Some(previous.map_or(request.at, |p| p.max(request.at)));
                trace.requests.push(request);
            }
            Err(reason) => trace.broken.push(BrokenRow { line, reason }),
        }
    }
    Ok(trace)
}

/// Turns records' byte offsets, asked in increasing order, into 1-based line numbers. A line
/// ends at LF, CRLF or a lone CR, as the csv reader ends its records.
struct LineCounter<'a> {
    bytes: &'a [u8],
    /// The offset counted up to.
    offset: usize,
    /// The line at `offset`.
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> LineCounter<'a> {
        LineCounter {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        // The reader may report a record as starting at the line break that ended the row
        // before it (the LF of a CRLF), or before blank lines it skips: the record starts at
        // the first byte after them.
        let mut end = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        while matches!(self.bytes.get(end), Some(b'\r' | b'\n')) {
            end += 1;
        }
        for i in self.offset..end {
            let ends_line = match self.bytes[i] {
                b'\n' => true,
                b'\r' => self.bytes.get(i + 1) != Some(&b'\n'),
                _ => false,
            };
            if ends_line {
                self.line += 1;
            }
        }
        self.offset = self.offset.max(end);
        self.line
    }
}

fn is_header(record: &csv::StringRecord) -> bool {
    record.len() == HEADER.len()
        && record.iter().zip(HEADER).all(|(got, want)| {
            got.trim_start_matches('\u{feff}')
                .eq_ignore_ascii_case(want)
        })
}

fn parse_row(record: &csv::StringRecord, line: u64) -> Result<Request, String> {
    if record.len() != HEADER.len() {
        return Err(format!(
            "expected {} columns, found {}",
            HEADER.len(),
            record.len()
        ));
    }
    let at = parse_time(&record[0])?;
    let context_tokens = parse_tokens(HEADER[1], &record[1])?;
    let generated_tokens = parse_tokens(HEADER[2], &record[2])?;
    Ok(Request {
        line,
        at,
        context_tokens,
        generated_tokens,
    })
}

/// A trace time: a civil date-time in UTC (`2023-11-16 18:15:46.6805900`), or RFC 3339.
fn parse_time(text: &str) -> Result<Timestamp, String> {
    crate::parse::instant(text).map_err(|problem| match problem {
        TimeProblem::Malformed => {
            format!("{} {:?} is not a date and time", HEADER[0], shorten(text))
        }
        TimeProblem::OutOfRange => format!(
            "{} {:?} is {}",
            HEADER[0],
            shorten(text),
            crate::parse::out_of_range()
        ),
    })
}

fn parse_tokens(column: &str, text: &str) -> Result<u64, String> {
    if let Some(rest) = text.strip_prefix('-')
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("{column} {text} is negative"));
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{column} {:?} is not a whole number",
            shorten(text)
        ));
    }
    text.parse::<u64>()
        .map_err(|_| format!("{column} {} is too large", shorten(text)))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                        2023-11-16 18:15:46.6805900,374,44\n\
                        2023-11-16 18:15:50.9951690,396,109\n";

    #[test]
    fn reads_the_azure_format() {
        let trace = read(GOOD.as_bytes(), "t", None).unwrap();
        assert_eq!(trace.requests.len(), 2);
        assert!(trace.broken.is_empty());
        let first = trace.requests[0];
        assert_eq!(first.line, 2);
        assert_eq!(first.at.to_string(), "2023-11-16T18:15:46.68059Z");
        assert_eq!((first.context_tokens, first.generated_tokens), (374, 44));
    }

    #[test]
    fn broken_rows_are_reported_by_line_and_skipped() {
        let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                    2023-11-16 18:15:46.6805900,374,44\n\
                    not a time,1,2\n\
                    2023-11-16 18:15:47,-5,2\n\
                    2023-11-16 18:15:47,12,abc\n\
                    2023-11-16 18:15:47,12\n\
                    2023-11-16 18:15:47,12,3,4\n\
                    2023-11-16 18:15:48,99999999999999999999999,1\n\
                    2023-11-16 18:15:49,10,20\n";
        let trace = read(text.as_bytes(), "t", None).unwrap();
        assert_eq!(trace.requests.len(), 2);
        let lines: Vec<u64> = trace.broken.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8]);
        assert!(
            trace.broken[1].reason.contains("negative"),
            "{:?}",
            trace.broken
        );
        assert!(trace.broken[2].reason.contains("not a whole number"));
        assert!(trace.broken[3].reason.contains("found 2"));
        assert!(trace.broken[5].reason.contains("too large"));
        assert_eq!(trace.requests[1].line, 9);
    }

    #[test]
    fn line_numbers_are_right_whatever_the_line_endings() {
        let rows = [
            "2023-11-16 18:15:46,1,2",
            "bad,1,2",
            "2023-11-16 18:15:47,3,4",
        ];
        for (header_end, row_end) in [("\n", "\r\n"), ("\r\n", "\n"), ("\r", "\r"), ("\n", "\n")] {
            let mut text = format!("{}{header_end}", HEADER.join(","));
            for row in rows {
                text.push_str(row);
                text.push_str(row_end);
            }
            let trace = read(text.as_bytes(), "t", None).unwrap();
            let lines: Vec<u64> = trace.requests.iter().map(|r| r.line).collect();
            assert_eq!(lines, [2, 4], "{text:?}");
            assert_eq!(trace.broken[0].line, 3, "{text:?}");
        }
    }

    #[test]
    fn a_missing_header_is_an_error() {
        let err = read("2023-11-16 18:15:46,1,2\n".as_bytes(), "t", None).unwrap_err();
        assert!(err.message.contains("header"), "{}", err.message);
        assert!(read("".as_bytes(), "t", None).is_err());
    }

    #[test]
    fn limit_rows_counts_data_rows() {
        let trace = read(GOOD.as_bytes(), "t", Some(1)).unwrap();
        assert_eq!(trace.requests.len(), 1);
    }

    #[test]
    fn out_of_order_rows_are_counted() {
        let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                    2023-11-16 18:15:50,1,1\n2023-11-16 18:15:40,1,1\n2023-11-16 18:15:55,1,1\n";
        let trace = read(text.as_bytes(), "t", None).unwrap();
        assert_eq!(trace.out_of_order, 1);
    }
}
