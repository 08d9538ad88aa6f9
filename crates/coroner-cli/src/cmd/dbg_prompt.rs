//! The interactive prompt of `coroner dbg` on a terminal: line editing and
//! a history kept in `$XDG_STATE_HOME/coroner/dbg_history` (or
//! `~/.local/state/coroner/dbg_history`).
//!
//! rustyline is built without its file-history feature (no extra
//! dependencies), so its in-memory history cannot load or save a file (it
//! panics if asked to): the history file is plain text, one command per
//! line, read and written here.

use coroner_dbg::exec::LineSource;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use std::path::PathBuf;

/// The most commands the history file keeps (the newest).
const HISTORY_LINES: usize = 1000;

pub struct Editor {
    ed: rustyline::Editor<(), DefaultHistory>,
    history: Option<PathBuf>,
    /// The history as it will be saved: the file's lines, then this
    /// session's commands.
    lines: Vec<String>,
}

impl Editor {
    pub fn new() -> anyhow::Result<Editor> {
        let mut ed = rustyline::Editor::<(), DefaultHistory>::new()?;
        let history = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .map(|d| d.join("coroner").join("dbg_history"));
        let mut lines = Vec::new();
        if let Some(text) = history.as_ref().and_then(|h| std::fs::read(h).ok()) {
            for line in String::from_utf8_lossy(&text).lines() {
                if !line.trim().is_empty() {
                    let _ = ed.add_history_entry(line);
                    lines.push(line.to_string());
                }
            }
        }
        Ok(Editor { ed, history, lines })
    }
}

impl LineSource for Editor {
    fn next_line(&mut self, prompt: &str) -> Option<String> {
        match self.ed.readline(prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = self.ed.add_history_entry(line.as_str());
                    self.lines.push(line.clone());
                }
                Some(line)
            }
            Err(ReadlineError::Interrupted) => Some(String::new()),
            Err(_) => None,
        }
    }
}

impl Drop for Editor {
    fn drop(&mut self) {
        let Some(h) = self.history.as_ref().filter(|_| !self.lines.is_empty()) else {
            return;
        };
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let keep = self.lines.len().saturating_sub(HISTORY_LINES);
        let mut text = self.lines[keep..].join("\n");
        text.push('\n');
        let _ = std::fs::write(h, text);
    }
}
