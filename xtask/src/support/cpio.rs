//! A newc ("070701") cpio writer for the initramfs (pure).
//!
//! Deterministic by construction: entries sorted by path (a parent always
//! before its children), uid and gid 0, one mtime for all, inode numbers
//! counted from 1 in that order, no device numbers for the archive itself.

use std::collections::BTreeMap;

/// File type bits (`S_IF*`).
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Permission bits (no type bits): 0o755, 0o4755, ...
    pub perm: u32,
    pub kind: Kind,
}

/// An archive being assembled: path (no leading `/`) → entry.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    /// Add an entry; its parent directories are added (0755) as needed.
    pub fn add(&mut self, path: &str, perm: u32, kind: Kind) {
        let path = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        assert!(
            !path.is_empty()
                && !path
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == ".."),
            "bad cpio path {path:?}"
        );
        let mut parent = String::new();
        for component in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, p)| p.to_vec())
            .unwrap_or_default()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            self.entries.entry(parent.clone()).or_insert(Entry {
                perm: 0o755,
                kind: Kind::Dir,
            });
        }
        self.entries.insert(path, Entry { perm, kind });
    }

    pub fn dir(&mut self, path: &str) {
        self.add(path, 0o755, Kind::Dir);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The archive bytes, every mtime set to `mtime`.
    pub fn write(&self, mtime: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, e)) in self.entries.iter().enumerate() {
            let (type_bits, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match &e.kind {
                Kind::Dir => (S_IFDIR, 2, &[], (0, 0)),
                Kind::File(d) => (S_IFREG, 1, d, (0, 0)),
                Kind::Symlink(t) => (S_IFLNK, 1, t.as_bytes(), (0, 0)),
                Kind::CharDev { major, minor } => (S_IFCHR, 1, &[], (*major, *minor)),
            };
            let header = Header {
                ino: ino as u32 + 1,
                mode: type_bits | (e.perm & 0o7777),
                nlink,
                mtime,
                filesize: data.len() as u32,
                rdevmajor: rdev.0,
                rdevminor: rdev.1,
            };
            write_entry(&mut out, &header, path, data);
        }
        let trailer = Header {
            ino: 0,
            mode: 0,
            nlink: 1,
            mtime: 0,
            filesize: 0,
            rdevmajor: 0,
            rdevminor: 0,
        };
        write_entry(&mut out, &trailer, "TRAILER!!!", &[]);
        out
    }
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    filesize: u32,
    rdevmajor: u32,
    rdevminor: u32,
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn write_entry(out: &mut Vec<u8>, h: &Header, name: &str, data: &[u8]) {
    let namesize = name.len() as u32 + 1;
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
    // rdevmajor, rdevminor, namesize, check
    let fields = [
        h.ino,
        h.mode,
        0,
        0,
        h.nlink,
        h.mtime,
        h.filesize,
        0,
        0,
        h.rdevmajor,
        h.rdevminor,
        namesize,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sample() -> Archive {
        let mut a = Archive::new();
        a.add("init", 0o755, Kind::File(b"#!/bin/sh\necho hi\n".to_vec()));
        a.add(
            "bin/busybox",
            0o755,
            Kind::File(vec![0x7f, b'E', b'L', b'F', 1]),
        );
        a.add("bin/sh", 0o777, Kind::Symlink("busybox".into()));
        a.add("dev/console", 0o600, Kind::CharDev { major: 5, minor: 1 });
        a.add("usr/share/empty", 0o644, Kind::File(vec![]));
        a.add("sbin/suid", 0o4755, Kind::File(b"x".to_vec()));
        a
    }

    #[test]
    fn entries_are_sorted_parents_first_with_fixed_fields() {
        let bytes = sample().write(1_700_000_000);
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(bytes.len() % 4, 0);
        // The first entry is the directory "bin" (created for bin/busybox), inode 1.
        let field = |i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap(),
                16,
            )
            .unwrap()
        };
        assert_eq!(field(0), 1); // ino
        assert_eq!(field(1), S_IFDIR | 0o755);
        assert_eq!((field(2), field(3)), (0, 0)); // uid, gid
        assert_eq!(field(5), 1_700_000_000); // mtime
        assert_eq!(field(11), 4); // namesize "bin\0"
        assert_eq!(&bytes[110..114], b"bin\0");
        // The archive ends with the trailer, padded.
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!"));
        let end = text.rfind("TRAILER!!!").unwrap() + 11;
        assert!(bytes.len() - end < 4, "only padding after the trailer");
    }

    #[test]
    fn gnu_cpio_reads_it_back() {
        crate::support::prereq::need_for_test("cpio");
        let bytes = sample().write(1_700_000_000);
        let mut child = Command::new("cpio")
            .args(["-i", "--list", "--verbose", "--numeric-uid-gid", "--quiet"])
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot run cpio");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<Vec<&str>> = listing
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        // The name is the last field, or the one before "->" for symlinks.
        fn name_of<'a>(l: &[&'a str]) -> &'a str {
            match l.iter().position(|w| *w == "->") {
                Some(i) => l[i - 1],
                None => l[l.len() - 1],
            }
        }
        let names: Vec<&str> = lines.iter().map(|l| name_of(l)).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "bin/sh",
                "dev",
                "dev/console",
                "init",
                "sbin",
                "sbin/suid",
                "usr",
                "usr/share",
                "usr/share/empty"
            ]
        );
        let by_name = |n: &str| lines.iter().find(|l| name_of(l) == n).unwrap().clone();
        assert_eq!(by_name("bin/sh")[0], "lrwxrwxrwx");
        assert_eq!(by_name("bin/sh")[10], "busybox");
        assert_eq!(by_name("dev/console")[0], "crw-------");
        assert_eq!(by_name("dev/console")[4], "5,");
        assert_eq!(by_name("sbin/suid")[0], "-rwsr-xr-x");
        assert_eq!(by_name("init")[4], "18"); // size
        assert_eq!(by_name("usr/share/empty")[4], "0");
        for l in &lines {
            assert_eq!((l[2], l[3]), ("0", "0"), "owner of {}", name_of(l));
        }
        assert_eq!(&by_name("init")[5..8], ["Nov", "14", "2023"]);
    }
}
