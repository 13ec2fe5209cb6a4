//! The Node binding of nanu, the embedded API-key vault: the `nanu` npm package.
//!
//! Arguments are read by hand (modules `arg` and `json`) so that every bad input throws an
//! `Error` whose `code` is `invalid_argument`; results are plain objects (`keys`, `verdict`,
//! `usage`, `events`), built by compiled object literals (`shape`), whose 64-bit figures are a
//! `number` up to 2^53 - 1 and a `bigint` above, and whose times are epoch milliseconds.

mod arg;
mod codes;
mod error;
mod events;
mod json;
mod keys;
mod options;
mod shape;
mod tasks;
mod usage;
mod value;
mod vault;
mod verdict;
