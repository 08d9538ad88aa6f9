//! One line of `/proc/PID/maps`, parsed, and the region classes the dump
//! levels are defined by.

/// Access bits of a mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// `s` (shared) rather than `p` (private, copy-on-write).
    pub shared: bool,
}

impl Perms {
    /// From the `rwxp` text of `/proc/PID/maps` (each place its letter or
    /// `-`; the last `s` or `p`). `None` for anything else.
    pub fn from_text(t: &[u8]) -> Option<Perms> {
        let flag = |c: u8, yes: u8| match c {
            _ if c == yes => Some(true),
            b'-' => Some(false),
            _ => None,
        };
        match *t {
            [r, w, x, s] => Some(Perms {
                read: flag(r, b'r')?,
                write: flag(w, b'w')?,
                exec: flag(x, b'x')?,
                shared: match s {
                    b's' => true,
                    b'p' => false,
                    _ => return None,
                },
            }),
            _ => None,
        }
    }

    /// `rwxp` text.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(4);
        s.push(if self.read { 'r' } else { '-' });
        s.push(if self.write { 'w' } else { '-' });
        s.push(if self.exec { 'x' } else { '-' });
        s.push(if self.shared { 's' } else { 'p' });
        s
    }
}

/// A mapping of the target's address space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: Perms,
    pub offset: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub inode: u64,
    /// The path or pseudo-name (`[stack]`, `[heap]`, `[vdso]`), as raw bytes
    /// from the kernel (may hold any byte but NUL and newline; may end in
    /// ` (deleted)`). Empty for anonymous mappings.
    pub name: Vec<u8>,
}

impl Mapping {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
    /// Backed by a file (inode != 0 and a path that is not a pseudo-name).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.name.first() == Some(&b'/')
    }
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
    /// `[vvar]`, `[vsyscall]` and friends that cannot or must not be read.
    pub fn is_special_unreadable(&self) -> bool {
        matches!(
            self.name.as_slice(),
            b"[vvar]" | b"[vsyscall]" | b"[vvar_vclock]"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_text_round_trip() {
        for t in ["rwxp", "r--s", "---p", "-w-p"] {
            assert_eq!(Perms::from_text(t.as_bytes()).unwrap().to_text(), t);
        }
        for bad in ["rwx", "rwxpp", "xwrp", "rwxq", ""] {
            assert_eq!(Perms::from_text(bad.as_bytes()), None, "{bad}");
        }
    }
}
