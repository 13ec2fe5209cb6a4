//! The vault file: a redb database whose rows are sealed records.
//!
//! The `meta` table holds the plaintext header (magic, schema version, KDF parameters and
//! salt, the sealed data key). Every other row is a JSON document sealed with the table name
//! and row key as associated data. A damaged key, owner, ledger, price or usage row is
//! reported as corrupt for that row only. The sealed rows of the `meta` table (the audit head,
//! the sequence counters, the default owner policy) hold state of the whole vault: a vault
//! whose meta row fails authentication is refused as corrupt, since going on without it could
//! overwrite usage records and events or hide a truncated audit trail.
//!
//! Sealing finds a row that was altered or moved, not one that was removed: only the audit
//! trail is chained. A damaged or removed ledger row restarts its counters from zero, and a
//! damaged or removed owner row leaves the owner without limits until they are set again;
//! both are logged at warn. Whoever can write the file can therefore reset counters, though
//! never forge a key or read a secret.
//!
//! Row keys are not encrypted: key ids, owner names, model names, the time and sequence number
//! of usage records, and the request ids of remembered charges can be read from the file
//! without the passphrase. Secrets never can (only their keyed digests are stored, inside
//! sealed rows), nor anything else a record holds: names, scopes, metadata, limits, counters.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{self, KdfParams, Keys, Unlock};
use crate::error::{Error, ErrorCode, Result};
use crate::options::Concurrency;
use crate::policy::Limit;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
pub(crate) const LEDGERS: TableDefinition<&str, &[u8]> = TableDefinition::new("ledgers");
pub(crate) const OWNERS: TableDefinition<&str, &[u8]> = TableDefinition::new("owners");
pub(crate) const PRICES: TableDefinition<&str, &[u8]> = TableDefinition::new("prices");
pub(crate) const CHARGES: TableDefinition<&str, &[u8]> = TableDefinition::new("charges");
pub(crate) const USAGE: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("usage");
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// Shared mode: the changes to keys, owners and prices, by generation number, which the other
/// processes apply to their memory.
pub(crate) const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// Shared mode: the processes that have the vault open, by session id, with the time until
/// which each one's leases are good.
pub(crate) const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");

/// Identifies a nanu vault in the `meta` table.
pub(crate) const MAGIC: &[u8] = b"nanu vault";
/// The schema this build writes. Older schemas are migrated on open.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The plaintext header.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) schema: u32,
    pub(crate) kdf: KdfParams,
    pub(crate) unlock: String,
    pub(crate) salt: Vec<u8>,
    pub(crate) sealed_dek: Vec<u8>,
    pub(crate) prefix: String,
    pub(crate) currency: String,
}

/// How a stored key's secret digests look: the current one, and previous ones in grace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StoredDigest {
    #[serde(with = "hex32")]
    pub(crate) digest: [u8; 32],
    /// `None` for the current secret; for an old one, the instant (µs) it stops working.
    pub(crate) until: Option<i64>,
}

/// A key as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct KeyRecord {
    pub(crate) key_id: String,
    pub(crate) owner: String,
    pub(crate) name: String,
    pub(crate) env: String,
    pub(crate) disabled: bool,
    pub(crate) revoked: bool,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) rotated_at: i64,
    pub(crate) expires_at: Option<i64>,
    pub(crate) scopes: Vec<String>,
    pub(crate) models: Option<Vec<String>>,
    pub(crate) aliases: BTreeMap<String, String>,
    pub(crate) ips: Option<Vec<String>>,
    pub(crate) limits: Vec<Limit>,
    pub(crate) rotate_every: Option<String>,
    pub(crate) metadata: serde_json::Map<String, serde_json::Value>,
    pub(crate) digests: Vec<StoredDigest>,
    #[serde(default)]
    pub(crate) expiring_notified: bool,
    #[serde(default)]
    pub(crate) expired_notified: bool,
}

/// An owner as stored.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct OwnerRecord {
    pub(crate) owner: String,
    pub(crate) limits: Vec<Limit>,
}

/// The remembered outcome of an idempotent charge.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ChargeMemo {
    pub(crate) fingerprint: String,
    pub(crate) at: i64,
    pub(crate) outcome: crate::usage::ChargeOutcome,
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if text.len() != 64 {
            return Err(serde::de::Error::custom("digest must be 64 hex digits"));
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(out)
    }
}

/// Maps an i64 time to a u64 that sorts the same way (for the usage table's key).
pub(crate) fn time_key(at_us: i64) -> u64 {
    (at_us as u64) ^ (1 << 63)
}

pub(crate) fn time_from_key(key: u64) -> i64 {
    (key ^ (1 << 63)) as i64
}

/// Seals a serializable record for a row.
pub(crate) fn seal<T: Serialize>(
    keys: &Keys,
    table: &str,
    row: &[u8],
    value: &T,
) -> Result<Vec<u8>> {
    let plain = Zeroizing::new(
        serde_json::to_vec(value).map_err(|e| Error::storage(format!("encoding a record: {e}")))?,
    );
    keys.seal(table, row, &plain)
}

/// Opens a sealed row; a failure names the table and row.
pub(crate) fn open<T: DeserializeOwned>(
    keys: &Keys,
    table: &str,
    row: &[u8],
    sealed: &[u8],
) -> Result<T> {
    let what = || format!("{table} row {}", row_name(row));
    let plain = Zeroizing::new(
        keys.open(table, row, sealed)
            .ok_or_else(|| Error::corrupt(format!("{} fails authentication", what())))?,
    );
    serde_json::from_slice(&plain)
        .map_err(|e| Error::corrupt(format!("{} cannot be decoded: {e}", what())))
}

/// A row key as an error message shows it: text keys (key ids, owners, models) as they are,
/// binary keys (the sequence numbers of events and audit records, the time and sequence of
/// usage records) as the numbers they hold.
fn row_name(row: &[u8]) -> String {
    let be = |bytes: &[u8]| bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
    match std::str::from_utf8(row) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ if row.len() == 8 => be(row).to_string(),
        _ if row.len() == 16 => {
            let at = jiff::Timestamp::from_microsecond(time_from_key(be(&row[..8])));
            match at {
                Ok(at) => format!("{} (at {at})", be(&row[8..])),
                Err(_) => format!("{} (at an invalid time)", be(&row[8..])),
            }
        }
        _ => row.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// The data key, unsealed once per open: the KDF is the slow part of opening a vault.
pub(crate) type Dek = Zeroizing<[u8; 32]>;

/// Creates a new vault file. Fails if the file exists.
pub(crate) fn create(
    path: &Path,
    unlock: &Unlock,
    kdf: KdfParams,
    prefix: &str,
    currency: &str,
    concurrency: Concurrency,
) -> Result<(Database, Header, Keys, Dek)> {
    if path.exists() {
        return Err(Error::invalid(format!("{} already exists", path.display())));
    }
    let salt: [u8; 16] = crypto::random_bytes()?;
    let dek = Zeroizing::new(crypto::random_bytes::<32>()?);
    let kek = unlock.derive_kek(&kdf, &salt)?;
    let header = Header {
        schema: SCHEMA_VERSION,
        kdf,
        unlock: unlock.kind().to_owned(),
        salt: salt.to_vec(),
        sealed_dek: crypto::seal_dek(&kek, &dek)?,
        prefix: prefix.to_owned(),
        currency: currency.to_owned(),
    };
    let db = builder(concurrency)
        .create(path)
        .map_err(|e| database_error(path, e, concurrency))?;
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert("magic", MAGIC)?;
        let encoded = serde_json::to_vec(&header)
            .map_err(|e| Error::storage(format!("encoding the header: {e}")))?;
        meta.insert("header", encoded.as_slice())?;
        for table in [KEYS, LEDGERS, OWNERS, PRICES, CHARGES] {
            txn.open_table(table)?;
        }
        txn.open_table(USAGE)?;
        txn.open_table(EVENTS)?;
        txn.open_table(AUDIT)?;
        txn.open_table(CHANGES)?;
        txn.open_table(SESSIONS)?;
    }
    txn.commit()?;
    let keys = Keys::new(&dek)?;
    Ok((db, header, keys, dek))
}

/// Opens an existing vault file and unseals its data key.
pub(crate) fn open_file(
    path: &Path,
    unlock: &Unlock,
    concurrency: Concurrency,
) -> Result<(Database, Header, Keys, Dek)> {
    if !path.exists() {
        return Err(Error::not_found(format!("no vault at {}", path.display())));
    }
    let db = builder(concurrency)
        .open(path)
        .map_err(|e| database_error(path, e, concurrency))?;
    let header = read_header(&db, path)?;
    if header.schema > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorCode::NotAVault,
            format!(
                "{} was written by a newer nanu (schema {}, this build reads up to {})",
                path.display(),
                header.schema,
                SCHEMA_VERSION
            ),
        ));
    }
    let kek = unlock.derive_kek(&header.kdf, &header.salt)?;
    let dek = crypto::open_dek(&kek, &header.sealed_dek)?;
    let keys = Keys::new(&dek)?;
    Ok((db, header, keys, dek))
}

fn read_header(db: &Database, path: &Path) -> Result<Header> {
    let not_a_vault = || {
        Error::new(
            ErrorCode::NotAVault,
            format!("{} is not a nanu vault", path.display()),
        )
    };
    let txn = db.begin_read()?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Err(not_a_vault()),
        Err(e) => return Err(e.into()),
    };
    let magic = meta.get("magic")?.ok_or_else(not_a_vault)?;
    if magic.value() != MAGIC {
        return Err(not_a_vault());
    }
    let header = meta.get("header")?.ok_or_else(not_a_vault)?;
    serde_json::from_slice(header.value())
        .map_err(|e| Error::corrupt(format!("the vault header cannot be decoded: {e}")))
}

/// Rewrites the header (rekey).
pub(crate) fn write_header(db: &Database, header: &Header) -> Result<()> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)
        .map_err(|e| Error::storage(e.to_string()))?;
    {
        let mut meta = txn.open_table(META)?;
        let encoded = serde_json::to_vec(header)
            .map_err(|e| Error::storage(format!("encoding the header: {e}")))?;
        meta.insert("header", encoded.as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

fn builder(concurrency: Concurrency) -> redb::Builder {
    let mut builder = Database::builder();
    if concurrency == Concurrency::Shared {
        builder.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
    }
    builder
}

fn database_error(path: &Path, err: redb::DatabaseError, concurrency: Concurrency) -> Error {
    match err {
        redb::DatabaseError::DatabaseAlreadyOpen if concurrency == Concurrency::Exclusive => {
            Error::new(
                ErrorCode::Locked,
                format!(
                    "{} is already open, in another process or through another handle in this \
                     one, and this open asked for it alone (concurrency exclusive); close it \
                     there, or open it with concurrency shared in every process",
                    path.display()
                ),
            )
        }
        redb::DatabaseError::DatabaseAlreadyOpen => Error::new(
            ErrorCode::Locked,
            format!(
                "{} is open in another process with concurrency exclusive; open it with \
                 concurrency shared in every process that uses it at the same time",
                path.display()
            ),
        ),
        // redb reports a file that does not hold a redb database (wrong magic number, empty)
        // as an I/O error of kind `InvalidData`.
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            Error::new(
                ErrorCode::NotAVault,
                format!("{} is not a nanu vault ({io})", path.display()),
            )
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)) => {
            Error::corrupt(format!("{} is damaged: {why}", path.display()))
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            Error::storage(format!("{}: {io}", path.display()))
        }
        redb::DatabaseError::Storage(e) => Error::new(
            ErrorCode::NotAVault,
            format!("{} is not a nanu vault ({e})", path.display()),
        ),
        other => Error::storage(format!("{}: {other}", path.display())),
    }
}

/// Reads every row of a string-keyed table, opening each; rows that fail are returned as
/// errors beside the good ones so that one bad row does not hide the others.
pub(crate) fn load_all<T: DeserializeOwned>(
    db: &Database,
    keys: &Keys,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<(String, Result<T>)>> {
    let txn = db.begin_read()?;
    let handle = txn.open_table(table)?;
    let name = table.name().to_owned();
    let mut out = Vec::new();
    for row in handle.iter()? {
        let (key, value) = row?;
        let id = key.value().to_owned();
        let record = open(keys, &name, id.as_bytes(), value.value());
        out.push((id, record));
    }
    Ok(out)
}

/// Reads one meta value that is sealed.
pub(crate) fn read_sealed_meta<T: DeserializeOwned>(
    db: &Database,
    keys: &Keys,
    name: &str,
) -> Result<Option<T>> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    match meta.get(name)? {
        Some(value) => open(keys, "meta", name.as_bytes(), value.value()).map(Some),
        None => Ok(None),
    }
}
