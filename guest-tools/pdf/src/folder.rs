//! The PDFs directly in a folder, in the order a person reads their names
//! (`page 2` before `page 10`), for operations that take a folder.

use std::path::{Path, PathBuf};

pub use deskhand_guest::natural_cmp;

/// The `.pdf` files directly in `folder` (not in sub-folders), in natural
/// name order. Hidden names, links and anything not a regular file are
/// left out; so is `except` (a merge's own target, when it lies there).
pub fn pdfs_in(folder: &Path, except: Option<&Path>) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_pdf = Path::new(&name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pdf"));
        if name.starts_with('.') || !is_pdf {
            continue;
        }
        // symlink_metadata: a link is never followed, whatever it points at.
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_file() && except != Some(path.as_path()) {
            found.push(path);
        }
    }
    found.sort_by(|a, b| natural_cmp(&name_of(a), &name_of(b)));
    Ok(found)
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_names_sort_by_value_and_case_is_ignored() {
        let mut names = vec!["page 10.pdf", "Page 2.pdf", "page 1.pdf", "annex.pdf", "page 02b.pdf"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["annex.pdf", "page 1.pdf", "Page 2.pdf", "page 02b.pdf", "page 10.pdf"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn only_regular_pdfs_directly_in_the_folder_are_taken() {
        let dir = std::env::temp_dir().join(format!("deskhand-pdf-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for name in [
            "b 10.PDF",
            "b 9.pdf",
            ".hidden.pdf",
            "notes.txt",
            "sub/deep.pdf",
            "merged.pdf",
        ] {
            std::fs::write(dir.join(name), "x").unwrap();
        }
        std::os::unix::fs::symlink(dir.join("b 9.pdf"), dir.join("link.pdf")).unwrap();
        let found = pdfs_in(&dir, Some(&dir.join("merged.pdf"))).unwrap();
        let names: Vec<String> = found.iter().map(|p| name_of(p)).collect();
        assert_eq!(names, ["b 9.pdf", "b 10.PDF"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
