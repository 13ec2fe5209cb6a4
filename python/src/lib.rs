//! The python binding of nanu (being built).
