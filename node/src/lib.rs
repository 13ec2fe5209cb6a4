//! The node binding of nanu (being built).
