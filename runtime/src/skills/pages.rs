//! Page lists in a task's words, for a skill's `pages` parameter: "each
//! page", "every page", "one file per page" give `each`; "pages 1-3 and 4-6",
//! "page 2", "pages 1, 3 and 5-" give one range per new file, separated by
//! `;` (`1-3;4-6`, `2`, `1;3;5-`), as the pdf tool's `split` takes them.

/// The page ranges `task` names, if it names any.
pub fn find(task: &str) -> Option<String> {
    let lower = task.to_lowercase();
    let each = [
        "each page",
        "every page",
        "per page",
        "single pages",
        "separate pages",
        "pages separately",
        "all pages",
    ];
    if each.iter().any(|p| lower.contains(p)) {
        return Some("each".into());
    }
    let mut from = 0;
    while let Some(at) = lower[from..].find("page") {
        let start = from + at;
        from = start + 4;
        // A word that starts with "page" ("pages", "page"), not one that contains it.
        if lower[..start].chars().next_back().is_some_and(char::is_alphanumeric) {
            continue;
        }
        let rest = lower[from..].strip_prefix('s').unwrap_or(&lower[from..]);
        let ranges = ranges_at(rest);
        if !ranges.is_empty() {
            return Some(ranges.join(";"));
        }
    }
    None
}

/// The ranges at the start of `text` (`1-3, 5 and 7 to 9`), one per item.
fn ranges_at(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    loop {
        let (first, after) = number(rest);
        let Some(first) = first else { break };
        rest = after.trim_start();
        let mut range = first.to_string();
        let dash = rest
            .strip_prefix('-')
            .or_else(|| rest.strip_prefix('–'))
            .or_else(|| rest.strip_prefix("to "));
        if let Some(after_dash) = dash {
            let (last, after) = number(after_dash.trim_start());
            range.push('-');
            if let Some(last) = last {
                range.push_str(&last.to_string());
                rest = after.trim_start();
            } else {
                rest = after_dash.trim_start();
            }
        }
        out.push(range);
        let next = rest
            .strip_prefix(',')
            .or_else(|| rest.strip_prefix(';'))
            .or_else(|| rest.strip_prefix('&'))
            .or_else(|| rest.strip_prefix("and "))
            .map(str::trim_start);
        match next {
            Some(next) => rest = next.strip_prefix("and ").unwrap_or(next),
            None => break,
        }
    }
    out
}

/// A page number at the start of `text`, and what follows it.
fn number(text: &str) -> (Option<u32>, &str) {
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    match text[..end].parse::<u32>() {
        Ok(n) if n > 0 => (Some(n), &text[end..]),
        _ => (None, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_lists_are_read_one_range_per_file() {
        for (task, expected) in [
            ("split contract.pdf into pages 1-3 and 4-6", Some("1-3;4-6")),
            ("extract page 2 of the scan", Some("2")),
            ("split the report into pages 1, 3 and 5-", Some("1;3;5-")),
            ("pages 2 to 4 of the deck", Some("2-4")),
            ("save each page of scan.pdf as its own PDF", Some("each")),
            ("split scan.pdf, one file per page", Some("each")),
            ("split the pdf in two", None),
            ("the homepage 3 times", None),
        ] {
            assert_eq!(find(task).as_deref(), expected, "{task}");
        }
    }
}
