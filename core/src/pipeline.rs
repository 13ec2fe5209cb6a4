//! The commit pipeline: one thread turns queued writes into redb transactions.
//!
//! Callers queue writes and, depending on the durability level, wait for the commit that
//! contains them (`durable`), or return once the writes reached the journal file
//! (`process`), or return at once (`relaxed`). Grouping every queued write into one
//! transaction lets concurrent callers share one fsync.
//!
//! A cut (the set of writes one transaction commits) is made under the exclusive side of
//! `gate`. Calls that change counters and queue the writes that record the change hold the
//! shared side from the change to the queueing, so a cut sees either both or neither: the
//! counters committed always agree with the usage records committed.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::audit::AuditRecord;
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::ledger::{Lease, Ledger, Reservation};
use crate::policy::Limit;
use crate::prices::Price;
use crate::store::{ChargeMemo, KeyRecord, OwnerRecord};
use crate::usage::UsageRecord;

/// How much a crash may lose. Chosen when opening a vault; the same names in every language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// A charge or administrative call that returned survives power loss: the caller waits
    /// for the fsync of the transaction that holds its change (shared with concurrent
    /// callers).
    #[default]
    Durable,
    /// A charge that returned survives the process being killed, not power loss: it was
    /// written to the journal file (in the operating system's cache) before returning, and
    /// the journal's content is committed to the vault every flush interval.
    Process,
    /// Charges are committed every flush interval; a crash loses at most that interval.
    Relaxed,
}

impl Durability {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Durable => "durable",
            Durability::Process => "process",
            Durability::Relaxed => "relaxed",
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = Error;

    fn from_str(s: &str) -> Result<Durability> {
        match s {
            "durable" => Ok(Durability::Durable),
            "process" => Ok(Durability::Process),
            "relaxed" => Ok(Durability::Relaxed),
            _ => Err(Error::invalid(format!(
                "unknown durability {s:?} (durable, process or relaxed)"
            ))),
        }
    }
}

/// One row change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Write {
    Key(Box<KeyRecord>),
    Owner(OwnerRecord),
    Ledger(String, Ledger),
    Price(String, Option<Price>),
    Usage(u64, Box<UsageRecord>),
    Event(Box<Event>),
    Audit(Box<AuditRecord>),
    Memo(String, Box<ChargeMemo>),
    Meta(String, serde_json::Value),
    /// Shared mode: a ledger row's limits replaced (the row is changed where it is stored,
    /// since other processes count in it too).
    /// With this process's unused leases in the row before the change.
    Relimit(String, Vec<Limit>, Vec<Limit>, Vec<Lease>),
    /// Shared mode: a change to keys, owners or prices for the other processes to apply.
    Change(u64, Box<Change>),
}

/// Shared mode: what one administrative call changed, which every other process reloads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Change {
    pub(crate) keys: Vec<String>,
    pub(crate) owners: Vec<String>,
    pub(crate) prices: bool,
    pub(crate) default_owner_policy: bool,
}

/// Counter changes a journal replay must redo, since the ledger rows committed before a
/// crash may predate them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Apply {
    pub(crate) key_id: String,
    pub(crate) at: i64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cost: u64,
    /// Shared mode: what the settled hold had reserved on the key's and the owner's counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) held: Option<(Reservation, Reservation)>,
}

/// The writes of one call, as queued and as journaled.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) writes: Vec<Write>,
    pub(crate) apply: Option<Apply>,
}

#[derive(Debug)]
struct Queue {
    entries: Vec<Entry>,
    next_seq: u64,
    urgent: bool,
    closing: bool,
    journal: Option<Journal>,
    /// Entries the last cut took, and when it was taken.
    last_cut: (usize, Instant),
    /// How long the last commit took, from its cut to its end.
    last_commit: Duration,
}

#[derive(Debug, Default)]
struct Progress {
    committed: u64,
    error: Option<Error>,
}

/// Queued entries beyond which `throttle` makes writers wait for a commit: large enough that
/// a burst never waits, small enough that one cut stays a few tens of milliseconds of work.
const QUEUE_BOUND: usize = 16_384;

/// The name of the commit thread.
pub(crate) const COMMIT_THREAD: &str = "nanu-commit";

/// The queue shared by callers and the commit thread.
#[derive(Debug)]
pub(crate) struct Pipeline {
    queue: Mutex<Queue>,
    wake: Condvar,
    progress: Mutex<Progress>,
    committed: Condvar,
    /// Shared by calls that change counters and queue their records; exclusive for a cut.
    pub(crate) gate: RwLock<()>,
    flush_interval: Duration,
}

/// What the commit thread takes in one cut.
#[derive(Debug)]
pub(crate) struct Cut {
    pub(crate) entries: Vec<Entry>,
    pub(crate) last_seq: u64,
    pub(crate) closing: bool,
    /// Journal segments that the commit of this cut makes obsolete.
    pub(crate) obsolete: Vec<PathBuf>,
}

impl Pipeline {
    pub(crate) fn new(
        flush_interval: Duration,
        first_seq: u64,
        journal: Option<Journal>,
    ) -> Pipeline {
        Pipeline {
            queue: Mutex::new(Queue {
                entries: Vec::new(),
                next_seq: first_seq,
                urgent: false,
                closing: false,
                journal,
                last_cut: (0, Instant::now()),
                last_commit: Duration::ZERO,
            }),
            wake: Condvar::new(),
            progress: Mutex::new(Progress {
                committed: first_seq - 1,
                error: None,
            }),
            committed: Condvar::new(),
            gate: RwLock::new(()),
            flush_interval,
        }
    }

    /// Queues the writes of one call. `urgent` asks for a commit now (the caller will wait).
    /// Returns the entry's sequence number. At the `process` level the entry is in the
    /// journal file when this returns.
    pub(crate) fn submit(
        &self,
        keys: &Keys,
        writes: Vec<Write>,
        apply: Option<Apply>,
        urgent: bool,
    ) -> Result<u64> {
        let mut queue = self.queue.lock();
        if queue.closing {
            return Err(Error::new(
                crate::error::ErrorCode::Closed,
                "the vault is closed",
            ));
        }
        let seq = queue.next_seq;
        let entry = Entry { seq, writes, apply };
        if let Some(journal) = queue.journal.as_mut() {
            journal.append(keys, &entry)?;
        }
        queue.next_seq += 1;
        queue.entries.push(entry);
        if urgent {
            queue.urgent = true;
            self.wake.notify_one();
        }
        Ok(seq)
    }

    /// Waits until the entry `seq` is committed.
    pub(crate) fn wait(&self, seq: u64) -> Result<()> {
        let mut progress = self.progress.lock();
        loop {
            if let Some(err) = &progress.error {
                return Err(err.clone());
            }
            if progress.committed >= seq {
                return Ok(());
            }
            self.committed.wait(&mut progress);
        }
    }

    /// Slows a writer that no caller waits for down to the pace of the commits: when the
    /// queue holds more than `QUEUE_BOUND` entries, waits until everything queued so far is
    /// committed. Without it, a flood of denied verifies of a known key (each writes a usage
    /// record) outruns the commit thread and the queue grows without bound. Never call it from
    /// the commit thread, nor while holding `gate` or a key's or owner's lock.
    pub(crate) fn throttle(&self) -> Result<()> {
        let seq = {
            let mut queue = self.queue.lock();
            if queue.entries.len() < QUEUE_BOUND || queue.closing {
                return Ok(());
            }
            // An event subscriber runs on the commit thread: waiting there would wait forever.
            if std::thread::current().name() == Some(COMMIT_THREAD) {
                return Ok(());
            }
            queue.urgent = true;
            self.wake.notify_one();
            queue.next_seq - 1
        };
        self.wait(seq)
    }

    /// Queues nothing but waits until everything queued so far is committed.
    pub(crate) fn sync(&self, keys: &Keys) -> Result<()> {
        let seq = self.submit(keys, Vec::new(), None, true)?;
        self.wait(seq)
    }

    /// Blocks the commit thread until there is something to cut: an urgent entry, or the
    /// flush interval passed. Returns whether a cut should be made now.
    pub(crate) fn wait_for_work(&self, have_dirty: bool) -> bool {
        let mut queue = self.queue.lock();
        if !(queue.urgent || queue.closing) {
            let _ = self.wake.wait_for(&mut queue, self.flush_interval);
        }
        // Group commit: the callers the last commit released come back one by one. Cutting at
        // the first would split them into a commit of one and a commit of the rest, two fsyncs
        // where one does. So wait a little, at most half the last commit's time, until as many
        // entries are queued as the last cut took.
        if queue.urgent && !queue.closing && queue.entries.len() < queue.last_cut.0 {
            let patience = (queue.last_commit / 2).min(Duration::from_millis(1));
            let deadline = Instant::now() + patience;
            while queue.entries.len() < queue.last_cut.0 && !queue.closing {
                if self.wake.wait_until(&mut queue, deadline).timed_out() {
                    break;
                }
            }
        }
        queue.urgent || queue.closing || !queue.entries.is_empty() || have_dirty
    }

    /// Takes everything queued. Call under the exclusive gate.
    pub(crate) fn cut(&self) -> Result<Cut> {
        let mut queue = self.queue.lock();
        let entries = std::mem::take(&mut queue.entries);
        queue.urgent = false;
        queue.last_cut = (entries.len(), Instant::now());
        let last_seq = queue.next_seq - 1;
        let obsolete = match queue.journal.as_mut() {
            Some(journal) => journal.rotate()?,
            None => Vec::new(),
        };
        Ok(Cut {
            entries,
            last_seq,
            closing: queue.closing,
            obsolete,
        })
    }

    /// Records the outcome of a cut's commit and wakes its waiters.
    pub(crate) fn finish(&self, last_seq: u64, result: Result<()>) {
        {
            let mut queue = self.queue.lock();
            queue.last_commit = queue.last_cut.1.elapsed();
        }
        let mut progress = self.progress.lock();
        match result {
            Ok(()) => progress.committed = progress.committed.max(last_seq),
            Err(err) => {
                log::warn!("commit failed, the vault refuses further writes: {err}");
                progress.error = Some(err);
            }
        }
        self.committed.notify_all();
    }

    /// Asks the commit thread to make its last cut and stop.
    pub(crate) fn close(&self) {
        self.queue.lock().closing = true;
        self.wake.notify_all();
    }

    /// The error that stopped the pipeline, if any.
    pub(crate) fn failed(&self) -> Option<Error> {
        self.progress.lock().error.clone()
    }
}

/// The append-only journal of the `process` level: a sequence of segment files beside the
/// vault (`<vault>.journal.<n>`), each a run of `[length u32 LE][sealed entry]` frames. A
/// segment is deleted once a durable commit covers all of it.
#[derive(Debug)]
pub(crate) struct Journal {
    base: PathBuf,
    number: u64,
    file: File,
    /// Segments written before the current one, not yet covered by a durable commit.
    older: Vec<PathBuf>,
    buffer: Vec<u8>,
}

const JOURNAL_TABLE: &str = "journal";

impl Journal {
    fn segment_path(base: &Path, number: u64) -> PathBuf {
        let mut name = base.as_os_str().to_owned();
        name.push(format!(".journal.{number}"));
        PathBuf::from(name)
    }

    /// Lists existing segments of a vault, oldest first.
    pub(crate) fn segments(vault: &Path) -> Result<Vec<(u64, PathBuf)>> {
        let dir = vault
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let Some(stem) = vault.file_name().and_then(|n| n.to_str()) else {
            return Ok(Vec::new());
        };
        let prefix = format!("{stem}.journal.");
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(number) = name
                .strip_prefix(&prefix)
                .and_then(|n| n.parse::<u64>().ok())
            {
                found.push((number, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Reads every intact entry of the existing segments, oldest first. A torn last frame
    /// (a write cut short by a crash) ends a segment.
    pub(crate) fn replay(vault: &Path, keys: &Keys) -> Result<(Vec<Entry>, Vec<PathBuf>)> {
        let mut entries = Vec::new();
        let mut paths = Vec::new();
        for (_, path) in Journal::segments(vault)? {
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let mut rest = bytes.as_slice();
            while rest.len() >= 12 {
                let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let seq = u64::from_le_bytes(rest[4..12].try_into().unwrap_or([0; 8]));
                let Some(frame) = rest.get(12..12 + len) else {
                    break;
                };
                let Some(plain) = keys.open(JOURNAL_TABLE, &seq.to_le_bytes(), frame) else {
                    log::warn!(
                        "journal {}: entry {seq} fails authentication",
                        path.display()
                    );
                    break;
                };
                match serde_json::from_slice::<Entry>(&plain) {
                    Ok(entry) if entry.seq == seq => entries.push(entry),
                    _ => {
                        log::warn!("journal {}: entry {seq} cannot be decoded", path.display());
                        break;
                    }
                }
                rest = &rest[12 + len..];
            }
            paths.push(path);
        }
        Ok((entries, paths))
    }

    /// Starts a new segment after the existing ones; `leftover` are segments already
    /// replayed, deleted after the first durable commit.
    pub(crate) fn start(vault: &Path, leftover: Vec<PathBuf>) -> Result<Journal> {
        let number = Journal::segments(vault)?.last().map_or(0, |(n, _)| n + 1);
        let base = vault.to_path_buf();
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(Journal::segment_path(&base, number))?;
        Ok(Journal {
            base,
            number,
            file,
            older: leftover,
            buffer: Vec::new(),
        })
    }

    fn append(&mut self, keys: &Keys, entry: &Entry) -> Result<()> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(entry).map_err(|e| Error::storage(format!("journal: {e}")))?,
        );
        let sealed = keys.seal(JOURNAL_TABLE, &entry.seq.to_le_bytes(), &plain)?;
        let len = u32::try_from(sealed.len())
            .map_err(|_| Error::invalid("a journal entry is larger than 4 GiB"))?;
        self.buffer.clear();
        self.buffer.extend_from_slice(&len.to_le_bytes());
        self.buffer.extend_from_slice(&entry.seq.to_le_bytes());
        self.buffer.extend_from_slice(&sealed);
        // One write system call: once it returns the frame is in the operating system's
        // cache and survives the death of this process.
        self.file.write_all(&self.buffer)?;
        Ok(())
    }

    /// Moves on to a new segment; returns the segments a durable commit of everything
    /// before now makes obsolete.
    fn rotate(&mut self) -> Result<Vec<PathBuf>> {
        let current = Journal::segment_path(&self.base, self.number);
        let next = self.number + 1;
        self.file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(Journal::segment_path(&self.base, next))?;
        self.number = next;
        let mut obsolete = std::mem::take(&mut self.older);
        obsolete.push(current);
        Ok(obsolete)
    }

    /// Deletes segments a durable commit made obsolete.
    pub(crate) fn remove(paths: &[PathBuf]) {
        for path in paths {
            if let Err(err) = fs::remove_file(path) {
                log::warn!("cannot remove journal segment {}: {err}", path.display());
            }
        }
    }

    /// Deletes the current (empty) segment when the vault closes cleanly.
    pub(crate) fn current_path(&self) -> PathBuf {
        Journal::segment_path(&self.base, self.number)
    }
}

impl Pipeline {
    /// The current journal segment, if any (for a clean close).
    pub(crate) fn journal_path(&self) -> Option<PathBuf> {
        self.queue
            .lock()
            .journal
            .as_ref()
            .map(Journal::current_path)
    }
}
