//! Which folder a skill's folder parameter means, read generously, without
//! a model: the person's answer ("receipts" is `projects/receipts` when one
//! granted folder has that name, "reciepts" too), a line of MEMORY.md that
//! says where things are, or the one granted folder that fits. An answer
//! that names no folder this run may see is a near-miss: the planner asks
//! again, saying why, and never runs the skill on it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// Folders listed below each granted folder, at most this deep.
const DEPTH: usize = 2;
/// At most this many folders are named in a question.
const SHOWN: usize = 12;

/// Words that say "a folder" but not which one.
const GENERIC: &[&str] = &[
    "folder",
    "directory",
    "dir",
    "file",
    "path",
    "the",
    "my",
    "our",
    "a",
    "in",
    "of",
    "and",
    "to",
    "is",
    "are",
    "where",
    "list",
    "with",
    "for",
    "one",
    "it",
    "its",
    "this",
    "that",
    "all",
    "every",
];

/// The folders a run may see: each granted folder and the folders below it.
#[derive(Debug, Clone)]
pub(super) struct Granted {
    root: PathBuf,
    /// As the planner passes them on: relative to the workspace when inside it.
    folders: Vec<String>,
    /// The granted folders themselves, in the same form.
    grants: Vec<String>,
}

impl Granted {
    pub(super) fn new(root: &Path, grants: &[PathBuf]) -> Self {
        let mut folders = Vec::new();
        let mut granted = Vec::new();
        for g in grants {
            let value = relative(g, root);
            if !absolute(root, &value).is_dir() {
                continue;
            }
            granted.push(value.clone());
            let mut todo = vec![(value, 0)];
            while let Some((dir, depth)) = todo.pop() {
                if !folders.contains(&dir) {
                    folders.push(dir.clone());
                }
                if depth == DEPTH {
                    continue;
                }
                let Ok(entries) = std::fs::read_dir(absolute(root, &dir)) else {
                    continue;
                };
                let mut subs: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .filter(|n| !n.starts_with('.'))
                    .map(|n| if dir == "." { n } else { format!("{dir}/{n}") })
                    .collect();
                subs.sort();
                todo.extend(subs.into_iter().rev().map(|s| (s, depth + 1)));
            }
        }
        Granted {
            root: root.to_path_buf(),
            folders,
            grants: granted,
        }
    }

    /// The folder meant when the person was not asked: the one MEMORY.md
    /// names for this subject, else the one granted folder whose name fits
    /// it, else the only granted folder. With the reason, for the person.
    pub(super) fn guess(&self, subject: &BTreeSet<String>, memory: &str) -> Option<(String, String)> {
        let remembered: BTreeSet<String> = memory
            .lines()
            .filter(|line| words(line).iter().any(|w| subject.contains(w)))
            .flat_map(path_tokens)
            .filter_map(|p| self.inside(&p))
            .collect();
        if let [only] = remembered.iter().collect::<Vec<_>>().as_slice() {
            return Some(((*only).clone(), "MEMORY.md says it is there".into()));
        }
        let fitting: Vec<&String> = self
            .folders
            .iter()
            .filter(|f| words(last(f)).iter().any(|w| subject.contains(w)))
            .collect();
        match (fitting.as_slice(), self.grants.as_slice()) {
            ([only], _) => Some(((*only).clone(), "the only granted folder whose name fits".into())),
            ([], [only]) => Some((only.clone(), "the only folder granted to this run".into())),
            _ => None,
        }
    }

    /// The folder an answer names, or why it names none this run may see.
    /// `known` are other folders of the workspace, which are named as not
    /// granted rather than not found.
    pub(super) fn read_answer(&self, answer: &str, known: &[String]) -> Result<String, String> {
        let cleaned = answer
            .trim()
            .trim_matches(|c: char| "\"'`\u{201c}\u{201d}\u{2018}\u{2019}".contains(c))
            .trim_end_matches(['.', '!'])
            .trim();
        if cleaned.is_empty() {
            return Err("the answer was empty".into());
        }
        if cleaned.contains('/') || cleaned == "." {
            let value = relative(Path::new(cleaned), &self.root);
            if let Some(found) = self.inside(&value) {
                return Ok(found);
            }
            if absolute(&self.root, &value).is_dir() {
                return Err(format!("{value} is not among the folders this run may see"));
            }
            // The end of a granted folder's path: "archive/receipts".
            let tail = format!("/{value}");
            if let [only] = self
                .folders
                .iter()
                .filter(|f| f.ends_with(&tail))
                .collect::<Vec<_>>()
                .as_slice()
            {
                return Ok((*only).clone());
            }
        }
        // A name: the last part of a path, without "the", "folder" and the like.
        let name = cleaned.trim_end_matches('/').rsplit('/').next().unwrap_or(cleaned);
        let wanted = words(name);
        if wanted.is_empty() {
            return Err(format!("{cleaned:?} names no folder"));
        }
        let named = |folders: &[String]| -> Vec<String> {
            folders.iter().filter(|f| words(last(f)) == wanted).cloned().collect()
        };
        match named(&self.folders).as_slice() {
            [only] => return Ok(only.clone()),
            [] => {}
            several => {
                return Err(format!(
                    "several folders are called {name:?} ({}); say which",
                    several.join(", ")
                ));
            }
        }
        let near: Vec<&String> = self
            .folders
            .iter()
            .filter(|f| near_miss(&wanted.join(" "), &words(last(f)).join(" ")))
            .collect();
        if let [only] = near.as_slice() {
            return Ok((*only).clone());
        }
        if let Some(elsewhere) = named(known).first() {
            return Err(format!("{elsewhere} is not among the folders this run may see"));
        }
        Err(format!("no folder this run may see is called {name:?}"))
    }

    /// The file an answer names: a path to a file inside a grant, or a file
    /// name that one granted folder (or folder below one) holds.
    pub(super) fn read_file_answer(&self, answer: &str) -> Result<String, String> {
        let cleaned = answer
            .trim()
            .trim_matches(|c: char| "\"'`\u{201c}\u{201d}\u{2018}\u{2019}".contains(c))
            .trim_end_matches(['!'])
            .trim();
        if cleaned.is_empty() {
            return Err("the answer was empty".into());
        }
        let value = relative(Path::new(cleaned), &self.root);
        let within = |value: &str| {
            let path = absolute(&self.root, value);
            !value.split('/').any(|p| p == "..")
                && self.grants.iter().any(|g| path.starts_with(absolute(&self.root, g)))
                && path.is_file()
        };
        if within(&value) {
            return Ok(value);
        }
        if cleaned.contains('/') {
            return Err(format!("{value} is not a file in the folders this run may see"));
        }
        let found: Vec<String> = self
            .folders
            .iter()
            .map(|f| format!("{f}/{cleaned}"))
            .filter(|candidate| within(candidate))
            .collect();
        match found.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(format!("no folder this run may see holds a file called {cleaned:?}")),
            several => Err(format!(
                "several files are called {cleaned:?} ({}); say which",
                several.join(", ")
            )),
        }
    }

    /// The folders to name in a question.
    pub(super) fn listing(&self) -> String {
        if self.folders.is_empty() {
            return "none: start the task again with a folder granted".into();
        }
        let shown: Vec<&str> = self.folders.iter().take(SHOWN).map(String::as_str).collect();
        let more = self.folders.len().saturating_sub(SHOWN);
        let mut text = shown.join(", ");
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        text
    }

    /// `value` as listed, if it is a folder inside a grant.
    fn inside(&self, value: &str) -> Option<String> {
        let value = relative(Path::new(value), &self.root);
        if self.folders.contains(&value) {
            return Some(value);
        }
        let path = absolute(&self.root, &value);
        let within = self
            .grants
            .iter()
            .any(|g| path.starts_with(absolute(&self.root, g)) && !value.split('/').any(|p| p == ".."));
        (within && path.is_dir()).then_some(value)
    }
}

/// The words that say what a skill's folder holds: its name's and the
/// parameter's description's, less the generic ones.
pub(super) fn subject(skill_name: &str, description: &str) -> BTreeSet<String> {
    words(&skill_name.replace('-', " "))
        .into_iter()
        .chain(words(description))
        .collect()
}

/// Lowercased words, a plural `s` folded, generic words left out.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w.to_lowercase();
            match w.strip_suffix('s') {
                Some(stem) if w.chars().count() > 3 && !w.ends_with("ss") => stem.to_owned(),
                _ => w,
            }
        })
        .filter(|w| !GENERIC.contains(&w.as_str()))
        .collect()
}

/// Path-like words of a line of text: `projects/receipts`, `./receipts/`,
/// and quoted paths with spaces (`` `projects/old receipts/` ``).
fn path_tokens(line: &str) -> Vec<String> {
    let quoted = ['`', '"'].into_iter().flat_map(|q| line.split(q).skip(1).step_by(2));
    line.split_whitespace()
        .chain(quoted)
        .map(|t| t.trim().trim_matches(|c: char| "`'\"()[]<>,;:.!?*".contains(c)))
        .filter(|t| t.contains('/') && t.chars().any(char::is_alphanumeric))
        .map(str::to_owned)
        .collect()
}

fn last(folder: &str) -> &str {
    folder.rsplit('/').next().unwrap_or(folder)
}

/// A typo away: one or two edits in a name of five letters or more, one in a shorter one.
fn near_miss(a: &str, b: &str) -> bool {
    let allowed = if a.chars().count().min(b.chars().count()) >= 5 {
        2
    } else {
        1
    };
    !a.is_empty() && !b.is_empty() && edits(a, b) <= allowed
}

fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// As the planner passes paths on: relative to the workspace when inside
/// it, without `./` or a trailing `/`.
fn relative(path: &Path, root: &Path) -> String {
    let path = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<Component> = path.components().filter(|c| *c != Component::CurDir).collect();
    if parts.is_empty() {
        return ".".into();
    }
    parts.iter().collect::<PathBuf>().to_string_lossy().into_owned()
}

fn absolute(root: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() { p.to_path_buf() } else { root.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        for d in [
            "projects/receipts",
            "projects/2026 offsite",
            "projects/archive/receipts",
            "context",
            "notes",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        (tmp, root)
    }

    fn receipts() -> BTreeSet<String> {
        subject("receipts-to-spreadsheet", "The folder of receipts and bank exports")
    }

    #[test]
    fn the_one_granted_folder_that_fits_needs_no_question() {
        let (_tmp, root) = workspace();
        let only = Granted::new(&root, &[PathBuf::from("projects/receipts")]);
        assert_eq!(only.guess(&receipts(), "").unwrap().0, "projects/receipts");
        let one_grant = Granted::new(&root, &[PathBuf::from("notes")]);
        assert_eq!(one_grant.guess(&receipts(), "").unwrap().0, "notes");
        // Two folders called receipts below the grant: ask.
        let projects = Granted::new(&root, &[PathBuf::from("projects")]);
        assert_eq!(projects.guess(&receipts(), ""), None);
        let two = Granted::new(&root, &[PathBuf::from("notes"), PathBuf::from("context")]);
        assert_eq!(two.guess(&receipts(), ""), None);
    }

    #[test]
    fn memory_says_where_things_are() {
        let (_tmp, root) = workspace();
        let projects = Granted::new(&root, &[PathBuf::from("projects")]);
        let memory = "# Memory\n\n- My receipts are kept in `projects/archive/receipts/`.\n- Notes live in notes/.\n";
        let (found, why) = projects.guess(&receipts(), memory).unwrap();
        assert_eq!(found, "projects/archive/receipts");
        assert!(why.contains("MEMORY.md"));
        // A remembered folder this run may not see does not count.
        assert_eq!(projects.guess(&receipts(), "- Receipts: /etc/receipts\n"), None);
    }

    #[test]
    fn a_file_answer_is_a_path_or_a_name_one_granted_folder_holds() {
        let (_tmp, root) = workspace();
        std::fs::write(root.join("projects/receipts/budget.csv"), "a\n").unwrap();
        std::fs::write(root.join("notes/budget.csv"), "a\n").unwrap();
        std::fs::write(root.join("notes/plan.csv"), "a\n").unwrap();
        let g = Granted::new(&root, &[PathBuf::from("projects/receipts"), PathBuf::from("notes")]);
        assert_eq!(g.read_file_answer("notes/plan.csv").as_deref(), Ok("notes/plan.csv"));
        assert_eq!(g.read_file_answer("\"plan.csv\"").as_deref(), Ok("notes/plan.csv"));
        let abs = root.join("projects/receipts/budget.csv").display().to_string();
        assert_eq!(g.read_file_answer(&abs).as_deref(), Ok("projects/receipts/budget.csv"));
        assert!(g.read_file_answer("budget.csv").unwrap_err().contains("several files"));
        assert!(g.read_file_answer("nope.csv").unwrap_err().contains("no folder"));
        assert!(g.read_file_answer("notes").is_err(), "a folder is not a file");
        assert!(g.read_file_answer("projects/other/x.csv").is_err());
    }

    #[test]
    fn answers_are_read_generously_and_near_misses_say_why() {
        let (_tmp, root) = workspace();
        let g = Granted::new(&root, &[PathBuf::from("projects/receipts"), PathBuf::from("notes")]);
        for answer in [
            "receipts",
            "Receipts",
            "the receipts folder",
            "\"receipts\"",
            "reciepts",
            "projects/receipts/",
            "./projects/receipts",
        ] {
            assert_eq!(
                g.read_answer(answer, &[]).as_deref(),
                Ok("projects/receipts"),
                "{answer}"
            );
        }
        let abs = root.join("projects/receipts").display().to_string();
        assert_eq!(g.read_answer(&abs, &[]).as_deref(), Ok("projects/receipts"));
        let offsite = g.read_answer("2026 offsite", &["projects/2026 offsite".into()]);
        assert!(offsite.unwrap_err().contains("not among the folders this run may see"));
        assert!(
            g.read_answer("projects/2026 offsite", &[])
                .unwrap_err()
                .contains("not among")
        );
        assert!(g.read_answer("invoices", &[]).unwrap_err().contains("no folder"));
        assert!(g.read_answer("projects/receipts/../../..", &[]).is_err());
        assert!(g.read_answer("  ", &[]).is_err());
        let projects = Granted::new(&root, &[PathBuf::from("projects")]);
        assert!(projects.read_answer("receipts", &[]).unwrap_err().contains("several"));
        assert_eq!(
            projects.read_answer("archive/receipts", &[]).as_deref(),
            Ok("projects/archive/receipts")
        );
    }
}
