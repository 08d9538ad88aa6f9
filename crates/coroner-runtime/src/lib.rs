//! coroner-runtime (see Cargo.toml).
