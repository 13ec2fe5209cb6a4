//! The shared mode: several processes on one machine with one vault file open.
//!
//! redb's multi-writer mode lets every process write, but each commit is fsynced and queued
//! behind the other processes' commits, and a read transaction costs several times more than
//! in the exclusive mode. So verify, the hot path, neither reads nor writes the file:
//!
//! - Limits. Each process leases slices of a limit from the limit's shared counter (the
//!   ledger row) in one write transaction, and admits from its slices in memory. A lease
//!   counts as used in the row the moment it is granted, so the slices of all processes
//!   together never exceed what the limit has left, and admission stays exact. Slices are a
//!   share of the room left that shrinks with it: the last units of a limit are leased one
//!   request at a time. A process that is refused a lease gives back its own slice of that
//!   limit, so that no room stays stranded where nobody can use it. The row records, per
//!   process, what it has not used of its leases (its slices and open holds); a process gives
//!   that back when it closes the vault, and the others take it back from a process that died:
//!   once its session has not been renewed for the lease timeout and its session lock file
//!   (locked by the process while it runs, released by the operating system when it dies) is
//!   free, so that a live process that could not renew in time is never taken for dead. After
//!   a refused lease, a process denies that limit from memory for one flush interval before it
//!   asks again, so a client hammering a spent key costs no transaction per request.
//! - Changes. Every administrative call (mint, update, revoke, rotate, owner policies,
//!   prices) runs under an exclusive lock of the generation file beside the vault, applies
//!   the changes of the other processes first, commits its own with a change record under the
//!   next generation number, and then writes that number into the generation file. Every
//!   verify reads the generation file (one `pread` of 16 bytes, no lock) and, when the number
//!   moved, reloads the keys, owners and prices the change records name. A change is
//!   therefore seen by every process's next verify after the call that made it returned.
//! - Records. Usage records and events get their sequence numbers inside the transaction
//!   that commits them, from the counters in the file. A charge's request id is checked in
//!   the file too, so a request charged in one process is a replay in every other.
//!
//! A write transaction either commits whole or not at all, and each one reads what it
//! changes from the file, so a commit of a process killed in the middle that becomes visible
//! later counts nothing twice: it carries its own lease, charge or change, once.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use jiff::Timestamp;
use parking_lot::{Mutex, MutexGuard};
use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    Counts, Inner, KeyEntry, KeyState, Level, OwnerState, closed, duration_us, ledger_row,
};
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::ledger::{CompiledLimit, Denial, Ledger, Reservation};
use crate::pipeline::{Change, Write};
use crate::policy::Limit;
use crate::prices::Price;
use crate::store::{self, KeyRecord, OwnerRecord};
use crate::verdict::{HoldAmounts, Remaining};

/// Checks that a generation file's 16 bytes were written whole: the number, then the number
/// xor this.
const SIGNAL_CHECK: u64 = 0x6e61_6e75_6765_6e31;

/// The state of one process in the shared mode.
pub(super) struct Shared {
    /// This process's session id, random; names its leases in the ledger rows.
    pub(super) session: u64,
    signal: Signal,
    /// The last change generation applied to this process's memory.
    generation: AtomicU64,
    /// Held while changes are applied, so that one thread applies them.
    refresh: Mutex<()>,
    /// Held by an administrative call in this process (the file lock is per process).
    admin: Mutex<()>,
    /// Ledger rows this process holds leases in.
    leased: Mutex<HashSet<String>>,
    /// When the session row was last renewed (µs of wall time).
    renewed: AtomicI64,
    /// The refused-verify counts already added to the file's counts.
    counted: (AtomicU64, AtomicU64),
    /// This session's lock file, locked for as long as the vault is open here: the operating
    /// system releases it when the process dies, so no live process is taken for dead.
    lock: SessionLock,
}

/// A session's lock file, `<vault>.sessions/<session id>`.
struct SessionLock {
    file: File,
    path: PathBuf,
}

impl SessionLock {
    fn folder(vault: &Path) -> PathBuf {
        let mut name = vault.as_os_str().to_owned();
        name.push(".sessions");
        PathBuf::from(name)
    }

    fn path(vault: &Path, session: u64) -> PathBuf {
        SessionLock::folder(vault).join(format!("{session:016x}"))
    }

    fn take(vault: &Path, session: u64) -> Result<SessionLock> {
        let folder = SessionLock::folder(vault);
        let io = |e: std::io::Error| Error::storage(format!("{}: {e}", folder.display()));
        std::fs::create_dir_all(&folder).map_err(io)?;
        let path = SessionLock::path(vault, session);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(SessionLock { file, path })
    }

    /// Whether the process of `session` still runs: its lock file is locked. A file that is
    /// not locked (its process died) is removed.
    fn held(vault: &Path, session: u64) -> bool {
        let path = SessionLock::path(vault, session);
        let Ok(file) = OpenOptions::new().write(true).open(&path) else {
            return false;
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
                false
            }
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(std::fs::TryLockError::Error(err)) => {
                log::warn!("{}: {err}; taking the session for live", path.display());
                true
            }
        }
    }

    fn release(&self) {
        let _ = self.file.unlock();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// The generation file: the number of the last committed change, where every process can read
/// it without a transaction.
struct Signal {
    file: File,
    path: PathBuf,
}

/// A process's session row.
#[derive(Serialize, Deserialize)]
struct SessionRecord {
    /// Wall time (µs) until which the session's leases are good without renewal.
    until: i64,
}

/// Held by an administrative call in the shared mode: the process's lock and the file lock.
pub(super) struct AdminGuard<'a> {
    _local: MutexGuard<'a, ()>,
    signal: &'a Signal,
}

impl Drop for AdminGuard<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.signal.file.unlock() {
            log::warn!("cannot unlock {}: {err}", self.signal.path.display());
        }
    }
}

impl Signal {
    fn open(vault: &Path) -> Result<Signal> {
        let mut name = vault.as_os_str().to_owned();
        name.push(".gen");
        let path = PathBuf::from(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::storage(format!("{}: {e}", path.display())))?;
        Ok(Signal { file, path })
    }

    /// The generation written last; `None` when the file is new or was caught mid-write.
    fn read(&self) -> Result<Option<u64>> {
        let mut bytes = [0u8; 16];
        let read = read_at(&self.file, &mut bytes)
            .map_err(|e| Error::storage(format!("{}: {e}", self.path.display())))?;
        if read < 16 {
            return Ok(None);
        }
        let number = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
        let check = u64::from_le_bytes(bytes[8..].try_into().unwrap_or_default());
        Ok((number ^ SIGNAL_CHECK == check).then_some(number))
    }

    fn publish(&self, generation: u64) -> Result<()> {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&generation.to_le_bytes());
        bytes[8..].copy_from_slice(&(generation ^ SIGNAL_CHECK).to_le_bytes());
        write_at(&self.file, &bytes)
            .map_err(|e| Error::storage(format!("{}: {e}", self.path.display())))
    }
}

#[cfg(unix)]
fn read_at(file: &File, bytes: &mut [u8]) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    file.read_at(bytes, 0)
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, 0)
}

#[cfg(windows)]
fn read_at(file: &File, bytes: &mut [u8]) -> std::io::Result<usize> {
    use std::os::windows::fs::FileExt;
    file.seek_read(bytes, 0)
}

#[cfg(windows)]
fn write_at(file: &File, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    let mut done = 0;
    while done < bytes.len() {
        done += file.seek_write(&bytes[done..], done as u64)?;
    }
    Ok(())
}

fn wall_now() -> i64 {
    Timestamp::now().as_microsecond()
}

impl Shared {
    pub(super) fn open(vault: &Path) -> Result<Shared> {
        let session = u64::from_le_bytes(crate::crypto::random_bytes::<8>()?);
        let lock = SessionLock::take(vault, session)?;
        Ok(Shared {
            lock,
            session,
            signal: Signal::open(vault)?,
            generation: AtomicU64::new(0),
            refresh: Mutex::new(()),
            admin: Mutex::new(()),
            leased: Mutex::new(HashSet::new()),
            renewed: AtomicI64::new(i64::MIN),
            counted: (AtomicU64::new(0), AtomicU64::new(0)),
        })
    }

    /// The first bits of a hold id: holds of different processes never share an id, and the
    /// ids stay below 2^53 (exact in JavaScript).
    pub(super) fn hold_base(&self) -> u64 {
        (self.session & 0xF_FFFF) << 32
    }
}

/// Reads a sealed row of a string-keyed table inside a write transaction.
fn read_row<T: for<'de> Deserialize<'de>>(
    table: &Table<&str, &[u8]>,
    keys: &Keys,
    name: &str,
    row: &str,
) -> Result<Option<T>> {
    match table.get(row)? {
        Some(value) => store::open(keys, name, row.as_bytes(), value.value()).map(Some),
        None => Ok(None),
    }
}

fn write_row<T: Serialize>(
    table: &mut Table<&str, &[u8]>,
    keys: &Keys,
    name: &str,
    row: &str,
    value: &T,
) -> Result<()> {
    let sealed = store::seal(keys, name, row.as_bytes(), value)?;
    table.insert(row, sealed.as_slice())?;
    Ok(())
}

/// The sequence counters of the file, read and written inside one write transaction.
pub(super) struct Sequences {
    counts: Counts,
}

impl Sequences {
    pub(super) fn read(meta: &Table<&str, &[u8]>, keys: &Keys) -> Result<Sequences> {
        let counts: Counts = read_row(meta, keys, "meta", "counts")?.unwrap_or_default();
        Ok(Sequences { counts })
    }

    pub(super) fn next_event(&mut self) -> u64 {
        let seq = self.counts.next_event.max(1);
        self.counts.next_event = seq + 1;
        seq
    }

    pub(super) fn next_usage(&mut self) -> u64 {
        let seq = self.counts.next_usage.max(1);
        self.counts.next_usage = seq + 1;
        seq
    }

    pub(super) fn write(
        mut self,
        meta: &mut Table<&str, &[u8]>,
        keys: &Keys,
        refused: (u64, u64),
    ) -> Result<()> {
        self.counts.malformed = self.counts.malformed.saturating_add(refused.0);
        self.counts.not_found = self.counts.not_found.saturating_add(refused.1);
        write_row(meta, keys, "meta", "counts", &self.counts)
    }
}

/// What a lease transaction found.
pub(super) enum Leased {
    /// The slices cover the request now, and it was admitted under the same locks: what it
    /// reserved on the key's and the owner's counters, and what is left.
    Admitted(Reservation, Reservation, Remaining),
    /// This process had to catch up with changes first: try again.
    Again,
    /// A limit has no room left.
    Denied(Level, Denial),
}

impl Inner {
    fn shared(&self) -> Result<&Shared> {
        self.shared
            .as_ref()
            .ok_or_else(|| Error::storage("the vault is not open in the shared mode"))
    }

    /// Applies the changes other processes made, if the generation file says there are any.
    /// A no-op in the exclusive mode. Costs one `pread` when nothing changed.
    pub(super) fn follow(&self) -> Result<()> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        match shared.signal.read()? {
            Some(g) if g <= shared.generation.load(Ordering::Acquire) => Ok(()),
            _ => self.refresh(shared),
        }
    }

    /// Takes the administrative lock of the shared mode and catches up with the other
    /// processes; `None` in the exclusive mode.
    pub(super) fn admin_guard(&self) -> Result<Option<AdminGuard<'_>>> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let local = shared.admin.lock();
        shared
            .signal
            .file
            .lock()
            .map_err(|e| Error::storage(format!("{}: {e}", shared.signal.path.display())))?;
        let guard = AdminGuard {
            _local: local,
            signal: &shared.signal,
        };
        self.refresh(shared)?;
        Ok(Some(guard))
    }

    /// Shared mode: the change record an administrative call's writes make, under the next
    /// generation number.
    pub(super) fn change_write(&self, writes: &[Write]) -> Option<(u64, Write)> {
        let shared = self.shared.as_ref()?;
        let mut change = Change::default();
        for write in writes {
            match write {
                Write::Key(record) => change.keys.push(record.key_id.clone()),
                Write::Owner(record) => change.owners.push(record.owner.clone()),
                Write::Price(..) => change.prices = true,
                Write::Meta(name, _) if name == "default_owner_policy" => {
                    change.default_owner_policy = true;
                }
                _ => {}
            }
        }
        let generation = shared.generation.load(Ordering::Acquire) + 1;
        Some((generation, Write::Change(generation, Box::new(change))))
    }

    /// Shared mode: after an administrative commit, tells the other processes.
    pub(super) fn publish(&self, generation: u64) -> Result<()> {
        let shared = self.shared()?;
        shared.generation.fetch_max(generation, Ordering::AcqRel);
        shared.signal.publish(generation)
    }

    /// Reloads what the change records after this process's generation name.
    fn refresh(&self, shared: &Shared) -> Result<()> {
        let _one = shared.refresh.lock();
        let from = shared.generation.load(Ordering::Acquire);
        let db = self.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let txn = db.begin_read()?;
        let changes = match txn.open_table(store::CHANGES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut all = Change::default();
        let mut last = from;
        for row in changes.range(from.saturating_add(1)..)? {
            let (key, value) = row?;
            let generation = key.value();
            let change: Change = store::open(
                &self.keys,
                "changes",
                &generation.to_be_bytes(),
                value.value(),
            )?;
            all.keys.extend(change.keys);
            all.owners.extend(change.owners);
            all.prices |= change.prices;
            all.default_owner_policy |= change.default_owner_policy;
            last = generation;
        }
        if last == from {
            return Ok(());
        }

        let meta = txn.open_table(store::META)?;
        let read_meta = |name: &str| -> Result<Option<serde_json::Value>> {
            match meta.get(name)? {
                Some(v) => store::open(&self.keys, "meta", name.as_bytes(), v.value()).map(Some),
                None => Ok(None),
            }
        };
        if let Some(head) = read_meta("audit_head")? {
            let seq = head["seq"].as_u64().unwrap_or(0);
            let hash = head["hash"]
                .as_str()
                .and_then(super::parse_hex32)
                .unwrap_or([0; 32]);
            *self.audit_head.lock() = (seq, hash);
        }
        if all.default_owner_policy
            && let Some(value) = read_meta("default_owner_policy")?
        {
            let limits: Vec<Limit> = serde_json::from_value(value)
                .map_err(|e| Error::corrupt(format!("the default owner policy: {e}")))?;
            *self.default_owner_limits.write() = limits;
        }
        let owners = txn.open_table(store::OWNERS)?;
        for name in dedup(all.owners) {
            if let Some(value) = owners.get(name.as_str())? {
                let record: OwnerRecord =
                    store::open(&self.keys, "owners", name.as_bytes(), value.value())?;
                self.install_owner(record)?;
            }
        }
        let keys_t = txn.open_table(store::KEYS)?;
        for id in dedup(all.keys) {
            let Some(value) = keys_t.get(id.as_str())? else {
                continue;
            };
            match store::open::<KeyRecord>(&self.keys, "keys", id.as_bytes(), value.value()) {
                Ok(record) => self.install_key(record)?,
                Err(err) => {
                    log::warn!("key {id}: {err}");
                    self.corrupt_keys.write().insert(id.clone(), err);
                }
            }
        }
        if all.prices {
            let prices_t = txn.open_table(store::PRICES)?;
            let mut prices = HashMap::new();
            for row in prices_t.iter()? {
                let (key, value) = row?;
                let model = key.value().to_owned();
                match store::open::<Price>(&self.keys, "prices", model.as_bytes(), value.value()) {
                    Ok(price) => {
                        prices.insert(model, price);
                    }
                    Err(err) => log::warn!("{err}; the model is unpriced until set again"),
                }
            }
            *self.prices.write() = prices;
        }
        shared.generation.fetch_max(last, Ordering::AcqRel);
        Ok(())
    }

    /// Puts a key record another process committed into memory: a new key, or the new state
    /// of a known one (its slices and holds are kept for the limits that stay).
    fn install_key(&self, record: KeyRecord) -> Result<()> {
        let existing = self.by_id.read().get(record.key_id.as_str()).cloned();
        let Some(entry) = existing else {
            let id: Arc<str> = Arc::from(record.key_id.as_str());
            let digests: Vec<[u8; 32]> = record.digests.iter().map(|d| d.digest).collect();
            let (owner, _) = self.owner_entry(&record.owner)?;
            let state = KeyState::compile(record)?;
            let entry = Arc::new(KeyEntry {
                id: id.clone(),
                owner,
                dirty: std::sync::atomic::AtomicBool::new(false),
                state: Mutex::new(state),
            });
            let mut by_digest = self.by_digest.write();
            for digest in digests {
                by_digest.insert(digest, entry.clone());
            }
            self.by_id.write().insert(id, entry);
            return Ok(());
        };
        let mut state = entry.state.lock();
        let old: Vec<[u8; 32]> = state.record.digests.iter().map(|d| d.digest).collect();
        let new: Vec<[u8; 32]> = record.digests.iter().map(|d| d.digest).collect();
        if state.record.limits != record.limits {
            let compiled = CompiledLimit::compile_all(&record.limits)?;
            let before = std::mem::replace(&mut state.limits, compiled);
            let KeyState { ledger, limits, .. } = &mut *state;
            ledger.relimit(&before, limits);
        }
        state.ips = record
            .ips
            .as_deref()
            .map(crate::key::parse_ips)
            .transpose()?;
        state.env = Arc::from(record.env.as_str());
        state.record = record;
        drop(state);
        let mut by_digest = self.by_digest.write();
        for digest in old.iter().filter(|d| !new.contains(d)) {
            by_digest.remove(digest);
        }
        for digest in new {
            by_digest.insert(digest, entry.clone());
        }
        Ok(())
    }

    fn install_owner(&self, record: OwnerRecord) -> Result<()> {
        let (entry, _) = self.owner_entry(&record.owner)?;
        let mut state = entry.state.lock();
        if state.record.limits != record.limits {
            let compiled = CompiledLimit::compile_all(&record.limits)?;
            let before = std::mem::replace(&mut state.limits, compiled);
            let OwnerState { ledger, limits, .. } = &mut *state;
            ledger.relimit(&before, limits);
        }
        state.record = record;
        Ok(())
    }

    /// The live sessions (their leases are good) at wall time `now`.
    fn live_sessions(table: &Table<u64, &[u8]>, keys: &Keys, now: i64) -> Result<HashSet<u64>> {
        let mut live = HashSet::new();
        for row in table.iter()? {
            let (key, value) = row?;
            let id = key.value();
            let record: SessionRecord =
                store::open(keys, "sessions", &id.to_be_bytes(), value.value())?;
            if record.until >= now {
                live.insert(id);
            }
        }
        Ok(live)
    }

    /// Writes this process's session row, good for one lease timeout from now.
    pub(super) fn renew_session(&self, txn: &WriteTransaction) -> Result<()> {
        let shared = self.shared()?;
        let now = wall_now();
        let until = now.saturating_add(duration_us(self.options.lease_timeout));
        let mut sessions = txn.open_table(store::SESSIONS)?;
        let sealed = store::seal(
            &self.keys,
            "sessions",
            &shared.session.to_be_bytes(),
            &SessionRecord { until },
        )?;
        sessions.insert(shared.session, sealed.as_slice())?;
        shared.renewed.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the session row is due for renewal (a third of the lease timeout passed).
    pub(super) fn renewal_due(&self) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let third = duration_us(self.options.lease_timeout) / 3;
        wall_now().saturating_sub(shared.renewed.load(Ordering::Relaxed)) >= third
    }

    /// Registers this process: creates the shared tables if an older vault lacks them and
    /// writes the session row. Returns the generation the memory was loaded at.
    pub(super) fn join(&self) -> Result<u64> {
        let db = self.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let txn = db.begin_write()?;
        let generation = {
            let changes = txn.open_table(store::CHANGES)?;
            let last = changes.last()?.map(|(k, _)| k.value());
            last.unwrap_or(0)
        };
        // The rows of sessions whose process is gone: their leases are taken back all the same
        // (a session without a row is not live), by whoever next leases on those rows.
        {
            let mut sessions = txn.open_table(store::SESSIONS)?;
            let live = Inner::live_sessions(&sessions, &self.keys, wall_now())?;
            let mut gone = Vec::new();
            for row in sessions.iter()? {
                let id = row?.0.value();
                if !live.contains(&id) && !SessionLock::held(&self.path, id) {
                    gone.push(id);
                }
            }
            for id in gone {
                sessions.remove(id)?;
            }
        }
        self.renew_session(&txn)?;
        txn.commit()?;
        Ok(generation)
    }

    /// Sets the generation the memory was loaded at.
    pub(super) fn loaded_at(&self, generation: u64) {
        if let Some(shared) = &self.shared {
            shared.generation.store(generation, Ordering::Release);
        }
    }

    /// Leases what a request with `hold` needs on the key's and its owner's limits, in one
    /// write transaction.
    pub(super) fn lease(
        &self,
        entry: &Arc<KeyEntry>,
        now: i64,
        hold: &HoldAmounts,
    ) -> Result<Leased> {
        let shared = self.shared()?;
        let db_guard = self.db.read();
        let db = db_guard.as_ref().ok_or_else(closed)?;
        let txn = db.begin_write()?;
        let mut events = Vec::new();
        let mut outcome = Leased::Again;
        {
            // A change committed since this verify looked (new limits, a revoke) is applied
            // first: a lease is taken only against the limits in force.
            let last_change = {
                let changes = txn.open_table(store::CHANGES)?;
                changes.last()?.map_or(0, |(k, _)| k.value())
            };
            if last_change > shared.generation.load(Ordering::Acquire) {
                // A commit of a writer killed before it finished can be visible to writers
                // and not yet to readers; a commit of this process makes it visible to both.
                self.renew_session(&txn)?;
                txn.commit()?;
                drop(db_guard);
                self.refresh(shared)?;
                return Ok(Leased::Again);
            }
            let mut ledgers = txn.open_table(store::LEDGERS)?;
            let live = {
                let sessions = txn.open_table(store::SESSIONS)?;
                Inner::live_sessions(&sessions, &self.keys, wall_now())?
            };
            self.renew_session(&txn)?;
            let mut state = entry.state.lock();
            let mut owner = entry.owner.state.lock();
            let t = state.ledger.advance(now);
            let t_owner = owner.ledger.advance(now);
            let key_short = {
                let KeyState { ledger, limits, .. } = &mut *state;
                ledger.shortfalls(limits, t, hold)?
            };
            let owner_short = {
                let OwnerState { ledger, limits, .. } = &mut *owner;
                ledger.shortfalls(limits, t_owner, hold)?
            };
            if key_short.is_empty() && owner_short.is_empty() {
                return Ok(Leased::Again);
            }
            let rows = [
                (Level::Key, ledger_row(Level::Key, &entry.id), key_short, t),
                (
                    Level::Owner,
                    ledger_row(Level::Owner, &entry.owner.name),
                    owner_short,
                    t_owner,
                ),
            ];
            for (level, row, short, t) in rows {
                if short.is_empty() {
                    continue;
                }
                let (local, limits) = match level {
                    Level::Key => {
                        let KeyState { ledger, limits, .. } = &mut *state;
                        (ledger, &*limits)
                    }
                    Level::Owner => {
                        let OwnerState { ledger, limits, .. } = &mut *owner;
                        (ledger, &*limits)
                    }
                };
                let mut global = match read_row::<Ledger>(&ledgers, &self.keys, "ledgers", &row)? {
                    Some(g) if g.counters.len() == limits.len() => g,
                    Some(_) => {
                        // The row's limits changed in another process and this one has not
                        // applied the change yet: apply it and try again.
                        drop((state, owner));
                        drop(ledgers);
                        self.renew_session(&txn)?;
                        txn.commit()?;
                        drop(db_guard);
                        self.refresh(shared)?;
                        return Ok(Leased::Again);
                    }
                    None => Ledger::new(limits),
                };
                // A session is taken for dead once its row expired and its process is gone:
                // a live process that could not renew in time (a slow disk) keeps its leases.
                let dead: Vec<u64> = global
                    .leases
                    .keys()
                    .copied()
                    .filter(|s| *s != shared.session && !live.contains(s))
                    .filter(|s| !SessionLock::held(&self.path, *s))
                    .collect();
                for session in dead {
                    global.give_back(limits, t, session)?;
                }
                global.last_seen = global.last_seen.max(t);
                match global.grant(limits, t, shared.session, &short, live.len() as u64)? {
                    Ok(grants) => {
                        for grant in &grants {
                            if let Some(counter) = local.counters.get_mut(grant.index) {
                                counter.slice = counter.slice.saturating_add(grant.amount);
                            }
                        }
                        for crossing in global.lease_crossings(limits, t, &grants) {
                            events.push((level, crossing, t));
                        }
                    }
                    Err(denial) => {
                        // A slice too small for this request is given back, so that what
                        // the processes hold never adds up to room that nobody can use.
                        if let Some(counter) = local.counters.get_mut(denial.index) {
                            let slice = std::mem::take(&mut counter.slice);
                            global.return_slice(limits, t, shared.session, denial.index, slice);
                        }
                        // Room comes back only when a process gives some up: the next
                        // requests are denied from memory for one flush interval, instead of
                        // a durable transaction each.
                        let until = t.saturating_add(duration_us(self.options.flush_interval));
                        local.refused(denial.index, until);
                        if matches!(outcome, Leased::Again) {
                            outcome = Leased::Denied(level, denial);
                        }
                    }
                }
                global.record_unused(shared.session, local);
                local.sync_view(limits, t, &global, shared.session);
                write_row(&mut ledgers, &self.keys, "ledgers", &row, &global)?;
                shared.leased.lock().insert(row);
            }
            // Admitted at once, under the locks the lease was taken under: another thread
            // cannot take the slices this request leased.
            if matches!(outcome, Leased::Again) {
                let KeyState { ledger, limits, .. } = &mut *state;
                let key_short = ledger.shortfalls(limits, t, hold)?;
                let OwnerState { ledger, limits, .. } = &mut *owner;
                let owner_short = ledger.shortfalls(limits, t_owner, hold)?;
                if key_short.is_empty() && owner_short.is_empty() {
                    let (on_key, on_owner, remaining) =
                        super::admit_shared(&mut state, &mut owner, t, t_owner, hold);
                    outcome = Leased::Admitted(on_key, on_owner, remaining);
                }
            }
            if !events.is_empty() {
                let mut meta = txn.open_table(store::META)?;
                let mut seqs = Sequences::read(&meta, &self.keys)?;
                let mut table = txn.open_table(store::EVENTS)?;
                let mut records = Vec::with_capacity(events.len());
                for (level, crossing, t) in events.drain(..) {
                    let writes = &mut Vec::new();
                    let lists = match level {
                        Level::Key => (vec![crossing], Vec::new()),
                        Level::Owner => (Vec::new(), vec![crossing]),
                    };
                    self.crossing_events(entry, &state, &owner, t, lists, writes);
                    for write in writes.drain(..) {
                        if let Write::Event(mut event) = write {
                            event.seq = seqs.next_event();
                            let sealed = store::seal(
                                &self.keys,
                                "events",
                                &event.seq.to_be_bytes(),
                                &event,
                            )?;
                            table.insert(event.seq, sealed.as_slice())?;
                            records.push(*event);
                        }
                    }
                }
                seqs.write(&mut meta, &self.keys, (0, 0))?;
                drop((state, owner));
                drop((meta, table, ledgers));
                txn.commit()?;
                self.deliver_events(&records);
                return Ok(outcome);
            }
        }
        txn.commit()?;
        Ok(outcome)
    }

    /// Gives back every lease of this process and ends its session (at close).
    pub(super) fn leave(&self) -> Result<()> {
        let shared = self.shared()?;
        let rows: Vec<String> = shared.leased.lock().drain().collect();
        let db = self.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let txn = db.begin_write()?;
        {
            let mut ledgers = txn.open_table(store::LEDGERS)?;
            for row in rows {
                let Some(mut global) = read_row::<Ledger>(&ledgers, &self.keys, "ledgers", &row)?
                else {
                    continue;
                };
                // What is unused is taken from memory, not from the row, which may lag.
                let given = self.with_ledger(&row, |local, limits| {
                    if global.counters.len() != limits.len() {
                        return Ok(false);
                    }
                    let t = local.last_seen.max(global.last_seen);
                    global.record_unused(shared.session, local);
                    global.give_back(limits, t, shared.session)?;
                    for counter in &mut local.counters {
                        counter.slice = 0;
                    }
                    Ok::<_, Error>(true)
                });
                if let Some(true) = given.transpose()? {
                    write_row(&mut ledgers, &self.keys, "ledgers", &row, &global)?;
                }
            }
            let mut sessions = txn.open_table(store::SESSIONS)?;
            sessions.remove(shared.session)?;
        }
        txn.commit()?;
        shared.lock.release();
        Ok(())
    }

    /// Runs `f` on this process's view of a ledger row and its limits, under the entry's
    /// lock; `None` when the key or owner is not known here.
    fn with_ledger<R>(
        &self,
        row: &str,
        f: impl FnOnce(&mut Ledger, &[CompiledLimit]) -> R,
    ) -> Option<R> {
        if let Some(id) = row.strip_prefix("k/") {
            let entry = self.by_id.read().get(id).cloned()?;
            let mut state = entry.state.lock();
            let KeyState { ledger, limits, .. } = &mut *state;
            Some(f(ledger, limits))
        } else {
            let name = row.strip_prefix("o/")?;
            let entry = self.owners.read().get(name).cloned()?;
            let mut state = entry.state.lock();
            let OwnerState { ledger, limits, .. } = &mut *state;
            Some(f(ledger, limits))
        }
    }

    /// Shared mode: the part of a commit that changes what other processes count in too.
    /// Numbers the cut's usage records and events from the file's counters, drops charges
    /// whose request id another process recorded first, settles charges and records unused
    /// leases in the ledger rows, replaces row limits, merges key records, renews the
    /// session. Returns the events committed besides the cut's own (settlement crossings).
    pub(super) fn write_shared(
        &self,
        txn: &WriteTransaction,
        cut: &mut crate::pipeline::Cut,
        dirty: &[super::Dirty],
    ) -> Result<Vec<Event>> {
        let shared = self.shared()?;
        let keys = &self.keys;
        let mut extra = Vec::new();
        let mut meta = txn.open_table(store::META)?;
        let mut seqs = Sequences::read(&meta, keys)?;
        let charges = txn.open_table(store::CHARGES)?;
        let mut ledgers = txn.open_table(store::LEDGERS)?;
        let keys_t = txn.open_table(store::KEYS)?;

        // A request id charged by another process since this one looked: the charge is
        // recorded once, by whoever committed first.
        let mut dropped = Vec::new();
        cut.entries.retain_mut(|entry| {
            let charged_elsewhere = entry.writes.iter().any(|w| {
                matches!(w, Write::Memo(row, _)
                    if charges.get(row.as_str()).ok().flatten().is_some())
            });
            if charged_elsewhere {
                dropped.extend(entry.apply.take());
            }
            !charged_elsewhere
        });
        drop(charges);
        for apply in &dropped {
            self.settle_pending(apply, true);
        }

        for entry in &mut cut.entries {
            for write in &mut entry.writes {
                match write {
                    Write::Event(event) => event.seq = seqs.next_event(),
                    Write::Usage(seq, _) => *seq = seqs.next_usage(),
                    Write::Key(record) => {
                        // A key record written by verify (a notification flag) must not undo
                        // a change another process made since: the newer record wins, with
                        // the flags of both.
                        let stored: Option<KeyRecord> =
                            read_row(&keys_t, keys, "keys", &record.key_id)?;
                        if let Some(stored) = stored
                            && stored.updated_at > record.updated_at
                        {
                            let mut merged = stored;
                            merged.expiring_notified |= record.expiring_notified;
                            merged.expired_notified |= record.expired_notified;
                            **record = merged;
                        }
                    }
                    Write::Relimit(row, old, new, mine) => {
                        let old = CompiledLimit::compile_all(old)?;
                        let new = CompiledLimit::compile_all(new)?;
                        if let Some(mut global) =
                            read_row::<Ledger>(&ledgers, keys, "ledgers", row)?
                        {
                            // This process's part is known exactly; the others' as of
                            // their last commit.
                            global.leases.insert(shared.session, mine.clone());
                            global.relimit(&old, &new);
                            write_row(&mut ledgers, keys, "ledgers", row, &global)?;
                        }
                    }
                    _ => {}
                }
            }
        }

        // Charges settle in the rows, where the other processes count too.
        for entry in &cut.entries {
            let Some(apply) = &entry.apply else {
                continue;
            };
            let Some(key) = self.by_id.read().get(apply.key_id.as_str()).cloned() else {
                continue;
            };
            let usage = (apply.input_tokens, apply.output_tokens, apply.cost);
            let (on_key, on_owner) = apply
                .held
                .as_ref()
                .map(|(k, o)| (k.amounts.as_slice(), o.amounts.as_slice()))
                .unwrap_or_default();
            self.settle_pending(apply, false);
            let state = key.state.lock();
            let owner = key.owner.state.lock();
            let rows = [
                (
                    Level::Key,
                    ledger_row(Level::Key, &key.id),
                    on_key,
                    &state.limits,
                ),
                (
                    Level::Owner,
                    ledger_row(Level::Owner, &key.owner.name),
                    on_owner,
                    &owner.limits,
                ),
            ];
            let mut crossings = (Vec::new(), Vec::new());
            for (level, row, held, limits) in rows {
                if limits.is_empty() {
                    continue;
                }
                let mut global = match read_row::<Ledger>(&ledgers, keys, "ledgers", &row)? {
                    Some(g) if g.counters.len() == limits.len() => g,
                    Some(_) => continue,
                    None => Ledger::new(limits),
                };
                let t = global.advance(apply.at);
                let found = global.settle(limits, t, usage, held)?;
                match level {
                    Level::Key => crossings.0 = found,
                    Level::Owner => crossings.1 = found,
                }
                write_row(&mut ledgers, keys, "ledgers", &row, &global)?;
            }
            if !crossings.0.is_empty() || !crossings.1.is_empty() {
                let mut writes = Vec::new();
                self.crossing_events(&key, &state, &owner, apply.at, crossings, &mut writes);
                for write in writes {
                    if let Write::Event(mut event) = write {
                        event.seq = seqs.next_event();
                        extra.push(*event);
                    }
                }
            }
        }

        // What this process has not used of its leases, as its memory has it now.
        for item in dirty {
            let (row, local, limits_len) = match item {
                super::Dirty::Key(entry) => {
                    let state = entry.state.lock();
                    (
                        ledger_row(Level::Key, &entry.id),
                        state.ledger.clone(),
                        state.limits.len(),
                    )
                }
                super::Dirty::Owner(entry) => {
                    let state = entry.state.lock();
                    (
                        ledger_row(Level::Owner, &entry.name),
                        state.ledger.clone(),
                        state.limits.len(),
                    )
                }
            };
            if !shared.leased.lock().contains(&row) {
                continue;
            }
            let Some(mut global) = read_row::<Ledger>(&ledgers, keys, "ledgers", &row)? else {
                continue;
            };
            if global.counters.len() != limits_len {
                continue;
            }
            let before = global.leases.get(&shared.session).cloned();
            global.record_unused(shared.session, &local);
            if global.leases.get(&shared.session) != before.as_ref() {
                write_row(&mut ledgers, keys, "ledgers", &row, &global)?;
            }
        }

        let mut events = txn.open_table(store::EVENTS)?;
        for event in &extra {
            let sealed = store::seal(keys, "events", &event.seq.to_be_bytes(), event)?;
            events.insert(event.seq, sealed.as_slice())?;
        }
        let refused = (
            self.malformed.load(Ordering::Relaxed),
            self.not_found.load(Ordering::Relaxed),
        );
        let added = (
            refused
                .0
                .saturating_sub(shared.counted.0.swap(refused.0, Ordering::Relaxed)),
            refused
                .1
                .saturating_sub(shared.counted.1.swap(refused.1, Ordering::Relaxed)),
        );
        seqs.write(&mut meta, keys, added)?;
        drop((meta, ledgers, keys_t, events));
        // The last commit of a closing vault follows `leave`, which ended the session.
        if !cut.closing {
            self.renew_session(txn)?;
        }
        Ok(extra)
    }

    /// A charge's commit settled (or dropped) what it took from this process's leases.
    fn settle_pending(&self, apply: &crate::pipeline::Apply, returned: bool) {
        let (Some((on_key, on_owner)), Some(key)) = (
            &apply.held,
            self.by_id.read().get(apply.key_id.as_str()).cloned(),
        ) else {
            return;
        };
        key.state.lock().ledger.settle_pending(on_key, returned);
        key.owner
            .state
            .lock()
            .ledger
            .settle_pending(on_owner, returned);
    }

    /// Shared mode: the memo of a charge another process recorded.
    pub(super) fn stored_memo(&self, row: &str) -> Result<Option<store::ChargeMemo>> {
        let db = self.db.read();
        let db = db.as_ref().ok_or_else(closed)?;
        let txn = db.begin_read()?;
        let table = txn.open_table(store::CHARGES)?;
        match table.get(row)? {
            Some(value) => {
                store::open(&self.keys, "charges", row.as_bytes(), value.value()).map(Some)
            }
            None => Ok(None),
        }
    }
}

fn dedup(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names.dedup();
    names
}
