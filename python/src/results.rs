//! The results of the calls on every request's path: `Verdict`, `ChargeOutcome`, and the
//! `Remaining` and `LimitStatus` they carry. Native classes that keep the core's value and
//! build each Python attribute only when it is read, so a verify allocates one small object
//! and no dict, and reading `verdict.remaining.requests` costs two small objects.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple};

use crate::convert;

/// The codes' names as interned Python strings, in the order of `nanu::Code::ALL`.
static CODES: PyOnceLock<Vec<Py<PyString>>> = PyOnceLock::new();

fn code_str(py: Python<'_>, code: nanu::Code) -> Bound<'_, PyString> {
    let codes = CODES.get_or_init(py, || {
        nanu::Code::ALL
            .iter()
            .map(|c| PyString::intern(py, c.as_str()).unbind())
            .collect()
    });
    let index = nanu::Code::ALL
        .iter()
        .position(|c| *c == code)
        .unwrap_or_default();
    match codes.get(index) {
        Some(s) => s.bind(py).clone(),
        None => PyString::new(py, code.as_str()),
    }
}

/// `nanu._types.Limit._from`, which builds the package's `Limit` from its JSON form.
static LIMIT_FROM: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn limit_object<'py>(py: Python<'py>, limit: &nanu::Limit) -> PyResult<Bound<'py, PyAny>> {
    let from = LIMIT_FROM.get_or_try_init(py, || {
        let class = py.import("nanu._types")?.getattr("Limit")?;
        Ok::<_, PyErr>(class.getattr("_from")?.unbind())
    })?;
    from.bind(py).call1((convert::to_py(py, limit)?,))
}

/// Python's `repr` of an optional str.
fn opt_repr(py: Python<'_>, value: Option<&str>) -> String {
    match value {
        Some(v) => PyString::new(py, v)
            .repr()
            .map_or_else(|_| format!("{v:?}"), |r| r.to_string()),
        None => "None".to_owned(),
    }
}

fn opt_number(value: Option<u64>) -> String {
    value.map_or_else(|| "None".to_owned(), |n| n.to_string())
}

fn statuses<'py>(py: Python<'py>, items: &[nanu::LimitStatus]) -> PyResult<Bound<'py, PyTuple>> {
    let objects = items
        .iter()
        .map(|status| {
            Bound::new(
                py,
                LimitStatus {
                    inner: status.clone(),
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, objects)
}

/// The state of one limit at a moment.
#[pyclass(frozen, eq, module = "nanu", name = "LimitStatus")]
#[derive(PartialEq)]
pub(crate) struct LimitStatus {
    pub(crate) inner: nanu::LimitStatus,
}

#[pymethods]
impl LimitStatus {
    /// `key` (the key's own limit) or `owner` (shared by all the owner's keys).
    #[getter]
    fn level(&self) -> &'static str {
        match self.inner.level {
            nanu::Level::Key => "key",
            nanu::Level::Owner => "owner",
        }
    }

    /// Position of the limit in the key's or owner's list.
    #[getter]
    fn index(&self) -> usize {
        self.inner.index
    }

    /// The limit, a `nanu.Limit`.
    #[getter]
    fn limit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        limit_object(py, &self.inner.limit)
    }

    /// Used in the current window (rolling windows: the bucket's level, rounded up).
    #[getter]
    fn used(&self) -> u64 {
        self.inner.used
    }

    /// Reserved by outstanding holds.
    #[getter]
    fn held(&self) -> u64 {
        self.inner.held
    }

    /// `amount - used - held`, never below zero.
    #[getter]
    fn remaining(&self) -> u64 {
        self.inner.remaining
    }

    /// When the window ends (calendar), the bucket is full again (rolling), or `None`.
    #[getter]
    fn resets_at<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .resets_at
            .map(|at| convert::datetime_of(py, at))
            .transpose()
    }

    /// Builds a status from its JSON form (as events and owner reports carry it).
    #[staticmethod]
    fn _from_json(json: &Bound<'_, PyAny>) -> PyResult<LimitStatus> {
        Ok(LimitStatus {
            inner: convert::from_py(json, "limit status")?,
        })
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "LimitStatus(level='{}', index={}, limit='{}', used={}, held={}, remaining={}, \
             resets_at={})",
            self.level(),
            s.index,
            s.limit,
            s.used,
            s.held,
            s.remaining,
            s.resets_at
                .map_or_else(|| "None".to_owned(), |t| format!("'{t}'")),
        )
    }
}

/// The least remaining per unit over a key's and its owner's limits (`None` when no limit
/// counts that unit), with every limit's state in `limits`.
#[pyclass(frozen, eq, module = "nanu", name = "Remaining")]
#[derive(PartialEq)]
pub(crate) struct Remaining {
    pub(crate) inner: nanu::Remaining,
}

#[pymethods]
impl Remaining {
    /// Requests left.
    #[getter]
    fn requests(&self) -> Option<u64> {
        self.inner.requests
    }

    /// Tokens (input plus output) left.
    #[getter]
    fn tokens(&self) -> Option<u64> {
        self.inner.tokens
    }

    /// Input tokens left.
    #[getter]
    fn input_tokens(&self) -> Option<u64> {
        self.inner.input_tokens
    }

    /// Output tokens left.
    #[getter]
    fn output_tokens(&self) -> Option<u64> {
        self.inner.output_tokens
    }

    /// Money left, in micro-units.
    #[getter]
    fn cost(&self) -> Option<u64> {
        self.inner.cost
    }

    /// Every limit of the key and its owner, a tuple of `LimitStatus`.
    #[getter]
    fn limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        statuses(py, &self.inner.limits)
    }

    /// Builds a report from its JSON form.
    #[staticmethod]
    fn _from_json(json: &Bound<'_, PyAny>) -> PyResult<Remaining> {
        Ok(Remaining {
            inner: convert::from_py(json, "remaining")?,
        })
    }

    fn __repr__(&self) -> String {
        let r = &self.inner;
        format!(
            "Remaining(requests={}, tokens={}, input_tokens={}, output_tokens={}, cost={}, \
             limits=<{} limits>)",
            opt_number(r.requests),
            opt_number(r.tokens),
            opt_number(r.input_tokens),
            opt_number(r.output_tokens),
            opt_number(r.cost),
            r.limits.len(),
        )
    }
}

/// The answer of `Vault.verify`. A denial is a verdict, never an exception.
#[pyclass(frozen, module = "nanu", name = "Verdict")]
pub(crate) struct Verdict {
    pub(crate) inner: nanu::Verdict,
}

#[pymethods]
impl Verdict {
    /// Whether the request may proceed.
    #[getter]
    fn allowed(&self) -> bool {
        self.inner.allowed
    }

    /// The stable reason: `valid`, `malformed`, `not_found`, `revoked`, `disabled`, `expired`,
    /// `env_mismatch`, `ip_denied`, `scope_denied`, `model_denied`, `model_unpriced`,
    /// `usage_exceeded`, `budget_exceeded` or `rate_limited`.
    #[getter]
    fn code<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        code_str(py, self.inner.code)
    }

    /// The HTTP status a gateway answers with: 200, 401, 403 or 429.
    #[getter]
    fn http_status(&self) -> u16 {
        self.inner.code.http_status()
    }

    /// The key, once the secret was found.
    #[getter]
    fn key_id(&self) -> Option<&str> {
        self.inner.key_id.as_deref()
    }

    /// The key's owner.
    #[getter]
    fn owner(&self) -> Option<&str> {
        self.inner.owner.as_deref()
    }

    /// The key's stored environment.
    #[getter]
    fn env(&self) -> Option<&str> {
        self.inner.env.as_deref()
    }

    /// The model after alias resolution.
    #[getter]
    fn model(&self) -> Option<&str> {
        self.inner.model.as_deref()
    }

    /// The hold this verify placed, to pass to `charge(hold_id=...)` or `release`.
    #[getter]
    fn hold_id(&self) -> Option<u64> {
        self.inner.hold_id
    }

    /// The secret is a previous one still inside its rotation grace period.
    #[getter]
    fn grace(&self) -> bool {
        self.inner.grace
    }

    /// How long to wait before the same request could pass.
    #[getter]
    fn retry_after<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .retry_after
            .map(|d| convert::timedelta_of(py, d))
            .transpose()
    }

    /// `retry_after` in whole milliseconds, rounded up.
    #[getter]
    fn retry_after_ms(&self) -> Option<u64> {
        self.inner.retry_after.map(|d| {
            let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            micros.div_ceil(1000)
        })
    }

    /// When the denying limit resets, an aware UTC datetime.
    #[getter]
    fn resets_at<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .resets_at
            .map(|at| convert::datetime_of(py, at))
            .transpose()
    }

    /// The limit that denied the request.
    #[getter]
    fn denied_by(&self) -> Option<LimitStatus> {
        self.inner
            .denied_by
            .clone()
            .map(|inner| LimitStatus { inner })
    }

    /// What is left after this request, when the key was found.
    #[getter]
    fn remaining(&self) -> Option<Remaining> {
        self.inner
            .remaining
            .clone()
            .map(|inner| Remaining { inner })
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let v = &self.inner;
        let mut text = format!(
            "Verdict(allowed={}, code='{}', key_id={}, owner={}, env={}",
            if v.allowed { "True" } else { "False" },
            v.code.as_str(),
            opt_repr(py, v.key_id.as_deref()),
            opt_repr(py, v.owner.as_deref()),
            opt_repr(py, v.env.as_deref()),
        );
        if let Some(model) = &v.model {
            text.push_str(&format!(", model={}", opt_repr(py, Some(model))));
        }
        if let Some(hold_id) = v.hold_id {
            text.push_str(&format!(", hold_id={hold_id}"));
        }
        if let Some(ms) = self.retry_after_ms() {
            text.push_str(&format!(", retry_after_ms={ms}"));
        }
        if v.grace {
            text.push_str(", grace=True");
        }
        text.push(')');
        text
    }
}

/// What `Vault.charge` did.
#[pyclass(frozen, module = "nanu", name = "ChargeOutcome")]
pub(crate) struct ChargeOutcome {
    pub(crate) inner: nanu::ChargeOutcome,
}

#[pymethods]
impl ChargeOutcome {
    /// The key charged.
    #[getter]
    fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The cost recorded, in micro-units.
    #[getter]
    fn cost(&self) -> u64 {
        self.inner.cost
    }

    /// Whether the cost came from the caller or the price table (`False`: the model had no
    /// price and no cost was given, so the cost was recorded as zero).
    #[getter]
    fn priced(&self) -> bool {
        self.inner.priced
    }

    /// This request id was charged before: this is the first outcome, nothing was recorded.
    #[getter]
    fn replayed(&self) -> bool {
        self.inner.replayed
    }

    /// Limits now at or past their amount (a tuple of `LimitStatus`); the next verify they
    /// govern is denied.
    #[getter]
    fn exceeded<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        statuses(py, &self.inner.exceeded)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let o = &self.inner;
        format!(
            "ChargeOutcome(key_id={}, cost={}, priced={}, replayed={}, exceeded={})",
            opt_repr(py, Some(&o.key_id)),
            o.cost,
            if o.priced { "True" } else { "False" },
            if o.replayed { "True" } else { "False" },
            o.exceeded.len(),
        )
    }
}
