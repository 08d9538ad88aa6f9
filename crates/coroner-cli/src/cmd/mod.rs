//! One module per command; each parses its arguments and calls the libraries.

pub mod analyze;
pub mod config;
pub mod dbg;
pub mod dbg_prompt;
pub mod dump;
pub mod handler;
pub mod reports;
pub mod run;
pub mod serve;
