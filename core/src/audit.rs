//! The audit trail: every administrative change, hash-chained.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One administrative change. `hash` chains it to the previous record:
/// `hash = BLAKE3(previous hash || canonical JSON of the record without its hash)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// What was done (`mint`, `update`, `rotate`, `revoke`, `revoke_owner`, `set_owner_policy`,
    /// `set_default_owner_policy`, `set_price`, `import_prices`, `rekey`, `create`).
    pub action: String,
    /// The key id or owner acted upon.
    pub target: String,
    /// Who did it, as the caller said (an admin key id, a user name).
    pub actor: Option<String>,
    /// What changed (never a secret).
    pub detail: serde_json::Value,
    /// Hex of the chained hash.
    pub hash: String,
}

impl AuditRecord {
    /// The hash this record must carry, given the previous record's hash (all zeros for the
    /// first record).
    pub(crate) fn chain_hash(&self, previous: &[u8; 32]) -> [u8; 32] {
        let body = serde_json::json!({
            "seq": self.seq,
            "at": self.at.to_string(),
            "action": self.action,
            "target": self.target,
            "actor": self.actor,
            "detail": self.detail,
        });
        let mut hasher = blake3::Hasher::new();
        hasher.update(previous);
        hasher.update(body.to_string().as_bytes());
        *hasher.finalize().as_bytes()
    }
}

/// The result of checking the audit chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditCheck {
    /// Records checked.
    pub records: u64,
    /// Whether the chain is intact.
    pub ok: bool,
    /// The first record found removed, altered or unreadable, with what is wrong.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<serde_json::Value>>))]
    pub first_bad: Option<(u64, String)>,
}
