//! The command line grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Vault and unlock:
  The vault is --vault, else $NANU_VAULT, else ./nanu.vault.
  It is unlocked with --key-file PATH (a file holding a raw 32-byte key as 64 hex digits),
  else $NANU_PASSPHRASE, else a passphrase typed at a no-echo prompt (only when stdin is a
  terminal). A passphrase is never taken as a command-line argument.

Exit codes:
  0   ok (for verify: the request is allowed)
  1   usage error or invalid argument
  2   not found (key id, owner, vault file or input file)
  3   wrong passphrase or key, vault locked by another process, or not a vault
  4   storage error or corrupt record, or the output could not be written
  5   conflict (a request id charged before with other amounts)
  10  verify: the request is denied (the reason code is printed)
  70  internal error (a bug in nanu)
Errors are one line on stderr, `nanu: error: <code>: <message>`, and change nothing.";

/// nanu: an embedded API-key vault. Mint, verify and charge keys, and replay LLM traffic.
#[derive(Debug, Parser)]
#[command(name = "nanu", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The vault file [default: $NANU_VAULT, else ./nanu.vault].
    #[arg(long, global = true, value_name = "PATH", display_order = 900)]
    pub vault: Option<PathBuf>,
    /// Unlock with the raw 32-byte key in this file, written as 64 hex digits
    /// (`openssl rand -hex 32 > vault.key`).
    #[arg(long, global = true, value_name = "PATH", display_order = 901)]
    pub key_file: Option<PathBuf>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true, display_order = 902)]
    pub json: bool,
    /// Who acts, recorded in the audit trail [default: cli:$USER].
    #[arg(long, global = true, value_name = "NAME", display_order = 903)]
    pub actor: Option<String>,
    /// Whether other processes may have the vault open at the same time: `shared` beside
    /// application workers or `nanu serve` that have it open shared [default: exclusive, for
    /// `serve` shared; env: NANU_CONCURRENCY].
    #[arg(
        long,
        global = true,
        value_enum,
        env = "NANU_CONCURRENCY",
        hide_env = true,
        display_order = 904
    )]
    pub concurrency: Option<ConcurrencyArg>,
    /// Test-only: the cheapest Argon2 parameters for new vaults and rekeys. Same as
    /// NANU_KDF=insecure. Never use it for a real vault.
    #[arg(long, global = true, hide = true)]
    pub kdf_insecure_for_tests: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new vault.
    Init(InitArgs),
    /// Mint a key; prints its id and its secret, once.
    Mint(MintArgs),
    /// List keys.
    Ls(LsArgs),
    /// Show a key and the state of its limits.
    Show(KeyArg),
    /// Check a secret and a request; exit 0 when allowed, 10 when denied.
    Verify(VerifyArgs),
    /// Record what a request used.
    Charge(ChargeArgs),
    /// Issue a new secret for a key; the old one works until the grace period ends.
    Rotate(RotateArgs),
    /// Rotate every key whose `rotate_every` period has passed.
    RotateDue(RotateDueArgs),
    /// Revoke a key, or every key of an owner.
    Revoke(RevokeArgs),
    /// Change a key's policy, labels or state.
    Update(UpdateArgs),
    /// Owners' shared limits.
    #[command(subcommand)]
    Owner(OwnerCommand),
    /// Usage report: sums filtered, grouped and bucketed.
    Usage(UsageArgs),
    /// Alerts and key lifecycle events.
    Events(EventsArgs),
    /// Model prices.
    #[command(subcommand)]
    Prices(PricesCommand),
    /// The audit trail of administrative changes.
    Audit(AuditArgs),
    /// Re-seal the vault under a new passphrase ($NANU_NEW_PASSPHRASE or a prompt) or key.
    Rekey(RekeyArgs),
    /// Replay a real LLM trace (TIMESTAMP,ContextTokens,GeneratedTokens) through the vault.
    Replay(ReplayArgs),
    /// Replay the bundled Azure trace through a temporary vault and print the report.
    Demo(DemoArgs),
    /// Serve the vault over HTTP: the admin API, the dashboard and alert webhooks.
    Serve(ServeArgs),
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The prefix of the vault's secrets (`[a-z][a-z0-9]{0,15}`).
    #[arg(long, default_value = "nanu")]
    pub prefix: String,
    /// The currency of money amounts (a name only: every amount is in this one currency).
    #[arg(long, default_value = "usd")]
    pub currency: String,
}

/// A key id.
#[derive(Debug, Args)]
pub struct KeyArg {
    /// The key id (`key_...`).
    pub key: String,
}

/// The policy flags shared by `mint` and `update`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// A human label.
    #[arg(long)]
    pub name: Option<String>,
    /// A limit, e.g. `cost=10usd/month`, `requests=100/min`, `tokens=1M/day@Europe/Berlin`
    /// (repeatable).
    #[arg(long = "limit", value_name = "LIMIT")]
    pub limits: Vec<String>,
    /// A scope the key holds (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// An allowed model; `provider/*` allows a family (repeatable; none: every model).
    #[arg(long = "model", value_name = "MODEL")]
    pub models: Vec<String>,
    /// A model alias resolved before the model check, `fast=gpt-4o-mini` (repeatable).
    #[arg(long = "alias", value_name = "ALIAS=MODEL")]
    pub aliases: Vec<String>,
    /// An allowed client network, CIDR or address, v4 or v6 (repeatable; none: any).
    #[arg(long = "ip", value_name = "CIDR")]
    pub ips: Vec<String>,
    /// Expiry instant, RFC 3339 (`2026-01-31T00:00:00Z`).
    #[arg(long, value_name = "TIME", conflicts_with = "ttl")]
    pub expires: Option<String>,
    /// Expiry as a span from now (`30d`, `12h`, `1 month`).
    #[arg(long, value_name = "SPAN")]
    pub ttl: Option<String>,
    /// Rotation period for `rotate-due` (`90d`).
    #[arg(long, value_name = "SPAN")]
    pub rotate_every: Option<String>,
    /// A metadata entry with a string value, `k=v` (repeatable).
    #[arg(long = "meta", value_name = "K=V")]
    pub meta: Vec<String>,
    /// Metadata as a JSON object, merged with --meta.
    #[arg(long, value_name = "JSON")]
    pub meta_json: Option<String>,
}

/// `mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// The user, team or account the key belongs to.
    #[arg(long)]
    pub owner: String,
    /// The environment: `live`, `test` or another short lowercase word.
    #[arg(long, default_value = "live")]
    pub env: String,
    /// Policy, labels and metadata.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// `update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The key id.
    pub key: String,
    /// New policy values; a repeatable flag given replaces the whole list (limits, scopes,
    /// models, aliases, ips), --meta and --meta-json merge into the metadata.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Disable the key (verifies are denied until --enable).
    #[arg(long, conflicts_with = "enable")]
    pub disable: bool,
    /// Enable a disabled key.
    #[arg(long)]
    pub enable: bool,
    /// Remove every limit of the key.
    #[arg(long, conflicts_with = "limits")]
    pub clear_limits: bool,
    /// Remove every scope.
    #[arg(long, conflicts_with = "scopes")]
    pub clear_scopes: bool,
    /// Allow every model again.
    #[arg(long, conflicts_with = "models")]
    pub clear_models: bool,
    /// Remove every alias.
    #[arg(long, conflicts_with = "aliases")]
    pub clear_aliases: bool,
    /// Allow every client address again.
    #[arg(long, conflicts_with = "ips")]
    pub clear_ips: bool,
    /// Remove the expiry.
    #[arg(long, conflicts_with_all = ["expires", "ttl"])]
    pub clear_expires: bool,
    /// Remove the rotation period.
    #[arg(long, conflicts_with = "rotate_every")]
    pub clear_rotate_every: bool,
    /// Empty the metadata before --meta and --meta-json are applied.
    #[arg(long)]
    pub clear_meta: bool,
}

/// The status filter of `ls`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StatusArg {
    /// Active keys.
    Active,
    /// Disabled keys.
    Disabled,
    /// Revoked keys.
    Revoked,
    /// Keys past their expiry.
    Expired,
}

/// `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only this owner's keys.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only keys of this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Only keys in this status.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Paging: only keys whose id sorts after this one (the `next` of the previous page).
    #[arg(long, value_name = "KEY")]
    pub after: Option<String>,
    /// At most this many keys (1 to 10000).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The secret, or `-` to read it from the first line of stdin (keeps it out of `ps`).
    pub secret: String,
    /// The model the request uses (an alias of the key is resolved first).
    #[arg(long)]
    pub model: Option<String>,
    /// The client address.
    #[arg(long)]
    pub ip: Option<String>,
    /// A scope the key must hold.
    #[arg(long)]
    pub scope: Option<String>,
    /// The environment the key must belong to.
    #[arg(long)]
    pub env: Option<String>,
    /// Money the request may cost (`0.05`, `$0.05`): admitted only if it fits every budget.
    #[arg(long, value_name = "AMOUNT")]
    pub hold_cost: Option<String>,
    /// Input tokens the request may use: admitted only if they fit every token limit.
    #[arg(long, value_name = "N")]
    pub hold_input_tokens: Option<u64>,
    /// Output tokens the request may use.
    #[arg(long, value_name = "N")]
    pub hold_output_tokens: Option<u64>,
    /// The time of the request, RFC 3339 (default now).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

/// `charge`.
#[derive(Debug, Args)]
pub struct ChargeArgs {
    /// The key id.
    pub key: String,
    /// The model used (priced from the price table when --cost is not given).
    #[arg(long)]
    pub model: Option<String>,
    /// The endpoint or route, for reports.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Input tokens used.
    #[arg(long, default_value_t = 0)]
    pub input_tokens: u64,
    /// Output tokens used.
    #[arg(long, default_value_t = 0)]
    pub output_tokens: u64,
    /// The cost (`0.0123`, `$0.0123`); computed from the price table when absent.
    #[arg(long, value_name = "AMOUNT")]
    pub cost: Option<String>,
    /// Makes the charge idempotent: the same id again returns the first outcome.
    #[arg(long)]
    pub request_id: Option<String>,
    /// When the usage happened, RFC 3339 (default now).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

/// `rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The key id.
    pub key: String,
    /// How long the old secret keeps working (`0s`, `10m`, `1h`); 0 ends it at once.
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub grace: String,
}

/// `rotate-due`.
#[derive(Debug, Args)]
pub struct RotateDueArgs {
    /// How long each old secret keeps working.
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    pub grace: String,
}

/// `revoke`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["key", "owner"]))]
pub struct RevokeArgs {
    /// The key id.
    pub key: Option<String>,
    /// Revoke every key of this owner instead.
    #[arg(long)]
    pub owner: Option<String>,
}

/// `owner ...`.
#[derive(Debug, Subcommand)]
pub enum OwnerCommand {
    /// Set an owner's limits, shared by all its keys (replaces the previous ones).
    Set(OwnerSetArgs),
    /// Show an owner's limits and their state.
    Show(OwnerShowArgs),
    /// List owners.
    Ls,
    /// Show, or with --limit/--clear set, the limits new owners get.
    Default(OwnerDefaultArgs),
}

/// `owner set`.
#[derive(Debug, Args)]
pub struct OwnerSetArgs {
    /// The owner.
    pub owner: String,
    /// A limit (repeatable).
    #[arg(
        long = "limit",
        value_name = "LIMIT",
        required_unless_present = "clear"
    )]
    pub limits: Vec<String>,
    /// Remove every limit of the owner.
    #[arg(long, conflicts_with = "limits")]
    pub clear: bool,
}

/// `owner show`.
#[derive(Debug, Args)]
pub struct OwnerShowArgs {
    /// The owner.
    pub owner: String,
}

/// `owner default`.
#[derive(Debug, Args)]
pub struct OwnerDefaultArgs {
    /// A limit (repeatable).
    #[arg(long = "limit", value_name = "LIMIT")]
    pub limits: Vec<String>,
    /// New owners get no limits.
    #[arg(long, conflicts_with = "limits")]
    pub clear: bool,
}

/// Output formats of `usage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// CSV with a header row (money as exact decimals).
    Csv,
    /// JSON rows (money in integer micro-units).
    Json,
}

/// `usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Records at or after this time (RFC 3339 or a date, `2026-05-01`, UTC).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Records before this time.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Only this key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only this owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Only this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Only this endpoint.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Group by these, comma-separated: key, owner, env, model, endpoint, outcome.
    #[arg(long, value_delimiter = ',', value_name = "DIMS")]
    pub group_by: Vec<String>,
    /// Bucket by time: minute, hour, day, week or month.
    #[arg(long)]
    pub bucket: Option<String>,
    /// IANA time zone of the buckets (default UTC).
    #[arg(long)]
    pub tz: Option<String>,
    /// Output format (--json means json).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events after this sequence number.
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    pub after: u64,
    /// At most this many events (without --follow).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Keep polling and print new events until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// How often --follow polls (at least 100ms).
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub interval: String,
}

/// `prices ...`.
#[derive(Debug, Subcommand)]
pub enum PricesCommand {
    /// Import LiteLLM's model price JSON (model_prices_and_context_window.json).
    Import(PricesImportArgs),
    /// Set a model's price in currency units per million tokens.
    Set(PricesSetArgs),
    /// Remove a model's price.
    Rm(PricesRmArgs),
    /// List prices.
    Ls(PricesLsArgs),
}

/// `prices import`.
#[derive(Debug, Args)]
pub struct PricesImportArgs {
    /// The JSON file.
    pub file: PathBuf,
}

/// `prices set`.
#[derive(Debug, Args)]
pub struct PricesSetArgs {
    /// The model.
    pub model: String,
    /// Price per million input tokens (`2.5`).
    #[arg(long, default_value = "0", value_name = "AMOUNT")]
    pub input: String,
    /// Price per million output tokens (`10`).
    #[arg(long, default_value = "0", value_name = "AMOUNT")]
    pub output: String,
    /// Price per request.
    #[arg(long, default_value = "0", value_name = "AMOUNT")]
    pub per_request: String,
}

/// `prices rm`.
#[derive(Debug, Args)]
pub struct PricesRmArgs {
    /// The model.
    pub model: String,
}

/// `prices ls`.
#[derive(Debug, Args)]
pub struct PricesLsArgs {
    /// Only models whose name contains this text.
    #[arg(long = "match", value_name = "TEXT")]
    pub pattern: Option<String>,
}

/// `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Check the hash chain instead of listing; exit 4 when it is broken.
    #[arg(long)]
    pub verify: bool,
    /// Only records after this sequence number.
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    pub after: u64,
    /// At most this many records.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

/// `rekey`.
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// Re-seal under the raw key in this file (64 hex digits) instead of a passphrase.
    #[arg(long, value_name = "PATH")]
    pub new_key_file: Option<PathBuf>,
}

/// Durability levels, as the core names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Every charge fsynced before it returns.
    Durable,
    /// Every charge journaled before it returns; survives kill -9, not power loss.
    Process,
    /// Charges committed every 100 ms; a crash loses at most that.
    Relaxed,
}

/// The options of a replay shared by `replay` and `demo`.
#[derive(Debug, Args)]
pub struct ReplayOptions {
    /// How many tenants share the traffic (Zipf-weighted).
    #[arg(long, default_value_t = 12, value_name = "N")]
    pub tenants: u32,
    /// Seed of the tenant and model draws.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// `max` (as fast as possible) or a factor of trace time: `1` real time, `60` a minute
    /// of trace per second.
    #[arg(long, default_value = "max")]
    pub speed: String,
    /// Durability of the replay's vault handle.
    #[arg(long, value_enum, default_value = "relaxed")]
    pub durability: DurabilityArg,
}

/// `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The trace: CSV with the header TIMESTAMP,ContextTokens,GeneratedTokens.
    pub trace: PathBuf,
    /// Replay only the first N data rows.
    #[arg(long, value_name = "N")]
    pub limit_rows: Option<u64>,
    /// Tenants, seed, speed, durability.
    #[command(flatten)]
    pub options: ReplayOptions,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Replay only the first N rows of the bundled trace.
    #[arg(long, value_name = "N")]
    pub rows: Option<u64>,
    /// Keep the vault in this directory (as demo.vault, unlocked by demo.key) to explore it
    /// afterwards with the other commands.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Tenants, seed, speed, durability.
    #[command(flatten)]
    pub options: ReplayOptions,
}

/// How `serve` shares the vault file with other processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConcurrencyArg {
    /// This process alone has the file open; other processes get a `locked` error.
    Exclusive,
    /// Other processes (application workers, `nanu serve`) open the same file at once.
    Shared,
}

impl From<ConcurrencyArg> for nanu::Concurrency {
    fn from(arg: ConcurrencyArg) -> nanu::Concurrency {
        match arg {
            ConcurrencyArg::Exclusive => nanu::Concurrency::Exclusive,
            ConcurrencyArg::Shared => nanu::Concurrency::Shared,
        }
    }
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on; keep it on loopback and put TLS in front with a reverse proxy.
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR")]
    pub listen: String,
    /// The largest request body accepted: bytes, or with a suffix `KiB` or `MiB` (the price
    /// import accepts up to 32MiB whatever this says).
    #[arg(long, default_value = "1MiB", value_name = "SIZE")]
    pub max_body: String,
    /// How long a client may take to send a request's headers, from the connection's opening or
    /// the end of the previous answer (so also how long an idle connection stays open).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub header_timeout: String,
    /// How long a client may take to send a request's body once its headers are in; slower
    /// bodies get 408.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub body_timeout: String,
    /// After SIGINT or SIGTERM, how long requests in flight may take before the server closes
    /// their connections and exits anyway.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub shutdown_timeout: String,
    /// Deliver alert events to the endpoints in this JSON file: a list of {"id", "url",
    /// "secret_env" or "secret_file", "events"}.
    #[arg(long, value_name = "FILE")]
    pub webhooks: Option<PathBuf>,
    /// Where webhook delivery state is kept [default: VAULT.webhooks.state].
    #[arg(long, value_name = "FILE", requires = "webhooks")]
    pub webhook_state: Option<PathBuf>,
}
