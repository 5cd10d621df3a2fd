//! The VM's initramfs, built from host files (busybox-static and the kernel's 9p modules) and
//! the generated /init: an uncompressed `newc` cpio archive, which the kernel unpacks as is.
//! It is rebuilt in memory each time the backend checks, and written to the cache only when
//! its bytes differ from the file there.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::plan::{MODULES, init_script};

/// What goes into the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitramfsInputs {
    pub busybox: PathBuf,
    pub modules_dir: PathBuf,
}

/// Builds the archive and writes it to `cache_dir/initramfs.cpio` if it changed; returns
/// the path.
pub fn ensure(inputs: &InitramfsInputs, cache_dir: &Path) -> std::io::Result<PathBuf> {
    let bytes = build(inputs)?;
    let path = cache_dir.join("initramfs.cpio");
    if std::fs::read(&path).is_ok_and(|existing| existing == bytes) {
        return Ok(path);
    }
    std::fs::create_dir_all(cache_dir)?;
    let mut tmp = tempfile_in(cache_dir)?;
    tmp.1.write_all(&bytes)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, &path)?;
    Ok(path)
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let path = dir.join(format!(".initramfs-{}.tmp", std::process::id()));
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

pub fn build(inputs: &InitramfsInputs) -> std::io::Result<Vec<u8>> {
    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "proc", "sys", "tmp", "run", "lib", "lib/modules"] {
        cpio.dir(dir);
    }
    cpio.file("bin/busybox", 0o755, &std::fs::read(&inputs.busybox)?);
    cpio.symlink("bin/sh", "busybox");
    for module in MODULES {
        let name = format!("{module}.ko");
        cpio.file(
            &format!("lib/modules/{name}"),
            0o644,
            &std::fs::read(inputs.modules_dir.join(&name))?,
        );
    }
    cpio.file("init", 0o755, init_script().as_bytes());
    Ok(cpio.finish())
}

/// A `newc` cpio writer: a header of 13 eight-digit hex fields, the NUL-terminated name and
/// the data, each padded to four bytes; `TRAILER!!!` ends it.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | perm, data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120_777, target.as_bytes());
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.inode += 1;
        let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        let fields = [
            self.inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so the archive is the same bytes every time
            u32::try_from(data.len()).unwrap_or(u32::MAX),
            0,
            0,
            0,
            0,
            u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned_and_terminated() {
        let mut cpio = Cpio::default();
        cpio.file("init", 0o755, b"#!/bin/sh\n");
        cpio.symlink("bin/sh", "busybox");
        let out = cpio.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        // mode of the first entry: a regular file, 0755.
        assert_eq!(&out[14..22], b"000081ED");
        // name size includes the NUL.
        assert_eq!(&out[94..102], b"00000005");
        assert_eq!(&out[110..115], b"init\0");
        assert!(out.windows(11).any(|w| w == b"TRAILER!!!\0"));
    }
}
