//! Matching a task's text to a skill, and filling the skill's parameters
//! from the same text, without a model.
//!
//! Words are lowercased, split at punctuation, stripped of contractions
//! (`what's` -> `what`) and of a plural `s` (`receipts` -> `receipt`); a
//! short list of stop words (`the`, `of`, `by`, ...) carries no meaning.
//! A skill scores, per keyword phrase whose every word is in the task, one
//! point per word; its name counts as one more phrase. Each of the name's
//! words in the task adds half a point, and the share of the task's words
//! found in the description up to half a point more. A skill matches only
//! when at least one phrase matched; the best score wins, and a tie is no
//! match (the planner asks which was meant). Description words alone never
//! match: "delete all my files" shares "file" with the inventory skill and
//! that is not enough. A phrase `csv > xlsx` also asks that the task goes
//! that way (`in_direction`), and a named file's extension counts as
//! a word, so "budget.xlsx to csv" and "budget.csv to a spreadsheet" find
//! different skills.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use super::{ParamKind, ParamSpec, Skill};

/// The date forms are the rename-by-date tool's own, so a date in a task
/// and a date in a file name are read by the same rules.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the host needs `find` but not every helper of the guest's module"
    )
)]
#[path = "../../../guest-tools/rename-by-date/src/dates.rs"]
pub(super) mod dates;

/// The least score that matches: one keyword's worth.
pub const MIN_SCORE: f32 = 1.0;

const STOP_WORDS: &[&str] = &[
    "a", "all", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "each", "every", "for",
    "from", "here", "i", "in", "into", "is", "it", "its", "just", "me", "my", "of", "on", "or", "our", "please",
    "some", "that", "the", "their", "them", "there", "these", "this", "those", "to", "us", "we", "will", "with",
    "would", "you", "your",
];

/// What the planner knows besides the task's text.
#[derive(Debug, Clone, Default)]
pub struct MatchContext {
    pub workspace_root: PathBuf,
    /// Folders a task may name by their last component ("the receipts
    /// folder" -> `projects/receipts`): the granted ones and the
    /// workspace's `projects/` and `context/` folders and their subfolders,
    /// relative to the workspace or absolute. Earlier ones win a tie.
    pub folders: Vec<PathBuf>,
    /// Folders granted read-write (as granted: relative to the workspace or
    /// absolute). A skill's step that works on one of them declares that it
    /// writes there, so the changes its tool proposes can be applied.
    pub writable: Vec<PathBuf>,
}

impl MatchContext {
    /// The context a task in the workspace at `root` with `grants` has: the
    /// granted folders, then `projects/` and `context/` and their folders.
    pub fn for_workspace(root: &Path, grants: &[deskhand_types::Grant]) -> Self {
        let mut folders: Vec<PathBuf> = grants.iter().map(|g| g.path.clone()).collect();
        for sub in ["projects", "context"] {
            if let Ok(entries) = std::fs::read_dir(root.join(sub)) {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .map(|e| PathBuf::from(sub).join(e.file_name()))
                    .collect();
                found.sort();
                folders.extend(found);
            }
            folders.push(PathBuf::from(sub));
        }
        MatchContext {
            workspace_root: root.to_path_buf(),
            folders,
            writable: grants
                .iter()
                .filter(|g| g.access.is_writable())
                .map(|g| g.path.clone())
                .collect(),
        }
    }

    /// True if `path` (as a task names it) lies in a folder granted read-write.
    pub fn is_writable(&self, path: &str) -> bool {
        let abs = |p: &std::path::Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                self.workspace_root.join(p)
            }
        };
        let path = abs(std::path::Path::new(path));
        self.writable.iter().any(|w| path.starts_with(abs(w)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Matched {
        /// The index of the skill in the slice given to [`match_task`].
        skill: usize,
        /// At least [`MIN_SCORE`]; only comparable between skills for one task.
        score: f32,
        /// Every parameter filled from the task or from its default.
        params: BTreeMap<String, String>,
        /// Required parameters the task did not fill: the planner asks.
        missing: Vec<ParamSpec>,
        /// Every folder the task names for the skill's path parameter, in
        /// order (the first is in `params`); the planner runs the skill
        /// once per target. Empty when the task names none.
        targets: Vec<String>,
    },
    NoMatch {
        reason: String,
        /// Every skill's name and description, to offer instead.
        available: Vec<(String, String)>,
    },
}

/// Picks the skill `task` asks for and fills its parameters; a period in
/// the task ("last week") is counted from today's date.
pub fn match_task(task: &str, skills: &[Skill], ctx: &MatchContext) -> Match {
    match_task_on(task, skills, ctx, super::period::today())
}

/// [`match_task`] on a given day (days since 1970-01-01, see
/// [`super::period::parse_day`]).
pub fn match_task_on(task: &str, skills: &[Skill], ctx: &MatchContext, today: i64) -> Match {
    let available = || skills.iter().map(|s| (s.name.clone(), s.description.clone())).collect();
    if skills.is_empty() {
        return Match::NoMatch {
            reason: "no skills are installed".into(),
            available: Vec::new(),
        };
    }
    let text = Analysis::new(task, ctx, today);
    let task_words: BTreeSet<&str> = text.content_words().collect();
    let order: Vec<&str> = text.words.iter().map(|w| w.norm.as_str()).collect();
    let mut ranked: Vec<(usize, f32)> = skills
        .iter()
        .enumerate()
        .filter_map(|(i, skill)| score(skill, &task_words, &order).map(|s| (i, s)))
        .filter(|(_, s)| *s >= MIN_SCORE)
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    match ranked.as_slice() {
        [] => Match::NoMatch {
            reason: format!("no skill matches {task:?}: none of their keywords appear in it"),
            available: available(),
        },
        [(a, best), (b, second), ..] if (best - second).abs() < f32::EPSILON => Match::NoMatch {
            reason: format!(
                "{task:?} fits {} and {} equally well; say which one",
                skills[*a].name, skills[*b].name
            ),
            available: available(),
        },
        [(index, score), ..] => {
            let (params, missing, targets) = fill(&skills[*index], &text);
            Match::Matched {
                skill: *index,
                score: *score,
                params,
                missing,
                targets,
            }
        }
    }
}

/// The skill's score, or `None` when none of its phrases is in the task.
/// `order` is every word of the task, stop words too, in order.
fn score(skill: &Skill, task: &BTreeSet<&str>, order: &[&str]) -> Option<f32> {
    let name = skill.name.replace('-', " ");
    let name_words = content_words(&name);
    let mut phrases_matched = 0;
    let mut score = 0.0;
    // A phrase `from > to` ("csv > xlsx") also asks that the task goes that way.
    let phrases = skill.keywords.iter().map(|k| match k.split_once('>') {
        Some((from, to)) => {
            let (from, to) = (content_words(from), content_words(to));
            let direction = from.first().cloned().zip(to.first().cloned());
            (from.into_iter().chain(to).collect(), direction)
        }
        None => (content_words(k), None),
    });
    for (phrase, direction) in phrases.chain([(name_words.clone(), None)]) {
        let goes_that_way = direction.is_none_or(|(from, to)| in_direction(order, &from, &to));
        if !phrase.is_empty() && phrase.iter().all(|w| has_word(task, w)) && goes_that_way {
            phrases_matched += 1;
            score += phrase.len() as f32;
        }
    }
    if phrases_matched == 0 {
        return None;
    }
    score += 0.5 * name_words.iter().filter(|w| task.contains(w.as_str())).count() as f32;
    let description: BTreeSet<String> = content_words(&skill.description).into_iter().collect();
    if !task.is_empty() {
        let shared = task.iter().filter(|w| description.contains(**w)).count();
        score += 0.5 * shared as f32 / task.len() as f32;
    }
    Some(score)
}

/// Whether the task has `word`, or a word one slip away from it (a letter
/// missing, extra, wrong or two swapped: "recipts", "dupliacte") when both
/// are five letters or longer.
fn has_word(task: &BTreeSet<&str>, word: &str) -> bool {
    task.contains(word)
        || (word.chars().count() >= 5 && task.iter().any(|t| t.chars().count() >= 5 && one_slip(t, word)))
}

/// Words that say which way a task goes: "from" the source, "to", "into"
/// or "as" the result.
const DIRECTIONS: &[&str] = &["from", "to", "into", "as"];

/// Whether the task turns `from` into `to`: `to` comes after `from` ("budget.csv
/// to a spreadsheet"), unless the word "from" governs `from` ("an Excel file
/// from the csv", which goes from csv whatever the order) or `to` ("a CSV
/// from the Excel workbook guests.xlsx"): the nearest of those words before it.
fn in_direction(order: &[&str], from: &str, to: &str) -> bool {
    let at = |word: &str| {
        order
            .iter()
            .position(|t| *t == word || (word.chars().count() >= 5 && t.chars().count() >= 5 && one_slip(t, word)))
    };
    let after_from = |i: usize| order[..i].iter().rev().find(|w| DIRECTIONS.contains(w)) == Some(&"from");
    match (at(from), at(to)) {
        (Some(f), _) if after_from(f) => true,
        (Some(f), Some(t)) => t > f && !after_from(t),
        _ => false,
    }
}

/// Damerau-Levenshtein distance of at most one.
fn one_slip(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    match (ra.len(), rb.len()) {
        (0, 0) => true,
        (x, y) if x == y => ra[1..] == rb[1..] || (x >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..]),
        (x, y) if x == y + 1 => ra[1..] == *rb,
        (x, y) if y == x + 1 => *ra == rb[1..],
        _ => false,
    }
}

/// The meaningful words of a phrase, normalised.
fn content_words(phrase: &str) -> Vec<String> {
    words(phrase, 0)
        .into_iter()
        .filter(|w| !w.stop)
        .map(|w| w.norm)
        .collect()
}

struct Word {
    norm: String,
    stop: bool,
    start: usize,
}

/// Splits `text` into words at anything not alphanumeric, dropping a
/// contraction's tail; `base` is added to each word's byte offset.
fn words(text: &str, base: usize) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    let push = |from: usize, to: usize, out: &mut Vec<Word>| {
        let raw = text[from..to].to_lowercase();
        let after_apostrophe = text[..from].ends_with(['\'', '\u{2019}']);
        if after_apostrophe && matches!(raw.as_str(), "s" | "t" | "re" | "ve" | "ll" | "d" | "m") {
            return;
        }
        out.push(Word {
            stop: STOP_WORDS.contains(&raw.as_str()),
            norm: fold_plural(raw),
            start: base + from,
        });
    };
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                push(s, i, &mut out);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        push(s, text.len(), &mut out);
    }
    out
}

/// `receipts` -> `receipt`, `directories` -> `directory`; leaves `status`,
/// `this`, `address` and short words alone.
fn fold_plural(word: String) -> String {
    let n = word.chars().count();
    if n > 4
        && let Some(stem) = word.strip_suffix("ies")
    {
        return format!("{stem}y");
    }
    if n > 3 && word.ends_with('s') && !["ss", "us", "is"].iter().any(|e| word.ends_with(e)) {
        let mut word = word;
        word.pop();
        return word;
    }
    word
}

/// A folder or file the task names, and where.
#[derive(Debug, Clone)]
struct Named {
    at: usize,
    value: String,
}

/// What the task's text holds besides its words.
struct Analysis {
    words: Vec<Word>,
    /// Paths and folder names, each at its position in the text.
    paths: Vec<Named>,
    /// Quoted text that names no path or known folder.
    quoted: Vec<Named>,
    /// Dates outside paths and quotes: `YYYY-MM-DD` or `YYYY-MM`.
    dates: Vec<String>,
    /// The period the task names, `YYYY-MM-DD..YYYY-MM-DD`.
    period: Option<String>,
    /// The pages the task names (`each`, `1-3;4-6`).
    pages: Option<String>,
}

impl Analysis {
    fn new(task: &str, ctx: &MatchContext, today: i64) -> Self {
        let folders: Vec<(String, Vec<String>)> = ctx
            .folders
            .iter()
            .map(|f| {
                let value = relative(f, &ctx.workspace_root);
                let last = Path::new(&value)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (value, words(&last, 0).into_iter().map(|w| w.norm).collect::<Vec<_>>())
            })
            .filter(|(_, name)| !name.is_empty())
            .collect();
        let known_folder = |text: &str| {
            let name: Vec<String> = words(text, 0).into_iter().map(|w| w.norm).collect();
            folders.iter().find(|(_, n)| *n == name).map(|(v, _)| v.clone())
        };

        let mut quotes = quoted_spans(task);
        // Known folder paths written out unquoted, spaces and all
        // ("projects/website refresh"), read as one path, longest first.
        let lower = task.to_lowercase();
        let mut literal: Vec<&String> = folders
            .iter()
            .map(|(v, _)| v)
            .filter(|v| v.contains('/') && v.contains(' '))
            .collect();
        literal.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in literal {
            let needle = value.to_lowercase();
            if let Some(at) = lower.find(&needle)
                && lower.len() == task.len()
                && !quotes.iter().any(|(s, e, _)| at < *e && *s < at + needle.len())
            {
                quotes.push((at, at + needle.len(), value.clone()));
            }
        }
        let mut spans: Vec<(usize, usize)> = quotes.iter().map(|q| (q.0, q.1)).collect();
        let mut paths = Vec::new();
        let mut quoted = Vec::new();
        // A file's extension counts as a word where the file is named
        // ("budget.xlsx to csv" goes from xlsx), so a task can say what it
        // converts from by naming the file alone.
        let mut extensions = Vec::new();
        let extension = |path: &str, at: usize| {
            Path::new(path).extension().map(|e| Word {
                norm: e.to_string_lossy().to_lowercase(),
                stop: false,
                start: at,
            })
        };
        for (start, _, content) in &quotes {
            let content = content.trim();
            if content.contains('/') {
                extensions.extend(extension(content, *start));
                paths.push(Named {
                    at: *start,
                    value: relative(Path::new(content), &ctx.workspace_root),
                });
            } else if let Some(value) = known_folder(content) {
                paths.push(Named { at: *start, value });
            } else {
                quoted.push(Named {
                    at: *start,
                    value: content.to_owned(),
                });
            }
        }

        let mut all_words = Vec::new();
        for (start, raw) in whitespace_words(task) {
            if quotes.iter().any(|(s, e, _)| (*s..*e).contains(&start)) {
                continue;
            }
            let lead = raw.len() - raw.trim_start_matches(['(', '[', '{', '<']).len();
            let token = raw[lead..].trim_end_matches([')', ']', '}', '>', ',', ';', ':', '!', '?', '.']);
            if token.contains('/') && token.chars().any(char::is_alphabetic) {
                spans.push((start + lead, start + lead + token.len()));
                extensions.extend(extension(token, start + lead));
                paths.push(Named {
                    at: start + lead,
                    value: relative(Path::new(token), &ctx.workspace_root),
                });
            } else {
                all_words.extend(words(raw, start));
            }
        }

        all_words.extend(extensions);
        all_words.sort_by_key(|w| w.start);

        // Folder names, longest first, each word used by one folder at most.
        let mut by_length: Vec<&(String, Vec<String>)> = folders.iter().collect();
        by_length.sort_by_key(|(_, name)| std::cmp::Reverse(name.len()));
        let mut used = vec![false; all_words.len()];
        for (value, name) in by_length {
            let hit = (0..all_words.len().saturating_sub(name.len() - 1)).find(|&i| {
                (0..name.len()).all(|k| !used[i + k] && all_words[i + k].norm == name[k])
                    && !(0..name.len()).all(|k| all_words[i + k].stop)
            });
            if let Some(i) = hit {
                used[i..i + name.len()].iter_mut().for_each(|u| *u = true);
                paths.push(Named {
                    at: all_words[i].start,
                    value: value.clone(),
                });
            }
        }
        paths.sort_by_key(|p| p.at);

        let mut dates = Vec::new();
        let mut pos = 0;
        while let Some(found) = dates::find(&task[pos..]) {
            let (start, end) = (pos + found.start, pos + found.end);
            pos = end;
            if spans.iter().any(|(s, e)| start < *e && *s < end) {
                continue;
            }
            match found.found {
                dates::Found::Date { year, month, day } => dates.push(format!("{year:04}-{month:02}-{day:02}")),
                dates::Found::Month { year, month } => dates.push(format!("{year:04}-{month:02}")),
                dates::Found::Ambiguous(_) => {}
            }
        }

        // Dates written out make the period ("from 2026-03-01 to 2026-03-15");
        // otherwise the words do ("last week").
        let span = |d: &String| super::period::span_of(d);
        let period = match dates.as_slice() {
            [] => {
                let norms: Vec<&str> = all_words.iter().map(|w| w.norm.as_str()).collect();
                super::period::find(&norms, today).map(|(p, _)| p)
            }
            [one] => span(one).map(|(a, b)| format!("{a}..{b}")),
            [first, second, ..] => match (span(first), span(second)) {
                (Some((a, _)), Some((_, b))) if a <= b => Some(format!("{a}..{b}")),
                _ => span(first).map(|(a, b)| format!("{a}..{b}")),
            },
        };

        Analysis {
            words: all_words,
            paths,
            quoted,
            dates,
            period,
            pages: super::pages::find(task),
        }
    }

    fn content_words(&self) -> impl Iterator<Item = &str> {
        self.words.iter().filter(|w| !w.stop).map(|w| w.norm.as_str())
    }
}

/// Whitespace-separated words with their byte offsets.
fn whitespace_words(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

/// Quoted passages: (start, end, content). A quote opens at the start of
/// the text or after a space or `(`, and closes before the end, a space or
/// punctuation, so the apostrophe in "what's" opens nothing.
fn quoted_spans(text: &str) -> Vec<(usize, usize, String)> {
    const PAIRS: &[(char, &[char])] = &[
        ('"', &['"', '\u{201d}']),
        ('\u{201c}', &['\u{201d}', '"']),
        ('\'', &['\'', '\u{2019}']),
        ('\u{2018}', &['\u{2019}', '\'']),
        ('`', &['`']),
        ('\u{ab}', &['\u{bb}']),
    ];
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let opens = i == 0 || chars[i - 1].1.is_whitespace() || chars[i - 1].1 == '(';
        let closers = PAIRS.iter().find(|(open, _)| *open == c).map(|(_, close)| *close);
        if let (true, Some(closers)) = (opens, closers) {
            let close = (i + 1..chars.len()).find(|&j| {
                closers.contains(&chars[j].1)
                    && chars
                        .get(j + 1)
                        .is_none_or(|(_, n)| n.is_whitespace() || ".,;:!?)".contains(*n))
            });
            if let Some(j) = close.filter(|&j| j > i + 1) {
                let end = chars[j].0 + chars[j].1.len_utf8();
                out.push((at, end, text[at + c.len_utf8()..chars[j].0].to_owned()));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// A path as the planner passes it on: relative to the workspace when it
/// lies inside it, without `./` or a trailing `/`.
fn relative(path: &Path, root: &Path) -> String {
    let path = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<Component> = path.components().filter(|c| *c != Component::CurDir).collect();
    if parts.is_empty() {
        return ".".into();
    }
    parts.iter().collect::<PathBuf>().to_string_lossy().into_owned()
}

fn is_under_output(value: &str) -> bool {
    Path::new(value).components().next() == Some(Component::Normal(std::ffi::OsStr::new("output")))
}

/// Fills `skill`'s parameters from the analysed task, then from defaults.
///
/// Paths under `output/` go to the path parameters whose default is under
/// `output/` (where a skill writes); the others go to the remaining path
/// parameters. With one such parameter, every folder named becomes a
/// target. Dates fill date parameters in order; a format parameter takes
/// the first of its words in the task; quoted text fills text parameters
/// (and counts as a path when the skill has none).
fn fill(skill: &Skill, text: &Analysis) -> (BTreeMap<String, String>, Vec<ParamSpec>, Vec<String>) {
    let has_text_param = skill.params.iter().any(|p| p.kind == ParamKind::Text);
    let mut named: Vec<&Named> = text.paths.iter().collect();
    if !has_text_param {
        named.extend(&text.quoted);
        named.sort_by_key(|n| n.at);
    }
    let mut seen = BTreeSet::new();
    let (outputs, inputs): (Vec<String>, Vec<String>) = named
        .into_iter()
        .filter(|n| seen.insert(n.value.clone()))
        .map(|n| n.value.clone())
        .partition(|v| is_under_output(v));

    let (writes, reads): (Vec<&ParamSpec>, Vec<&ParamSpec>) = skill
        .params
        .iter()
        .filter(|p| p.kind.is_path())
        .partition(|p| p.default.as_deref().is_some_and(is_under_output));

    let mut params = BTreeMap::new();
    let mut targets = Vec::new();
    if let [only] = reads.as_slice() {
        if let Some(first) = inputs.first() {
            params.insert(only.name.clone(), first.clone());
            targets = inputs.clone();
        }
    } else {
        // A parameter that names its extensions (`file(docx|pptx)`) takes the
        // first named file that has one; the others take the rest in order.
        let mut left: Vec<&String> = inputs.iter().collect();
        for p in reads.iter().filter(|p| !p.extensions.is_empty()) {
            let fits = |v: &&String| {
                Path::new(v.as_str())
                    .extension()
                    .is_some_and(|e| p.extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
            };
            if let Some(i) = left.iter().position(fits) {
                params.insert(p.name.clone(), left.remove(i).clone());
            }
        }
        for (p, v) in reads.iter().filter(|p| p.extensions.is_empty()).zip(left) {
            params.insert(p.name.clone(), v.clone());
        }
    }
    for (p, v) in writes.iter().zip(&outputs) {
        params.insert(p.name.clone(), v.clone());
    }
    let of_kind = |kind: fn(&ParamKind) -> bool| skill.params.iter().filter(move |p| kind(&p.kind));
    for (p, v) in of_kind(|k| *k == ParamKind::Date).zip(&text.dates) {
        params.insert(p.name.clone(), v.clone());
    }
    for (p, v) in of_kind(|k| *k == ParamKind::Period).zip(&text.period) {
        params.insert(p.name.clone(), v.clone());
    }
    for (p, v) in of_kind(|k| *k == ParamKind::Pages).zip(&text.pages) {
        params.insert(p.name.clone(), v.clone());
    }
    if has_text_param {
        for (p, v) in of_kind(|k| *k == ParamKind::Text).zip(&text.quoted) {
            params.insert(p.name.clone(), v.value.clone());
        }
    }
    for p in &skill.params {
        if let ParamKind::Format(options) = &p.kind {
            let chosen = text.words.iter().find_map(|w| {
                options
                    .iter()
                    .find(|o| fold_plural(String::clone(o)) == w.norm)
                    .cloned()
            });
            if let Some(option) = chosen {
                params.insert(p.name.clone(), option);
            }
        }
    }

    let mut missing = Vec::new();
    for p in &skill.params {
        if params.contains_key(&p.name) {
            continue;
        }
        match &p.default {
            Some(default) => {
                params.insert(p.name.clone(), default.clone());
            }
            None if p.required => missing.push(p.clone()),
            None => {}
        }
    }
    super::resolve_templates(&mut params);
    (params, missing, targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::skills::{Entry, SkillSource, bundled, parse_skill};

    fn ctx() -> MatchContext {
        MatchContext {
            workspace_root: "/home/ana/desk".into(),
            folders: [
                "projects",
                "context",
                "/home/ana/desk/projects/receipts",
                "projects/2026 offsite",
                "projects/archive/receipts",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            writable: Vec::new(),
        }
    }

    fn report_skill() -> Skill {
        parse_skill(
            "---
name: monthly-report
description: Write the monthly expense report.
metadata:
  deskhand-keywords: expense report, monthly report
  deskhand-params: month, since, style, title, folder
  deskhand-param-month: date, required, The month to report on
  deskhand-param-since: date, The first day to include
  deskhand-param-style: format(pdf|docx|md), default=md, The file format
  deskhand-param-title: text, The report's title
  deskhand-param-folder: path, default=projects, Where the receipts are
---
",
            SkillSource::User,
            None,
        )
        .unwrap()
    }

    fn matched(task: &str, skills: &[Skill]) -> (String, BTreeMap<String, String>, Vec<String>, Vec<String>) {
        match match_task(task, skills, &ctx()) {
            Match::Matched {
                skill,
                params,
                missing,
                targets,
                score,
            } => {
                assert!(score >= MIN_SCORE);
                (
                    skills[skill].name.clone(),
                    params,
                    missing.into_iter().map(|p| p.name).collect(),
                    targets,
                )
            }
            Match::NoMatch { reason, .. } => panic!("{task:?} did not match: {reason}"),
        }
    }

    #[test]
    fn a_directed_phrase_reads_which_way_the_task_goes() {
        let go = |task: &str, from: &str, to: &str| {
            let order: Vec<String> = words(task, 0).into_iter().map(|w| w.norm).collect();
            let order: Vec<&str> = order.iter().map(String::as_str).collect();
            in_direction(&order, from, to)
        };
        assert!(go("convert budget.csv to a spreadsheet", "csv", "spreadsheet"));
        assert!(!go("convert budget.csv to a spreadsheet", "spreadsheet", "csv"));
        assert!(go("make an Excel file from the csv", "csv", "excel"));
        assert!(!go("make an Excel file from the csv", "excel", "csv"));
        assert!(go("export the workbook as CSV", "workbook", "csv"));
        assert!(!go("from csv", "xlsx", "csv"));
        assert!(go("turn the spredsheet into csv", "spreadsheet", "csv"));
        assert!(!go("a csv from the excel workbook guests.xlsx", "csv", "xlsx"));
        assert!(go("a csv from the excel workbook guests.xlsx", "excel", "csv"));
    }

    #[test]
    fn normalises_words() {
        let w: Vec<String> = words("What's in the Receipts/ folders, directories; status-this", 0)
            .into_iter()
            .map(|w| w.norm)
            .collect();
        assert_eq!(
            w,
            ["what", "in", "the", "receipt", "folder", "directory", "status", "this"]
        );
        assert_eq!(content_words("rename by date"), ["rename", "date"]);
    }

    #[test]
    fn does_not_confuse_the_bundled_skills() {
        let skills = bundled();
        assert_eq!(matched("rename files by date", &skills).0, "rename-by-date");
        assert_eq!(
            matched("inventory of the receipts folder", &skills).0,
            "folder-inventory"
        );
        assert_eq!(matched("list the files by date", &skills).0, "folder-inventory");
    }

    #[test]
    fn unrelated_tasks_do_not_match() {
        let skills = bundled();
        for task in [
            "write a poem about spring",
            "delete all my files",
            "what's the weather",
            "summarize this pdf",
            "rename the files to lowercase",
            "",
        ] {
            match match_task(task, &skills, &ctx()) {
                Match::NoMatch { available, .. } => assert_eq!(available.len(), skills.len()),
                other => panic!("{task:?} matched: {other:?}"),
            }
        }
        assert!(matches!(
            match_task("inventory", &[], &ctx()),
            Match::NoMatch { reason, .. } if reason.contains("no skills")
        ));
    }

    #[test]
    fn a_tie_is_not_a_match() {
        let mut twin = bundled()[0].clone();
        twin.name = "folder-inventory-2".into();
        twin.keywords = vec!["inventory".into()];
        let skills = vec![
            Skill {
                keywords: vec!["inventory".into()],
                ..bundled()[0].clone()
            },
            twin,
        ];
        // Same keyword, same description; the name's extra "2" is not in the task.
        match match_task("inventory of projects", &skills, &ctx()) {
            Match::NoMatch { reason, .. } => assert!(reason.contains("equally"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fills_paths_from_folders_quotes_and_slashes() {
        let skills = bundled();
        let (_, params, missing, targets) = matched("inventory of the receipts folder", &skills);
        // The first folder with that name in the context wins.
        assert_eq!(params["folder"], "projects/receipts");
        assert_eq!(params["output"], "output/inventory.csv");
        assert!(missing.is_empty());
        assert_eq!(targets, ["projects/receipts"]);

        let (_, params, _, targets) = matched(
            "inventory \"projects/2026 offsite\", ./context/ and /home/ana/desk/projects into output/all.csv",
            &skills,
        );
        assert_eq!(params["folder"], "projects/2026 offsite");
        assert_eq!(params["output"], "output/all.csv");
        assert_eq!(targets, ["projects/2026 offsite", "context", "projects"]);

        let (_, params, _, targets) = matched("inventory '2026 offsite' and /srv/shared/", &skills);
        assert_eq!(targets, ["projects/2026 offsite", "/srv/shared"]);
        assert_eq!(params["folder"], "projects/2026 offsite");

        let (_, params, missing, targets) = matched("make an inventory", &skills);
        assert_eq!(missing, ["folder"]);
        assert!(targets.is_empty());
        assert!(!params.contains_key("folder"));
    }

    #[test]
    fn fills_dates_formats_text_and_defaults() {
        let skills = vec![report_skill()];
        let (_, params, missing, _) = matched(
            "the expense report for March 2026 as PDF, titled 'Q1 travel', counting from 14.03.2026",
            &skills,
        );
        assert_eq!(params["month"], "2026-03");
        assert_eq!(params["since"], "2026-03-14");
        assert_eq!(params["style"], "pdf");
        assert_eq!(params["title"], "Q1 travel");
        assert_eq!(params["folder"], "projects");
        assert!(missing.is_empty());

        let (_, params, missing, _) = matched("monthly report from 2026-02-01, 03/04/2026", &skills);
        assert_eq!(params["month"], "2026-02-01");
        assert!(!params.contains_key("since"), "an ambiguous date is not guessed");
        assert_eq!(params["style"], "md");
        assert!(missing.is_empty());

        let (_, params, missing, _) = matched("expense report", &skills);
        assert_eq!(missing, ["month"]);
        assert!(!params.contains_key("title"));
    }

    #[test]
    fn dates_inside_paths_are_not_dates() {
        let text = Analysis::new("report on projects/2026-03-02 and 2026-04-01", &ctx(), 0);
        assert_eq!(text.dates, ["2026-04-01"]);
    }

    #[test]
    fn quotes_need_word_boundaries() {
        let q: Vec<String> = quoted_spans("what's 'a b' and \u{201c}c\u{201d}, don't")
            .into_iter()
            .map(|q| q.2)
            .collect();
        assert_eq!(q, ["a b", "c"]);
    }

    #[test]
    fn entry_is_kept_for_the_planner() {
        let skills = bundled();
        let Match::Matched { skill, .. } = match_task("rename by date", &skills, &ctx()) else {
            panic!("no match")
        };
        assert!(matches!(&skills[skill].entry, Entry::Bundled { tool, .. } if tool == "rename-by-date"));
    }
}
