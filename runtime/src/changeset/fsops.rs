//! The file operations a changeset is made of, each one either done or not
//! done, never half done: content goes to a temporary file in the target's
//! folder, is flushed to disk and renamed into place; renames never replace
//! an existing entry; a move across devices is copy, flush, verify, then
//! remove the original.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// SHA-256 (hex) of a file's bytes; for a symlink, of its target text; for
/// a folder, of its sorted names and their contents' hashes.
pub fn hash_entry(path: &Path) -> io::Result<String> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_file() {
        // A file's hash is the plain SHA-256 of its bytes, as `sha256sum` prints it.
        return hash_file(path);
    }
    let mut hasher = Sha256::new();
    hash_into(path, &meta, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

fn hash_into(path: &Path, meta: &fs::Metadata, hasher: &mut Sha256) -> io::Result<()> {
    if meta.is_symlink() {
        hasher.update(b"link\0");
        hasher.update(fs::read_link(path)?.as_os_str().as_encoded_bytes());
    } else if meta.is_dir() {
        hasher.update(b"dir\0");
        let mut names: Vec<_> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            let child = path.join(&name);
            let child_meta = fs::symlink_metadata(&child)?;
            hasher.update(name.as_encoded_bytes());
            hasher.update(b"\0");
            hash_into(&child, &child_meta, hasher)?;
        }
        hasher.update(b"end\0");
    } else {
        hasher.update(b"file\0");
        hasher.update(hash_file(path)?.as_bytes());
    }
    Ok(())
}

fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Total bytes of a file, or of every file in a folder.
pub fn entry_size(path: &Path) -> io::Result<u64> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let mut total = 0;
        for entry in fs::read_dir(path)? {
            total += entry_size(&entry?.path())?;
        }
        Ok(total)
    } else {
        Ok(meta.len())
    }
}

/// A cheap fingerprint (inode, size, modification time) that a rename keeps:
/// when it still matches, the content is taken as unchanged without hashing.
pub fn stamp(path: &Path) -> io::Result<String> {
    let meta = fs::symlink_metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0u64;
    Ok(format!("{ino}:{}:{mtime}:{}", meta.len(), meta.is_dir()))
}

/// True if something (a file, folder or symlink, even a dangling one) is at `path`.
pub fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Flushes a folder's entries (names created, renamed or removed) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Copies `from` to a new file `to`, flushed to disk. The new file is the
/// person's alone (0600 whatever the umask); an overwrite then gives it the
/// permissions of the file it replaces.
pub fn copy_file_synced(from: &Path, to: &Path) -> io::Result<()> {
    let mut src = File::open(from)?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut dst = options.open(to)?;
    io::copy(&mut src, &mut dst)?;
    dst.flush()?;
    dst.sync_all()
}

/// Renames `from` to `to`, refusing (AlreadyExists) if anything is at `to`.
/// On Linux the kernel checks and renames in one step (`RENAME_NOREPLACE`).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::EXIST) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the target exists"));
            }
            // Filesystems without the flag fall through to check-then-rename.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if exists(to)? {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the target exists"));
    }
    fs::rename(from, to)
}

/// Moves an entry to `to` (which must not exist), on the same device by a
/// rename; across devices by copying it beside `to`, flushing, checking the
/// copy's hash against `expected`, renaming it into place and only then
/// removing the original.
pub fn move_entry(from: &Path, to: &Path, expected: &str) -> io::Result<()> {
    match rename_noreplace(from, to) {
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {}
        other => return other,
    }
    let partial = to.with_file_name(format!(
        ".{}.deskhand-partial",
        to.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    if exists(&partial)? {
        remove_entry(&partial)?;
    }
    copy_tree(from, &partial)?;
    let copied = hash_entry(&partial)?;
    if copied != expected {
        remove_entry(&partial)?;
        return Err(io::Error::other(format!(
            "the copy of {} does not match the original ({copied} != {expected}); the original is untouched",
            from.display()
        )));
    }
    rename_noreplace(&partial, to)?;
    if let Some(dir) = to.parent() {
        sync_dir(dir)?;
    }
    remove_entry(from)
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if meta.is_symlink() {
        #[cfg(unix)]
        return std::os::unix::fs::symlink(fs::read_link(from)?, to);
        #[cfg(not(unix))]
        return Err(io::Error::other("cannot copy a symlink on this system"));
    }
    // A moved entry keeps its permissions (an exec bit, a shared file's
    // 0644), across devices too.
    if meta.is_dir() {
        fs::create_dir(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        fs::set_permissions(to, meta.permissions())?;
        sync_dir(to)
    } else {
        copy_file_synced(from, to)?;
        fs::set_permissions(to, meta.permissions())
    }
}

/// Removes a file, a symlink or a whole folder.
pub fn remove_entry(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Writes `content`'s bytes to a new file `to`, flushed, and returns its hash.
pub fn stage_copy(content: &Path, to: &Path) -> io::Result<String> {
    if exists(to)? {
        fs::remove_file(to)?;
    }
    copy_file_synced(content, to)?;
    hash_file(to)
}
