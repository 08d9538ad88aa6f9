//! coroner-dump (see Cargo.toml description).
