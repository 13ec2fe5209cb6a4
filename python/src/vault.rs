//! The vault handle. `nanu.Vault` (Python) subclasses this class: `verify`, `charge`,
//! `release`, `flush` and `close` are called here directly, the rest through the package's
//! keyword-argument methods, which call the underscored raw methods below.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyList, PyString, PyTuple};

use crate::convert::{
    duration_arg, from_py, opt_text_arg, opt_time_arg, opt_u64_arg, text_arg, to_py, u64_arg,
    usize_arg, utf8,
};
use crate::errors::{self, OrRaise, invalid};
use crate::results::{ChargeOutcome, Remaining, Verdict};

/// The native vault handle; use `nanu.Vault.create` or `nanu.Vault.open`.
#[pyclass(subclass, frozen, module = "nanu._native", name = "Vault")]
pub(crate) struct Vault {
    vault: nanu::Vault,
    closed: AtomicBool,
    /// The mode the file was opened in, reported by the `concurrency` property.
    concurrency: nanu::Concurrency,
}

impl Drop for Vault {
    fn drop(&mut self) {
        // The core closes on drop and waits for the commit thread, which may be waiting for
        // the GIL to deliver an event to a Python callback: wait without holding the GIL.
        if !self.closed.swap(true, Ordering::SeqCst) {
            let vault = &self.vault;
            Python::attach(|py| py.detach(|| vault.close())).ok();
        }
    }
}

fn unlock_of(
    passphrase: Option<&Bound<'_, PyAny>>,
    key: Option<&Bound<'_, PyAny>>,
) -> PyResult<nanu::Unlock> {
    let passphrase = opt_text_arg(passphrase, "passphrase")?;
    let key = key.filter(|k| !k.is_none());
    match (passphrase, key) {
        (Some(p), None) => Ok(nanu::Unlock::passphrase(p)),
        (None, Some(key)) => {
            if let Ok(bytes) = key.cast::<PyBytes>() {
                let raw: [u8; 32] = bytes
                    .as_bytes()
                    .try_into()
                    .map_err(|_| invalid("a raw vault key must be 32 bytes"))?;
                Ok(nanu::Unlock::key(raw))
            } else if let Ok(text) = key.cast::<PyString>() {
                let text = utf8(text, "key")?;
                nanu::Unlock::key_hex(text).map_err(|e| invalid(e.message()))
            } else {
                Err(invalid("key must be 32 bytes or 64 hex digits"))
            }
        }
        (None, None) => Err(invalid("give a passphrase or a key")),
        (Some(_), Some(_)) => Err(invalid("give a passphrase or a key, not both")),
    }
}

fn u32_field(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u32> {
    let value = u64_arg(&obj.getattr(name)?, &format!("kdf.{name}"))?;
    u32::try_from(value).map_err(|_| invalid(format!("kdf.{name} {value} is too large")))
}

fn kdf_of(kdf: Option<&Bound<'_, PyAny>>) -> PyResult<nanu::KdfParams> {
    match kdf {
        Some(kdf) if !kdf.is_none() => Ok(nanu::KdfParams {
            m_cost_kib: u32_field(kdf, "m_cost_kib")?,
            t_cost: u32_field(kdf, "t_cost")?,
            p_cost: u32_field(kdf, "p_cost")?,
        }),
        _ => Ok(nanu::KdfParams::DEFAULT),
    }
}

fn interval(obj: Option<&Bound<'_, PyAny>>, name: &str, default: Duration) -> PyResult<Duration> {
    match obj {
        Some(obj) if !obj.is_none() => {
            // duration_arg's own range message says "from 0", but an interval must be at
            // least a millisecond: every refusal here states that range.
            let too_small = || {
                invalid(format!(
                    "{name} must be from 1 to {} milliseconds (an int) or a timedelta of at \
                     least 1 millisecond",
                    u64::MAX
                ))
            };
            let is_int = obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>();
            let d = match duration_arg(obj, name) {
                Ok(d) => d,
                Err(_) if is_int => return Err(too_small()),
                Err(e) => return Err(e),
            };
            if d < Duration::from_millis(1) {
                return Err(too_small());
            }
            Ok(d)
        }
        _ => Ok(default),
    }
}

fn context(
    at: Option<&Bound<'_, PyAny>>,
    actor: Option<&Bound<'_, PyAny>>,
) -> PyResult<nanu::Context> {
    Ok(nanu::Context {
        at: opt_time_arg(at, "at")?,
        actor: opt_text_arg(actor, "actor")?.map(str::to_owned),
    })
}

fn minted_tuple<'py>(py: Python<'py>, minted: &nanu::Minted) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, [minted.key_id.as_str(), minted.secret.expose()])
}

/// The client address of a verify: a str, or an `ipaddress` object.
fn ip_arg(obj: &Bound<'_, PyAny>) -> PyResult<std::net::IpAddr> {
    let parse = |text: &str| {
        text.trim().parse::<std::net::IpAddr>().map_err(|_| {
            let shown: String = text.chars().take(64).collect();
            invalid(format!("ip {shown:?} is not an IPv4 or IPv6 address"))
        })
    };
    if let Ok(text) = obj.cast::<PyString>() {
        return parse(utf8(text, "ip")?);
    }
    let module = obj.get_type().getattr("__module__")?;
    if module.extract::<&str>().ok() == Some("ipaddress") {
        return parse(&obj.str()?.to_string());
    }
    Err(invalid(
        "ip must be a str or an ipaddress.IPv4Address / IPv6Address",
    ))
}

/// Event callbacks run on the vault's commit thread: a call made there that waits for a commit
/// would wait for itself forever. Refuse it instead.
fn refuse_on_commit_thread() -> PyResult<()> {
    if std::thread::current().name() == Some("nanu-commit") {
        return Err(invalid(
            "this call waits for the vault's commit thread and cannot be made from an event \
             callback: hand the event to a queue and act on it from another thread",
        ));
    }
    Ok(())
}

impl Vault {
    fn check_open(&self, py: Python<'_>) -> PyResult<&nanu::Vault> {
        if self.closed.load(Ordering::Relaxed) {
            Err(errors::closed(py))
        } else {
            Ok(&self.vault)
        }
    }

    /// Runs a core call that may wait for the commit thread, without the GIL, and converts its
    /// error.
    fn detached<T: Send>(
        &self,
        py: Python<'_>,
        call: impl FnOnce(&nanu::Vault) -> nanu::Result<T> + Send,
    ) -> PyResult<T> {
        let vault = self.check_open(py)?;
        refuse_on_commit_thread()?;
        py.detach(|| call(vault)).or_raise(py)
    }
}

#[pymethods]
impl Vault {
    /// Opens (`create=False`) or creates a vault. Called by `nanu.Vault.open` and
    /// `nanu.Vault.create`, which document the arguments.
    #[new]
    #[pyo3(signature = (
        path, *, create, passphrase = None, key = None, durability = None, concurrency = None,
        kdf = None, prefix = None, currency = None, flush_interval_ms = None,
        hold_timeout_ms = None, expiring_lead_ms = None, idempotency_window_ms = None,
        lease_timeout_ms = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        create: bool,
        passphrase: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        durability: Option<&Bound<'_, PyAny>>,
        concurrency: Option<&Bound<'_, PyAny>>,
        kdf: Option<&Bound<'_, PyAny>>,
        prefix: Option<&Bound<'_, PyAny>>,
        currency: Option<&Bound<'_, PyAny>>,
        flush_interval_ms: Option<&Bound<'_, PyAny>>,
        hold_timeout_ms: Option<&Bound<'_, PyAny>>,
        expiring_lead_ms: Option<&Bound<'_, PyAny>>,
        idempotency_window_ms: Option<&Bound<'_, PyAny>>,
        lease_timeout_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vault> {
        let mut options = nanu::Options::new(unlock_of(passphrase, key)?);
        if let Some(durability) = opt_text_arg(durability, "durability")? {
            options.durability = durability.parse().or_raise(py)?;
        }
        if let Some(concurrency) = opt_text_arg(concurrency, "concurrency")? {
            options.concurrency = concurrency.parse().or_raise(py)?;
        }
        options.kdf = kdf_of(kdf)?;
        if let Some(prefix) = opt_text_arg(prefix, "prefix")? {
            options.prefix = prefix.to_owned();
        }
        if let Some(currency) = opt_text_arg(currency, "currency")? {
            options.currency = currency.to_owned();
        }
        options.flush_interval = interval(
            flush_interval_ms,
            "flush_interval_ms",
            options.flush_interval,
        )?;
        options.hold_timeout = interval(hold_timeout_ms, "hold_timeout_ms", options.hold_timeout)?;
        options.expiring_lead =
            interval(expiring_lead_ms, "expiring_lead_ms", options.expiring_lead)?;
        options.idempotency_window = interval(
            idempotency_window_ms,
            "idempotency_window_ms",
            options.idempotency_window,
        )?;
        options.lease_timeout =
            interval(lease_timeout_ms, "lease_timeout_ms", options.lease_timeout)?;

        let vault = py
            .detach(|| {
                if create {
                    nanu::Vault::create(&path, &options)
                } else {
                    nanu::Vault::open(&path, &options)
                }
            })
            .or_raise(py)?;
        Ok(Vault {
            vault,
            closed: AtomicBool::new(false),
            concurrency: options.concurrency,
        })
    }

    /// Checks a secret and a request against its key and the key's owner: status, expiry,
    /// `env`, the client address `ip` (a str or an `ipaddress` object) against the IP
    /// allowlist, `scope`, `model` (after alias resolution) and its price, then every limit.
    /// When all pass, one request is counted and the hold is placed, atomically; a denial
    /// changes nothing. Returns a `Verdict`: a denial is a verdict with a stable `code`, never
    /// an exception.
    ///
    /// The hold (amounts reserved until `charge(hold_id=...)` or `release`) is given either as
    /// `hold={"input_tokens": ..., "output_tokens": ..., "cost": ...}` or as
    /// `hold_input_tokens`, `hold_output_tokens` and `hold_cost`. `at` (an aware datetime or
    /// epoch milliseconds) replaces the vault's clock. Bad arguments raise `InvalidArgument`.
    #[pyo3(signature = (
        secret, *, ip = None, scope = None, model = None, env = None, hold = None,
        hold_input_tokens = None, hold_output_tokens = None, hold_cost = None, at = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn verify(
        &self,
        py: Python<'_>,
        secret: &Bound<'_, PyAny>,
        ip: Option<&Bound<'_, PyAny>>,
        scope: Option<&Bound<'_, PyAny>>,
        model: Option<&Bound<'_, PyAny>>,
        env: Option<&Bound<'_, PyAny>>,
        hold: Option<&Bound<'_, PyAny>>,
        hold_input_tokens: Option<&Bound<'_, PyAny>>,
        hold_output_tokens: Option<&Bound<'_, PyAny>>,
        hold_cost: Option<&Bound<'_, PyAny>>,
        at: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Verdict> {
        let vault = self.check_open(py)?;
        // A secret that is not valid text cannot be a key: it gets the verdict any other
        // malformed secret gets. U+FFFD is outside every key's alphabet, so the lossy text
        // still reads as malformed, and the vault counts it as it counts the others.
        let secret = match secret.cast::<PyString>() {
            Ok(text) => text.to_string_lossy(),
            Err(_) => std::borrow::Cow::Borrowed(text_arg(secret, "secret")?),
        };
        let secret = secret.as_ref();
        let mut request = nanu::VerifyRequest {
            scope: opt_text_arg(scope, "scope")?,
            model: opt_text_arg(model, "model")?,
            env: opt_text_arg(env, "env")?,
            ..nanu::VerifyRequest::default()
        };
        if let Some(ip) = ip.filter(|ip| !ip.is_none()) {
            request.ip = Some(ip_arg(ip)?);
        }
        let parts = [hold_input_tokens, hold_output_tokens, hold_cost];
        let has_parts = parts.iter().any(|p| p.is_some_and(|p| !p.is_none()));
        match hold.filter(|h| !h.is_none()) {
            Some(_) if has_parts => {
                return Err(invalid(
                    "give hold= or hold_input_tokens / hold_output_tokens / hold_cost, not both",
                ));
            }
            Some(hold) => request.hold = from_py(hold, "hold")?,
            None if has_parts => {
                request.hold = nanu::HoldAmounts {
                    input_tokens: opt_u64_arg(hold_input_tokens, "hold_input_tokens")?.unwrap_or(0),
                    output_tokens: opt_u64_arg(hold_output_tokens, "hold_output_tokens")?
                        .unwrap_or(0),
                    cost: opt_u64_arg(hold_cost, "hold_cost")?.unwrap_or(0),
                };
            }
            None => {}
        }
        request.at = opt_time_arg(at, "at")?;
        let inner = vault.verify(secret, &request).or_raise(py)?;
        Ok(Verdict { inner })
    }

    /// Records what a request really used: `input_tokens`, `output_tokens` and `cost` (integer
    /// micro-units; computed from the price table of `model` when not given), with its
    /// `endpoint`, and settles the hold `hold_id`. Delivered usage is always recorded, even
    /// past a limit: the outcome lists the limits now exceeded, and the next verify they
    /// govern is denied. With a `request_id` the charge is idempotent: the same id again
    /// returns the first outcome (`replayed=True`), the same id with other amounts raises
    /// `Conflict`. Returns a `ChargeOutcome`.
    ///
    /// At the `durable` level the call returns once the charge is on disk (waiting without
    /// the GIL); at `process` once it is in the journal; at `relaxed` at once.
    #[pyo3(signature = (
        key_id, *, model = None, endpoint = None, input_tokens = None, output_tokens = None,
        cost = None, request_id = None, hold_id = None, at = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn charge(
        &self,
        py: Python<'_>,
        key_id: &Bound<'_, PyAny>,
        model: Option<&Bound<'_, PyAny>>,
        endpoint: Option<&Bound<'_, PyAny>>,
        input_tokens: Option<&Bound<'_, PyAny>>,
        output_tokens: Option<&Bound<'_, PyAny>>,
        cost: Option<&Bound<'_, PyAny>>,
        request_id: Option<&Bound<'_, PyAny>>,
        hold_id: Option<&Bound<'_, PyAny>>,
        at: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ChargeOutcome> {
        let vault = self.check_open(py)?;
        let key_id = text_arg(key_id, "key_id")?;
        let usage = nanu::Usage {
            model: opt_text_arg(model, "model")?.map(str::to_owned),
            endpoint: opt_text_arg(endpoint, "endpoint")?.map(str::to_owned),
            input_tokens: opt_u64_arg(input_tokens, "input_tokens")?.unwrap_or(0),
            output_tokens: opt_u64_arg(output_tokens, "output_tokens")?.unwrap_or(0),
            cost: opt_u64_arg(cost, "cost")?,
            request_id: opt_text_arg(request_id, "request_id")?.map(str::to_owned),
            hold_id: opt_u64_arg(hold_id, "hold_id")?,
            at: opt_time_arg(at, "at")?,
        };
        // A `durable` charge waits for its commit, and the commit thread may need the GIL to
        // deliver events: wait without it. The other levels return once the change is queued
        // (or in the journal), which is cheaper than giving the GIL away.
        let inner = if vault.durability() == nanu::Durability::Durable {
            refuse_on_commit_thread()?;
            py.detach(|| vault.charge(key_id, &usage))
        } else {
            vault.charge(key_id, &usage)
        }
        .or_raise(py)?;
        Ok(ChargeOutcome { inner })
    }

    /// Gives a hold back (the request failed); returns whether it was still outstanding.
    #[pyo3(signature = (hold_id, *, at = None))]
    fn release(
        &self,
        py: Python<'_>,
        hold_id: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let vault = self.check_open(py)?;
        let hold_id = u64_arg(hold_id, "hold_id")?;
        let at = opt_time_arg(at, "at")?;
        vault.release_at(hold_id, at).or_raise(py)
    }

    /// Waits until everything done so far is committed.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.detached(py, |v| v.flush())
    }

    /// Flushes everything and closes the file. Later calls raise `nanu.Closed`; closing twice
    /// is harmless.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        refuse_on_commit_thread()?;
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let vault = &self.vault;
        py.detach(|| vault.close()).or_raise(py)
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The path of the vault file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.vault.path().to_path_buf()
    }

    /// The key prefix of this vault.
    #[getter]
    fn prefix(&self) -> String {
        self.vault.prefix()
    }

    /// The currency of this vault's money amounts.
    #[getter]
    fn currency(&self) -> String {
        self.vault.currency()
    }

    /// The durability level this handle was opened with.
    #[getter]
    fn durability(&self) -> &'static str {
        self.vault.durability().as_str()
    }

    /// How this handle shares the file with other processes: `exclusive` or `shared`.
    #[getter]
    fn concurrency(&self) -> &'static str {
        self.concurrency.as_str()
    }

    // ---- raw calls of the Python package ---------------------------------------------

    #[pyo3(signature = (specs, at = None, actor = None))]
    fn _mint_many<'py>(
        &self,
        py: Python<'py>,
        specs: &Bound<'py, PyAny>,
        at: Option<&Bound<'py, PyAny>>,
        actor: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let specs: Vec<nanu::KeySpec> = from_py(specs, "key spec")?;
        let ctx = context(at, actor)?;
        let minted = self.detached(py, |v| v.mint_many(&specs, &ctx))?;
        let list = PyList::empty(py);
        for m in &minted {
            list.append(minted_tuple(py, m)?)?;
        }
        Ok(list)
    }

    fn _get<'py>(
        &self,
        py: Python<'py>,
        key_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key_id = text_arg(key_id, "key_id")?;
        let info = self.check_open(py)?.get(key_id).or_raise(py)?;
        to_py(py, &info)
    }

    fn _list<'py>(
        &self,
        py: Python<'py>,
        filter: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter: nanu::KeyFilter = from_py(filter, "key filter")?;
        let page = self.check_open(py)?.list(&filter).or_raise(py)?;
        to_py(py, &page)
    }

    #[pyo3(signature = (key_id, patch, at = None, actor = None))]
    fn _update<'py>(
        &self,
        py: Python<'py>,
        key_id: &Bound<'py, PyAny>,
        patch: &Bound<'py, PyAny>,
        at: Option<&Bound<'py, PyAny>>,
        actor: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key_id = text_arg(key_id, "key_id")?;
        let patch: nanu::KeyPatch = from_py(patch, "key patch")?;
        let ctx = context(at, actor)?;
        let info = self.detached(py, |v| v.update(key_id, &patch, &ctx))?;
        to_py(py, &info)
    }

    #[pyo3(signature = (key_id, at = None, actor = None))]
    fn _revoke(
        &self,
        py: Python<'_>,
        key_id: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let key_id = text_arg(key_id, "key_id")?;
        let ctx = context(at, actor)?;
        self.detached(py, |v| v.revoke(key_id, &ctx))
    }

    #[pyo3(signature = (owner, at = None, actor = None))]
    fn _revoke_owner(
        &self,
        py: Python<'_>,
        owner: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let owner = text_arg(owner, "owner")?;
        let ctx = context(at, actor)?;
        self.detached(py, |v| v.revoke_owner(owner, &ctx))
    }

    #[pyo3(signature = (key_id, grace, at = None, actor = None))]
    fn _rotate<'py>(
        &self,
        py: Python<'py>,
        key_id: &Bound<'py, PyAny>,
        grace: &Bound<'py, PyAny>,
        at: Option<&Bound<'py, PyAny>>,
        actor: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let key_id = text_arg(key_id, "key_id")?;
        let grace = duration_arg(grace, "grace")?;
        let ctx = context(at, actor)?;
        let minted = self.detached(py, |v| v.rotate(key_id, grace, &ctx))?;
        minted_tuple(py, &minted)
    }

    #[pyo3(signature = (grace, at = None, actor = None))]
    fn _rotate_due<'py>(
        &self,
        py: Python<'py>,
        grace: &Bound<'py, PyAny>,
        at: Option<&Bound<'py, PyAny>>,
        actor: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let grace = duration_arg(grace, "grace")?;
        let ctx = context(at, actor)?;
        let minted = self.detached(py, |v| v.rotate_due(grace, &ctx))?;
        let list = PyList::empty(py);
        for m in &minted {
            list.append(minted_tuple(py, m)?)?;
        }
        Ok(list)
    }

    #[pyo3(signature = (at = None))]
    fn _tick(&self, py: Python<'_>, at: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let at = opt_time_arg(at, "at")?;
        self.detached(py, |v| v.tick(at))
    }

    #[pyo3(signature = (key_id, at = None))]
    fn _remaining<'py>(
        &self,
        py: Python<'py>,
        key_id: &Bound<'py, PyAny>,
        at: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Remaining> {
        let key_id = text_arg(key_id, "key_id")?;
        let at = opt_time_arg(at, "at")?;
        let inner = self.check_open(py)?.remaining(key_id, at).or_raise(py)?;
        Ok(Remaining { inner })
    }

    #[pyo3(signature = (owner, limits, at = None, actor = None))]
    fn _set_owner_policy(
        &self,
        py: Python<'_>,
        owner: &Bound<'_, PyAny>,
        limits: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let owner = text_arg(owner, "owner")?;
        let limits: Vec<nanu::Limit> = from_py(limits, "limits")?;
        let ctx = context(at, actor)?;
        self.detached(py, |v| v.set_owner_policy(owner, &limits, &ctx))
    }

    #[pyo3(signature = (limits, at = None, actor = None))]
    fn _set_default_owner_policy(
        &self,
        py: Python<'_>,
        limits: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let limits: Vec<nanu::Limit> = from_py(limits, "limits")?;
        let ctx = context(at, actor)?;
        self.detached(py, |v| v.set_default_owner_policy(&limits, &ctx))
    }

    fn _default_owner_policy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let limits = self.check_open(py)?.default_owner_policy();
        to_py(py, &limits)
    }

    fn _owner<'py>(
        &self,
        py: Python<'py>,
        owner: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let owner = text_arg(owner, "owner")?;
        let info = self.check_open(py)?.owner(owner).or_raise(py)?;
        to_py(py, &info)
    }

    fn _owners(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        Ok(self.check_open(py)?.owners())
    }

    #[pyo3(signature = (model, price, at = None, actor = None))]
    fn _set_price(
        &self,
        py: Python<'_>,
        model: &Bound<'_, PyAny>,
        price: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let model = text_arg(model, "model")?;
        let price: Option<nanu::Price> = from_py(price, "price")?;
        let ctx = context(at, actor)?;
        self.detached(py, |v| v.set_price(model, price, &ctx))
    }

    #[pyo3(signature = (text = None, path = None, at = None, actor = None))]
    fn _import_prices<'py>(
        &self,
        py: Python<'py>,
        text: Option<&Bound<'py, PyAny>>,
        path: Option<PathBuf>,
        at: Option<&Bound<'py, PyAny>>,
        actor: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let text = opt_text_arg(text, "prices")?;
        let ctx = context(at, actor)?;
        let report = self.detached(py, |v| match (text, &path) {
            (Some(text), None) => v.import_prices(text, &ctx),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    nanu::Error::new(
                        nanu::ErrorCode::Storage,
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                v.import_prices(&text, &ctx)
            }
            _ => Err(nanu::Error::new(
                nanu::ErrorCode::InvalidArgument,
                "give the price JSON text or a path, not both",
            )),
        })?;
        to_py(py, &report)
    }

    fn _price<'py>(
        &self,
        py: Python<'py>,
        model: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let model = text_arg(model, "model")?;
        let price = self.check_open(py)?.price(model);
        to_py(py, &price)
    }

    fn _prices<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let prices = self.check_open(py)?.prices();
        to_py(py, &prices)
    }

    fn _usage<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let query: nanu::UsageQuery = from_py(query, "usage query")?;
        let rows = self.detached(py, |v| v.usage(&query))?;
        to_py(py, &rows)
    }

    fn _usage_records<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        limit: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let query: nanu::UsageQuery = from_py(query, "usage query")?;
        let limit = usize_arg(limit, "limit")?;
        let records = self.detached(py, |v| v.usage_records(&query, limit))?;
        to_py(py, &records)
    }

    fn _events<'py>(
        &self,
        py: Python<'py>,
        after: &Bound<'py, PyAny>,
        limit: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let after = u64_arg(after, "after")?;
        let limit = usize_arg(limit, "limit")?;
        let events = self.detached(py, |v| v.events(after, limit))?;
        to_py(py, &events)
    }

    /// Calls `callback` with the JSON form of every event committed from now on, on the
    /// commit thread, holding the GIL. An exception it raises is reported through
    /// `sys.unraisablehook` and does not stop later events.
    fn _subscribe(&self, py: Python<'_>, callback: Bound<'_, PyAny>) -> PyResult<u64> {
        let vault = self.check_open(py)?;
        if !callback.is_callable() {
            return Err(invalid("the event callback must be callable"));
        }
        let callback = callback.unbind();
        Ok(vault.subscribe(move |event: &nanu::Event| {
            Python::attach(|py| {
                let result = to_py(py, event).and_then(|json| callback.call1(py, (json,)));
                if let Err(err) = result {
                    err.write_unraisable(py, Some(callback.bind(py)));
                }
            });
        }))
    }

    fn _unsubscribe(&self, subscription: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self
            .vault
            .unsubscribe(u64_arg(subscription, "subscription")?))
    }

    fn _audit<'py>(
        &self,
        py: Python<'py>,
        after: &Bound<'py, PyAny>,
        limit: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let after = u64_arg(after, "after")?;
        let limit = usize_arg(limit, "limit")?;
        let records = self.detached(py, |v| v.audit(after, limit))?;
        to_py(py, &records)
    }

    fn _verify_audit<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let check = self.detached(py, |v| v.verify_audit())?;
        to_py(py, &check)
    }

    fn _stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = self.check_open(py)?.stats();
        to_py(py, &stats)
    }

    #[pyo3(signature = (passphrase = None, key = None, kdf = None, at = None, actor = None))]
    fn _rekey(
        &self,
        py: Python<'_>,
        passphrase: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        kdf: Option<&Bound<'_, PyAny>>,
        at: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let unlock = unlock_of(passphrase, key)?;
        let kdf = kdf_of(kdf)?;
        let ctx = context(at, actor)?;
        self.detached(py, |v| v.rekey(&unlock, kdf, &ctx))
    }
}
