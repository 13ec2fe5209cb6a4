//! `nanu`: the command line of the nanu API-key vault.
//!
//! Dependencies, and why: `clap` (derive) parses the command line and writes `--help`;
//! `comfy-table` draws the tables; `indicatif` draws the replay's progress bar; `rpassword`
//! reads a passphrase without echo; `csv` reads traces and writes CSV reports; `tempfile`
//! gives the demo a folder that is removed afterwards; `getrandom` draws the demo vault's
//! key. All are widely used and maintained. `log` carries the core's warnings, printed by
//! the small logger below. `nanu-server` (this workspace's admin server) runs `nanu serve`.

mod access;
mod admin;
mod args;
mod bundled;
mod demo;
mod failure;
mod keys;
mod output;
mod owners;
mod parse;
mod prices;
mod replay;
mod report;
mod reports;
mod serve;
mod tenants;
mod trace;
mod traffic;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::failure::{Exit, Failure, lowercase_first};

fn main() -> ExitCode {
    install_panic_hook();
    install_logger();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    match run(&cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(failure) if failure.broken_pipe => ExitCode::SUCCESS,
        Err(failure) => {
            output::note(&format!("nanu: error: {}", one_line(&failure.to_string())));
            ExitCode::from(failure.exit.code())
        }
    }
}

fn run(cli: &Cli) -> Result<Exit, Failure> {
    let global = &cli.global;
    match &cli.command {
        Command::Init(args) => admin::init(global, args),
        Command::Mint(args) => keys::mint(global, args),
        Command::Ls(args) => keys::ls(global, args),
        Command::Show(args) => keys::show(global, args),
        Command::Verify(args) => return traffic::verify(global, args),
        Command::Charge(args) => traffic::charge(global, args),
        Command::Rotate(args) => keys::rotate(global, args),
        Command::RotateDue(args) => keys::rotate_due(global, args),
        Command::Revoke(args) => keys::revoke(global, args),
        Command::Update(args) => keys::update(global, args),
        Command::Owner(command) => owners::run(global, command),
        Command::Usage(args) => reports::usage(global, args),
        Command::Events(args) => reports::events(global, args),
        Command::Prices(command) => prices::run(global, command),
        Command::Audit(args) => admin::audit(global, args),
        Command::Rekey(args) => admin::rekey(global, args),
        Command::Replay(args) => replay::command(global, args),
        Command::Demo(args) => demo::command(global, args),
        Command::Serve(args) => serve::command(global, args),
    }
    .map(|()| Exit::Ok)
}

/// `--help` and `--version` print and exit 0; any other parse error is one line and exit 1.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(Exit::Invalid.code())
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // clap's message is its first paragraph; usage lines and tips follow a blank line.
            let rendered = err.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            output::note(&format!(
                "nanu: error: usage: {} (see nanu --help)",
                lowercase_first(message)
            ));
            ExitCode::from(Exit::Invalid.code())
        }
    }
}

/// Keeps an error on one line whatever a lower layer put in it.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A panic is reported on one line, without a backtrace. redb panics on some damaged pages
/// instead of returning an error; such a panic means the vault file is damaged (exit 4, like
/// a corrupt record). Any other panic is a bug in nanu (exit 70).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let in_storage = info.location().is_some_and(|l| {
            let file = l.file().replace('\\', "/");
            file.contains("/redb-")
        });
        if in_storage {
            output::note(&format!(
                "nanu: error: corrupt: the vault file is damaged (storage engine: {})",
                one_line(&what)
            ));
            std::process::exit(i32::from(Exit::Storage.code()));
        }
        output::note(&format!(
            "nanu: error: internal error (a bug in nanu): {}{place}",
            one_line(&what)
        ));
        std::process::exit(70);
    }));
}

/// Prints the core's warnings (and with NANU_LOG=debug its debug lines) on stderr.
struct Logger {
    level: log::LevelFilter,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = record.level().as_str().to_ascii_lowercase();
            output::note(&format!("nanu: {level}: {}", record.args()));
        }
    }

    fn flush(&self) {}
}

fn install_logger() {
    let level = match std::env::var("NANU_LOG").as_deref() {
        Ok("debug") => log::LevelFilter::Debug,
        Ok("trace") => log::LevelFilter::Trace,
        Ok("off") => log::LevelFilter::Off,
        _ => log::LevelFilter::Warn,
    };
    if log::set_boxed_logger(Box::new(Logger { level })).is_ok() {
        log::set_max_level(level);
    }
}
