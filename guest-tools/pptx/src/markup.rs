//! Finding and splicing elements in a part's text, for `edit`'s changes to
//! the presentation, its relationships and `[Content_Types].xml`: the rest
//! of each part is kept as written (its prefixes, attribute order,
//! extensions), which a parse-and-serialise round trip would not promise.

/// What a tag is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Open,
    Close,
    Empty,
}

/// One tag of a part: its byte span, qualified name and kind.
#[derive(Debug, Clone, Copy)]
pub struct Tag<'a> {
    pub start: usize,
    pub end: usize,
    pub name: &'a str,
    pub kind: Kind,
    raw: &'a str,
}

impl<'a> Tag<'a> {
    /// The name without its prefix.
    pub fn local(&self) -> &'a str {
        self.name.rsplit_once(':').map_or(self.name, |(_, l)| l)
    }

    /// The value of attribute `name` (qualified as written), unescaped.
    pub fn attr(&self, name: &str) -> Option<String> {
        self.attrs().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The value of the first attribute whose local name is `local` and that
    /// carries a prefix (`r:id`, whatever the prefix).
    pub fn prefixed_attr(&self, local: &str) -> Option<String> {
        self.attrs()
            .find(|(k, _)| k.rsplit_once(':').is_some_and(|(p, l)| l == local && p != "xmlns"))
            .map(|(_, v)| v)
    }

    /// The attributes as (qualified name, unescaped value).
    pub fn attrs(&self) -> impl Iterator<Item = (&'a str, String)> + 'a {
        let body = &self.raw[1 + self.name.len()..];
        let mut rest = body;
        std::iter::from_fn(move || {
            let eq = rest.find('=')?;
            let key = rest[..eq].trim();
            let after = rest[eq + 1..].trim_start();
            let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let close = after[1..].find(quote)?;
            let value = unescape(&after[1..1 + close]);
            rest = &after[close + 2..];
            Some((key, value))
        })
    }
}

/// The tags of `xml` in order; comments, processing instructions, CDATA
/// and declarations are skipped.
pub fn tags(xml: &str) -> impl Iterator<Item = Tag<'_>> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        loop {
            let at = pos + xml.get(pos..)?.find('<')?;
            let rest = &xml[at..];
            let skip_to = |end: &str| rest.find(end).map(|e| at + e + end.len());
            if rest.starts_with("<!--") {
                pos = skip_to("-->")?;
                continue;
            }
            if rest.starts_with("<![CDATA[") {
                pos = skip_to("]]>")?;
                continue;
            }
            if rest.starts_with("<?") {
                pos = skip_to("?>")?;
                continue;
            }
            if rest.starts_with("<!") {
                pos = skip_to(">")?;
                continue;
            }
            // The tag ends at the first '>' outside quotes.
            let mut quote = None;
            let mut end = None;
            for (i, c) in rest.char_indices().skip(1) {
                match (quote, c) {
                    (None, '"' | '\'') => quote = Some(c),
                    (Some(q), c) if c == q => quote = None,
                    (None, '>') => {
                        end = Some(i + 1);
                        break;
                    }
                    _ => {}
                }
            }
            let end = at + end?;
            pos = end;
            let raw = &xml[at..end];
            let (kind, name_from) = if raw.starts_with("</") {
                (Kind::Close, 2)
            } else if raw.ends_with("/>") {
                (Kind::Empty, 1)
            } else {
                (Kind::Open, 1)
            };
            let name_len = raw[name_from..]
                .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
                .unwrap_or(raw.len() - name_from);
            let name = &raw[name_from..name_from + name_len];
            let raw = if kind == Kind::Close { &raw[1..] } else { raw };
            return Some(Tag {
                start: at,
                end,
                name,
                kind,
                raw,
            });
        }
    })
}

/// Where the element starting with `tag` ends (exclusive): after its own
/// end for an empty element, else after its matching close tag.
pub fn element_end(xml: &str, tag: &Tag<'_>) -> Option<usize> {
    if tag.kind == Kind::Empty {
        return Some(tag.end);
    }
    let mut depth = 0usize;
    for t in tags(&xml[tag.end..]) {
        if t.name != tag.name {
            continue;
        }
        match t.kind {
            Kind::Open => depth += 1,
            Kind::Close if depth == 0 => return Some(tag.end + t.end),
            Kind::Close => depth -= 1,
            Kind::Empty => {}
        }
    }
    None
}

/// `xml` without the elements whose start tag `remove` picks.
pub fn remove_elements(xml: &str, remove: impl Fn(&Tag<'_>) -> bool) -> Result<String, String> {
    let mut spans = Vec::new();
    let mut after = 0;
    for t in tags(xml) {
        if t.start < after || !matches!(t.kind, Kind::Open | Kind::Empty) || !remove(&t) {
            continue;
        }
        let end = element_end(xml, &t).ok_or_else(|| format!("<{}> is not closed", t.name))?;
        spans.push((t.start, end));
        after = end;
    }
    let mut out = String::with_capacity(xml.len());
    let mut from = 0;
    for (s, e) in spans {
        out.push_str(&xml[from..s]);
        from = e;
    }
    out.push_str(&xml[from..]);
    Ok(out)
}

/// `xml` with `child` added as the last child of the first element whose
/// start tag `pick` chooses (an empty element is opened up).
pub fn append_child(xml: &str, pick: impl Fn(&Tag<'_>) -> bool, child: &str) -> Option<String> {
    let t = tags(xml).find(|t| matches!(t.kind, Kind::Open | Kind::Empty) && pick(t))?;
    if t.kind == Kind::Empty {
        let open = xml[t.start..t.end - 2].trim_end();
        return Some(format!(
            "{}{open}>{child}</{}>{}",
            &xml[..t.start],
            t.name,
            &xml[t.end..]
        ));
    }
    let end = element_end(xml, &t)?;
    // The close tag may hold spaces before its `>` (`</p:sldIdLst >`).
    let close = xml[..end].rfind("</")?;
    Some(format!("{}{child}{}", &xml[..close], &xml[close..]))
}

/// The prefix (with its colon, or "" for the default namespace) the root
/// element binds `uri` to.
pub fn prefix_of(xml: &str, uri: &str) -> Option<String> {
    let root = tags(xml).find(|t| t.kind != Kind::Close)?;
    root.attrs().find_map(|(k, v)| {
        (v == uri).then(|| match k.strip_prefix("xmlns:") {
            Some(p) => format!("{p}:"),
            None => String::new(),
        })
    })
}

/// Attribute text unescaped: the five entities and character references.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(semi) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..semi];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e => e
                .strip_prefix("#x")
                .or_else(|| e.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| e.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=semi]),
        }
        rest = &tail[semi + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn a_child_goes_before_a_close_tag_with_spaces_in_it() {
        let xml = "<p:sldIdLst><p:sldId id=\"256\"/></p:sldIdLst >";
        let out = append_child(xml, |t| t.name == "p:sldIdLst", "<p:sldId id=\"257\"/>").unwrap();
        assert_eq!(
            out,
            "<p:sldIdLst><p:sldId id=\"256\"/><p:sldId id=\"257\"/></p:sldIdLst >"
        );
    }

    #[test]
    fn tags_skip_comments_and_keep_quoted_brackets() {
        let xml = r#"<?xml version="1.0"?><!-- <x> --><a b="1>2" c='&amp;'><b/></a>"#;
        let t: Vec<_> = tags(xml).map(|t| (t.name, t.kind)).collect();
        assert_eq!(t, [("a", Kind::Open), ("b", Kind::Empty), ("a", Kind::Close)]);
        let a = tags(xml).next().unwrap();
        assert_eq!((a.attr("b").unwrap(), a.attr("c").unwrap()), ("1>2".into(), "&".into()));
    }

    #[test]
    fn elements_are_removed_and_appended_with_their_children() {
        let xml = "<p:l><p:s id=\"1\"><p:x/></p:s><p:s id=\"2\"/></p:l>";
        let out = remove_elements(xml, |t| t.attr("id").as_deref() == Some("1")).unwrap();
        assert_eq!(out, "<p:l><p:s id=\"2\"/></p:l>");
        let out = append_child(&out, |t| t.local() == "l", "<p:s id=\"3\"/>").unwrap();
        assert_eq!(out, "<p:l><p:s id=\"2\"/><p:s id=\"3\"/></p:l>");
        let out = append_child("<r><l /></r>", |t| t.local() == "l", "<i/>").unwrap();
        assert_eq!(out, "<r><l><i/></l></r>");
    }
}
