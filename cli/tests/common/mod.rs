//! Shared helpers: a scratch folder with a vault, and the built `nanu` binary run in it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

/// The passphrase of every test vault.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// A scratch folder holding `nanu.vault`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// An empty folder (no vault yet).
    pub fn empty() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    /// A folder with a fresh vault created by `nanu init`.
    pub fn with_vault() -> Scratch {
        let scratch = Scratch::empty();
        scratch.nanu().arg("init").assert().success();
        scratch
    }

    /// The vault file.
    pub fn vault(&self) -> PathBuf {
        self.dir.path().join("nanu.vault")
    }

    /// A file in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The built `nanu`, run in the folder with the test passphrase and the test-only KDF.
    pub fn nanu(&self) -> Command {
        let mut cmd = Command::cargo_bin("nanu").expect("the nanu binary");
        cmd.current_dir(self.dir.path())
            .env("NANU_PASSPHRASE", PASSPHRASE)
            .env("NANU_KDF", "insecure")
            .env_remove("NANU_VAULT")
            .env_remove("NANU_NEW_PASSPHRASE")
            .env_remove("NANU_LOG");
        cmd
    }

    /// Runs `nanu --json ARGS`, expects success, and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self
            .nanu()
            .arg("--json")
            .args(args)
            .output()
            .expect("nanu runs");
        assert!(
            out.status.success(),
            "nanu {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "nanu {args:?}: not json ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Mints a key and returns (key id, secret).
    pub fn mint(&self, args: &[&str]) -> (String, String) {
        let mut all = vec!["mint"];
        all.extend_from_slice(args);
        let minted = self.json(&all);
        (
            minted["key_id"].as_str().expect("key_id").to_owned(),
            minted["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// Everything the vault holds, as the CLI reads it: keys, owners, prices, usage, events
    /// and the audit trail. Two equal snapshots mean nothing changed.
    pub fn snapshot(&self) -> Value {
        serde_json::json!({
            "keys": self.json(&["ls", "--limit", "10000"]),
            "owners": self.json(&["owner", "ls"]),
            "default_owner": self.json(&["owner", "default"]),
            "prices": self.json(&["prices", "ls"]),
            "usage": self.json(&["usage", "--group-by", "key,model,outcome"]),
            "events": self.json(&["events"]),
            "audit": self.json(&["audit"]),
        })
    }
}

/// Asserts that a run failed with `code`, printed exactly one line on stderr starting with
/// `nanu: error: `, printed nothing on stdout, and returns that line.
pub fn fails_with(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().expect("nanu runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}; stderr: {stderr}; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line on stderr, got: {stderr:?}"
    );
    assert!(stderr.starts_with("nanu: error: "), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr.trim_end().to_owned()
}

/// The bytes of a file.
pub fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("the file exists")
}
