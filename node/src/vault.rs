//! The `Vault` class: the whole vault API in camelCase.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;

use crate::arg::{Arg, Kind};
use crate::codes::{Concurrency, Durability};
use crate::error::{Result, from_core, invalid};
use crate::events::{AuditCheck, AuditRecord, Event, deliver, listener};
use crate::json::{
    decode_limits, decode_object, decode_object_or_default, decode_objects, free_json,
};
use crate::keys::{KeyInfo, KeyPage, Limit, Minted, limits};
use crate::options::{context, rekey_options, rotate_options, vault_options};
use crate::shape::js_object;
use crate::tasks::Job;
use crate::usage::{ChargeOutcome, UsageRecord, UsageRow, parse_usage};
use crate::value::U64;
use crate::verdict::{Remaining, Request, Verdict};

/// How many records `events`, `audit` and `usageRecords` return when no limit is given.
const DEFAULT_PAGE: usize = 1000;

/// An open vault and what the binding keeps beside it.
#[derive(Debug)]
struct Open {
    vault: nanu::Vault,
    /// The mode the file was opened in, reported by the `concurrency` getter.
    concurrency: nanu::Concurrency,
    closed: AtomicBool,
    subscriptions: Mutex<Vec<u64>>,
}

impl Open {
    fn check(&self) -> Result<&nanu::Vault> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(from_core(nanu::Error::new(
                nanu::ErrorCode::Closed,
                "the vault is closed",
            )));
        }
        Ok(&self.vault)
    }

    fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Relaxed);
        let ids = std::mem::take(&mut *lock(&self.subscriptions));
        for id in ids {
            self.vault.unsubscribe(id);
        }
        self.vault.close().map_err(from_core)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a list of ids, still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every vault opened in this process, so that `closeAll` (run by the package on process exit)
/// can flush them.
static OPEN: Mutex<Vec<Weak<Open>>> = Mutex::new(Vec::new());

fn register(vault: nanu::Vault, concurrency: nanu::Concurrency) -> Vault {
    let open = Arc::new(Open {
        vault,
        concurrency,
        closed: AtomicBool::new(false),
        subscriptions: Mutex::new(Vec::new()),
    });
    let mut all = lock(&OPEN);
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&open));
    Vault { open }
}

/// Closes every vault still open in this process, flushing what the durability level had not
/// yet written. The package calls it when the process exits; calling it by hand is harmless.
#[napi(catch_unwind)]
pub fn close_all() {
    let all: Vec<_> = lock(&OPEN).drain(..).filter_map(|w| w.upgrade()).collect();
    for open in all {
        // Nothing can report an error at exit; each vault logs its own failure.
        let _ = open.close();
    }
}

fn path_arg(arg: Arg<'_>) -> Result<PathBuf> {
    let path = arg.string("path")?;
    if path.is_empty() {
        return Err(invalid("path must not be empty"));
    }
    Ok(PathBuf::from(path))
}

fn text(arg: Arg<'_>, what: &str) -> Result<String> {
    arg.string(what)
}

fn page(arg: Arg<'_>) -> Result<usize> {
    Ok(arg
        .present()
        .map(|v| v.usize("limit"))
        .transpose()?
        .unwrap_or(DEFAULT_PAGE))
}

/// An open vault file: keys, limits and usage in one encrypted file. One process opens it at a
/// time, unless every process opens it with `concurrency: 'shared'`.
#[derive(Debug)]
#[napi]
pub struct Vault {
    open: Arc<Open>,
}

#[napi]
impl Vault {
    /// Creates a new vault file at `path` (which must not exist). The key derivation is
    /// deliberately slow (about 0.2 s with the default parameters): prefer `createAsync`.
    #[napi(
        factory,
        catch_unwind,
        ts_args_type = "path: string, options: VaultOptions"
    )]
    pub fn create(path: Arg<'_>, options: Arg<'_>) -> Result<Vault> {
        let path = path_arg(path)?;
        let options = vault_options(options)?;
        nanu::Vault::create(path, &options)
            .map(|vault| register(vault, options.concurrency))
            .map_err(from_core)
    }

    /// Opens an existing vault file. Prefer `openAsync`, which runs the key derivation off the
    /// JavaScript thread.
    #[napi(
        factory,
        catch_unwind,
        ts_args_type = "path: string, options: VaultOptions"
    )]
    pub fn open(path: Arg<'_>, options: Arg<'_>) -> Result<Vault> {
        let path = path_arg(path)?;
        let options = vault_options(options)?;
        nanu::Vault::open(path, &options)
            .map(|vault| register(vault, options.concurrency))
            .map_err(from_core)
    }

    /// Creates a new vault file, deriving its key on the thread pool.
    #[napi(
        catch_unwind,
        ts_args_type = "path: string, options: VaultOptions",
        ts_return_type = "Promise<Vault>"
    )]
    pub fn create_async(path: Arg<'_>, options: Arg<'_>) -> AsyncTask<Job<Vault>> {
        AsyncTask::new(Job::prepare(|| {
            let path = path_arg(path)?;
            let options = vault_options(options)?;
            Ok(move || {
                nanu::Vault::create(path, &options)
                    .map(|vault| register(vault, options.concurrency))
                    .map_err(from_core)
            })
        }))
    }

    /// Opens an existing vault file, deriving its key on the thread pool.
    #[napi(
        catch_unwind,
        ts_args_type = "path: string, options: VaultOptions",
        ts_return_type = "Promise<Vault>"
    )]
    pub fn open_async(path: Arg<'_>, options: Arg<'_>) -> AsyncTask<Job<Vault>> {
        AsyncTask::new(Job::prepare(|| {
            let path = path_arg(path)?;
            let options = vault_options(options)?;
            Ok(move || {
                nanu::Vault::open(path, &options)
                    .map(|vault| register(vault, options.concurrency))
                    .map_err(from_core)
            })
        }))
    }

    /// Flushes everything and closes the file. Later calls fail with `closed`; closing twice
    /// is harmless.
    #[napi(catch_unwind)]
    pub fn close(&self) -> Result<()> {
        self.open.close()
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.open.closed.load(Ordering::Relaxed)
    }

    /// The path of the vault file.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.open.vault.path().display().to_string()
    }

    /// The key prefix of this vault (`nanu` unless chosen at create).
    #[napi(getter)]
    pub fn prefix(&self) -> String {
        self.open.vault.prefix()
    }

    /// The currency of this vault's money amounts.
    #[napi(getter)]
    pub fn currency(&self) -> String {
        self.open.vault.currency()
    }

    /// The durability level this handle was opened with: `durable`, `process` or `relaxed`.
    #[napi(getter)]
    pub fn durability(&self) -> Durability {
        Durability::from(self.open.vault.durability())
    }

    /// How this handle shares the file with other processes: `exclusive` or `shared`.
    #[napi(getter)]
    pub fn concurrency(&self) -> Concurrency {
        Concurrency::from(self.open.concurrency)
    }

    // ---- keys -------------------------------------------------------------------------

    /// Mints a key. The secret is returned once and never stored.
    #[napi(catch_unwind, ts_args_type = "spec: KeySpec, context?: AdminContext")]
    pub fn mint(&self, spec: Arg<'_>, context_arg: Arg<'_>) -> Result<Minted> {
        let vault = self.open.check()?;
        let spec: nanu::KeySpec = decode_object(spec, "spec")?;
        let ctx = context(context_arg)?;
        vault.mint(&spec, &ctx).map(Minted::from).map_err(from_core)
    }

    /// Mints many keys in one commit; one bad spec mints nothing.
    #[napi(
        catch_unwind,
        ts_args_type = "specs: KeySpec[], context?: AdminContext"
    )]
    pub fn mint_many(&self, specs: Arg<'_>, context_arg: Arg<'_>) -> Result<Vec<Minted>> {
        let vault = self.open.check()?;
        let specs: Vec<nanu::KeySpec> = decode_objects(specs, "specs")?;
        let ctx = context(context_arg)?;
        mint_many(vault, &specs, &ctx)
    }

    /// `mintMany` on the thread pool, for large batches.
    #[napi(
        catch_unwind,
        ts_args_type = "specs: KeySpec[], context?: AdminContext",
        ts_return_type = "Promise<Minted[]>"
    )]
    pub fn mint_many_async(
        &self,
        specs: Arg<'_>,
        context_arg: Arg<'_>,
    ) -> AsyncTask<Job<Vec<Minted>>> {
        AsyncTask::new(Job::prepare(|| {
            self.open.check()?;
            let specs: Vec<nanu::KeySpec> = decode_objects(specs, "specs")?;
            let ctx = context(context_arg)?;
            let open = self.open.clone();
            Ok(move || mint_many(open.check()?, &specs, &ctx))
        }))
    }

    /// A key's stored details (never its secret).
    #[napi(catch_unwind, ts_args_type = "keyId: string")]
    pub fn get(&self, key_id: Arg<'_>) -> Result<KeyInfo> {
        let vault = self.open.check()?;
        let key_id = text(key_id, "keyId")?;
        vault.get(&key_id).map(KeyInfo::from).map_err(from_core)
    }

    /// One page of keys in key id order: `{ owner, env, status, after, limit }` (all optional;
    /// `limit` defaults to 100, at most 10,000).
    #[napi(catch_unwind, ts_args_type = "filter?: KeyFilter")]
    pub fn list(&self, filter: Arg<'_>) -> Result<KeyPage> {
        let vault = self.open.check()?;
        let filter: nanu::KeyFilter = decode_object_or_default(filter, "filter")?;
        vault.list(&filter).map(KeyPage::from).map_err(from_core)
    }

    /// Changes a key's policy, labels or state; absent fields stay, `null` clears `models`,
    /// `ips`, `expiresAt` and `rotateEvery`.
    #[napi(
        catch_unwind,
        ts_args_type = "keyId: string, patch: KeyPatch, context?: AdminContext"
    )]
    pub fn update(&self, key_id: Arg<'_>, patch: Arg<'_>, context_arg: Arg<'_>) -> Result<KeyInfo> {
        let vault = self.open.check()?;
        let key_id = text(key_id, "keyId")?;
        let patch: nanu::KeyPatch = decode_object(patch, "patch")?;
        let ctx = context(context_arg)?;
        vault
            .update(&key_id, &patch, &ctx)
            .map(KeyInfo::from)
            .map_err(from_core)
    }

    /// Revokes a key at once; revoking it again does nothing more.
    #[napi(catch_unwind, ts_args_type = "keyId: string, context?: AdminContext")]
    pub fn revoke(&self, key_id: Arg<'_>, context_arg: Arg<'_>) -> Result<()> {
        let vault = self.open.check()?;
        let key_id = text(key_id, "keyId")?;
        let ctx = context(context_arg)?;
        vault.revoke(&key_id, &ctx).map_err(from_core)
    }

    /// Revokes every key of an owner; returns how many were not revoked before.
    #[napi(
        catch_unwind,
        ts_args_type = "owner: string, context?: AdminContext",
        ts_return_type = "number | bigint"
    )]
    pub fn revoke_owner(&self, owner: Arg<'_>, context_arg: Arg<'_>) -> Result<U64> {
        let vault = self.open.check()?;
        let owner = text(owner, "owner")?;
        let ctx = context(context_arg)?;
        vault.revoke_owner(&owner, &ctx).map(U64).map_err(from_core)
    }

    /// Issues a new secret for the same key id, ledger and windows. The previous secret keeps
    /// working for `graceMs` (default 0: it stops at once).
    #[napi(catch_unwind, ts_args_type = "keyId: string, options?: RotateOptions")]
    pub fn rotate(&self, key_id: Arg<'_>, options: Arg<'_>) -> Result<Minted> {
        let vault = self.open.check()?;
        let key_id = text(key_id, "keyId")?;
        let (grace, ctx) = rotate_options(options)?;
        vault
            .rotate(&key_id, grace, &ctx)
            .map(Minted::from)
            .map_err(from_core)
    }

    /// Rotates every active key whose `rotateEvery` has passed; returns the new secrets.
    #[napi(catch_unwind, ts_args_type = "options?: RotateOptions")]
    pub fn rotate_due(&self, options: Arg<'_>) -> Result<Vec<Minted>> {
        let vault = self.open.check()?;
        let (grace, ctx) = rotate_options(options)?;
        vault
            .rotate_due(grace, &ctx)
            .map(|minted| minted.into_iter().map(Minted::from).collect())
            .map_err(from_core)
    }

    // ---- verify, charge, release --------------------------------------------------------

    /// Checks a secret and a request against the key and its owner; when every check passes,
    /// consumes one request and places the hold. A denial is a verdict, not an exception;
    /// a request with an unknown field, or a value of the wrong type, throws.
    #[napi(catch_unwind, ts_args_type = "secret: string, request?: VerifyRequest")]
    pub fn verify(&self, secret: Arg<'_>, request: Arg<'_>) -> Result<Verdict> {
        let vault = self.open.check()?;
        let mut buf = [0u8; 256];
        let secret = secret.str_in("secret", &mut buf)?;
        let request = Request::parse(request)?;
        vault
            .verify(&secret, &request.as_core())
            .map(Verdict::from)
            .map_err(from_core)
    }

    /// Records what a request really used and settles its hold. Idempotent by `requestId`.
    #[napi(catch_unwind, ts_args_type = "keyId: string, usage: Usage")]
    pub fn charge(&self, key_id: Arg<'_>, usage: Arg<'_>) -> Result<ChargeOutcome> {
        let vault = self.open.check()?;
        let mut buf = [0u8; 128];
        let key_id = key_id.str_in("keyId", &mut buf)?;
        let usage = parse_usage(usage)?;
        vault
            .charge(&key_id, &usage)
            .map(ChargeOutcome::from)
            .map_err(from_core)
    }

    /// `charge` on the thread pool: at the `durable` level a charge waits for an fsync, which
    /// this keeps off the event loop.
    #[napi(
        catch_unwind,
        ts_args_type = "keyId: string, usage: Usage",
        ts_return_type = "Promise<ChargeOutcome>"
    )]
    pub fn charge_async(&self, key_id: Arg<'_>, usage: Arg<'_>) -> AsyncTask<Job<ChargeOutcome>> {
        AsyncTask::new(Job::prepare(|| {
            self.open.check()?;
            let key_id = text(key_id, "keyId")?;
            let usage = parse_usage(usage)?;
            let open = self.open.clone();
            Ok(move || {
                open.check()?
                    .charge(&key_id, &usage)
                    .map(ChargeOutcome::from)
                    .map_err(from_core)
            })
        }))
    }

    /// Gives a hold back (the request failed). Returns whether it was still outstanding.
    #[napi(catch_unwind, ts_args_type = "holdId: Amount")]
    pub fn release(&self, hold_id: Arg<'_>) -> Result<bool> {
        let vault = self.open.check()?;
        let hold_id = hold_id.u64("holdId")?;
        vault.release(hold_id).map_err(from_core)
    }

    /// Runs the periodic work now, at `at` (default now): gives back expired holds and fires
    /// expiring and expired events. Replays and tests that drive time themselves call it.
    #[napi(catch_unwind, ts_args_type = "at?: Instant")]
    pub fn tick(&self, at: Arg<'_>) -> Result<()> {
        let vault = self.open.check()?;
        let at = at.opt_time("at")?;
        vault.tick(at).map_err(from_core)
    }

    /// The state of every limit of a key and of its owner at `at` (default now).
    #[napi(catch_unwind, ts_args_type = "keyId: string, at?: Instant")]
    pub fn remaining(&self, key_id: Arg<'_>, at: Arg<'_>) -> Result<Remaining> {
        let vault = self.open.check()?;
        let key_id = text(key_id, "keyId")?;
        let at = at.opt_time("at")?;
        vault
            .remaining(&key_id, at)
            .map(Remaining::from)
            .map_err(from_core)
    }

    // ---- owners -------------------------------------------------------------------------

    /// Sets an owner's limits (shared by all its keys), creating the owner if needed.
    #[napi(
        catch_unwind,
        ts_args_type = "owner: string, limits: LimitInput[], context?: AdminContext"
    )]
    pub fn set_owner_policy(
        &self,
        owner: Arg<'_>,
        limits_arg: Arg<'_>,
        context_arg: Arg<'_>,
    ) -> Result<()> {
        let vault = self.open.check()?;
        let owner = text(owner, "owner")?;
        let limits = decode_limits(limits_arg, "limits")?;
        let ctx = context(context_arg)?;
        vault
            .set_owner_policy(&owner, &limits, &ctx)
            .map_err(from_core)
    }

    /// Sets the limits a new owner gets when it first appears (existing owners keep theirs).
    #[napi(
        catch_unwind,
        ts_args_type = "limits: LimitInput[], context?: AdminContext"
    )]
    pub fn set_default_owner_policy(
        &self,
        limits_arg: Arg<'_>,
        context_arg: Arg<'_>,
    ) -> Result<()> {
        let vault = self.open.check()?;
        let limits = decode_limits(limits_arg, "limits")?;
        let ctx = context(context_arg)?;
        vault
            .set_default_owner_policy(&limits, &ctx)
            .map_err(from_core)
    }

    /// The limits a new owner gets.
    #[napi(catch_unwind)]
    pub fn default_owner_policy(&self) -> Result<Vec<Limit>> {
        let vault = self.open.check()?;
        Ok(limits(&vault.default_owner_policy()))
    }

    /// An owner's limits and their state.
    #[napi(catch_unwind, ts_args_type = "owner: string")]
    pub fn owner(&self, owner: Arg<'_>) -> Result<OwnerInfo> {
        let vault = self.open.check()?;
        let owner = text(owner, "owner")?;
        vault.owner(&owner).map(OwnerInfo::from).map_err(from_core)
    }

    /// Every owner's name, sorted.
    #[napi(catch_unwind)]
    pub fn owners(&self) -> Result<Vec<String>> {
        Ok(self.open.check()?.owners())
    }

    // ---- prices -------------------------------------------------------------------------

    /// Sets a model's price in micro-units (`null` removes it).
    #[napi(
        catch_unwind,
        ts_args_type = "model: string, price: PriceInput | null, context?: AdminContext"
    )]
    pub fn set_price(&self, model: Arg<'_>, price: Arg<'_>, context_arg: Arg<'_>) -> Result<()> {
        let vault = self.open.check()?;
        let model = text(model, "model")?;
        let price: Option<nanu::Price> = match price.kind() {
            Kind::Null => None,
            _ => Some(decode_object(price, "price")?),
        };
        let ctx = context(context_arg)?;
        vault.set_price(&model, price, &ctx).map_err(from_core)
    }

    /// Imports LiteLLM's price JSON (its text, or the parsed object), converting each price
    /// once, exactly, to integer micro-units per million tokens.
    #[napi(
        catch_unwind,
        ts_args_type = "litellm: string | Record<string, unknown>, context?: AdminContext"
    )]
    pub fn import_prices(&self, litellm: Arg<'_>, context_arg: Arg<'_>) -> Result<PriceImport> {
        let vault = self.open.check()?;
        let json = match litellm.kind() {
            Kind::String => litellm.string("litellm")?,
            _ => free_json(litellm, "litellm")?.to_string(),
        };
        let ctx = context(context_arg)?;
        vault
            .import_prices(&json, &ctx)
            .map(PriceImport::from)
            .map_err(from_core)
    }

    /// A model's price, or `null`.
    #[napi(catch_unwind, ts_args_type = "model: string")]
    pub fn price(&self, model: Arg<'_>) -> Result<Option<Price>> {
        let vault = self.open.check()?;
        let model = text(model, "model")?;
        Ok(vault.price(&model).map(Price::from))
    }

    /// Every price, by model.
    #[napi(catch_unwind)]
    pub fn prices(&self) -> Result<BTreeMap<String, Price>> {
        let vault = self.open.check()?;
        Ok(vault
            .prices()
            .into_iter()
            .map(|(model, price)| (model, Price::from(price)))
            .collect())
    }

    // ---- reports ------------------------------------------------------------------------

    /// Sums of the usage log, filtered, grouped and bucketed.
    #[napi(catch_unwind, ts_args_type = "query?: UsageQuery")]
    pub fn usage(&self, query: Arg<'_>) -> Result<Vec<UsageRow>> {
        let vault = self.open.check()?;
        let query: nanu::UsageQuery = decode_object_or_default(query, "query")?;
        usage(vault, &query)
    }

    /// `usage` on the thread pool, for reports over a long log.
    #[napi(
        catch_unwind,
        ts_args_type = "query?: UsageQuery",
        ts_return_type = "Promise<UsageRow[]>"
    )]
    pub fn usage_async(&self, query: Arg<'_>) -> AsyncTask<Job<Vec<UsageRow>>> {
        AsyncTask::new(Job::prepare(|| {
            self.open.check()?;
            let query: nanu::UsageQuery = decode_object_or_default(query, "query")?;
            let open = self.open.clone();
            Ok(move || usage(open.check()?, &query))
        }))
    }

    /// The usage log's records, filtered, oldest first, at most `limit` (default 1000).
    #[napi(catch_unwind, ts_args_type = "query?: UsageQuery, limit?: number")]
    pub fn usage_records(&self, query: Arg<'_>, limit: Arg<'_>) -> Result<Vec<UsageRecord>> {
        let vault = self.open.check()?;
        let query: nanu::UsageQuery = decode_object_or_default(query, "query")?;
        let limit = page(limit)?;
        vault
            .usage_records(&query, limit)
            .map(|records| records.into_iter().map(UsageRecord::from).collect())
            .map_err(from_core)
    }

    /// Events after `afterSeq` (default 0), oldest first, at most `limit` (default 1000).
    #[napi(catch_unwind, ts_args_type = "afterSeq?: Amount, limit?: number")]
    pub fn events(&self, after_seq: Arg<'_>, limit: Arg<'_>) -> Result<Vec<Event>> {
        let vault = self.open.check()?;
        let after = after_seq.opt_u64("afterSeq")?.unwrap_or(0);
        let limit = page(limit)?;
        vault
            .events(after, limit)
            .map(|events| events.into_iter().map(Event::from).collect())
            .map_err(from_core)
    }

    /// Calls `callback` with every event committed from now on (thresholds crossed, limits
    /// exhausted, keys expiring, rotated, revoked, unpriced models), on the JavaScript thread.
    /// Returns an id for `unsubscribe`. The subscription does not keep the process alive; an
    /// exception thrown by the callback is an uncaught exception, as with an event listener.
    #[napi(catch_unwind, ts_args_type = "callback: (event: Event) => void")]
    pub fn subscribe(&self, callback: Arg<'_>) -> Result<u32> {
        let vault = self.open.check()?;
        let listener = listener(callback)?;
        let id = vault.subscribe(move |event| deliver(&listener, event));
        lock(&self.open.subscriptions).push(id);
        u32::try_from(id).map_err(|_| invalid("too many subscriptions"))
    }

    /// Stops a subscription; returns whether it existed.
    #[napi(catch_unwind, ts_args_type = "id: number")]
    pub fn unsubscribe(&self, id: Arg<'_>) -> Result<bool> {
        let id = id.u64("id")?;
        lock(&self.open.subscriptions).retain(|&s| s != id);
        Ok(self.open.vault.unsubscribe(id))
    }

    /// Audit records after `afterSeq` (default 0), oldest first, at most `limit` (default
    /// 1000).
    #[napi(catch_unwind, ts_args_type = "afterSeq?: Amount, limit?: number")]
    pub fn audit(&self, after_seq: Arg<'_>, limit: Arg<'_>) -> Result<Vec<AuditRecord>> {
        let vault = self.open.check()?;
        let after = after_seq.opt_u64("afterSeq")?.unwrap_or(0);
        let limit = page(limit)?;
        vault
            .audit(after, limit)
            .map(|records| records.into_iter().map(AuditRecord::from).collect())
            .map_err(from_core)
    }

    /// Checks the audit chain: every record present, each hash chained to the one before.
    #[napi(catch_unwind)]
    pub fn verify_audit(&self) -> Result<AuditCheck> {
        let vault = self.open.check()?;
        vault
            .verify_audit()
            .map(AuditCheck::from)
            .map_err(from_core)
    }

    /// Counts of keys, owners, holds and refused garbage.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> Result<Stats> {
        Ok(Stats::from(self.open.check()?.stats()))
    }

    /// Re-seals the data key under a new passphrase or raw key; only the file header changes.
    #[napi(catch_unwind, ts_args_type = "options: RekeyOptions")]
    pub fn rekey(&self, options: Arg<'_>) -> Result<()> {
        let vault = self.open.check()?;
        let (unlock, kdf, ctx) = rekey_options(options)?;
        vault.rekey(&unlock, kdf, &ctx).map_err(from_core)
    }

    /// Waits until everything done so far is committed to the file.
    #[napi(catch_unwind)]
    pub fn flush(&self) -> Result<()> {
        self.open.check()?.flush().map_err(from_core)
    }
}

fn mint_many(
    vault: &nanu::Vault,
    specs: &[nanu::KeySpec],
    ctx: &nanu::Context,
) -> Result<Vec<Minted>> {
    vault
        .mint_many(specs, ctx)
        .map(|minted| minted.into_iter().map(Minted::from).collect())
        .map_err(from_core)
}

fn usage(vault: &nanu::Vault, query: &nanu::UsageQuery) -> Result<Vec<UsageRow>> {
    vault
        .usage(query)
        .map(|rows| rows.into_iter().map(UsageRow::from).collect())
        .map_err(from_core)
}

/// An owner, its limits and their state.
#[derive(Debug)]
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct OwnerInfo {
    /// The owner.
    pub owner: String,
    /// Its limits.
    pub limits: Vec<Limit>,
    /// How many keys it has (all statuses).
    #[napi(ts_type = "number | bigint")]
    pub keys: U64,
    /// The state of its limits.
    pub remaining: Remaining,
}

js_object!(OwnerInfo {
    owner,
    limits,
    keys,
    remaining
});

impl From<nanu::OwnerInfo> for OwnerInfo {
    fn from(o: nanu::OwnerInfo) -> OwnerInfo {
        OwnerInfo {
            owner: o.owner,
            limits: limits(&o.limits),
            keys: U64(o.keys),
            remaining: Remaining::from(o.remaining),
        }
    }
}

/// A model's price in integer micro-units.
#[derive(Debug)]
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct Price {
    /// Micro-units per million input tokens.
    #[napi(ts_type = "number | bigint")]
    pub input_per_mtok: U64,
    /// Micro-units per million output tokens.
    #[napi(ts_type = "number | bigint")]
    pub output_per_mtok: U64,
    /// Micro-units per request.
    #[napi(ts_type = "number | bigint")]
    pub per_request: U64,
}

js_object!(Price {
    input_per_mtok,
    output_per_mtok,
    per_request
});

impl From<nanu::Price> for Price {
    fn from(p: nanu::Price) -> Price {
        Price {
            input_per_mtok: U64(p.input_per_mtok),
            output_per_mtok: U64(p.output_per_mtok),
            per_request: U64(p.per_request),
        }
    }
}

/// A price entry an import left out, or rounded.
#[derive(Debug)]
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct PriceNote {
    /// The model.
    pub model: String,
    /// Why it was skipped, or which field was rounded up to a whole micro-unit.
    pub note: String,
}

js_object!(PriceNote { model, note });

/// What an import of prices did.
#[derive(Debug)]
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct PriceImport {
    /// Models priced.
    #[napi(ts_type = "number | bigint")]
    pub imported: U64,
    /// Entries without a token or request price, with the reason.
    pub skipped: Vec<PriceNote>,
    /// Prices rounded up to a whole micro-unit per million tokens, with the field.
    pub rounded: Vec<PriceNote>,
}

js_object!(PriceImport {
    imported,
    skipped,
    rounded
});

impl From<nanu::PriceImport> for PriceImport {
    fn from(i: nanu::PriceImport) -> PriceImport {
        let notes = |list: Vec<(String, String)>| {
            list.into_iter()
                .map(|(model, note)| PriceNote { model, note })
                .collect()
        };
        PriceImport {
            imported: U64(i.imported),
            skipped: notes(i.skipped),
            rounded: notes(i.rounded),
        }
    }
}

/// Counts the vault keeps.
#[derive(Debug)]
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct Stats {
    /// Keys in the vault (all statuses).
    #[napi(ts_type = "number | bigint")]
    pub keys: U64,
    /// Owners known.
    #[napi(ts_type = "number | bigint")]
    pub owners: U64,
    /// Verifies refused as malformed since the vault was created.
    #[napi(ts_type = "number | bigint")]
    pub malformed: U64,
    /// Verifies of well-formed secrets that match no key.
    #[napi(ts_type = "number | bigint")]
    pub not_found: U64,
    /// Outstanding holds.
    #[napi(ts_type = "number | bigint")]
    pub holds: U64,
    /// Key records that failed to open (corrupt).
    #[napi(ts_type = "number | bigint")]
    pub corrupt_keys: U64,
}

js_object!(Stats {
    keys,
    owners,
    malformed,
    not_found,
    holds,
    corrupt_keys
});

impl From<nanu::Stats> for Stats {
    fn from(s: nanu::Stats) -> Stats {
        Stats {
            keys: U64(s.keys),
            owners: U64(s.owners),
            malformed: U64(s.malformed),
            not_found: U64(s.not_found),
            holds: U64(s.holds),
            corrupt_keys: U64(s.corrupt_keys),
        }
    }
}
