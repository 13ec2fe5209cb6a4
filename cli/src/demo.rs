//! `nanu demo`: the bundled Azure trace replayed through a fresh vault, with a realistic mix
//! of tenants and two incidents: a key rotated with a grace period while one of its clients
//! never picks up the new secret, and a key revoked mid-trace.

use std::path::Path;
use std::time::Duration;

use nanu::{Options, Unlock, Vault};

use crate::args::{DemoArgs, Global};
use crate::bundled;
use crate::failure::{Failure, Outcome};
use crate::output::{print, print_json};
use crate::replay::{self, Action, TraceClock};
use crate::trace;

/// The demo's incidents. Tenant 4 (a `pro` tenant) rotates its key 20 minutes in with a
/// 10-minute grace period; its clients switch 2 minutes later, except one in ten requests from
/// a client that never got the new secret, which fails once the grace period ends. Tenant 6
/// (also `pro`) has its key revoked 35 minutes in.
fn script() -> Vec<Action> {
    vec![
        Action::Rotate {
            rank: 4,
            after: Duration::from_secs(20 * 60),
            grace: Duration::from_secs(10 * 60),
            switch_after: Duration::from_secs(2 * 60),
            stale_percent: 10,
        },
        Action::Revoke {
            rank: 6,
            after: Duration::from_secs(35 * 60),
        },
    ]
}

/// A fresh random 32-byte vault key.
fn random_key() -> Outcome<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| Failure::new(crate::failure::Exit::Storage, format!("no randomness: {e}")))?;
    Ok(key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `nanu demo`.
pub fn command(global: &Global, args: &DemoArgs) -> Outcome {
    replay::validate(&args.options)?;
    if args.options.tenants < 6 {
        return Err(Failure::invalid(
            "--tenants must be at least 6 for the demo (its script rotates tenant 4's key and \
             revokes tenant 6's)",
        ));
    }
    let trace = trace::read(
        bundled::CONV_TRACE.as_bytes(),
        bundled::CONV_TRACE_NAME,
        args.rows,
    )?;
    let start = trace.span().map_or(jiff::Timestamp::UNIX_EPOCH, |s| s.0);

    let temp;
    let dir: &Path = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Failure::input(dir, &e))?;
            dir
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("nanu-demo-")
                .tempdir()
                .map_err(|e| Failure::invalid(format!("cannot create a temporary folder: {e}")))?;
            temp.path()
        }
    };
    let path = dir.join("demo.vault");
    let key = random_key()?;
    let clock = TraceClock::new(start);
    let options = Options::new(Unlock::key(key))
        .durability(args.options.durability.level())
        .clock(clock.clock());
    let vault = Vault::create(&path, &options)?;
    if args.keep.is_some() {
        let key_path = dir.join("demo.key");
        write_key_file(&key_path, &hex(&key))?;
    }

    let report = replay::replay_and_report(
        &vault,
        &clock,
        &trace,
        bundled::CONV_TRACE_NAME,
        &args.options,
        &script(),
    )?;
    vault.close()?;

    if global.json {
        return print_json(&report);
    }
    print(&crate::report::render(&report))?;
    match &args.keep {
        Some(dir) => print(&format!(
            "\nThe vault is kept: explore it with\n  nanu --vault {0}/demo.vault --key-file \
             {0}/demo.key usage --group-by owner",
            dir.display()
        )),
        None => print("\nThe demo vault was temporary and is deleted (keep it with --keep DIR)."),
    }
}

/// Writes the demo's raw key, readable by the user only.
fn write_key_file(path: &Path, hex: &str) -> Outcome {
    use std::io::Write;
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    let mut file = open.open(path).map_err(|e| {
        Failure::invalid(format!(
            "cannot create the key file {}: {e}",
            path.display()
        ))
    })?;
    writeln!(file, "{hex}")
        .map_err(|e| Failure::invalid(format!("cannot write the key file {}: {e}", path.display())))
}
