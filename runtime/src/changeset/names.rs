//! Names that every system the person may copy their folders to can hold:
//! Windows refuses `<>:"/\|?*`, control characters, a trailing dot or space
//! and device names (`CON`, `nul.txt`, `COM1`, ...); macOS refuses `:` in
//! Finder and NUL everywhere; all of them cap a name at 255 bytes.

/// Why `name` is not portable, or `None` if it is.
pub fn unportable(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} is not a file name"));
    }
    if name.len() > 255 {
        return Some(format!(
            "the name is {} bytes long; systems allow at most 255",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '<' | '>' | ':' | '"' | '/' | '\\' | '|' | '?' | '*'))
    {
        return Some(format!(
            "{c:?} is not allowed in file names on Windows (and `:` not on macOS)"
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Some(format!("the control character {c:?} is not allowed in file names"));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some("Windows does not allow a name that ends with a dot or a space".into());
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end().to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && matches!(stem.as_bytes()[3], b'0'..=b'9' | 0xB9 | 0xB2 | 0xB3));
    if reserved {
        return Some(format!("{stem} is a device name on Windows and cannot be a file name"));
    }
    None
}

/// The form two names share when a case-insensitive system (macOS, Windows)
/// would treat them as one.
pub fn case_fold(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_names_pass() {
        for ok in [
            "2024-03-01 Receipt.pdf",
            "é ß ₫ 中文.txt",
            ".hidden",
            "a.b.c",
            "CONSOLE.txt",
            "com10",
        ] {
            assert_eq!(unportable(ok), None, "{ok}");
        }
    }

    #[test]
    fn unportable_names_say_why() {
        for (bad, why) in [
            ("a:b", "not allowed"),
            ("what?.txt", "not allowed"),
            ("tab\there", "control"),
            ("trailing.", "ends with"),
            ("trailing ", "ends with"),
            ("CON", "device"),
            ("nul.txt", "device"),
            ("Com1.log", "device"),
            ("lpt9", "device"),
            ("", "empty"),
            ("..", "not a file name"),
        ] {
            let reason = unportable(bad).unwrap_or_default();
            assert!(reason.contains(why), "{bad:?}: {reason:?}");
        }
        assert!(unportable(&"x".repeat(256)).is_some());
    }
}
