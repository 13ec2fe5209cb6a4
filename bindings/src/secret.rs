//! Secrets handed to C once, at mint and rotate, in buffers that are zeroed when freed.

use std::ffi::c_char;

use nanu_core::Minted;
use zeroize::Zeroizing;

use crate::guard::guard;

/// A freshly minted or rotated key: its key id and its secret, the only time the secret is
/// seen. Read it with `nanu_secret_value`, `nanu_secret_len` and `nanu_secret_key_id`;
/// release it with `nanu_secret_free`, which zeroes the secret's memory.
///
/// Thread safety: immutable; readable from any thread, freed once by its owner.
#[allow(non_camel_case_types)]
pub struct nanu_secret {
    /// The key id and a NUL.
    key_id: Box<[u8]>,
    /// The secret and a NUL, zeroed on drop.
    value: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for nanu_secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("nanu_secret")
            .field("key_id", &String::from_utf8_lossy(&self.key_id))
            .finish_non_exhaustive()
    }
}

impl nanu_secret {
    /// Copies a minted key into C-friendly buffers (the `Minted` zeroes its own copy).
    pub(crate) fn new(minted: &Minted) -> nanu_secret {
        let text = minted.secret.expose().as_bytes();
        // Allocated once at its final size, so that no reallocation leaves a copy behind.
        let mut value = Zeroizing::new(Vec::with_capacity(text.len() + 1));
        value.extend_from_slice(text);
        value.push(0);
        let mut key_id = Vec::with_capacity(minted.key_id.len() + 1);
        key_id.extend_from_slice(minted.key_id.as_bytes());
        key_id.push(0);
        nanu_secret {
            key_id: key_id.into_boxed_slice(),
            value,
        }
    }

    /// The secret text, without its NUL.
    pub fn value(&self) -> &[u8] {
        &self.value[..self.value.len() - 1]
    }

    /// The key id, without its NUL.
    pub fn key_id(&self) -> &[u8] {
        &self.key_id[..self.key_id.len() - 1]
    }
}

/// Several minted or rotated keys (`nanu_vault_mint_many`, `nanu_vault_rotate_due`). Read
/// them with `nanu_secrets_len` and `nanu_secrets_get`; release them all with
/// `nanu_secrets_free`, which zeroes every secret.
///
/// Thread safety: immutable; readable from any thread, freed once by its owner.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct nanu_secrets {
    items: Vec<nanu_secret>,
}

impl nanu_secrets {
    pub(crate) fn new(minted: &[Minted]) -> nanu_secrets {
        nanu_secrets {
            items: minted.iter().map(nanu_secret::new).collect(),
        }
    }
}

/// The secret text, NUL-terminated, to hand to the key's user once. Do not log it.
/// Returns `""` for NULL.
///
/// Lifetime: valid until the secret (or the `nanu_secrets` holding it) is freed.
/// Thread-safe.
///
/// # Safety
///
/// `secret` is NULL or a live `nanu_secret` from nanu.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_secret_value(secret: *const nanu_secret) -> *const c_char {
    guard(|| {
        // SAFETY: the caller passes NULL or a live nanu_secret, not freed concurrently.
        match unsafe { secret.as_ref() } {
            Some(secret) => secret.value.as_ptr().cast(),
            None => c"".as_ptr(),
        }
    })
}

/// The length in bytes of the secret text, without the NUL; 0 for NULL. Thread-safe.
///
/// # Safety
///
/// `secret` is NULL or a live `nanu_secret` from nanu.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_secret_len(secret: *const nanu_secret) -> usize {
    guard(|| {
        // SAFETY: the caller passes NULL or a live nanu_secret, not freed concurrently.
        unsafe { secret.as_ref() }.map_or(0, |s| s.value().len())
    })
}

/// The key id the secret belongs to (`key_...`), NUL-terminated; `""` for NULL. The key id is
/// public: store it, log it, pass it to `nanu_vault_charge`.
///
/// Lifetime: valid until the secret (or the `nanu_secrets` holding it) is freed.
/// Thread-safe.
///
/// # Safety
///
/// `secret` is NULL or a live `nanu_secret` from nanu.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_secret_key_id(secret: *const nanu_secret) -> *const c_char {
    guard(|| {
        // SAFETY: the caller passes NULL or a live nanu_secret, not freed concurrently.
        match unsafe { secret.as_ref() } {
            Some(secret) => secret.key_id.as_ptr().cast(),
            None => c"".as_ptr(),
        }
    })
}

/// Zeroes and releases a secret. NULL does nothing. Do not free a secret borrowed from a
/// `nanu_secrets` (free the list instead).
///
/// # Safety
///
/// `secret` is NULL or a `nanu_secret` returned by nanu that was not freed before and is not
/// in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_secret_free(secret: *mut nanu_secret) {
    guard(|| {
        if !secret.is_null() {
            // SAFETY: a non-NULL secret came from Box::into_raw and is freed once; dropping
            // it zeroes the secret text.
            drop(unsafe { Box::from_raw(secret) });
        }
    })
}

/// How many keys a `nanu_secrets` holds; 0 for NULL. Thread-safe.
///
/// # Safety
///
/// `secrets` is NULL or a live `nanu_secrets` from nanu.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_secrets_len(secrets: *const nanu_secrets) -> usize {
    guard(|| {
        // SAFETY: the caller passes NULL or a live nanu_secrets, not freed concurrently.
        unsafe { secrets.as_ref() }.map_or(0, |s| s.items.len())
    })
}

/// The `index`-th key of a `nanu_secrets` (in the order of the specs given to
/// `nanu_vault_mint_many`), or NULL when `secrets` is NULL or `index` is out of range.
///
/// Ownership and lifetime: borrowed from the list; valid until `nanu_secrets_free(secrets)`.
/// Never pass it to `nanu_secret_free`. Thread-safe.
///
/// # Safety
///
/// `secrets` is NULL or a live `nanu_secrets` from nanu.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_secrets_get(
    secrets: *const nanu_secrets,
    index: usize,
) -> *const nanu_secret {
    guard(|| {
        // SAFETY: the caller passes NULL or a live nanu_secrets, not freed concurrently.
        let item = unsafe { secrets.as_ref() }.and_then(|s| s.items.get(index));
        item.map_or(std::ptr::null(), |s| s as *const nanu_secret)
    })
}

/// Zeroes and releases every secret of a `nanu_secrets`. NULL does nothing.
///
/// # Safety
///
/// `secrets` is NULL or a `nanu_secrets` returned by nanu that was not freed before and is
/// not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanu_secrets_free(secrets: *mut nanu_secrets) {
    guard(|| {
        if !secrets.is_null() {
            // SAFETY: a non-NULL list came from Box::into_raw and is freed once; dropping it
            // zeroes every secret.
            drop(unsafe { Box::from_raw(secrets) });
        }
    })
}
