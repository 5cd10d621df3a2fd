//! Small helpers on raw XML text: attributes of one tag, escaping.

/// The value of attribute `name` in a raw start tag (`<c r="A1" s="2">`), unescaped.
pub fn attr(tag: &str, name: &str) -> Option<String> {
    attr_span(tag, name).map(|(_, v)| unescape(&tag[v.0..v.1]))
}

/// Where attribute `name` lies in `tag`: the whole `name="value"` (with
/// its leading whitespace) and the value.
fn attr_span(tag: &str, name: &str) -> Option<((usize, usize), (usize, usize))> {
    let b = tag.as_bytes();
    // Skip `<name`.
    let mut i = 1;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    loop {
        let ws = i;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
            i += 1;
        }
        if i == key_start {
            return None;
        }
        let key = &tag[key_start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let quote = *b.get(i)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let v_start = i + 1;
        let v_end = v_start + tag[v_start..].find(quote as char)?;
        i = v_end + 1;
        if key == name {
            return Some(((ws, i), (v_start, v_end)));
        }
    }
}

/// `tag` with attribute `name` set to `value` (escaped here), added before
/// the tag's end if absent, or removed with `None`.
pub fn set_attr(tag: &str, name: &str, value: Option<&str>) -> String {
    match (attr_span(tag, name), value) {
        (Some((_, (vs, ve))), Some(v)) => format!("{}{}{}", &tag[..vs], escape_attr(v), &tag[ve..]),
        (Some(((ws, we), _)), None) => format!("{}{}", &tag[..ws], &tag[we..]),
        (None, Some(v)) => {
            let end = if tag.ends_with("/>") {
                tag.len() - 2
            } else {
                tag.len() - 1
            };
            let body = tag[..end].trim_end();
            format!("{body} {name}=\"{}\"{}", escape_attr(v), &tag[end..])
        }
        (None, None) => tag.to_owned(),
    }
}

/// The element name of a raw tag (`<x:c r="A1">` -> `x:c`) and its prefix (`x:`).
pub fn tag_prefix(tag: &str) -> &str {
    let name_end = tag[1..]
        .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
        .map_or(tag.len(), |i| i + 1);
    let name = &tag[1..name_end];
    name.rfind(':').map_or("", |i| &name[..=i])
}

/// Text content: `&`, `<`, `>` escaped; characters XML 1.0 cannot hold dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

pub fn escape_attr(s: &str) -> String {
    escape(s).replace('"', "&quot;")
}

pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(semi) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..semi];
        let ch = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=semi]),
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_read_set_added_and_removed() {
        let tag = r#"<c r="A1" s='3' t="s">"#;
        assert_eq!(attr(tag, "s").as_deref(), Some("3"));
        assert_eq!(set_attr(tag, "r", Some("B2")), r#"<c r="B2" s='3' t="s">"#);
        assert_eq!(set_attr(tag, "t", None), r#"<c r="A1" s='3'>"#);
        assert_eq!(
            set_attr("<row r=\"1\"/>", "x", Some("a&b")),
            "<row r=\"1\" x=\"a&amp;b\"/>"
        );
        assert_eq!(tag_prefix("<x:c r=\"A1\">"), "x:");
        assert_eq!(unescape("a&lt;b&#38;&#x41;"), "a<b&A");
    }
}
