//! coroner-symbols (see Cargo.toml description).
