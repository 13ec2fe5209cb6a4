//! The admin API against a real server: a vault file in a temporary folder, the server on
//! 127.0.0.1, requests over HTTP. One test binary, by topic.

mod auth;
mod bad_input;
mod dashboard;
mod harness;
mod keys;
mod lifecycle;
mod owners;
mod prices;
mod reports;
mod slow_clients;
mod traffic;
