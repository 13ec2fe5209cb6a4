//! The C ABI of nanu (being built).
