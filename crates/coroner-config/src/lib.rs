//! coroner-config: the AeDebug and LocalDumps model (DESIGN.md
//! "Configuration", spec §11 and §13.4).
//!
//! Owns: the TOML model and its validation ([`Config`], [`parse_str`]), the
//! `debugger` template ([`DebuggerTemplate`]), loading with precedence and
//! trust checks ([`Sources`], [`load`]), key editing ([`set_key`]), the
//! installers with backup and restore ([`install_debugger`],
//! [`install_dumper`], [`uninstall`]) and `/etc/ld.so.preload` editing
//! ([`preload_install`], [`preload_uninstall`]), and the compiled plan the
//! runtime reads instead of the TOML ([`plan`]).
//!
//! Must not: run anything or print. The runtime reads a compiled plan
//! ([`plan`]) at every process start and calls [`load`] only when there is
//! none or it is stale, so loading reads at most two small files and does
//! nothing else costly. The plan's readers ([`plan::PlanView`],
//! [`plan::CmdRef`]) allocate nothing and never panic: the runtime uses them
//! before `main` and, for the command lines, in its crash handler.
//!
//! # Precedence
//!
//! 1. `CORONER_CONFIG=<path>` (for tests): a complete configuration that
//!    replaces everything else. Ignored, with a warning, when `AT_SECURE`.
//! 2. Otherwise the per-user file `$XDG_CONFIG_HOME/coroner/coroner.toml`
//!    (default `$HOME/.config/coroner/coroner.toml`) merged over the system
//!    file `/etc/coroner/coroner.toml` key by key (a key the user sets wins;
//!    `exclude` lists are replaced, not joined; `[localdumps.apps.NAME]`
//!    merge per key). The user file is skipped when `AT_SECURE` (setuid
//!    processes) and when it is group- or world-writable.
//! 3. Built-in defaults: no debugger, `auto = 1`, no exclusions, 30 s
//!    debugger timeout, LocalDumps off.
//!
//! The system file is used only if it is a regular file owned by root and
//! not group- or world-writable; otherwise it is ignored with a warning. A
//! symlink is followed only if the link itself is root-owned and its target
//! passes the same checks.

mod edit;
mod error;
mod install;
pub mod kernel;
mod load;
mod model;
pub mod plan;
mod preload;
mod template;

pub use edit::{set_key, show, show_json};
pub use error::{ConfigError, TemplateError};
pub use install::{backup_path, install_debugger, install_dumper, uninstall};
pub use load::{find_in_path, load, load_stamped, Loaded, Sources, SYSTEM_CONFIG};
pub use model::{
    glob_match, parse_str, AeDebug, AppOverride, Config, DumpLevel, Effective, EffectiveDumps,
    KernelTier, LocalDumps, SizeSpec, DEFAULT_DEBUGGER_TIMEOUT, DEFAULT_DUMP_COUNT,
    DEFAULT_DUMP_FOLDER, DEFAULT_DUMP_TIMEOUT, DEFAULT_STATE_DIR,
};
pub use preload::{preload_install, preload_uninstall};
pub use template::{DebuggerTemplate, Piece, POINTER_HEX_DIGITS};
