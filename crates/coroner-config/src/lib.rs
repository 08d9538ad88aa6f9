//! coroner-config (see Cargo.toml).
