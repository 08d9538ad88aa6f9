//! coroner-analyze (see Cargo.toml description).
