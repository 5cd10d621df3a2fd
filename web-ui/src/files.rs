//! Files the server hands out (deliverables under output/, the instruction
//! and memory files), opened so that nothing in them can hurt the server:
//! beneath their folder through a capability handle (a planted link cannot
//! lead outside), non-blocking (a FIFO opens at once instead of freezing the
//! thread), regular files only, sizes taken from the open handle, and read
//! either as a bounded prefix or streamed in chunks, never whole.
//!
//! Every function here blocks: callers run them with `spawn_blocking`.

use std::io::Read;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};

/// Why a file is not served, in words that name it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("there is no file {0} (was it moved or deleted? reload the page)")]
    Missing(String),
    #[error("{0} is a symbolic link; deskhand serves only regular files, not links")]
    Link(String),
    #[error("{name} is {kind}, not a regular file; deskhand serves only regular files")]
    NotRegular { name: String, kind: &'static str },
    #[error("could not read {name}: {source}")]
    Io { name: String, source: std::io::Error },
}

/// An open regular file and its size, as the handle says.
pub struct Opened {
    pub file: std::fs::File,
    pub size: u64,
}

fn kind(t: &cap_std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use cap_std::fs::FileTypeExt;
        if t.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() { "a folder" } else { "not a plain file" }
}

/// Opens `relative` beneath `dir`; `shown` is how the person knows the file
/// (`output/report.pdf`).
pub fn open_beneath(dir: &Path, relative: &Path, shown: &str) -> Result<Opened, FileError> {
    let io = |source: std::io::Error| FileError::Io {
        name: shown.to_owned(),
        source,
    };
    let handle = cap_std::fs::Dir::open_ambient_dir(dir, cap_std::ambient_authority()).map_err(io)?;
    match handle.symlink_metadata(relative) {
        Ok(m) if m.file_type().is_symlink() => return Err(FileError::Link(shown.to_owned())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FileError::Missing(shown.to_owned())),
        Err(e) => return Err(io(e)),
    }
    let mut options = cap_std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use cap_std::fs::OpenOptionsExt;
        // A FIFO opened without O_NONBLOCK waits for a writer; with it the
        // open returns at once and the check below refuses it.
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = handle.open_with(relative, &options).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FileError::Missing(shown.to_owned()),
        _ => io(e),
    })?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            name: shown.to_owned(),
            kind: kind(&meta.file_type()),
        });
    }
    Ok(Opened {
        file: file.into_std(),
        size: meta.len(),
    })
}

/// At most `limit` bytes from the start, and whether there was more.
pub fn read_prefix(opened: Opened, limit: u64, shown: &str) -> Result<(Vec<u8>, bool), FileError> {
    let mut bytes = Vec::with_capacity(opened.size.min(limit) as usize);
    opened
        .file
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|source| FileError::Io {
            name: shown.to_owned(),
            source,
        })?;
    Ok((bytes, opened.size > limit))
}

/// The longest valid UTF-8 text at the start of `bytes` when only the last
/// character was cut by a prefix; `None` when the bytes are not text.
pub fn utf8_prefix(mut bytes: Vec<u8>, truncated: bool) -> Option<String> {
    match std::str::from_utf8(&bytes) {
        Ok(_) => {}
        Err(e) if truncated && e.error_len().is_none() => bytes.truncate(e.valid_up_to()),
        Err(_) => return None,
    }
    String::from_utf8(bytes).ok()
}

const CHUNK: usize = 64 * 1024;

/// A body that streams `file` in 64 KiB chunks, each read on the blocking
/// pool; at most a few chunks are buffered ahead of a slow client. It ends
/// at the size the handle had when opened (the `Content-Length` sent), even
/// if the file grows meanwhile.
pub fn stream(opened: Opened, shown: String) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut file = Some(opened.file.take(opened.size));
        while let Some(mut f) = file.take() {
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; CHUNK];
                let n = f.read(&mut buf)?;
                buf.truncate(n);
                Ok::<_, std::io::Error>((f, buf))
            })
            .await;
            let chunk = match read {
                Ok(Ok((_, buf))) if buf.is_empty() => return,
                Ok(Ok((f, buf))) => {
                    file = Some(f);
                    Ok(Bytes::from(buf))
                }
                Ok(Err(e)) => Err(std::io::Error::new(e.kind(), format!("reading {shown}: {e}"))),
                Err(e) => Err(std::io::Error::other(format!("reading {shown}: {e}"))),
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The instruction or memory file: read whole but capped, since a person
/// edits it in a text box.
pub fn read_named(path: &Path, limit: u64) -> Result<Option<String>, String> {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path.file_name().map(PathBuf::from).unwrap_or_default();
    let shown = path.display().to_string();
    let opened = match open_beneath(&dir, &name, &shown) {
        Ok(o) => o,
        Err(FileError::Missing(_)) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if opened.size > limit {
        return Err(format!(
            "{shown} is {} bytes, more than the {} this page edits; edit it in a text editor",
            opened.size, limit
        ));
    }
    let (bytes, _) = read_prefix(opened, limit, &shown).map_err(|e| e.to_string())?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("{shown} is not UTF-8 text; fix it in a text editor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("pipe.csv");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).expect("mkfifo");
        let err = open_beneath(dir.path(), Path::new("pipe.csv"), "output/pipe.csv")
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            "output/pipe.csv is a named pipe (FIFO), not a regular file; deskhand serves only regular files"
        );
    }

    #[test]
    fn a_link_is_named_as_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("l.txt")).expect("symlink");
        let err = open_beneath(dir.path(), Path::new("l.txt"), "output/l.txt")
            .err()
            .expect("refused");
        assert!(matches!(err, FileError::Link(_)), "{err}");
    }

    #[test]
    fn a_sparse_file_is_read_as_a_prefix_with_its_size_from_the_handle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = std::fs::File::create(dir.path().join("big.txt")).expect("create");
        f.set_len(3 << 30).expect("sparse 3 GiB");
        let opened = open_beneath(dir.path(), Path::new("big.txt"), "output/big.txt").expect("open");
        assert_eq!(opened.size, 3 << 30);
        let (bytes, more) = read_prefix(opened, 1000, "output/big.txt").expect("read");
        assert_eq!((bytes.len(), more), (1000, true));
    }

    #[tokio::test]
    async fn a_stream_ends_at_the_size_it_was_opened_with() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("growing.csv");
        std::fs::write(&path, vec![b'a'; 200_000]).expect("write");
        let opened = open_beneath(dir.path(), Path::new("growing.csv"), "output/growing.csv").expect("open");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"more"))
            .expect("append");
        let body = axum::body::to_bytes(stream(opened, "output/growing.csv".into()), usize::MAX)
            .await
            .expect("body");
        assert_eq!(body.len(), 200_000);
    }

    #[test]
    fn a_character_cut_by_the_prefix_is_dropped_but_bad_text_is_not_text() {
        let text = "café".as_bytes();
        assert_eq!(utf8_prefix(text[..4].to_vec(), true).as_deref(), Some("caf"));
        assert_eq!(utf8_prefix(text[..4].to_vec(), false), None);
        assert_eq!(utf8_prefix(vec![0xff, b'a'], true), None);
    }
}
