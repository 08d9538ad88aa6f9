//! Linux signal numbers and `si_code` names (x86-64 / generic numbering).

/// `SIGxxx` name of a signal number, or `None` for an unknown number.
/// Real-time signals are named `SIGRTMIN+n`-style only by [`signal_label`].
pub fn signal_name(signo: i32) -> Option<&'static str> {
    Some(match signo {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        16 => "SIGSTKFLT",
        17 => "SIGCHLD",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        20 => "SIGTSTP",
        21 => "SIGTTIN",
        22 => "SIGTTOU",
        23 => "SIGURG",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        28 => "SIGWINCH",
        29 => "SIGIO",
        30 => "SIGPWR",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// A printable label for any signal number: the name, `SIGRTMIN+n`, or
/// `signal <n>`.
pub fn signal_label(signo: i32) -> String {
    match signal_name(signo) {
        Some(n) => n.to_string(),
        None if (34..=64).contains(&signo) => format!("SIGRTMIN+{}", signo - 34),
        None => format!("signal {signo}"),
    }
}

/// The signal number for a name (`SIGSEGV`, `segv`, `SegV`), or `None`.
pub fn signal_number(name: &str) -> Option<i32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    (1..=31).find(|&n| signal_name(n).map(|s| &s[3..]) == Some(bare))
}

/// Name of an `si_code` value for a given signal (`SEGV_MAPERR`, `SI_USER`...).
pub fn si_code_name(signo: i32, code: i32) -> Option<&'static str> {
    // Codes that mean the same for every signal (sent by a process).
    let generic = match code {
        0 => Some("SI_USER"),
        0x80 => Some("SI_KERNEL"),
        -1 => Some("SI_QUEUE"),
        -2 => Some("SI_TIMER"),
        -3 => Some("SI_MESGQ"),
        -4 => Some("SI_ASYNCIO"),
        -5 => Some("SI_SIGIO"),
        -6 => Some("SI_TKILL"),
        -7 => Some("SI_DETHREAD"),
        -60 => Some("SI_ASYNCNL"),
        _ => None,
    };
    if code <= 0 || code == 0x80 {
        return generic;
    }
    let specific = match (signo, code) {
        (4, 1) => "ILL_ILLOPC",
        (4, 2) => "ILL_ILLOPN",
        (4, 3) => "ILL_ILLADR",
        (4, 4) => "ILL_ILLTRP",
        (4, 5) => "ILL_PRVOPC",
        (4, 6) => "ILL_PRVREG",
        (4, 7) => "ILL_COPROC",
        (4, 8) => "ILL_BADSTK",
        (4, 9) => "ILL_BADIADDR",
        (8, 1) => "FPE_INTDIV",
        (8, 2) => "FPE_INTOVF",
        (8, 3) => "FPE_FLTDIV",
        (8, 4) => "FPE_FLTOVF",
        (8, 5) => "FPE_FLTUND",
        (8, 6) => "FPE_FLTRES",
        (8, 7) => "FPE_FLTINV",
        (8, 8) => "FPE_FLTSUB",
        (8, 14) => "FPE_FLTUNK",
        (8, 15) => "FPE_CONDTRAP",
        (11, 1) => "SEGV_MAPERR",
        (11, 2) => "SEGV_ACCERR",
        (11, 3) => "SEGV_BNDERR",
        (11, 4) => "SEGV_PKUERR",
        (11, 5) => "SEGV_ACCADI",
        (11, 6) => "SEGV_ADIDERR",
        (11, 7) => "SEGV_ADIPERR",
        (11, 8) => "SEGV_MTEAERR",
        (11, 9) => "SEGV_MTESERR",
        (11, 10) => "SEGV_CPERR",
        (7, 1) => "BUS_ADRALN",
        (7, 2) => "BUS_ADRERR",
        (7, 3) => "BUS_OBJERR",
        (7, 4) => "BUS_MCEERR_AR",
        (7, 5) => "BUS_MCEERR_AO",
        (5, 1) => "TRAP_BRKPT",
        (5, 2) => "TRAP_TRACE",
        (5, 3) => "TRAP_BRANCH",
        (5, 4) => "TRAP_HWBKPT",
        (5, 5) => "TRAP_UNK",
        (5, 6) => "TRAP_PERF",
        (17, 1) => "CLD_EXITED",
        (17, 2) => "CLD_KILLED",
        (17, 3) => "CLD_DUMPED",
        (17, 4) => "CLD_TRAPPED",
        (17, 5) => "CLD_STOPPED",
        (17, 6) => "CLD_CONTINUED",
        (29, 1) => "POLL_IN",
        (29, 2) => "POLL_OUT",
        (29, 3) => "POLL_MSG",
        (29, 4) => "POLL_ERR",
        (29, 5) => "POLL_PRI",
        (29, 6) => "POLL_HUP",
        (31, 1) => "SYS_SECCOMP",
        (31, 2) => "SYS_USER_DISPATCH",
        _ => return None,
    };
    Some(specific)
}

/// True for the signals whose `si_addr` carries a faulting address when
/// `si_code > 0` (sent by the kernel).
pub fn has_fault_address(signo: i32) -> bool {
    matches!(signo, 4 | 7 | 8 | 11 | 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in 1..=31 {
            let name = signal_name(n).unwrap();
            assert_eq!(signal_number(name), Some(n));
        }
        assert_eq!(signal_number("segv"), Some(11));
        assert_eq!(signal_number("SIGNOPE"), None);
        assert_eq!(signal_label(40), "SIGRTMIN+6");
        assert_eq!(signal_label(99), "signal 99");
    }

    #[test]
    fn si_codes() {
        assert_eq!(si_code_name(11, 1), Some("SEGV_MAPERR"));
        assert_eq!(si_code_name(11, 0x80), Some("SI_KERNEL"));
        assert_eq!(si_code_name(6, -6), Some("SI_TKILL"));
        assert_eq!(si_code_name(8, 1), Some("FPE_INTDIV"));
        assert_eq!(si_code_name(7, 2), Some("BUS_ADRERR"));
        assert_eq!(si_code_name(11, 77), None);
    }
}
