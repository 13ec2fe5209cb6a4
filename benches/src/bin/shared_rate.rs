//! The verify rate of several processes on one vault file in the `shared` mode. Driven by
//! `benches/shared/rate.sh`, which runs one `setup`, then several `run`s at once, and adds up
//! their counts:
//!
//! - `shared_rate setup VAULT KEYS`: creates VAULT (cheap KDF) holding KEYS keys with three
//!   limits and every check (`nanu_benches::full_spec`), and writes their secrets, one a line,
//!   to `VAULT.secrets`.
//! - `shared_rate run VAULT START_MS SECONDS`: opens VAULT in the shared mode, waits until the
//!   wall clock reaches START_MS (milliseconds since the Unix epoch, the same for every
//!   process, so that they verify over the same interval), verifies the keys in turn for
//!   SECONDS seconds on one thread, and prints `verified COUNT in SECONDS_TAKEN s`.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nanu::{Code, Concurrency, Durability, Options, Vault};
use nanu_benches::{full_request, key_vault, options};

const USAGE: &str = "usage: shared_rate setup VAULT KEYS | shared_rate run VAULT START_MS SECONDS";

fn shared_options() -> Options {
    options(Durability::Durable).concurrency(Concurrency::Shared)
}

fn secrets_path(vault: &Path) -> PathBuf {
    let mut name = vault.as_os_str().to_owned();
    name.push(".secrets");
    PathBuf::from(name)
}

fn setup(vault: &Path, count: usize) -> Result<(), String> {
    let (created, keys) = key_vault(vault, count, Durability::Durable);
    created.close().map_err(|e| format!("close: {e}"))?;
    let lines: String = keys
        .iter()
        .map(|(_, secret)| format!("{secret}\n"))
        .collect();
    let path = secrets_path(vault);
    fs::write(&path, lines).map_err(|e| format!("write {}: {e}", path.display()))
}

fn run(vault: &Path, start_ms: u64, seconds: f64) -> Result<(), String> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        return Err(format!("SECONDS must be from 0 to 3600, not {seconds}"));
    }
    let path = secrets_path(vault);
    let text = fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let secrets: Vec<&str> = text.lines().collect();
    if secrets.is_empty() {
        return Err(format!("{} holds no secrets", path.display()));
    }
    let vault = Vault::open(vault, &shared_options()).map_err(|e| format!("open: {e}"))?;
    let request = full_request();
    // Every key once before the clock starts: the first verify of a key leases its slices.
    for secret in &secrets {
        let verdict = vault
            .verify(secret, &request)
            .map_err(|e| format!("verify: {e}"))?;
        if verdict.code != Code::Valid {
            return Err(format!("a fixture key was denied: {}", verdict.code));
        }
    }

    let start = UNIX_EPOCH + Duration::from_millis(start_ms);
    if let Ok(wait) = start.duration_since(SystemTime::now()) {
        thread::sleep(wait);
    }
    let began = Instant::now();
    let length = Duration::from_secs_f64(seconds);
    let mut count: u64 = 0;
    'timed: loop {
        // The clock is read once per round of 256 verifies, so that it costs next to nothing.
        for _ in 0..256 {
            let secret = secrets[(count % secrets.len() as u64) as usize];
            let verdict = vault
                .verify(black_box(secret), black_box(&request))
                .map_err(|e| format!("verify: {e}"))?;
            if !verdict.allowed {
                return Err(format!("a fixture key was denied: {}", verdict.code));
            }
            count += 1;
        }
        if began.elapsed() >= length {
            break 'timed;
        }
    }
    let taken = began.elapsed().as_secs_f64();
    vault.close().map_err(|e| format!("close: {e}"))?;
    println!("verified {count} in {taken:.3} s");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words[..] {
        ["setup", vault, keys] => match keys.parse::<usize>() {
            Ok(keys) if keys > 0 => setup(Path::new(vault), keys),
            _ => Err(format!(
                "KEYS must be a positive whole number, not {keys:?}"
            )),
        },
        ["run", vault, start_ms, seconds] => match (start_ms.parse(), seconds.parse()) {
            (Ok(start_ms), Ok(seconds)) => run(Path::new(vault), start_ms, seconds),
            _ => Err(format!(
                "START_MS and SECONDS must be numbers, not {start_ms:?} and {seconds:?}"
            )),
        },
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("shared_rate: {message}");
            ExitCode::FAILURE
        }
    }
}
