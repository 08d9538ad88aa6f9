//! The interactive prompt of `coroner dbg` on a terminal: line editing and
//! a history kept in `$XDG_STATE_HOME/coroner/dbg_history` (or
//! `~/.local/state/coroner/dbg_history`).

use coroner_dbg::exec::LineSource;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use std::path::PathBuf;

pub struct Editor {
    ed: rustyline::Editor<(), DefaultHistory>,
    history: Option<PathBuf>,
}

impl Editor {
    pub fn new() -> anyhow::Result<Editor> {
        let mut ed = rustyline::Editor::<(), DefaultHistory>::new()?;
        let history = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .map(|d| d.join("coroner").join("dbg_history"));
        if let Some(h) = &history {
            let _ = ed.load_history(h);
        }
        Ok(Editor { ed, history })
    }
}

impl LineSource for Editor {
    fn next_line(&mut self, prompt: &str) -> Option<String> {
        match self.ed.readline(prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = self.ed.add_history_entry(line.as_str());
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
        if let Some(h) = &self.history {
            if let Some(dir) = h.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = self.ed.save_history(h);
        }
    }
}
