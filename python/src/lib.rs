//! The native module `nanu._native` of the Python package `nanu`.
//!
//! The Pythonic API lives in the pure-Python package beside this crate (`python/nanu/`). This
//! module gives it the vault handle, the calls on every request's path (`verify`, `charge`,
//! `release`) with the classes they return, and the administrative calls in a raw form: their
//! inputs and outputs cross as JSON-shaped Python values (dict, list, str, int) that serde
//! reads into the core's input types and writes from its output types, so the field names
//! and rules are those of the JSON forms every binding shares.
//!
//! The GIL is released around everything that can block: the KDF of open and create, every
//! call that waits for a commit (administrative calls, `durable` charges, flush, close),
//! usage, event and audit reads, and file reads. `verify` keeps it: it never waits on I/O and
//! takes well under a microsecond, less than releasing and taking back the GIL would cost.

mod convert;
mod errors;
mod results;
mod vault;

use pyo3::prelude::*;

/// The native part of the `nanu` package; import `nanu` instead.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<vault::Vault>()?;
    m.add_class::<results::Verdict>()?;
    m.add_class::<results::ChargeOutcome>()?;
    m.add_class::<results::Remaining>()?;
    m.add_class::<results::LimitStatus>()?;
    m.add_function(wrap_pyfunction!(convert::timestamp_text, m)?)?;
    m.add_function(wrap_pyfunction!(convert::epoch_micros, m)?)?;
    m.add_function(wrap_pyfunction!(parse_limit, m)?)?;
    m.add_function(wrap_pyfunction!(format_limit, m)?)?;
    m.add_function(wrap_pyfunction!(parse_money, m)?)?;
    m.add_function(wrap_pyfunction!(format_money, m)?)?;
    m.add("SECRET_REGEX", nanu::SECRET_REGEX)?;
    m.add("MAX_SECRET_LEN", nanu::MAX_SECRET_LEN)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// Parses a limit's text form (`"cost=$10/month"`) into its JSON object form.
#[pyfunction]
fn parse_limit<'py>(py: Python<'py>, text: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let text = convert::text_arg(text, "limit")?;
    let limit: nanu::Limit = text.parse().map_err(|e| errors::to_py(py, &e))?;
    convert::to_py(py, &limit)
}

/// Writes a limit (its JSON object form or text form) in the text form.
#[pyfunction]
fn format_limit(limit: &Bound<'_, PyAny>) -> PyResult<String> {
    let limit: nanu::Limit = convert::from_py(limit, "limit")?;
    Ok(limit.to_string())
}

/// Parses an amount of money (`"$1.50"`, `"0.25eur"`, `"1500000u"`) into micro-units.
#[pyfunction]
fn parse_money(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<u64> {
    let text = convert::text_arg(text, "money")?;
    nanu::parse_money(text).map_err(|e| errors::to_py(py, &e))
}

/// Writes micro-units as a decimal amount (`1500000` -> `"1.5"`).
#[pyfunction]
fn format_money(micros: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(nanu::format_money(convert::u64_arg(micros, "micros")?))
}
