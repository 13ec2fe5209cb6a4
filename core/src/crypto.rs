//! Key derivation, record sealing and secret digests.
//!
//! A passphrase (or a raw 32-byte key) unseals the data-encryption key (DEK). Records are
//! sealed under the DEK with XChaCha20-Poly1305, a random 24-byte nonce per seal, and the
//! table name plus the row key as associated data, so that a record moved to another row
//! fails to open. Secrets are stored only as a keyed BLAKE3 digest whose key is derived from
//! the DEK. Keyed BLAKE3 is a PRF like HMAC-SHA256 and needs one compression for a secret of
//! under 64 bytes; it was chosen on that ground, not measured against HMAC-SHA256 or
//! BLAKE2b-MAC here (the whole verify, digest included, is measured by `benches/verify`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, ErrorCode, Result};

/// Argon2id cost parameters, stored in the vault header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The default: 64 MiB, 3 passes, 1 lane (about 0.2 s here).
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// The cheapest parameters Argon2 accepts, for tests only.
    pub const INSECURE_FOR_TESTS: KdfParams = KdfParams {
        m_cost_kib: 8,
        t_cost: 1,
        p_cost: 1,
    };
}

impl Default for KdfParams {
    fn default() -> KdfParams {
        KdfParams::DEFAULT
    }
}

/// How a vault is unlocked. Redacted in `Debug`, zeroed on drop.
#[derive(Clone)]
pub enum Unlock {
    /// A passphrase, stretched with Argon2id.
    Passphrase(Zeroizing<String>),
    /// A raw 32-byte key (from a file, an environment variable or a KMS).
    Key(Zeroizing<[u8; 32]>),
}

impl Unlock {
    /// Unlock with a passphrase.
    pub fn passphrase(passphrase: impl Into<String>) -> Unlock {
        Unlock::Passphrase(Zeroizing::new(passphrase.into()))
    }

    /// Unlock with a raw key.
    pub fn key(key: [u8; 32]) -> Unlock {
        Unlock::Key(Zeroizing::new(key))
    }

    /// Unlock with a raw key given as 64 hex digits (surrounding whitespace ignored).
    pub fn key_hex(hex: &str) -> Result<Unlock> {
        let hex = hex.trim();
        let mut key = Zeroizing::new([0u8; 32]);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid("a raw vault key must be 64 hex digits"));
        }
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| Error::invalid("a raw vault key must be 64 hex digits"))?;
        }
        Ok(Unlock::Key(key))
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Unlock::Passphrase(_) => "passphrase",
            Unlock::Key(_) => "key",
        }
    }

    /// The key-encryption key.
    pub(crate) fn derive_kek(
        &self,
        params: &KdfParams,
        salt: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>> {
        let mut kek = Zeroizing::new([0u8; 32]);
        match self {
            Unlock::Passphrase(passphrase) => {
                if passphrase.is_empty() {
                    return Err(Error::invalid("the passphrase is empty"));
                }
                let params =
                    argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
                        .map_err(|e| Error::invalid(format!("invalid kdf parameters: {e}")))?;
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into(passphrase.as_bytes(), salt, kek.as_mut())
                    .map_err(|e| Error::invalid(format!("key derivation failed: {e}")))?;
            }
            Unlock::Key(key) => {
                // A raw key is already uniformly random: bind it to the salt so that the same
                // key gives different KEKs for different vaults.
                let derived = blake3::keyed_hash(key, salt);
                kek.copy_from_slice(derived.as_bytes());
            }
        }
        Ok(kek)
    }
}

impl fmt::Debug for Unlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Unlock::{}(<redacted>)", self.kind())
    }
}

/// Fills a buffer from the operating system's random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| Error::storage(format!("no randomness: {e}")))?;
    Ok(bytes)
}

const NONCE_LEN: usize = 24;

/// Seals `plaintext` under `key` with associated data; output is nonce || ciphertext.
fn seal_with(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce: [u8; NONCE_LEN] = random_bytes()?;
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::storage("sealing a record failed"))?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
}

/// Seals the DEK under a KEK.
pub(crate) fn seal_dek(kek: &[u8; 32], dek: &[u8; 32]) -> Result<Vec<u8>> {
    seal_with(kek, b"nanu dek", dek)
}

/// Opens the DEK; a failure means a wrong passphrase or key.
pub(crate) fn open_dek(kek: &[u8; 32], sealed: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let plain = Zeroizing::new(open_with(kek, b"nanu dek", sealed).ok_or_else(|| {
        Error::new(
            ErrorCode::WrongPassphrase,
            "wrong passphrase or key for this vault",
        )
    })?);
    let mut dek = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return Err(Error::corrupt("the sealed data key has the wrong length"));
    }
    dek.copy_from_slice(&plain);
    Ok(dek)
}

/// The vault's record cipher and secret digest key, both derived from the DEK.
///
/// Record nonces are a random 16-byte prefix, drawn once per open, followed by a 64-bit
/// counter: unique for the life of this handle without a system call per seal (drawing 24
/// random bytes from the operating system for every record cost one `getrandom` call on the
/// charge path). Two handles share a prefix with probability about 2^-128 per pair.
pub(crate) struct Keys {
    cipher: XChaCha20Poly1305,
    digest_key: [u8; 32],
    nonce_prefix: [u8; 16],
    nonce_counter: AtomicU64,
}

impl Keys {
    pub(crate) fn new(dek: &[u8; 32]) -> Result<Keys> {
        let mut record_key = blake3::derive_key("nanu 2026 record sealing key", dek);
        let digest_key = blake3::derive_key("nanu 2026 secret digest key", dek);
        let cipher = XChaCha20Poly1305::new((&record_key).into());
        record_key.zeroize();
        Ok(Keys {
            cipher,
            digest_key,
            nonce_prefix: random_bytes()?,
            nonce_counter: AtomicU64::new(0),
        })
    }

    fn next_nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..16].copy_from_slice(&self.nonce_prefix);
        let count = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        nonce[16..].copy_from_slice(&count.to_le_bytes());
        nonce
    }

    /// The keyed digest that indexes a secret.
    pub(crate) fn digest(&self, secret: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.digest_key, secret.as_bytes()).as_bytes()
    }

    /// Seals a record for `table` / `row`.
    pub(crate) fn seal(&self, table: &str, row: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let nonce = self.next_nonce();
        let aad = associated_data(table, row);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::storage("sealing a record failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a record sealed for `table` / `row`; `None` when it was altered or moved.
    pub(crate) fn open(&self, table: &str, row: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let aad = associated_data(table, row);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .ok()
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.digest_key.zeroize();
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

fn associated_data(table: &str, row: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(table.len() + 1 + row.len());
    aad.extend_from_slice(table.as_bytes());
    aad.push(0);
    aad.extend_from_slice(row);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_moved_to_another_row_fails_to_open() {
        let keys = Keys::new(&[7u8; 32]).unwrap();
        let sealed = keys.seal("keys", b"key_a", b"hello").unwrap();
        assert_eq!(
            keys.open("keys", b"key_a", &sealed).as_deref(),
            Some(&b"hello"[..])
        );
        assert!(keys.open("keys", b"key_b", &sealed).is_none());
        assert!(keys.open("owners", b"key_a", &sealed).is_none());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(keys.open("keys", b"key_a", &flipped).is_none());
    }

    #[test]
    fn nonces_never_repeat_within_a_handle_and_differ_between_handles() {
        let a = Keys::new(&[7u8; 32]).unwrap();
        let b = Keys::new(&[7u8; 32]).unwrap();
        let first = a.seal("t", b"r", b"x").unwrap();
        let second = a.seal("t", b"r", b"x").unwrap();
        let other = b.seal("t", b"r", b"x").unwrap();
        assert_ne!(first[..24], second[..24]);
        assert_eq!(first[..16], second[..16], "one prefix per handle");
        assert_ne!(first[..16], other[..16], "a fresh prefix per handle");
        assert_eq!(b.open("t", b"r", &first).as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn wrong_kek_is_wrong_passphrase() {
        let salt = [1u8; 16];
        let good = Unlock::passphrase("right").derive_kek(&KdfParams::INSECURE_FOR_TESTS, &salt);
        let bad = Unlock::passphrase("wrong").derive_kek(&KdfParams::INSECURE_FOR_TESTS, &salt);
        let sealed = seal_dek(&good.unwrap(), &[9u8; 32]).unwrap();
        let err = open_dek(&bad.unwrap(), &sealed).unwrap_err();
        assert_eq!(err.code(), ErrorCode::WrongPassphrase);
        assert!(!format!("{:?}", Unlock::passphrase("right")).contains("right"));
    }
}
