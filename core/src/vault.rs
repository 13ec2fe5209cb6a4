//! The vault: keys, owners, prices and counters in memory, persisted through the commit
//! pipeline into one encrypted redb file.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ipnet::IpNet;
use jiff::Timestamp;
use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{AuditCheck, AuditRecord};
use crate::crypto::{self, Keys, Unlock};
use crate::error::{Error, ErrorCode, Result};
use crate::events::{Event, EventKind};
use crate::key::{self, KeyFilter, KeyInfo, KeyPage, KeyPatch, KeySpec, Minted, Status};
use crate::ledger::{CompiledLimit, Crossing, Ledger, Reservation};
use crate::options::{Concurrency, Context, Options};
use crate::pipeline::{Apply, Durability, Journal, Pipeline, Write};
use crate::policy::{Limit, Unit};
use crate::prices::{self, Price};
use crate::secret;
use crate::store::{self, ChargeMemo, Header, KeyRecord, OwnerRecord, StoredDigest};
use crate::usage::{CHARGED, ChargeOutcome, Report, Usage, UsageQuery, UsageRecord, UsageRow};
use crate::verdict::{Code, HoldAmounts, Level, Remaining, Verdict, VerifyRequest};

mod shared;

use shared::{Leased, Shared};

/// An open vault. `Send + Sync`: share it between threads (for example in an `Arc`).
pub struct Vault {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    db: RwLock<Option<Database>>,
    header: Mutex<Header>,
    dek: Zeroizing<[u8; 32]>,
    keys: Keys,
    options: Options,
    by_digest: RwLock<HashMap<[u8; 32], Arc<KeyEntry>, BuildHasherDefault<DigestHasher>>>,
    by_id: RwLock<BTreeMap<Arc<str>, Arc<KeyEntry>>>,
    corrupt_keys: RwLock<HashMap<String, Error>>,
    owners: RwLock<HashMap<Arc<str>, Arc<OwnerEntry>>>,
    default_owner_limits: RwLock<Vec<Limit>>,
    prices: RwLock<HashMap<String, Price>>,
    holds: Mutex<HashMap<u64, Hold>>,
    next_hold: AtomicU64,
    /// Charges by request id, with the pipeline entry that records each (0: committed before
    /// this open).
    memos: [Mutex<HashMap<String, (ChargeMemo, u64)>>; MEMO_SHARDS],
    next_usage: AtomicU64,
    next_event: AtomicU64,
    audit_head: Mutex<(u64, [u8; 32])>,
    subscribers: Mutex<Vec<(u64, Subscriber)>>,
    next_subscriber: AtomicU64,
    dirty: Mutex<Vec<Dirty>>,
    pipeline: Pipeline,
    closed: AtomicBool,
    malformed: AtomicU64,
    not_found: AtomicU64,
    last_expiry_scan: AtomicU64,
    /// The shared mode's state; `None` in the exclusive mode.
    shared: Option<Shared>,
}

const MEMO_SHARDS: usize = 64;

/// Hashes a secret digest by folding its bytes: a keyed BLAKE3 output is already uniform and
/// unpredictable without the vault's key, so hashing it again (SipHash) would buy nothing on
/// the verify path.
#[derive(Clone, Copy, Debug, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(23) ^ u64::from_le_bytes(word);
        }
    }
}

type Subscriber = Arc<dyn Fn(&Event) + Send + Sync>;

struct KeyEntry {
    id: Arc<str>,
    owner: Arc<OwnerEntry>,
    dirty: AtomicBool,
    state: Mutex<KeyState>,
}

struct KeyState {
    record: KeyRecord,
    env: Arc<str>,
    limits: Vec<CompiledLimit>,
    ips: Option<Vec<IpNet>>,
    ledger: Ledger,
}

struct OwnerEntry {
    name: Arc<str>,
    dirty: AtomicBool,
    state: Mutex<OwnerState>,
}

struct OwnerState {
    record: OwnerRecord,
    limits: Vec<CompiledLimit>,
    ledger: Ledger,
}

enum Dirty {
    Key(Arc<KeyEntry>),
    Owner(Arc<OwnerEntry>),
}

/// What a commit takes of the counters changed since the last one.
enum Snapshot {
    /// Exclusive mode: copies of the changed ledgers, taken with the cut.
    Ledgers(Vec<(String, Ledger)>),
    /// Shared mode: the changed entries, whose rows are updated inside the transaction.
    Entries(Vec<Dirty>),
}

struct Hold {
    key: Arc<KeyEntry>,
    on_key: Reservation,
    on_owner: Reservation,
    expires_at: i64,
    /// Placed at the vault's clock time (the request had no explicit `at`). The commit thread
    /// expires only these: a hold placed at an explicit time belongs to the caller's timeline
    /// (a replay, a test), which may be far behind the clock, and is expired by `tick`.
    by_clock: bool,
}

/// Counts the vault keeps of what it refused without a key to name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
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
}

/// An owner, its limits and their state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerInfo {
    /// The owner.
    pub owner: String,
    /// Its limits.
    pub limits: Vec<Limit>,
    /// How many keys it has (all statuses).
    pub keys: u64,
    /// The state of its limits.
    pub remaining: Remaining,
}

/// What an import of prices did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceImport {
    /// Models priced.
    pub imported: u64,
    /// Entries without a token or request price, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Prices rounded up to a whole micro-unit per million tokens (model, field).
    pub rounded: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize, Default)]
struct Counts {
    malformed: u64,
    not_found: u64,
    next_usage: u64,
    next_event: u64,
    applied_seq: u64,
}

fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

fn timestamp(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::MAX)
}

fn duration_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn ledger_row(level: Level, name: &str) -> String {
    match level {
        Level::Key => format!("k/{name}"),
        Level::Owner => format!("o/{name}"),
    }
}

fn closed() -> Error {
    Error::new(ErrorCode::Closed, "the vault is closed")
}

fn new_key_id() -> Result<String> {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = u128::from_le_bytes(crypto::random_bytes::<16>()?);
    let mut id = String::from("key_");
    for _ in 0..22 {
        id.push(ALPHABET[(n % 62) as usize] as char);
        n /= 62;
    }
    Ok(id)
}

impl KeyState {
    fn compile(record: KeyRecord) -> Result<KeyState> {
        let limits = CompiledLimit::compile_all(&record.limits)?;
        let ips = record.ips.as_deref().map(key::parse_ips).transpose()?;
        let ledger = Ledger::new(&limits);
        Ok(KeyState {
            env: Arc::from(record.env.as_str()),
            record,
            limits,
            ips,
            ledger,
        })
    }

    fn status_at(&self, t: i64) -> Status {
        if self.record.revoked {
            Status::Revoked
        } else if self.record.disabled {
            Status::Disabled
        } else if self.record.expires_at.is_some_and(|e| t >= e) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    fn info(&self, t: i64) -> KeyInfo {
        let r = &self.record;
        KeyInfo {
            key_id: r.key_id.clone(),
            owner: r.owner.clone(),
            name: r.name.clone(),
            env: r.env.clone(),
            status: self.status_at(t),
            created_at: timestamp(r.created_at),
            updated_at: timestamp(r.updated_at),
            rotated_at: timestamp(r.rotated_at),
            grace_until: r
                .digests
                .iter()
                .filter_map(|d| d.until)
                .filter(|&u| u > t)
                .max()
                .map(timestamp),
            expires_at: r.expires_at.map(timestamp),
            scopes: r.scopes.clone(),
            models: r.models.clone(),
            aliases: r.aliases.clone(),
            ips: r.ips.clone(),
            limits: r.limits.clone(),
            rotate_every: r.rotate_every.clone(),
            metadata: r.metadata.clone(),
        }
    }
}

impl OwnerState {
    fn new(record: OwnerRecord) -> Result<OwnerState> {
        let limits = CompiledLimit::compile_all(&record.limits)?;
        let ledger = Ledger::new(&limits);
        Ok(OwnerState {
            record,
            limits,
            ledger,
        })
    }
}

impl Vault {
    /// Creates a new vault file at `path` (which must not exist).
    pub fn create(path: impl AsRef<Path>, options: &Options) -> Result<Vault> {
        let path = path.as_ref();
        check_options(options)?;
        secret::validate_prefix(&options.prefix)?;
        if options.currency.is_empty()
            || options.currency.len() > 16
            || !options.currency.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(Error::invalid(
                "currency must be 1 to 16 ascii letters or digits",
            ));
        }
        let (db, header, keys, dek) = store::create(
            path,
            &options.unlock,
            options.kdf,
            &options.prefix,
            &options.currency,
            options.concurrency,
        )?;
        log::debug!("created vault {}", path.display());
        let vault = Vault::start(path, db, header, dek, keys, options)?;
        {
            let _admin = vault.inner.admin_guard()?;
            vault.commit_admin(
                &Context::default(),
                "create",
                "vault",
                serde_json::json!({}),
                vec![],
            )?;
        }
        Ok(vault)
    }

    /// Opens an existing vault file.
    pub fn open(path: impl AsRef<Path>, options: &Options) -> Result<Vault> {
        let path = path.as_ref();
        check_options(options)?;
        let (db, header, keys, dek) = store::open_file(path, &options.unlock, options.concurrency)?;
        log::debug!("opened vault {}", path.display());
        Vault::start(path, db, header, dek, keys, options)
    }

    fn start(
        path: &Path,
        db: Database,
        header: Header,
        dek: Zeroizing<[u8; 32]>,
        keys: Keys,
        options: &Options,
    ) -> Result<Vault> {
        let counts: Counts = store::read_sealed_meta(&db, &keys, "counts")?.unwrap_or_default();
        let shared = match options.concurrency {
            Concurrency::Shared => {
                if !Journal::segments(path)?.is_empty() {
                    return Err(Error::invalid(format!(
                        "{} has a journal left by a process that used durability process and \
                         stopped without closing; open it once with concurrency exclusive to \
                         replay it",
                        path.display()
                    )));
                }
                Some(Shared::open(path)?)
            }
            Concurrency::Exclusive => None,
        };
        let (replayed, leftover) = match options.durability {
            Durability::Process => Journal::replay(path, &keys)?,
            _ => {
                // A journal left by a `process`-level session must be replayed whatever level
                // this session uses.
                let segments = Journal::segments(path)?;
                if segments.is_empty() {
                    (Vec::new(), Vec::new())
                } else {
                    Journal::replay(path, &keys)?
                }
            }
        };
        let journal = match options.durability {
            Durability::Process => Some(Journal::start(path, Vec::new())?),
            _ => None,
        };
        let first_seq = counts.applied_seq + 1;
        let replay: Vec<_> = replayed
            .into_iter()
            .filter(|entry| entry.seq > counts.applied_seq)
            .collect();
        let first_seq = replay
            .last()
            .map_or(first_seq, |e| e.seq + 1)
            .max(first_seq);
        let pipeline = Pipeline::new(options.flush_interval, first_seq, journal);

        let inner = Inner {
            path: path.to_path_buf(),
            db: RwLock::new(Some(db)),
            header: Mutex::new(header),
            dek,
            keys,
            options: options.clone(),
            by_digest: RwLock::new(HashMap::default()),
            by_id: RwLock::new(BTreeMap::new()),
            corrupt_keys: RwLock::new(HashMap::new()),
            owners: RwLock::new(HashMap::new()),
            default_owner_limits: RwLock::new(Vec::new()),
            prices: RwLock::new(HashMap::new()),
            holds: Mutex::new(HashMap::new()),
            next_hold: AtomicU64::new(shared.as_ref().map_or(0, Shared::hold_base) + 1),
            memos: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            next_usage: AtomicU64::new(counts.next_usage.max(1)),
            next_event: AtomicU64::new(counts.next_event.max(1)),
            audit_head: Mutex::new((0, [0u8; 32])),
            subscribers: Mutex::new(Vec::new()),
            next_subscriber: AtomicU64::new(1),
            dirty: Mutex::new(Vec::new()),
            pipeline,
            closed: AtomicBool::new(false),
            malformed: AtomicU64::new(counts.malformed),
            not_found: AtomicU64::new(counts.not_found),
            last_expiry_scan: AtomicU64::new(0),
            shared,
        };
        let generation = match inner.shared {
            Some(_) => inner.join()?,
            None => 0,
        };
        inner.load()?;
        inner.loaded_at(generation);
        let inner = Arc::new(inner);
        if !replay.is_empty() {
            log::warn!(
                "{}: replaying {} journal entries after an unclean shutdown",
                path.display(),
                replay.len()
            );
            inner.replay(replay)?;
        }
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name(crate::pipeline::COMMIT_THREAD.to_owned())
            .spawn(move || worker.commit_loop(leftover))
            .map_err(|e| Error::storage(format!("cannot start the commit thread: {e}")))?;
        let vault = Vault {
            inner,
            thread: Mutex::new(Some(thread)),
        };
        vault.inner.pipeline.sync(&vault.inner.keys)?;
        Ok(vault)
    }

    /// Flushes everything and closes the file. Later calls fail with `closed`. Closing
    /// twice is harmless.
    pub fn close(&self) -> Result<()> {
        let Some(thread) = self.thread.lock().take() else {
            return Ok(());
        };
        let result = self.inner.pipeline.sync(&self.inner.keys);
        let result = match (&self.inner.shared, result) {
            (Some(_), Ok(())) => self.inner.leave(),
            (_, result) => result,
        };
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.pipeline.close();
        let _ = thread.join();
        if let Some(path) = self.inner.pipeline.journal_path()
            && result.is_ok()
        {
            Journal::remove(&[path]);
        }
        self.inner.db.write().take();
        log::debug!("closed vault {}", self.inner.path.display());
        result.and(self.inner.pipeline.failed().map_or(Ok(()), Err))
    }

    /// The path of the vault file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The key prefix of this vault.
    pub fn prefix(&self) -> String {
        self.inner.header.lock().prefix.clone()
    }

    /// The currency of this vault's money amounts.
    pub fn currency(&self) -> String {
        self.inner.header.lock().currency.clone()
    }

    /// The durability level this handle was opened with.
    pub fn durability(&self) -> Durability {
        self.inner.options.durability
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Relaxed) {
            Err(closed())
        } else {
            Ok(())
        }
    }

    fn now(&self, at: Option<Timestamp>) -> i64 {
        self.inner.now(at)
    }

    // ---- keys -------------------------------------------------------------------------

    /// Mints a key. The secret is returned once and never stored.
    pub fn mint(&self, spec: &KeySpec, ctx: &Context) -> Result<Minted> {
        let mut minted = self.mint_many(std::slice::from_ref(spec), ctx)?;
        minted
            .pop()
            .ok_or_else(|| Error::storage("mint produced no key"))
    }

    /// Mints many keys in one commit. All specs are validated first; one bad spec mints
    /// nothing.
    pub fn mint_many(&self, specs: &[KeySpec], ctx: &Context) -> Result<Vec<Minted>> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        let t = self.now(ctx.at);
        let prefix = self.prefix();
        let mut prepared = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let state = self
                .prepare_key(spec, t)
                .map_err(|e| Error::new(e.code(), format!("key spec {i}: {}", e.message())))?;
            prepared.push(state);
        }

        let mut writes = Vec::with_capacity(specs.len() * 2);
        let mut minted = Vec::with_capacity(specs.len());
        let mut entries = Vec::with_capacity(specs.len());
        let mut new_owners = Vec::new();
        for mut state in prepared {
            let secret = secret::generate(&prefix, &state.record.env)?;
            let digest = self.inner.keys.digest(secret.expose());
            state.record.digests.push(StoredDigest {
                digest,
                until: None,
            });
            let (owner, created) = self.inner.owner_entry(&state.record.owner)?;
            if created {
                new_owners.push(owner.clone());
                writes.push(Write::Owner(owner.state.lock().record.clone()));
            }
            writes.push(Write::Key(Box::new(state.record.clone())));
            let id: Arc<str> = Arc::from(state.record.key_id.as_str());
            minted.push(Minted {
                key_id: state.record.key_id.clone(),
                secret,
            });
            entries.push((
                digest,
                Arc::new(KeyEntry {
                    id,
                    owner,
                    dirty: AtomicBool::new(false),
                    state: Mutex::new(state),
                }),
            ));
        }
        let detail = serde_json::json!({
            "keys": minted.iter().map(|m| m.key_id.as_str()).collect::<Vec<_>>(),
            "owners": specs.iter().map(|s| s.owner.as_str()).collect::<Vec<_>>(),
        });
        let target = match minted.as_slice() {
            [one] => one.key_id.clone(),
            many => format!("{} keys", many.len()),
        };
        let result = self.commit_admin(ctx, "mint", &target, detail, writes);
        if let Err(err) = result {
            for owner in new_owners {
                self.inner.owners.write().remove(&owner.name);
            }
            return Err(err);
        }
        let mut by_digest = self.inner.by_digest.write();
        let mut by_id = self.inner.by_id.write();
        for (digest, entry) in entries {
            by_id.insert(entry.id.clone(), entry.clone());
            by_digest.insert(digest, entry);
        }
        Ok(minted)
    }

    fn prepare_key(&self, spec: &KeySpec, t: i64) -> Result<KeyState> {
        key::validate_owner(&spec.owner)?;
        key::validate_text("name", &spec.name, key::MAX_NAME_LEN)?;
        let env = if spec.env.is_empty() {
            "live"
        } else {
            spec.env.as_str()
        };
        secret::validate_env(env)?;
        validate_scopes(&spec.scopes)?;
        validate_models(spec.models.as_deref(), &spec.aliases)?;
        let expires_at = match (&spec.expires_at, &spec.ttl) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("give expires_at or ttl, not both"));
            }
            (Some(at), None) => Some(micros(*at)),
            (None, Some(ttl)) => Some(micros(key::add_span(
                timestamp(t),
                key::parse_span("ttl", ttl)?,
            )?)),
            (None, None) => None,
        };
        if let Some(every) = &spec.rotate_every {
            key::parse_span("rotate_every", every)?;
        }
        validate_metadata(&spec.metadata)?;
        let record = KeyRecord {
            key_id: new_key_id()?,
            owner: spec.owner.clone(),
            name: spec.name.clone(),
            env: env.to_owned(),
            disabled: false,
            revoked: false,
            created_at: t,
            updated_at: t,
            rotated_at: t,
            expires_at,
            scopes: spec.scopes.clone(),
            models: spec.models.clone(),
            aliases: spec.aliases.clone(),
            ips: spec.ips.clone(),
            limits: spec.limits.clone(),
            rotate_every: spec.rotate_every.clone(),
            metadata: spec.metadata.clone(),
            digests: Vec::new(),
            expiring_notified: false,
            expired_notified: false,
        };
        KeyState::compile(record)
    }

    fn entry(&self, key_id: &str) -> Result<Arc<KeyEntry>> {
        if let Some(entry) = self.inner.by_id.read().get(key_id) {
            return Ok(entry.clone());
        }
        if let Some(err) = self.inner.corrupt_keys.read().get(key_id) {
            return Err(err.clone());
        }
        Err(Error::not_found(format!("no key {}", shown(key_id))))
    }

    /// A key's stored details (never its secret).
    pub fn get(&self, key_id: &str) -> Result<KeyInfo> {
        self.check_open()?;
        self.inner.follow()?;
        let entry = self.entry(key_id)?;
        let state = entry.state.lock();
        Ok(state.info(self.now(None)))
    }

    /// One page of keys, in key id order.
    pub fn list(&self, filter: &KeyFilter) -> Result<KeyPage> {
        self.check_open()?;
        self.inner.follow()?;
        let limit = filter.limit.unwrap_or(100);
        if limit == 0 || limit > 10_000 {
            return Err(Error::invalid("list limit must be 1 to 10000"));
        }
        let t = self.now(None);
        let by_id = self.inner.by_id.read();
        let range = match &filter.after {
            Some(after) => by_id.range::<str, _>((
                std::ops::Bound::Excluded(after.as_str()),
                std::ops::Bound::Unbounded,
            )),
            None => by_id.range::<str, _>(..),
        };
        let mut keys = Vec::new();
        let mut next = None;
        for (id, entry) in range {
            if filter
                .owner
                .as_deref()
                .is_some_and(|o| o != &*entry.owner.name)
            {
                continue;
            }
            let state = entry.state.lock();
            if filter.env.as_deref().is_some_and(|e| e != state.record.env) {
                continue;
            }
            if filter.status.is_some_and(|s| s != state.status_at(t)) {
                continue;
            }
            if keys.len() == limit {
                next = keys.last().map(|k: &KeyInfo| k.key_id.clone());
                let _ = id;
                break;
            }
            keys.push(state.info(t));
        }
        Ok(KeyPage { keys, next })
    }

    /// Changes a key's policy, labels or state.
    pub fn update(&self, key_id: &str, patch: &KeyPatch, ctx: &Context) -> Result<KeyInfo> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        if let Some(name) = &patch.name {
            key::validate_text("name", name, key::MAX_NAME_LEN)?;
        }
        if let Some(scopes) = &patch.scopes {
            validate_scopes(scopes)?;
        }
        let new_limits = patch
            .limits
            .as_deref()
            .map(CompiledLimit::compile_all)
            .transpose()?;
        let new_ips = match &patch.ips {
            Some(Some(ips)) => Some(Some(key::parse_ips(ips)?)),
            Some(None) => Some(None),
            None => None,
        };
        if let Some(Some(every)) = &patch.rotate_every {
            key::parse_span("rotate_every", every)?;
        }
        if let Some(metadata) = &patch.metadata {
            validate_metadata(metadata)?;
        }
        let entry = self.entry(key_id)?;
        let t = self.now(ctx.at);

        let _gate = self.inner.pipeline.gate.read();
        let mut state = entry.state.lock();
        if patch.disabled == Some(false) && state.record.revoked {
            return Err(Error::invalid(format!(
                "key {key_id} is revoked and cannot be enabled"
            )));
        }
        let models = patch
            .models
            .clone()
            .unwrap_or_else(|| state.record.models.clone());
        let aliases = patch
            .aliases
            .clone()
            .unwrap_or_else(|| state.record.aliases.clone());
        validate_models(models.as_deref(), &aliases)?;

        let before = serde_json::to_value(state.info(t)).unwrap_or_default();
        let r = &mut state.record;
        if let Some(name) = &patch.name {
            r.name = name.clone();
        }
        if let Some(scopes) = &patch.scopes {
            r.scopes = scopes.clone();
        }
        r.models = models;
        r.aliases = aliases;
        if let Some(ips) = &patch.ips {
            r.ips = ips.clone();
        }
        if let Some(expires_at) = patch.expires_at {
            r.expires_at = expires_at.map(micros);
            r.expiring_notified = false;
            r.expired_notified = false;
        }
        if let Some(disabled) = patch.disabled {
            r.disabled = disabled;
        }
        if let Some(metadata) = &patch.metadata {
            r.metadata = metadata.clone();
        }
        if let Some(every) = &patch.rotate_every {
            r.rotate_every = every.clone();
        }
        r.updated_at = t;
        if let Some(ips) = new_ips {
            state.ips = ips;
        }
        let mut writes = Vec::new();
        if let (Some(limits), Some(compiled)) = (&patch.limits, new_limits) {
            let mine = state.ledger.own_leases();
            let old = std::mem::replace(&mut state.limits, compiled);
            let KeyState {
                ledger,
                limits: new,
                ..
            } = &mut *state;
            ledger.relimit(&old, new);
            let before = std::mem::replace(&mut state.record.limits, limits.clone());
            let row = ledger_row(Level::Key, key_id);
            writes.push(match self.inner.shared {
                Some(_) => Write::Relimit(row, before, limits.clone(), mine),
                None => Write::Ledger(row, state.ledger.clone()),
            });
        }
        writes.push(Write::Key(Box::new(state.record.clone())));
        let info = state.info(t);
        let after = serde_json::to_value(&info).unwrap_or_default();
        drop(state);
        drop(_gate);
        let detail = serde_json::json!({ "changed": diff(&before, &after) });
        self.commit_admin(ctx, "update", key_id, detail, writes)?;
        Ok(info)
    }

    /// Revokes a key at once. Revoking a revoked key does nothing more.
    pub fn revoke(&self, key_id: &str, ctx: &Context) -> Result<()> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        let entry = self.entry(key_id)?;
        let t = self.now(ctx.at);
        let mut writes = Vec::new();
        self.revoke_entry(&entry, t, &mut writes);
        self.commit_admin(ctx, "revoke", key_id, serde_json::json!({}), writes)
    }

    fn revoke_entry(&self, entry: &KeyEntry, t: i64, writes: &mut Vec<Write>) -> bool {
        let mut state = entry.state.lock();
        if state.record.revoked {
            return false;
        }
        state.record.revoked = true;
        state.record.updated_at = t;
        writes.push(Write::Key(Box::new(state.record.clone())));
        writes.push(
            self.inner
                .event(t, EventKind::Revoked, Some(&entry.id), &entry.owner.name),
        );
        true
    }

    /// Revokes every key of an owner; returns how many were not revoked before.
    pub fn revoke_owner(&self, owner: &str, ctx: &Context) -> Result<u64> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        let t = self.now(ctx.at);
        let entries: Vec<_> = self
            .inner
            .by_id
            .read()
            .values()
            .filter(|e| &*e.owner.name == owner)
            .cloned()
            .collect();
        let mut writes = Vec::new();
        let mut count = 0;
        for entry in &entries {
            if self.revoke_entry(entry, t, &mut writes) {
                count += 1;
            }
        }
        let detail = serde_json::json!({ "revoked": count });
        self.commit_admin(ctx, "revoke_owner", owner, detail, writes)?;
        Ok(count)
    }

    /// Issues a new secret for the same key id, ledger and windows. The previous secret keeps
    /// working until `now + grace` (exclusive); a rotation never extends an earlier secret's
    /// deadline, and a grace of zero ends every earlier secret at once.
    pub fn rotate(&self, key_id: &str, grace: Duration, ctx: &Context) -> Result<Minted> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        check_grace(grace)?;
        let entry = self.entry(key_id)?;
        let t = self.now(ctx.at);
        let mut writes = Vec::new();
        let (minted, digest) = self.rotate_entry(&entry, t, grace, &mut writes)?;
        let detail = serde_json::json!({ "grace_ms": grace.as_millis() as u64 });
        self.commit_admin(ctx, "rotate", key_id, detail, writes)?;
        self.inner.by_digest.write().insert(digest, entry);
        Ok(minted)
    }

    fn rotate_entry(
        &self,
        entry: &Arc<KeyEntry>,
        t: i64,
        grace: Duration,
        writes: &mut Vec<Write>,
    ) -> Result<(Minted, [u8; 32])> {
        let mut state = entry.state.lock();
        if state.record.revoked {
            return Err(Error::invalid(format!("key {} is revoked", entry.id)));
        }
        let secret = secret::generate(&self.prefix(), &state.record.env)?;
        let digest = self.inner.keys.digest(secret.expose());
        let deadline = t.saturating_add(duration_us(grace));
        let mut expired = Vec::new();
        for old in &mut state.record.digests {
            old.until = Some(old.until.map_or(deadline, |u| u.min(deadline)));
            if old.until.is_some_and(|u| u <= t) {
                expired.push(old.digest);
            }
        }
        state
            .record
            .digests
            .retain(|d| d.until.is_none_or(|u| u > t));
        state.record.digests.push(StoredDigest {
            digest,
            until: None,
        });
        state.record.rotated_at = t;
        state.record.updated_at = t;
        writes.push(Write::Key(Box::new(state.record.clone())));
        writes.push(
            self.inner
                .event(t, EventKind::Rotated, Some(&entry.id), &entry.owner.name),
        );
        drop(state);
        let mut by_digest = self.inner.by_digest.write();
        for old in expired {
            by_digest.remove(&old);
        }
        Ok((
            Minted {
                key_id: entry.id.to_string(),
                secret,
            },
            digest,
        ))
    }

    /// Rotates every active key whose policy has `rotate_every` and whose secret is at least
    /// that old; returns the new secrets.
    pub fn rotate_due(&self, grace: Duration, ctx: &Context) -> Result<Vec<Minted>> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        check_grace(grace)?;
        let t = self.now(ctx.at);
        let entries: Vec<_> = self.inner.by_id.read().values().cloned().collect();
        let mut due = Vec::new();
        for entry in entries {
            let state = entry.state.lock();
            let Some(every) = &state.record.rotate_every else {
                continue;
            };
            if state.status_at(t) != Status::Active {
                continue;
            }
            let span = key::parse_span("rotate_every", every)?;
            let next = micros(key::add_span(timestamp(state.record.rotated_at), span)?);
            drop(state);
            if next <= t {
                due.push(entry);
            }
        }
        let mut writes = Vec::new();
        let mut minted = Vec::new();
        let mut digests = Vec::new();
        for entry in &due {
            let (m, digest) = self.rotate_entry(entry, t, grace, &mut writes)?;
            minted.push(m);
            digests.push((digest, entry.clone()));
        }
        if minted.is_empty() {
            return Ok(minted);
        }
        let detail = serde_json::json!({
            "keys": minted.iter().map(|m| m.key_id.as_str()).collect::<Vec<_>>(),
        });
        self.commit_admin(ctx, "rotate_due", "due keys", detail, writes)?;
        let mut by_digest = self.inner.by_digest.write();
        for (digest, entry) in digests {
            by_digest.insert(digest, entry);
        }
        Ok(minted)
    }

    // ---- verify, charge, release ------------------------------------------------------

    /// Checks a secret and a request against the key and its owner, and when every check
    /// passes, consumes one request and places the hold, atomically. A denial changes no
    /// counter.
    pub fn verify(&self, secret: &str, request: &VerifyRequest<'_>) -> Result<Verdict> {
        self.check_open()?;
        self.inner.follow()?;
        self.verify_leasing(secret, request, 0)
    }

    /// Shared mode: how many times a verify leases and tries again before it gives up (other
    /// threads of this process may take the slices it leased before it gets to them).
    const LEASE_ATTEMPTS: u32 = 16;

    fn verify_leasing(
        &self,
        secret: &str,
        request: &VerifyRequest<'_>,
        attempt: u32,
    ) -> Result<Verdict> {
        let Some(text) = secret::check_shape(secret) else {
            self.inner.malformed.fetch_add(1, Ordering::Relaxed);
            return Ok(Verdict::denied(Code::Malformed));
        };
        let digest = self.inner.keys.digest(text);
        let Some(entry) = self.inner.by_digest.read().get(&digest).cloned() else {
            self.inner.not_found.fetch_add(1, Ordering::Relaxed);
            return Ok(Verdict::denied(Code::NotFound));
        };
        let now = self.now(request.at);
        let mut verdict = Verdict::denied(Code::Valid);
        let mut state_guard = entry.state.lock();
        let state = &mut *state_guard;
        let t = state.ledger.advance(now);

        let Some(found) = state.record.digests.iter().find(|d| d.digest == digest) else {
            self.inner.not_found.fetch_add(1, Ordering::Relaxed);
            return Ok(Verdict::denied(Code::NotFound));
        };
        if found.until.is_some_and(|until| t >= until) {
            self.inner.not_found.fetch_add(1, Ordering::Relaxed);
            return Ok(Verdict::denied(Code::NotFound));
        }
        verdict.grace = found.until.is_some();
        verdict.key_id = Some(entry.id.clone());
        verdict.owner = Some(entry.owner.name.clone());
        verdict.env = Some(state.env.clone());

        let code = self.access_code(&entry, state, request, t, &mut verdict);
        if code != Code::Valid {
            verdict.code = code;
            drop(state_guard);
            self.inner.log_denial(&entry, &verdict, t);
            return Ok(verdict);
        }

        // Limits: check the key's and the owner's, then apply both, under both locks.
        let mut owner_guard = entry.owner.state.lock();
        let owner = &mut *owner_guard;

        // The last access check needs the owner's limits too, so it runs under the owner's
        // lock taken for the limits: a key or owner with a cost limit cannot use a model
        // that has no price.
        if let Some(model) = verdict.model.as_deref() {
            let has_cost = state
                .limits
                .iter()
                .chain(&owner.limits)
                .any(|l| l.limit.unit == Unit::Cost);
            if has_cost && !self.inner.prices.read().contains_key(model) {
                verdict.code = Code::ModelUnpriced;
                drop(owner_guard);
                drop(state_guard);
                self.inner.log_denial(&entry, &verdict, t);
                return Ok(verdict);
            }
        }

        let t_owner = owner.ledger.advance(now);
        let hold = &request.hold;
        let denial = if self.inner.shared.is_some() {
            // Shared mode: admitted from this process's slices, leased when they fall short.
            let short_key = state.ledger.shortfalls(&state.limits, t, hold)?;
            let short_owner = owner.ledger.shortfalls(&owner.limits, t_owner, hold)?;
            let cached = match state.ledger.cached_denial(&state.limits, t, &short_key) {
                Some(denial) => Some((Level::Key, denial)),
                None => owner
                    .ledger
                    .cached_denial(&owner.limits, t_owner, &short_owner)
                    .map(|denial| (Level::Owner, denial)),
            };
            if short_key.is_empty() && short_owner.is_empty() {
                None
            } else if cached.is_some() {
                cached
            } else {
                drop(owner_guard);
                drop(state_guard);
                match self.inner.lease(&entry, now, hold)? {
                    Leased::Admitted(on_key, on_owner, remaining) => {
                        let admitted = (on_key, on_owner, remaining, Vec::new());
                        return Ok(self.admitted(&entry, verdict, request, now, admitted));
                    }
                    Leased::Again if attempt + 1 < Self::LEASE_ATTEMPTS => {
                        return self.verify_leasing(secret, request, attempt + 1);
                    }
                    Leased::Again => {
                        return Err(Error::storage(format!(
                            "key {}: the slices leased for this request were taken by other \
                             requests {} times in a row; try again",
                            entry.id,
                            Self::LEASE_ATTEMPTS
                        )));
                    }
                    Leased::Denied(level, denial) => {
                        return Ok(self.deny_by_limit(&entry, verdict, level, denial, now));
                    }
                }
            }
        } else {
            match state.ledger.check(&state.limits, t, hold) {
                Ok(Some(d)) => Some((Level::Key, d)),
                Ok(None) => match owner.ledger.check(&owner.limits, t_owner, hold) {
                    Ok(Some(d)) => Some((Level::Owner, d)),
                    Ok(None) => None,
                    Err(err) => return Err(err),
                },
                Err(err) => return Err(err),
            }
        };
        if let Some((level, denial)) = denial {
            verdict.code = denial.code;
            verdict.retry_after = denial.retry_after_us.map(Duration::from_micros);
            verdict.resets_at = denial.resets_at.map(timestamp);
            verdict.denied_by = match level {
                Level::Key => state
                    .ledger
                    .status_of(&state.limits, level, denial.index, t),
                Level::Owner => owner
                    .ledger
                    .status_of(&owner.limits, level, denial.index, t_owner),
            };
            let mut remaining = Remaining::default();
            fill_remaining(state, owner, t, t_owner, &mut remaining);
            verdict.remaining = Some(remaining);
            drop(owner_guard);
            drop(state_guard);
            self.inner.log_denial(&entry, &verdict, t);
            return Ok(verdict);
        }
        if self.inner.shared.is_some() {
            let (on_key, on_owner, remaining) = admit_shared(state, owner, t, t_owner, hold);
            drop(owner_guard);
            drop(state_guard);
            let admitted = (on_key, on_owner, remaining, Vec::new());
            return Ok(self.admitted(&entry, verdict, request, now, admitted));
        }
        let (on_key, key_crossings) = state.ledger.admit(&state.limits, t, hold);
        let (on_owner, owner_crossings) = owner.ledger.admit(&owner.limits, t_owner, hold);
        let mut remaining = Remaining::default();
        fill_remaining(state, owner, t, t_owner, &mut remaining);
        let mut events = Vec::new();
        if !key_crossings.is_empty() || !owner_crossings.is_empty() {
            let crossings = (key_crossings, owner_crossings);
            self.inner
                .crossing_events(&entry, state, owner, t, crossings, &mut events);
        }
        drop(owner_guard);
        drop(state_guard);
        let admitted = (on_key, on_owner, remaining, events);
        Ok(self.admitted(&entry, verdict, request, now, admitted))
    }

    /// The verdict of an admitted request: places its hold and queues its events.
    fn admitted(
        &self,
        entry: &Arc<KeyEntry>,
        mut verdict: Verdict,
        request: &VerifyRequest<'_>,
        now: i64,
        (on_key, on_owner, remaining, events): (Reservation, Reservation, Remaining, Vec<Write>),
    ) -> Verdict {
        let hold = &request.hold;
        if !hold.is_zero() {
            let id = self.inner.next_hold.fetch_add(1, Ordering::Relaxed);
            let expires_at = now.saturating_add(duration_us(self.inner.options.hold_timeout));
            self.inner.holds.lock().insert(
                id,
                Hold {
                    key: entry.clone(),
                    on_key,
                    on_owner,
                    expires_at,
                    by_clock: request.at.is_none(),
                },
            );
            verdict.hold_id = Some(id);
        }
        self.inner.mark_dirty(entry);
        if !events.is_empty() {
            self.inner.submit_paced(events);
        }
        verdict.allowed = true;
        verdict.code = Code::Valid;
        verdict.remaining = Some(remaining);
        verdict
    }

    /// Shared mode: the verdict of a request a limit's shared counter has no room for.
    fn deny_by_limit(
        &self,
        entry: &Arc<KeyEntry>,
        mut verdict: Verdict,
        level: Level,
        denial: crate::ledger::Denial,
        now: i64,
    ) -> Verdict {
        let state = entry.state.lock();
        let owner = entry.owner.state.lock();
        let t = now.max(state.ledger.last_seen);
        let t_owner = now.max(owner.ledger.last_seen);
        verdict.code = denial.code;
        verdict.retry_after = denial.retry_after_us.map(Duration::from_micros);
        verdict.resets_at = denial.resets_at.map(timestamp);
        verdict.denied_by = match level {
            Level::Key => state
                .ledger
                .status_of(&state.limits, level, denial.index, t),
            Level::Owner => owner
                .ledger
                .status_of(&owner.limits, level, denial.index, t_owner),
        };
        let mut remaining = Remaining::default();
        fill_remaining(&state, &owner, t, t_owner, &mut remaining);
        verdict.remaining = Some(remaining);
        drop(owner);
        drop(state);
        self.inner.log_denial(entry, &verdict, t);
        verdict
    }

    /// The access checks before limits: status, expiry, env, IP, scope, model and price.
    fn access_code(
        &self,
        entry: &KeyEntry,
        state: &mut KeyState,
        request: &VerifyRequest<'_>,
        t: i64,
        verdict: &mut Verdict,
    ) -> Code {
        // The resolved model is reported (and logged with a denial) whatever check denies.
        if let Some(asked) = request.model {
            let model = state
                .record
                .aliases
                .get(asked)
                .map_or(asked, String::as_str);
            verdict.model = Some(model.to_owned());
        }
        match state.status_at(t) {
            Status::Active => {}
            Status::Revoked => return Code::Revoked,
            Status::Disabled => return Code::Disabled,
            Status::Expired => {
                if !state.record.expired_notified {
                    // An expired key is past expiring too: that event would come too late.
                    state.record.expired_notified = true;
                    state.record.expiring_notified = true;
                    let writes = vec![
                        Write::Key(Box::new(state.record.clone())),
                        self.inner
                            .event(t, EventKind::Expired, Some(&entry.id), &entry.owner.name),
                    ];
                    self.inner.submit_quietly(writes);
                }
                return Code::Expired;
            }
        }
        if let Some(expires_at) = state.record.expires_at {
            let lead = duration_us(self.inner.options.expiring_lead);
            if !state.record.expiring_notified && expires_at.saturating_sub(t) <= lead {
                state.record.expiring_notified = true;
                let writes = vec![
                    Write::Key(Box::new(state.record.clone())),
                    self.inner
                        .event(t, EventKind::Expiring, Some(&entry.id), &entry.owner.name),
                ];
                self.inner.submit_quietly(writes);
            }
        }
        if request.env.is_some_and(|env| env != &*state.env) {
            return Code::EnvMismatch;
        }
        if let Some(allowed) = &state.ips {
            match request.ip {
                Some(ip) if allowed.iter().any(|net| net.contains(&normalize_ip(ip))) => {}
                _ => return Code::IpDenied,
            }
        }
        if let Some(scope) = request.scope
            && !state.record.scopes.iter().any(|s| s == scope)
        {
            return Code::ScopeDenied;
        }
        if let Some(asked) = request.model {
            let model = state
                .record
                .aliases
                .get(asked)
                .map_or(asked, String::as_str);
            if !key::model_is_well_formed(model) {
                return Code::ModelDenied;
            }
            if let Some(models) = &state.record.models
                && !models.iter().any(|p| key::model_matches(p, model))
            {
                return Code::ModelDenied;
            }
        }
        Code::Valid
    }

    /// Records what a request really used and settles its hold. Idempotent by request id.
    /// Delivered usage is always recorded, even past a limit.
    pub fn charge(&self, key_id: &str, usage: &Usage) -> Result<ChargeOutcome> {
        self.check_open()?;
        self.inner.follow()?;
        if let Some(model) = &usage.model
            && !key::model_is_well_formed(model)
        {
            return Err(Error::invalid(format!("invalid model name {model:?}")));
        }
        if let Some(endpoint) = &usage.endpoint {
            key::validate_text("endpoint", endpoint, 200)?;
        }
        if let Some(id) = &usage.request_id {
            if id.is_empty() {
                return Err(Error::invalid("request_id must not be empty"));
            }
            key::validate_text("request_id", id, 200)?;
        }
        usage
            .input_tokens
            .checked_add(usage.output_tokens)
            .ok_or_else(|| Error::invalid("input_tokens + output_tokens overflows"))?;
        let entry = self.entry(key_id)?;
        let now = self.now(usage.at);
        let fingerprint = format!(
            "{:?}|{:?}|{}|{}|{:?}",
            usage.model, usage.endpoint, usage.input_tokens, usage.output_tokens, usage.cost
        );
        let memo_key = usage
            .request_id
            .as_ref()
            .map(|id| format!("{key_id}\u{0}{id}"));
        let shard = memo_key.as_ref().map(|k| &self.inner.memos[memo_shard(k)]);
        let mut memos = shard.map(|s| s.lock());
        let mut first = match (memos.as_ref(), memo_key.as_ref()) {
            (Some(memos), Some(memo_key)) => memos.get(memo_key).map(|(memo, seq)| {
                let same = memo.fingerprint == fingerprint;
                (same, memo.outcome.clone(), *seq)
            }),
            _ => None,
        };
        // Shared mode: the request id may have been charged by another process.
        if first.is_none()
            && self.inner.shared.is_some()
            && let Some(memo_key) = &memo_key
            && let Some(memo) = self.inner.stored_memo(memo_key)?
        {
            first = Some((memo.fingerprint == fingerprint, memo.outcome, 0));
        }
        if let Some((same, outcome, seq)) = first {
            drop(memos);
            if !same {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    format!(
                        "request id {:?} of key {key_id} was charged before with other amounts",
                        usage.request_id.as_deref().unwrap_or_default()
                    ),
                ));
            }
            // The first charge of this id may still be on its way to the disk: a replay
            // promises no more than the first call did.
            if self.inner.options.durability == Durability::Durable {
                self.inner.pipeline.wait(seq)?;
            }
            return Ok(ChargeOutcome {
                replayed: true,
                ..outcome
            });
        }

        let gate = self.inner.pipeline.gate.read();
        let mut state_guard = entry.state.lock();
        let state = &mut *state_guard;
        let model = usage.model.as_deref().map(|m| {
            state
                .record
                .aliases
                .get(m)
                .map_or(m, String::as_str)
                .to_owned()
        });
        let (cost, priced) = match (usage.cost, &model) {
            (Some(cost), _) => (cost, true),
            (None, Some(model)) => match self.inner.prices.read().get(model) {
                Some(price) => (price.cost(usage.input_tokens, usage.output_tokens)?, true),
                None => (0, false),
            },
            (None, None) => (0, usage.input_tokens == 0 && usage.output_tokens == 0),
        };
        // The hold is taken only now that the charge's input is known to be good: a rejected
        // charge leaves it outstanding, to be settled or released later.
        let hold = match usage.hold_id {
            Some(id) => {
                let mut holds = self.inner.holds.lock();
                match holds.get(&id) {
                    Some(h) if !Arc::ptr_eq(&h.key, &entry) => {
                        return Err(Error::invalid(format!(
                            "hold {id} belongs to another key than {key_id}"
                        )));
                    }
                    _ => holds.remove(&id),
                }
            }
            None => None,
        };
        let mut owner_guard = entry.owner.state.lock();
        let owner = &mut *owner_guard;
        let t = state.ledger.advance(now);
        let t_owner = owner.ledger.advance(now);
        let amounts = (usage.input_tokens, usage.output_tokens, cost);
        let key_crossings = state.ledger.apply_usage(
            &state.limits,
            t,
            amounts,
            hold.as_ref().map(|h| &h.on_key),
        )?;
        let owner_crossings = owner.ledger.apply_usage(
            &owner.limits,
            t_owner,
            amounts,
            hold.as_ref().map(|h| &h.on_owner),
        )?;
        let mut exceeded = Vec::new();
        for index in 0..state.limits.len() {
            if state.ledger.is_exceeded(&state.limits, index, t) {
                exceeded.extend(state.ledger.status_of(&state.limits, Level::Key, index, t));
            }
        }
        for index in 0..owner.limits.len() {
            if owner.ledger.is_exceeded(&owner.limits, index, t_owner) {
                exceeded.extend(owner.ledger.status_of(
                    &owner.limits,
                    Level::Owner,
                    index,
                    t_owner,
                ));
            }
        }
        let mut writes = Vec::with_capacity(4);
        // In the shared mode the shared counters fire the alerts, when the charge settles.
        if self.inner.shared.is_none() {
            let crossings = (key_crossings, owner_crossings);
            self.inner
                .crossing_events(&entry, state, owner, t, crossings, &mut writes);
        }
        let held = self.inner.shared.as_ref().map(|_| {
            let on_key = hold.as_ref().map(|h| &h.on_key);
            let on_owner = hold.as_ref().map(|h| &h.on_owner);
            (
                state.ledger.charge_slices(&state.limits, amounts, on_key),
                owner.ledger.charge_slices(&owner.limits, amounts, on_owner),
            )
        });
        // Only a named model can be unpriced; tokens without a model or a cost are recorded
        // at zero cost (`priced` says so) without an event.
        if !priced && model.is_some() {
            let mut event =
                self.inner
                    .event_record(t, EventKind::Unpriced, Some(&entry.id), &entry.owner.name);
            event.model = model.clone();
            writes.push(Write::Event(Box::new(event)));
        }
        let record = UsageRecord {
            at: timestamp(t),
            key_id: key_id.to_owned(),
            owner: entry.owner.name.to_string(),
            env: state.record.env.clone(),
            model,
            endpoint: usage.endpoint.clone(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost,
            request_id: usage.request_id.clone(),
            outcome: CHARGED.to_owned(),
        };
        drop(owner_guard);
        drop(state_guard);
        let outcome = ChargeOutcome {
            key_id: key_id.to_owned(),
            cost,
            priced,
            exceeded,
            replayed: false,
        };
        let memo = memo_key.as_ref().map(|k| {
            (
                k.clone(),
                ChargeMemo {
                    fingerprint: fingerprint.clone(),
                    at: t,
                    outcome: outcome.clone(),
                },
            )
        });
        if let Some((k, m)) = &memo {
            writes.push(Write::Memo(k.clone(), Box::new(m.clone())));
        }
        let usage_seq = self.inner.next_usage.fetch_add(1, Ordering::Relaxed);
        writes.push(Write::Usage(usage_seq, Box::new(record)));
        let apply = Apply {
            key_id: key_id.to_owned(),
            at: t,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost,
            held,
        };
        let durable = self.inner.options.durability == Durability::Durable;
        let seq = self
            .inner
            .pipeline
            .submit(&self.inner.keys, writes, Some(apply), durable)?;
        self.inner.mark_dirty(&entry);
        drop(gate);
        // Remembered before the wait, so that concurrent callers do not queue behind this
        // request id's lock for a whole commit; a replay waits for the same commit.
        if let (Some(memos), Some((k, m))) = (memos.as_mut(), memo) {
            memos.insert(k, (m, seq));
        }
        drop(memos);
        if durable {
            self.inner.pipeline.wait(seq)?;
        } else {
            // Charges that outrun the commits wait for one, so that what `relaxed` can lose
            // stays about one flush interval and the queue stays bounded.
            self.inner.pipeline.throttle()?;
        }
        // Shared mode: another process may have charged the same request id at the same time
        // and committed first; then this charge was dropped from the commit, and the stored
        // one is the answer.
        if self.inner.shared.is_some()
            && let Some(memo_key) = &memo_key
            && let Some(stored) = self.inner.stored_memo(memo_key)?
            && stored.fingerprint != fingerprint
        {
            self.inner.memos[memo_shard(memo_key)]
                .lock()
                .insert(memo_key.clone(), (stored, 0));
            return Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "request id {:?} of key {key_id} was charged by another process at the same \
                     time with other amounts",
                    usage.request_id.as_deref().unwrap_or_default()
                ),
            ));
        }
        Ok(outcome)
    }

    /// Gives a hold back (the request failed), at the vault's clock time. Returns whether the
    /// hold was still outstanding.
    pub fn release(&self, hold_id: u64) -> Result<bool> {
        self.release_at(hold_id, None)
    }

    /// Gives a hold back at `at` (the vault's clock when `None`), for replays and tests that
    /// drive time themselves. Returns whether the hold was still outstanding.
    pub fn release_at(&self, hold_id: u64, at: Option<Timestamp>) -> Result<bool> {
        self.check_open()?;
        let Some(hold) = self.inner.holds.lock().remove(&hold_id) else {
            return Ok(false);
        };
        self.inner.release_hold(hold, self.now(at));
        Ok(true)
    }

    /// Runs the periodic work now, at `at`: gives back expired holds and fires expiring and
    /// expired events. The commit thread does this on its own at the vault's clock time, but
    /// expires only holds placed at that clock's time; replays and tests that pass explicit
    /// times call `tick` to expire theirs.
    pub fn tick(&self, at: Option<Timestamp>) -> Result<()> {
        self.check_open()?;
        let t = self.now(at);
        self.inner.expire_holds(t, true);
        self.inner.scan_expiry(t);
        Ok(())
    }

    /// The state of every limit of a key and of its owner at `at` (default now).
    pub fn remaining(&self, key_id: &str, at: Option<Timestamp>) -> Result<Remaining> {
        self.check_open()?;
        self.inner.follow()?;
        let entry = self.entry(key_id)?;
        let now = self.now(at);
        let state = entry.state.lock();
        let owner = entry.owner.state.lock();
        let mut remaining = Remaining::default();
        let t = now.max(state.ledger.last_seen);
        let t_owner = now.max(owner.ledger.last_seen);
        fill_remaining(&state, &owner, t, t_owner, &mut remaining);
        Ok(remaining)
    }

    // ---- owners -----------------------------------------------------------------------

    /// Sets an owner's limits (shared by all its keys), creating the owner if needed.
    pub fn set_owner_policy(&self, owner: &str, limits: &[Limit], ctx: &Context) -> Result<()> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        key::validate_owner(owner)?;
        let compiled = CompiledLimit::compile_all(limits)?;
        let (entry, created) = self.inner.owner_entry(owner)?;
        let _gate = self.inner.pipeline.gate.read();
        let mut state = entry.state.lock();
        let mine = state.ledger.own_leases();
        let old = std::mem::replace(&mut state.limits, compiled);
        let OwnerState {
            ledger,
            limits: new,
            ..
        } = &mut *state;
        ledger.relimit(&old, new);
        let before = std::mem::replace(&mut state.record.limits, limits.to_vec());
        let row = ledger_row(Level::Owner, owner);
        let writes = vec![
            Write::Owner(state.record.clone()),
            match self.inner.shared {
                Some(_) => Write::Relimit(row, before, limits.to_vec(), mine),
                None => Write::Ledger(row, state.ledger.clone()),
            },
        ];
        drop(state);
        drop(_gate);
        let detail = serde_json::json!({ "limits": limits, "created": created });
        self.commit_admin(ctx, "set_owner_policy", owner, detail, writes)
    }

    /// Sets the limits given to an owner when it first appears (existing owners keep theirs).
    pub fn set_default_owner_policy(&self, limits: &[Limit], ctx: &Context) -> Result<()> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        CompiledLimit::compile_all(limits)?;
        let value = serde_json::to_value(limits).map_err(|e| Error::invalid(e.to_string()))?;
        *self.inner.default_owner_limits.write() = limits.to_vec();
        let writes = vec![Write::Meta(
            "default_owner_policy".to_owned(),
            value.clone(),
        )];
        let detail = serde_json::json!({ "limits": value });
        self.commit_admin(ctx, "set_default_owner_policy", "default", detail, writes)
    }

    /// The limits a new owner gets.
    pub fn default_owner_policy(&self) -> Vec<Limit> {
        self.inner.default_owner_limits.read().clone()
    }

    /// An owner's limits and their state.
    pub fn owner(&self, owner: &str) -> Result<OwnerInfo> {
        self.check_open()?;
        self.inner.follow()?;
        let entry = self
            .inner
            .owners
            .read()
            .get(owner)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("no owner {}", shown(owner))))?;
        let keys = self
            .inner
            .by_id
            .read()
            .values()
            .filter(|e| Arc::ptr_eq(&e.owner, &entry))
            .count();
        let state = entry.state.lock();
        let t = self.now(None).max(state.ledger.last_seen);
        let mut remaining = Remaining::default();
        let mut statuses = Vec::new();
        state
            .ledger
            .statuses(&state.limits, Level::Owner, t, &mut statuses);
        for status in statuses {
            remaining.add(status);
        }
        Ok(OwnerInfo {
            owner: owner.to_owned(),
            limits: state.record.limits.clone(),
            keys: keys as u64,
            remaining,
        })
    }

    /// Every owner's name, sorted.
    pub fn owners(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .owners
            .read()
            .keys()
            .map(|k| k.to_string())
            .collect();
        names.sort();
        names
    }

    // ---- prices -----------------------------------------------------------------------

    /// Sets (or with `None` removes) a model's price.
    pub fn set_price(&self, model: &str, price: Option<Price>, ctx: &Context) -> Result<()> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        if !key::model_is_well_formed(model) {
            return Err(Error::invalid(format!("invalid model name {model:?}")));
        }
        match price {
            Some(p) => self.inner.prices.write().insert(model.to_owned(), p),
            None => self.inner.prices.write().remove(model),
        };
        let writes = vec![Write::Price(model.to_owned(), price)];
        let detail = serde_json::json!({ "price": price });
        self.commit_admin(ctx, "set_price", model, detail, writes)
    }

    /// Imports LiteLLM's price JSON, converting each price once, exactly, to integer
    /// micro-units per million tokens.
    pub fn import_prices(&self, litellm_json: &str, ctx: &Context) -> Result<PriceImport> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        let import = prices::parse_litellm(litellm_json)?;
        let mut writes = Vec::with_capacity(import.prices.len());
        {
            let mut table = self.inner.prices.write();
            for (model, price) in &import.prices {
                table.insert(model.clone(), *price);
                writes.push(Write::Price(model.clone(), Some(*price)));
            }
        }
        let report = PriceImport {
            imported: import.prices.len() as u64,
            skipped: import.skipped,
            rounded: import.rounded,
        };
        let detail = serde_json::json!({
            "imported": report.imported,
            "skipped": report.skipped.len(),
            "rounded": report.rounded.len(),
        });
        self.commit_admin(ctx, "import_prices", "litellm", detail, writes)?;
        Ok(report)
    }

    /// A model's price.
    pub fn price(&self, model: &str) -> Option<Price> {
        self.inner.prices.read().get(model).copied()
    }

    /// Every price, by model.
    pub fn prices(&self) -> BTreeMap<String, Price> {
        self.inner
            .prices
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    // ---- reports ----------------------------------------------------------------------

    /// Sums of the usage log, filtered, grouped and bucketed.
    pub fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        self.check_open()?;
        self.inner.follow()?;
        let mut report = Report::new(query)?;
        self.scan_usage(query, |at, record| report.add(at, record))?;
        Ok(report.finish())
    }

    /// The usage log's records, filtered, oldest first, at most `limit` of them.
    pub fn usage_records(&self, query: &UsageQuery, limit: usize) -> Result<Vec<UsageRecord>> {
        self.check_open()?;
        self.inner.follow()?;
        query.validate()?;
        let mut out = Vec::new();
        self.scan_usage(query, |_, record| {
            if out.len() < limit && query.matches(record) {
                out.push(record.clone());
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn scan_usage(
        &self,
        query: &UsageQuery,
        mut each: impl FnMut(i64, &UsageRecord) -> Result<()>,
    ) -> Result<()> {
        self.inner.pipeline.sync(&self.inner.keys)?;
        let from = query.from.map_or(0, |t| store::time_key(micros(t)));
        let to = query.to.map_or(u64::MAX, |t| store::time_key(micros(t)));
        let db = self.inner.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let txn = db.begin_read()?;
        let table = txn.open_table(store::USAGE)?;
        for row in table.range((from, 0)..(to, 0))? {
            let (key, value) = row?;
            let (time, seq) = key.value();
            let row_key = usage_row_key(time, seq);
            let record: UsageRecord =
                store::open(&self.inner.keys, "usage", &row_key, value.value())?;
            each(store::time_from_key(time), &record)?;
        }
        Ok(())
    }

    /// Events after `after_seq`, oldest first, at most `limit`.
    pub fn events(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>> {
        self.check_open()?;
        self.inner.follow()?;
        self.inner.pipeline.sync(&self.inner.keys)?;
        let db = self.inner.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let txn = db.begin_read()?;
        let table = txn.open_table(store::EVENTS)?;
        let mut out = Vec::new();
        for row in table.range(after_seq.saturating_add(1)..)?.take(limit) {
            let (key, value) = row?;
            out.push(store::open(
                &self.inner.keys,
                "events",
                &key.value().to_be_bytes(),
                value.value(),
            )?);
        }
        Ok(out)
    }

    /// The sequence number of the newest event (0 when there is none).
    pub fn last_event_seq(&self) -> Result<u64> {
        self.check_open()?;
        self.inner.pipeline.sync(&self.inner.keys)?;
        let db = self.inner.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let txn = db.begin_read()?;
        let table = txn.open_table(store::EVENTS)?;
        Ok(table.last()?.map_or(0, |(key, _)| key.value()))
    }

    /// Calls `callback` with every event committed from now on, on the commit thread (keep
    /// it short; it must not call back into this vault's writing methods). Returns an id for
    /// `unsubscribe`.
    pub fn subscribe(&self, callback: impl Fn(&Event) + Send + Sync + 'static) -> u64 {
        let id = self.inner.next_subscriber.fetch_add(1, Ordering::Relaxed);
        self.inner.subscribers.lock().push((id, Arc::new(callback)));
        id
    }

    /// Stops a subscription; returns whether it existed.
    pub fn unsubscribe(&self, id: u64) -> bool {
        let mut subscribers = self.inner.subscribers.lock();
        let before = subscribers.len();
        subscribers.retain(|(sid, _)| *sid != id);
        subscribers.len() != before
    }

    /// Audit records after `after_seq`, oldest first, at most `limit`.
    pub fn audit(&self, after_seq: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        self.check_open()?;
        self.inner.follow()?;
        self.inner.pipeline.sync(&self.inner.keys)?;
        let db = self.inner.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let txn = db.begin_read()?;
        let table = txn.open_table(store::AUDIT)?;
        let mut out = Vec::new();
        for row in table.range(after_seq.saturating_add(1)..)?.take(limit) {
            let (key, value) = row?;
            out.push(store::open(
                &self.inner.keys,
                "audit",
                &key.value().to_be_bytes(),
                value.value(),
            )?);
        }
        Ok(out)
    }

    /// Checks the audit chain: every record present from 1 to the last, each hash chained to
    /// the one before, and the last one matching the head kept in the header.
    pub fn verify_audit(&self) -> Result<AuditCheck> {
        self.check_open()?;
        self.inner.follow()?;
        self.inner.pipeline.sync(&self.inner.keys)?;
        let head = *self.inner.audit_head.lock();
        let db = self.inner.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let txn = db.begin_read()?;
        let table = txn.open_table(store::AUDIT)?;
        let mut previous = [0u8; 32];
        let mut records = 0;
        let bad = |seq: u64, why: String, records| {
            Ok(AuditCheck {
                records,
                ok: false,
                first_bad: Some((seq, why)),
            })
        };
        for (expected, row) in (1u64..).zip(table.iter()?) {
            let (key, value) = row?;
            let seq = key.value();
            if seq != expected {
                return bad(expected, format!("record {expected} is missing"), records);
            }
            let record: AuditRecord =
                match store::open(&self.inner.keys, "audit", &seq.to_be_bytes(), value.value()) {
                    Ok(r) => r,
                    Err(err) => return bad(seq, err.message().to_owned(), records),
                };
            let hash = record.chain_hash(&previous);
            if record.seq != seq || hex(&hash) != record.hash {
                return bad(seq, format!("record {seq} was altered"), records);
            }
            previous = hash;
            records += 1;
        }
        if records < head.0 {
            let first = records + 1;
            return bad(
                first,
                format!("records {first} to {} are missing", head.0),
                records,
            );
        }
        if head.0 > 0 && head.1 != previous {
            return bad(
                head.0,
                format!("record {} does not match the head", head.0),
                records,
            );
        }
        Ok(AuditCheck {
            records,
            ok: true,
            first_bad: None,
        })
    }

    /// Counts of keys, owners, holds and refused garbage.
    pub fn stats(&self) -> Stats {
        Stats {
            keys: self.inner.by_id.read().len() as u64,
            owners: self.inner.owners.read().len() as u64,
            malformed: self.inner.malformed.load(Ordering::Relaxed),
            not_found: self.inner.not_found.load(Ordering::Relaxed),
            holds: self.inner.holds.lock().len() as u64,
            corrupt_keys: self.inner.corrupt_keys.read().len() as u64,
        }
    }

    /// Re-seals the data key under a new passphrase or raw key (with fresh salt and the
    /// given KDF parameters). Only the header changes.
    pub fn rekey(&self, unlock: &Unlock, kdf: crypto::KdfParams, ctx: &Context) -> Result<()> {
        self.check_open()?;
        let _admin = self.inner.admin_guard()?;
        let salt: [u8; 16] = crypto::random_bytes()?;
        let kek = unlock.derive_kek(&kdf, &salt)?;
        let sealed = crypto::seal_dek(&kek, &self.inner.dek)?;
        let mut header = self.inner.header.lock().clone();
        header.kdf = kdf;
        header.salt = salt.to_vec();
        header.sealed_dek = sealed;
        header.unlock = unlock.kind().to_owned();
        self.inner.pipeline.sync(&self.inner.keys)?;
        {
            let db = self.inner.db.read();
            store::write_header(db.as_ref().ok_or_else(closed)?, &header)?;
        }
        *self.inner.header.lock() = header;
        let detail = serde_json::json!({ "unlock": unlock.kind() });
        self.commit_admin(ctx, "rekey", "vault", detail, vec![])
    }

    /// Waits until everything done so far is committed.
    pub fn flush(&self) -> Result<()> {
        self.check_open()?;
        self.inner.pipeline.sync(&self.inner.keys)
    }

    fn commit_admin(
        &self,
        ctx: &Context,
        action: &str,
        target: &str,
        detail: serde_json::Value,
        mut writes: Vec<Write>,
    ) -> Result<()> {
        let t = self.now(ctx.at);
        let mut head = self.inner.audit_head.lock();
        let mut record = AuditRecord {
            seq: head.0 + 1,
            at: timestamp(t),
            action: action.to_owned(),
            target: target.to_owned(),
            actor: ctx.actor.clone(),
            detail,
            hash: String::new(),
        };
        let hash = record.chain_hash(&head.1);
        record.hash = hex(&hash);
        writes.push(Write::Audit(Box::new(record)));
        writes.push(Write::Meta(
            "audit_head".to_owned(),
            serde_json::json!({ "seq": head.0 + 1, "hash": hex(&hash) }),
        ));
        let change = self.inner.change_write(&writes);
        let generation = change.as_ref().map(|(g, _)| *g);
        writes.extend(change.map(|(_, w)| w));
        let seq = self
            .inner
            .pipeline
            .submit(&self.inner.keys, writes, None, true)?;
        *head = (head.0 + 1, hash);
        drop(head);
        self.inner.pipeline.wait(seq)?;
        if let Some(generation) = generation
            && let Err(err) = self.inner.publish(generation)
        {
            // The change is committed; the other processes see it with the next one.
            log::warn!("cannot announce change {generation} to other processes: {err}");
        }
        Ok(())
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        if let Err(err) = self.close() {
            log::warn!("closing {} failed: {err}", self.inner.path.display());
        }
    }
}

/// Shared mode: admits a request whose slices cover it (one request and its hold, taken out of
/// the slices). The shared counters fire the alerts, when leases and charges reach them, so
/// the crossings of this process's view are dropped.
fn admit_shared(
    state: &mut KeyState,
    owner: &mut OwnerState,
    t: i64,
    t_owner: i64,
    hold: &HoldAmounts,
) -> (Reservation, Reservation, Remaining) {
    let (on_key, _) = state.ledger.admit(&state.limits, t, hold);
    let (on_owner, _) = owner.ledger.admit(&owner.limits, t_owner, hold);
    state.ledger.take_slices(&state.limits, hold);
    owner.ledger.take_slices(&owner.limits, hold);
    let mut remaining = Remaining::default();
    fill_remaining(state, owner, t, t_owner, &mut remaining);
    (on_key, on_owner, remaining)
}

fn fill_remaining(
    key: &KeyState,
    owner: &OwnerState,
    t: i64,
    t_owner: i64,
    remaining: &mut Remaining,
) {
    // Gathered where the verdict keeps them: one allocation on the verify path.
    let mut statuses = std::mem::take(&mut remaining.limits);
    statuses.reserve_exact(key.limits.len() + owner.limits.len());
    key.ledger
        .statuses(&key.limits, Level::Key, t, &mut statuses);
    owner
        .ledger
        .statuses(&owner.limits, Level::Owner, t_owner, &mut statuses);
    for status in &statuses {
        remaining.lower(status);
    }
    remaining.limits = statuses;
}

/// Quotes a caller's text for an error message. Text shaped like a secret (a secret passed
/// where a key id was expected) is never echoed, and long text is cut.
fn shown(text: &str) -> String {
    if secret::check_shape(text).is_some() {
        return "(the text given is a secret, not a key id; it is not shown)".to_owned();
    }
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// Refuses intervals that would make the commit thread spin (a zero flush interval) or
/// release every hold at once (a zero hold timeout).
fn check_options(options: &Options) -> Result<()> {
    if options.concurrency == Concurrency::Shared && options.durability != Durability::Durable {
        return Err(Error::invalid(format!(
            "durability {} cannot be used with concurrency shared: in that mode every commit \
             is durable (fsynced), so the level must be durable",
            options.durability.as_str()
        )));
    }
    if options.lease_timeout < Duration::from_millis(10) {
        return Err(Error::invalid("the lease timeout must be at least 10 ms"));
    }
    if options.flush_interval < Duration::from_millis(1) {
        return Err(Error::invalid("the flush interval must be at least 1 ms"));
    }
    if options.hold_timeout < Duration::from_millis(1) {
        return Err(Error::invalid("the hold timeout must be at least 1 ms"));
    }
    Ok(())
}

/// The longest rotation grace period: an old secret that works for longer than a year is not
/// a grace period but a second key, and a huge value would be cut at the end of time.
const MAX_GRACE: Duration = Duration::from_secs(366 * 86_400);

fn check_grace(grace: Duration) -> Result<()> {
    if grace > MAX_GRACE {
        return Err(Error::invalid(
            "a rotation grace period is at most 366 days",
        ));
    }
    Ok(())
}

fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn memo_shard(key: &str) -> usize {
    (blake3::hash(key.as_bytes()).as_bytes()[0] as usize) % MEMO_SHARDS
}

fn usage_row_key(time: u64, seq: u64) -> [u8; 16] {
    let mut row = [0u8; 16];
    row[..8].copy_from_slice(&time.to_be_bytes());
    row[8..].copy_from_slice(&seq.to_be_bytes());
    row
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn diff(before: &serde_json::Value, after: &serde_json::Value) -> serde_json::Value {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return serde_json::Value::Null;
    };
    let changed: serde_json::Map<_, _> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v) && *k != "updated_at")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::Value::Object(changed)
}

fn validate_scopes(scopes: &[String]) -> Result<()> {
    if scopes.len() > key::MAX_LIST_LEN {
        return Err(Error::invalid("too many scopes"));
    }
    for scope in scopes {
        if scope.is_empty() {
            return Err(Error::invalid("a scope must not be empty"));
        }
        key::validate_text("scope", scope, 200)?;
    }
    Ok(())
}

fn validate_models(models: Option<&[String]>, aliases: &BTreeMap<String, String>) -> Result<()> {
    if let Some(models) = models {
        if models.len() > key::MAX_LIST_LEN {
            return Err(Error::invalid("too many models"));
        }
        for pattern in models {
            key::validate_model_pattern(pattern)?;
        }
    }
    if aliases.len() > key::MAX_LIST_LEN {
        return Err(Error::invalid("too many aliases"));
    }
    for (alias, target) in aliases {
        if !key::model_is_well_formed(alias) || !key::model_is_well_formed(target) {
            return Err(Error::invalid(format!(
                "invalid alias {alias:?} -> {target:?}"
            )));
        }
    }
    Ok(())
}

fn validate_metadata(metadata: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let size = serde_json::to_vec(metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > 16 * 1024 {
        return Err(Error::invalid("metadata is larger than 16 KiB"));
    }
    Ok(())
}

impl Inner {
    fn now(&self, at: Option<Timestamp>) -> i64 {
        match at {
            Some(at) => micros(at),
            None => match &self.options.clock {
                Some(clock) => micros(clock()),
                None => micros(Timestamp::now()),
            },
        }
    }

    /// Finds or creates an owner; a new owner gets the default owner policy. Returns whether
    /// it was created.
    fn owner_entry(&self, owner: &str) -> Result<(Arc<OwnerEntry>, bool)> {
        if let Some(entry) = self.owners.read().get(owner) {
            return Ok((entry.clone(), false));
        }
        let mut owners = self.owners.write();
        if let Some(entry) = owners.get(owner) {
            return Ok((entry.clone(), false));
        }
        let limits = self.default_owner_limits.read().clone();
        let record = OwnerRecord {
            owner: owner.to_owned(),
            limits,
        };
        let name: Arc<str> = Arc::from(owner);
        let entry = Arc::new(OwnerEntry {
            name: name.clone(),
            dirty: AtomicBool::new(false),
            state: Mutex::new(OwnerState::new(record)?),
        });
        owners.insert(name, entry.clone());
        Ok((entry, true))
    }

    fn event_record(&self, t: i64, kind: EventKind, key_id: Option<&str>, owner: &str) -> Event {
        Event {
            seq: self.next_event.fetch_add(1, Ordering::Relaxed),
            at: timestamp(t),
            kind,
            key_id: key_id.map(str::to_owned),
            owner: Some(owner.to_owned()),
            percent: None,
            limit: None,
            model: None,
        }
    }

    fn event(&self, t: i64, kind: EventKind, key_id: Option<&str>, owner: &str) -> Write {
        Write::Event(Box::new(self.event_record(t, kind, key_id, owner)))
    }

    fn crossing_events(
        &self,
        entry: &KeyEntry,
        key: &KeyState,
        owner: &OwnerState,
        t: i64,
        (key_crossings, owner_crossings): (Vec<Crossing>, Vec<Crossing>),
        writes: &mut Vec<Write>,
    ) {
        let lists = [(Level::Key, key_crossings), (Level::Owner, owner_crossings)];
        for (level, crossings) in lists {
            for crossing in crossings {
                let kind = if crossing.percent.is_some() {
                    EventKind::Threshold
                } else {
                    EventKind::Exhausted
                };
                let key_id = (level == Level::Key).then_some(&*entry.id);
                let mut event = self.event_record(t, kind, key_id, &entry.owner.name);
                event.percent = crossing.percent;
                event.limit = match level {
                    Level::Key => key.ledger.status_of(&key.limits, level, crossing.index, t),
                    Level::Owner => owner
                        .ledger
                        .status_of(&owner.limits, level, crossing.index, t),
                };
                writes.push(Write::Event(Box::new(event)));
            }
        }
    }

    fn mark_dirty(&self, entry: &Arc<KeyEntry>) {
        // The loads spare a verify of a key that is already dirty a write to a shared line.
        if !entry.dirty.load(Ordering::Acquire) && !entry.dirty.swap(true, Ordering::AcqRel) {
            self.dirty.lock().push(Dirty::Key(entry.clone()));
        }
        let owner = &entry.owner.dirty;
        if !owner.load(Ordering::Acquire) && !owner.swap(true, Ordering::AcqRel) {
            self.dirty.lock().push(Dirty::Owner(entry.owner.clone()));
        }
    }

    /// Queues writes that no caller waits for (events of verify, denial records).
    fn submit_quietly(&self, writes: Vec<Write>) {
        if let Err(err) = self.pipeline.submit(&self.keys, writes, None, false) {
            log::warn!("cannot queue a record: {err}");
        }
    }

    fn log_denial(&self, entry: &KeyEntry, verdict: &Verdict, t: i64) {
        let record = UsageRecord {
            at: timestamp(t),
            key_id: entry.id.to_string(),
            owner: entry.owner.name.to_string(),
            env: verdict.env.as_deref().unwrap_or_default().to_owned(),
            model: verdict.model.clone(),
            endpoint: None,
            input_tokens: 0,
            output_tokens: 0,
            cost: 0,
            request_id: None,
            outcome: verdict.code.as_str().to_owned(),
        };
        let seq = self.next_usage.fetch_add(1, Ordering::Relaxed);
        self.submit_paced(vec![Write::Usage(seq, Box::new(record))]);
    }

    /// Like `submit_quietly`, then waits for a commit if the queue is too long: a flood of
    /// verifies is slowed to the pace of the commits instead of growing the queue. Call it with
    /// no lock held, never from the commit thread.
    fn submit_paced(&self, writes: Vec<Write>) {
        self.submit_quietly(writes);
        if let Err(err) = self.pipeline.throttle() {
            log::debug!("cannot wait for a commit: {err}");
        }
    }

    fn release_hold(&self, hold: Hold, now: i64) {
        let mut state = hold.key.state.lock();
        let t = state.ledger.advance(now);
        let KeyState { ledger, limits, .. } = &mut *state;
        ledger.release(limits, t, &hold.on_key);
        let mut owner = hold.key.owner.state.lock();
        let t_owner = owner.ledger.advance(now);
        let OwnerState { ledger, limits, .. } = &mut *owner;
        ledger.release(limits, t_owner, &hold.on_owner);
        drop(owner);
        drop(state);
        self.mark_dirty(&hold.key);
    }

    /// Gives back the holds expired at `t`; only those placed at the vault's clock time unless
    /// `explicit_too`.
    fn expire_holds(&self, t: i64, explicit_too: bool) {
        let expired: Vec<Hold> = {
            let mut holds = self.holds.lock();
            let ids: Vec<u64> = holds
                .iter()
                .filter(|(_, h)| h.expires_at <= t && (explicit_too || h.by_clock))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| holds.remove(&id)).collect()
        };
        for hold in expired {
            self.release_hold(hold, t);
        }
    }

    /// Fires expiring and expired events for keys that no verify has touched.
    fn scan_expiry(&self, t: i64) {
        let lead = duration_us(self.options.expiring_lead);
        let entries: Vec<_> = self.by_id.read().values().cloned().collect();
        for entry in entries {
            let mut state = entry.state.lock();
            let Some(expires_at) = state.record.expires_at else {
                continue;
            };
            if state.record.revoked {
                continue;
            }
            let mut writes = Vec::new();
            if t >= expires_at && !state.record.expired_notified {
                state.record.expired_notified = true;
                state.record.expiring_notified = true;
                writes.push(self.event(t, EventKind::Expired, Some(&entry.id), &entry.owner.name));
            } else if t < expires_at
                && expires_at.saturating_sub(t) <= lead
                && !state.record.expiring_notified
            {
                state.record.expiring_notified = true;
                writes.push(self.event(t, EventKind::Expiring, Some(&entry.id), &entry.owner.name));
            }
            if !writes.is_empty() {
                writes.push(Write::Key(Box::new(state.record.clone())));
                drop(state);
                self.submit_quietly(writes);
            }
        }
    }

    /// Loads keys, owners, ledgers, prices, the default owner policy and the audit head.
    fn load(&self) -> Result<()> {
        let db = self.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let keys = &self.keys;

        if let Some(limits) =
            store::read_sealed_meta::<Vec<Limit>>(db, keys, "default_owner_policy")?
        {
            *self.default_owner_limits.write() = limits;
        }
        if let Some(head) = store::read_sealed_meta::<serde_json::Value>(db, keys, "audit_head")? {
            let seq = head["seq"].as_u64().unwrap_or(0);
            let hash = head["hash"]
                .as_str()
                .and_then(parse_hex32)
                .unwrap_or([0; 32]);
            *self.audit_head.lock() = (seq, hash);
        }
        let ledgers: HashMap<String, Ledger> = store::load_all::<Ledger>(db, keys, store::LEDGERS)?
            .into_iter()
            .filter_map(|(row, ledger)| match ledger {
                Ok(l) => Some((row, l)),
                Err(err) => {
                    log::warn!("{err}; its counters start from zero");
                    None
                }
            })
            .collect();

        let mut owners = self.owners.write();
        for (name, record) in store::load_all::<OwnerRecord>(db, keys, store::OWNERS)? {
            let record = match record {
                Ok(r) => r,
                Err(err) => {
                    log::warn!("{err}; the owner has no limits until set again");
                    OwnerRecord {
                        owner: name.clone(),
                        limits: Vec::new(),
                    }
                }
            };
            let mut state = OwnerState::new(record)?;
            let mut given_back = false;
            if let Some(ledger) = ledgers.get(&ledger_row(Level::Owner, &name))
                && ledger.counters.len() == state.limits.len()
            {
                state.ledger = ledger.clone();
                given_back = self.settle_leases(&mut state.ledger, &state.limits)?;
            }
            let name: Arc<str> = Arc::from(name.as_str());
            let entry = Arc::new(OwnerEntry {
                name: name.clone(),
                dirty: AtomicBool::new(given_back),
                state: Mutex::new(state),
            });
            if given_back {
                self.dirty.lock().push(Dirty::Owner(entry.clone()));
            }
            owners.insert(name, entry);
        }
        drop(owners);

        let mut by_digest = self.by_digest.write();
        let mut by_id = self.by_id.write();
        let mut corrupt = self.corrupt_keys.write();
        for (id, record) in store::load_all::<KeyRecord>(db, keys, store::KEYS)? {
            let state = match record.and_then(KeyState::compile) {
                Ok(state) => state,
                Err(err) => {
                    log::warn!("key {id}: {err}");
                    corrupt.insert(
                        id.clone(),
                        Error::corrupt(format!("key {id}: {}", err.message())),
                    );
                    continue;
                }
            };
            let mut state = state;
            let mut given_back = false;
            if let Some(ledger) = ledgers.get(&ledger_row(Level::Key, &id))
                && ledger.counters.len() == state.limits.len()
            {
                state.ledger = ledger.clone();
                given_back = self.settle_leases(&mut state.ledger, &state.limits)?;
            }
            let (owner, _) = self.owner_entry(&state.record.owner)?;
            let digests: Vec<[u8; 32]> = state.record.digests.iter().map(|d| d.digest).collect();
            let id: Arc<str> = Arc::from(id.as_str());
            let entry = Arc::new(KeyEntry {
                id: id.clone(),
                owner,
                dirty: AtomicBool::new(given_back),
                state: Mutex::new(state),
            });
            if given_back {
                self.dirty.lock().push(Dirty::Key(entry.clone()));
            }
            for digest in digests {
                by_digest.insert(digest, entry.clone());
            }
            by_id.insert(id, entry);
        }
        drop((by_digest, by_id, corrupt));

        let mut prices = self.prices.write();
        for (model, price) in store::load_all::<Price>(db, keys, store::PRICES)? {
            match price {
                Ok(p) => {
                    prices.insert(model, p);
                }
                Err(err) => log::warn!("{err}; the model is unpriced until set again"),
            }
        }
        drop(prices);

        let horizon = self
            .now(None)
            .saturating_sub(duration_us(self.options.idempotency_window));
        for (row, memo) in store::load_all::<ChargeMemo>(db, keys, store::CHARGES)? {
            match memo {
                Ok(memo) if memo.at >= horizon => {
                    self.memos[memo_shard(&row)].lock().insert(row, (memo, 0));
                }
                Ok(_) => {}
                Err(err) => log::warn!("{err}"),
            }
        }
        Ok(())
    }

    /// The leases a loaded ledger row holds. Exclusive mode: no other process runs, so every
    /// lease left by processes that shared the vault before is given back (returns true: the
    /// row must be written). Shared mode: the leases stay in the row, and this process's view
    /// starts without slices.
    fn settle_leases(&self, ledger: &mut Ledger, limits: &[CompiledLimit]) -> Result<bool> {
        if ledger.leases.is_empty() {
            return Ok(false);
        }
        if self.shared.is_some() {
            ledger.leases.clear();
            return Ok(false);
        }
        let t = self.now(None).max(ledger.last_seen);
        ledger.give_back_all(limits, t)?;
        Ok(true)
    }

    /// Redoes journal entries that the last durable commit did not contain, and queues them
    /// to be committed.
    fn replay(&self, entries: Vec<crate::pipeline::Entry>) -> Result<()> {
        let mut all = Vec::new();
        for entry in entries {
            for write in &entry.writes {
                self.replay_write(write)?;
            }
            let applied = entry.apply.as_ref().and_then(|apply| {
                let key = self.by_id.read().get(apply.key_id.as_str()).cloned();
                key.map(|key| (apply, key))
            });
            if let Some((apply, key)) = applied {
                let amounts = (apply.input_tokens, apply.output_tokens, apply.cost);
                let mut state = key.state.lock();
                let t = state.ledger.advance(apply.at);
                let KeyState { ledger, limits, .. } = &mut *state;
                ledger.apply_usage(limits, t, amounts, None)?;
                let mut owner = key.owner.state.lock();
                let t = owner.ledger.advance(apply.at);
                let OwnerState { ledger, limits, .. } = &mut *owner;
                ledger.apply_usage(limits, t, amounts, None)?;
                drop(owner);
                drop(state);
                self.mark_dirty(&key);
            }
            all.extend(entry.writes);
        }
        self.pipeline.submit(&self.keys, all, None, true)?;
        Ok(())
    }

    fn replay_write(&self, write: &Write) -> Result<()> {
        match write {
            Write::Key(record) => {
                let id = record.key_id.clone();
                let existing = self.by_id.read().get(id.as_str()).cloned();
                match existing {
                    Some(entry) => {
                        let mut state = entry.state.lock();
                        state.record = (**record).clone();
                        let digests: Vec<_> = record.digests.iter().map(|d| d.digest).collect();
                        drop(state);
                        let mut by_digest = self.by_digest.write();
                        for digest in digests {
                            by_digest.insert(digest, entry.clone());
                        }
                    }
                    None => {
                        let state = KeyState::compile((**record).clone())?;
                        let (owner, _) = self.owner_entry(&record.owner)?;
                        let key_id: Arc<str> = Arc::from(id.as_str());
                        let entry = Arc::new(KeyEntry {
                            id: key_id.clone(),
                            owner,
                            dirty: AtomicBool::new(false),
                            state: Mutex::new(state),
                        });
                        let mut by_digest = self.by_digest.write();
                        for digest in record.digests.iter().map(|d| d.digest) {
                            by_digest.insert(digest, entry.clone());
                        }
                        self.by_id.write().insert(key_id, entry);
                    }
                }
            }
            Write::Owner(record) => {
                let (entry, _) = self.owner_entry(&record.owner)?;
                let mut state = entry.state.lock();
                let compiled = CompiledLimit::compile_all(&record.limits)?;
                let old = std::mem::replace(&mut state.limits, compiled);
                let OwnerState { ledger, limits, .. } = &mut *state;
                ledger.relimit(&old, limits);
                state.record = record.clone();
            }
            Write::Price(model, price) => {
                match price {
                    Some(p) => self.prices.write().insert(model.clone(), *p),
                    None => self.prices.write().remove(model),
                };
            }
            Write::Usage(seq, _) => {
                self.next_usage.fetch_max(seq + 1, Ordering::Relaxed);
            }
            Write::Event(event) => {
                self.next_event.fetch_max(event.seq + 1, Ordering::Relaxed);
            }
            Write::Audit(record) => {
                let hash = parse_hex32(&record.hash).unwrap_or([0; 32]);
                let mut head = self.audit_head.lock();
                if record.seq > head.0 {
                    *head = (record.seq, hash);
                }
            }
            Write::Memo(row, memo) => {
                self.memos[memo_shard(row)]
                    .lock()
                    .insert(row.clone(), ((**memo).clone(), 0));
            }
            Write::Meta(name, value) if name == "default_owner_policy" => {
                if let Ok(limits) = serde_json::from_value::<Vec<Limit>>(value.clone()) {
                    *self.default_owner_limits.write() = limits;
                }
            }
            Write::Meta(..) | Write::Ledger(..) | Write::Relimit(..) | Write::Change(..) => {}
        }
        Ok(())
    }

    /// The commit thread.
    fn commit_loop(self: Arc<Inner>, mut leftover: Vec<PathBuf>) {
        loop {
            let have_dirty = !self.dirty.lock().is_empty() || self.renewal_due();
            let go = self.pipeline.wait_for_work(have_dirty);
            let now = self.now(None);
            self.expire_holds(now, false);
            let minute = 60_000_000;
            let last = self.last_expiry_scan.load(Ordering::Relaxed) as i64;
            if now.saturating_sub(last) >= minute {
                self.last_expiry_scan.store(now as u64, Ordering::Relaxed);
                self.scan_expiry(now);
            }
            if !go {
                continue;
            }
            let (mut cut, snapshot) = {
                let _gate = self.pipeline.gate.write();
                let cut = match self.pipeline.cut() {
                    Ok(cut) => cut,
                    Err(err) => {
                        self.pipeline.finish(u64::MAX, Err(err));
                        return;
                    }
                };
                (cut, self.snapshot_dirty())
            };
            let result = self.write_cut(&mut cut, snapshot);
            let ok = result.is_ok();
            let extra = match result {
                Ok(extra) => {
                    self.pipeline.finish(cut.last_seq, Ok(()));
                    extra
                }
                Err(err) => {
                    self.pipeline.finish(cut.last_seq, Err(err));
                    Vec::new()
                }
            };
            if ok {
                Journal::remove(&cut.obsolete);
                Journal::remove(&std::mem::take(&mut leftover));
                self.deliver(&cut);
                self.deliver_events(&extra);
            }
            if cut.closing || !ok {
                return;
            }
        }
    }

    fn snapshot_dirty(&self) -> Snapshot {
        let dirty = std::mem::take(&mut *self.dirty.lock());
        if self.shared.is_some() {
            // Shared mode: the rows are read and changed inside the transaction.
            for item in &dirty {
                match item {
                    Dirty::Key(entry) => entry.dirty.store(false, Ordering::Release),
                    Dirty::Owner(entry) => entry.dirty.store(false, Ordering::Release),
                }
            }
            return Snapshot::Entries(dirty);
        }
        let ledgers = dirty
            .into_iter()
            .map(|d| match d {
                Dirty::Key(entry) => {
                    entry.dirty.store(false, Ordering::Release);
                    let state = entry.state.lock();
                    (ledger_row(Level::Key, &entry.id), state.ledger.clone())
                }
                Dirty::Owner(entry) => {
                    entry.dirty.store(false, Ordering::Release);
                    let state = entry.state.lock();
                    (ledger_row(Level::Owner, &entry.name), state.ledger.clone())
                }
            })
            .collect();
        Snapshot::Ledgers(ledgers)
    }

    /// Commits a cut. Returns the events the commit added besides the cut's own (the shared
    /// mode's settlement alerts).
    fn write_cut(&self, cut: &mut crate::pipeline::Cut, snapshot: Snapshot) -> Result<Vec<Event>> {
        let db = self.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let keys = &self.keys;
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| Error::storage(e.to_string()))?;
        let extra = match &snapshot {
            Snapshot::Entries(dirty) => self.write_shared(&txn, cut, dirty)?,
            Snapshot::Ledgers(_) => Vec::new(),
        };
        {
            let mut changes_t = match snapshot {
                Snapshot::Entries(_) => Some(txn.open_table(store::CHANGES)?),
                Snapshot::Ledgers(_) => None,
            };
            let mut keys_t = txn.open_table(store::KEYS)?;
            let mut ledgers_t = txn.open_table(store::LEDGERS)?;
            let mut owners_t = txn.open_table(store::OWNERS)?;
            let mut prices_t = txn.open_table(store::PRICES)?;
            let mut charges_t = txn.open_table(store::CHARGES)?;
            let mut usage_t = txn.open_table(store::USAGE)?;
            let mut events_t = txn.open_table(store::EVENTS)?;
            let mut audit_t = txn.open_table(store::AUDIT)?;
            let mut meta_t = txn.open_table(store::META)?;
            for entry in &cut.entries {
                for write in &entry.writes {
                    match write {
                        Write::Key(r) => {
                            let row = r.key_id.as_bytes();
                            keys_t.insert(
                                r.key_id.as_str(),
                                store::seal(keys, "keys", row, r)?.as_slice(),
                            )?;
                        }
                        Write::Owner(r) => {
                            let sealed = store::seal(keys, "owners", r.owner.as_bytes(), r)?;
                            owners_t.insert(r.owner.as_str(), sealed.as_slice())?;
                        }
                        Write::Ledger(row, ledger) => {
                            let sealed = store::seal(keys, "ledgers", row.as_bytes(), ledger)?;
                            ledgers_t.insert(row.as_str(), sealed.as_slice())?;
                        }
                        Write::Price(model, Some(price)) => {
                            let sealed = store::seal(keys, "prices", model.as_bytes(), price)?;
                            prices_t.insert(model.as_str(), sealed.as_slice())?;
                        }
                        Write::Price(model, None) => {
                            prices_t.remove(model.as_str())?;
                        }
                        Write::Usage(seq, record) => {
                            let time = store::time_key(micros(record.at));
                            let sealed =
                                store::seal(keys, "usage", &usage_row_key(time, *seq), record)?;
                            usage_t.insert((time, *seq), sealed.as_slice())?;
                        }
                        Write::Event(event) => {
                            let sealed =
                                store::seal(keys, "events", &event.seq.to_be_bytes(), event)?;
                            events_t.insert(event.seq, sealed.as_slice())?;
                        }
                        Write::Audit(record) => {
                            let sealed =
                                store::seal(keys, "audit", &record.seq.to_be_bytes(), record)?;
                            audit_t.insert(record.seq, sealed.as_slice())?;
                        }
                        Write::Memo(row, memo) => {
                            let sealed = store::seal(keys, "charges", row.as_bytes(), memo)?;
                            charges_t.insert(row.as_str(), sealed.as_slice())?;
                        }
                        Write::Meta(name, value) => {
                            let sealed = store::seal(keys, "meta", name.as_bytes(), value)?;
                            meta_t.insert(name.as_str(), sealed.as_slice())?;
                        }
                        // Changed in the row by `write_shared`.
                        Write::Relimit(..) => {}
                        Write::Change(generation, change) => {
                            if let Some(table) = changes_t.as_mut() {
                                let row = generation.to_be_bytes();
                                let sealed = store::seal(keys, "changes", &row, change)?;
                                table.insert(*generation, sealed.as_slice())?;
                            }
                        }
                    }
                }
            }
            let Snapshot::Ledgers(ledgers) = &snapshot else {
                // Shared mode: the counts were written by `write_shared`.
                drop((keys_t, ledgers_t, owners_t, prices_t, charges_t, usage_t));
                drop((events_t, audit_t, meta_t, changes_t));
                txn.commit()?;
                return Ok(extra);
            };
            for (row, ledger) in ledgers {
                let sealed = store::seal(keys, "ledgers", row.as_bytes(), ledger)?;
                ledgers_t.insert(row.as_str(), sealed.as_slice())?;
            }
            let counts = Counts {
                malformed: self.malformed.load(Ordering::Relaxed),
                not_found: self.not_found.load(Ordering::Relaxed),
                next_usage: self.next_usage.load(Ordering::Relaxed),
                next_event: self.next_event.load(Ordering::Relaxed),
                applied_seq: cut.last_seq,
            };
            let sealed = store::seal(keys, "meta", b"counts", &counts)?;
            meta_t.insert("counts", sealed.as_slice())?;
        }
        txn.commit()?;
        Ok(extra)
    }

    fn deliver(&self, cut: &crate::pipeline::Cut) {
        let events = cut.entries.iter().flat_map(|entry| {
            entry.writes.iter().filter_map(|write| match write {
                Write::Event(event) => Some(&**event),
                _ => None,
            })
        });
        self.deliver_each(events);
    }

    fn deliver_events(&self, events: &[Event]) {
        self.deliver_each(events.iter());
    }

    fn deliver_each<'a>(&self, events: impl Iterator<Item = &'a Event>) {
        let subscribers: Vec<Subscriber> = self
            .subscribers
            .lock()
            .iter()
            .map(|(_, s)| s.clone())
            .collect();
        if subscribers.is_empty() {
            return;
        }
        for event in events {
            for subscriber in &subscribers {
                let call = std::panic::AssertUnwindSafe(|| subscriber(event));
                if std::panic::catch_unwind(call).is_err() {
                    log::warn!("an event subscriber panicked on event {}", event.seq);
                }
            }
        }
    }
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
