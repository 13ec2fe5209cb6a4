//! Finding and unlocking the vault: the path, the passphrase or key, the KDF cost.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use nanu::{Concurrency, Context, Durability, KdfParams, Options, Unlock, Vault};

use crate::args::Global;
use crate::failure::{Exit, Failure, Outcome};

/// The environment variable holding the passphrase.
pub const PASSPHRASE_ENV: &str = "NANU_PASSPHRASE";
/// The environment variable holding the new passphrase of `rekey`.
pub const NEW_PASSPHRASE_ENV: &str = "NANU_NEW_PASSPHRASE";
/// The environment variable naming the vault file.
pub const VAULT_ENV: &str = "NANU_VAULT";
/// `NANU_KDF=insecure` selects the test-only KDF parameters.
pub const KDF_ENV: &str = "NANU_KDF";

/// The vault path: --vault, else $NANU_VAULT, else ./nanu.vault.
pub fn vault_path(global: &Global) -> PathBuf {
    if let Some(path) = &global.vault {
        return path.clone();
    }
    match std::env::var_os(VAULT_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from("nanu.vault"),
    }
}

/// The Argon2 parameters for a new vault or a rekey. The cheap ones are for tests only:
/// they make a passphrase-protected vault as weak as its passphrase.
pub fn kdf(global: &Global) -> Outcome<KdfParams> {
    if global.kdf_insecure_for_tests {
        return Ok(KdfParams::INSECURE_FOR_TESTS);
    }
    match std::env::var(KDF_ENV) {
        Ok(value) if value == "insecure" => Ok(KdfParams::INSECURE_FOR_TESTS),
        Ok(value) if value.is_empty() || value == "default" => Ok(KdfParams::DEFAULT),
        Ok(value) => Err(Failure::invalid(format!(
            "{KDF_ENV}={value:?} is not understood: use `insecure` (tests only) or leave it unset"
        ))),
        Err(_) => Ok(KdfParams::DEFAULT),
    }
}

/// The audit actor: --actor, else `cli:$USER`, else `cli`.
pub fn context(global: &Global) -> Context {
    let actor = match &global.actor {
        Some(actor) => actor.clone(),
        None => match std::env::var("USER") {
            Ok(user) if !user.is_empty() => format!("cli:{user}"),
            _ => "cli".to_owned(),
        },
    };
    Context::actor(actor)
}

/// Reads a raw key file: 64 hex digits, surrounding whitespace ignored.
pub fn read_key_file(path: &Path) -> Outcome<Unlock> {
    let text = std::fs::read_to_string(path).map_err(|e| Failure::input(path, &e))?;
    Unlock::key_hex(&text).map_err(|_| {
        Failure::invalid(format!(
            "key file {} must hold a raw 32-byte key as 64 hex digits (for a passphrase, use \
             {PASSPHRASE_ENV} or the prompt)",
            path.display()
        ))
    })
}

/// How to unlock the vault: --key-file, else $NANU_PASSPHRASE, else the prompt. `confirm`
/// asks twice (for a new vault).
pub fn unlock(global: &Global, path: &Path, confirm: bool) -> Outcome<Unlock> {
    if let Some(key_file) = &global.key_file {
        return read_key_file(key_file);
    }
    if let Ok(passphrase) = std::env::var(PASSPHRASE_ENV) {
        return Ok(Unlock::passphrase(passphrase));
    }
    let prompt = format!("passphrase for {}: ", path.display());
    prompt_passphrase(&prompt, confirm, PASSPHRASE_ENV).map(Unlock::passphrase)
}

/// The new unlock of `rekey`: --new-key-file, else $NANU_NEW_PASSPHRASE, else the prompt.
pub fn new_unlock(new_key_file: Option<&Path>) -> Outcome<Unlock> {
    if let Some(key_file) = new_key_file {
        return read_key_file(key_file);
    }
    if let Ok(passphrase) = std::env::var(NEW_PASSPHRASE_ENV) {
        return Ok(Unlock::passphrase(passphrase));
    }
    prompt_passphrase("new passphrase: ", true, NEW_PASSPHRASE_ENV).map(Unlock::passphrase)
}

fn prompt_passphrase(prompt: &str, confirm: bool, env: &str) -> Outcome<String> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            Exit::Invalid,
            format!("no passphrase: set {env} or pass --key-file (stdin is not a terminal)"),
        ));
    }
    let unreadable =
        |e: std::io::Error| Failure::invalid(format!("cannot read the passphrase: {e}"));
    let first = rpassword::prompt_password(prompt).map_err(unreadable)?;
    if confirm {
        let again = rpassword::prompt_password("again: ").map_err(unreadable)?;
        if again != first {
            return Err(Failure::invalid("the passphrases differ"));
        }
    }
    Ok(first)
}

/// Opens the vault for a command.
pub fn open(global: &Global, durability: Durability) -> Outcome<Vault> {
    let (path, unlock) = locate(global)?;
    open_at(&path, unlock, durability, concurrency(global))
}

/// The concurrency mode asked for (default exclusive).
pub fn concurrency(global: &Global) -> Concurrency {
    global
        .concurrency
        .map_or(Concurrency::Exclusive, Concurrency::from)
}

/// The vault path and its unlock, checking first that the file exists (so that a missing
/// vault does not cost a passphrase prompt).
pub fn locate(global: &Global) -> Outcome<(PathBuf, Unlock)> {
    let path = vault_path(global);
    if !path.exists() {
        return Err(Failure::new(
            Exit::NotFound,
            format!(
                "no vault at {} (create one with `nanu init`, or name it with --vault \
                 or {VAULT_ENV})",
                path.display()
            ),
        ));
    }
    let unlock = unlock(global, &path, false)?;
    Ok((path, unlock))
}

/// Opens the vault at `path` with a known unlock.
pub fn open_at(
    path: &Path,
    unlock: Unlock,
    durability: Durability,
    concurrency: Concurrency,
) -> Outcome<Vault> {
    let options = Options::new(unlock)
        .durability(durability)
        .concurrency(concurrency);
    Ok(Vault::open(path, &options)?)
}
