//! One module per command; each parses its arguments and calls the libraries.

pub mod analyze;
pub mod dump;
