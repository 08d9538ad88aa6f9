//! libcoroner.so (see Cargo.toml).
