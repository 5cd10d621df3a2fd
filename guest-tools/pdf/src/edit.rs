//! `merge` and `split`: one code path that takes chosen pages of opened
//! documents into a new one (a new page tree and catalog; the pages keep
//! their content, resources and inherited attributes; what no kept page
//! references is pruned; encryption is not carried over).

use std::collections::BTreeMap;

use lopdf::{Dictionary, Document, Object, ObjectId};

use crate::PdfError;

/// The most pages one page list may name (`"1-100000"` is refused).
const MAX_LISTED_PAGES: usize = 100_000;

/// One file of a split: the 1-based pages it holds, in order.
pub type PageRange = Vec<u32>;

/// Reads a page list such as `"1-3"`, `"4"`, `"2-"` (to the end) or
/// `"1-3,7,9-10"` against a document of `total` pages.
pub fn parse_ranges(spec: &str, total: u32) -> Result<PageRange, PdfError> {
    let bad = |m: String| PdfError::BadRange(format!("page range {spec:?}: {m}"));
    let mut pages = Vec::new();
    for part in spec.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(bad("has an empty part; write e.g. \"1-3,5\"".into()));
        }
        let num = |s: &str| -> Result<u32, PdfError> {
            s.trim()
                .parse::<u32>()
                .map_err(|_| bad(format!("{s:?} is not a page number")))
        };
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, if b.trim().is_empty() { total } else { num(b)? }),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if first == 0 || last == 0 {
            return Err(bad("pages are numbered from 1".into()));
        }
        if first > last {
            return Err(bad(format!("{first} comes after {last}")));
        }
        if last > total {
            return Err(PdfError::NoSuchPage { page: last, total });
        }
        if pages.len() + (last - first + 1) as usize > MAX_LISTED_PAGES {
            return Err(bad(format!("names more than {MAX_LISTED_PAGES} pages")));
        }
        pages.extend(first..=last);
    }
    Ok(pages)
}

/// All pages of every document, in order, as one new PDF.
pub fn merge(docs: Vec<Document>) -> Result<Vec<u8>, PdfError> {
    let parts = docs
        .into_iter()
        .map(|d| {
            let all: Vec<u32> = d.get_pages().keys().copied().collect();
            (d, all)
        })
        .collect();
    assemble(parts)
}

/// The given pages of one document as a new PDF.
pub fn split(doc: &Document, pages: &[u32]) -> Result<Vec<u8>, PdfError> {
    assemble(vec![(doc.clone(), pages.to_vec())])
}

/// Keys a page inherits from its page-tree ancestors.
const INHERITED: [&[u8]; 4] = [b"Resources", b"MediaBox", b"CropBox", b"Rotate"];

fn assemble(parts: Vec<(Document, Vec<u32>)>) -> Result<Vec<u8>, PdfError> {
    let mut out = Document::with_version("1.7");
    let pages_id = out.new_object_id();
    let mut next_id = pages_id.0 + 1;
    let mut kids = Vec::new();
    let mut objects: BTreeMap<ObjectId, Object> = BTreeMap::new();
    for (mut doc, pages) in parts {
        if let Ok(id) = doc.trailer.get(b"Encrypt").and_then(Object::as_reference) {
            doc.objects.remove(&id);
        }
        doc.trailer.remove(b"Encrypt");
        doc.encryption_state = None;
        // Pages inherit from the tree we are about to drop: copy what they inherit onto them.
        let ids = doc.get_pages();
        for id in ids.values() {
            let inherited = inherited_attributes(&doc, *id);
            if let Ok(Object::Dictionary(page)) = doc.get_object_mut(*id) {
                for (k, v) in inherited {
                    page.set(k, v);
                }
            }
        }
        doc.renumber_objects_with(next_id);
        next_id = doc.max_id + 1;
        let ids = doc.get_pages();
        for n in &pages {
            let id = ids.get(n).ok_or(PdfError::NoSuchPage {
                page: *n,
                total: u32::try_from(ids.len()).unwrap_or(u32::MAX),
            })?;
            kids.push(*id);
        }
        for (id, object) in doc.objects {
            let kind = object
                .as_dict()
                .ok()
                .and_then(|d| d.get(b"Type").ok())
                .and_then(|t| t.as_name().ok())
                .map(<[u8]>::to_vec);
            match kind.as_deref() {
                Some(b"Catalog") | Some(b"Pages") | Some(b"Outlines") | Some(b"Outline") => {}
                _ => {
                    objects.insert(id, object);
                }
            }
        }
    }
    if kids.is_empty() {
        return Err(PdfError::BadRange("no pages were chosen".into()));
    }
    // The same page twice ("1,1") must be two page objects.
    let mut used = std::collections::HashSet::new();
    let mut final_kids = Vec::with_capacity(kids.len());
    for id in kids {
        let Some(Object::Dictionary(page)) = objects.get(&id).cloned() else {
            return Err(PdfError::Malformed(format!("page object {} {} is missing", id.0, id.1)));
        };
        let mut page = page;
        page.set("Parent", pages_id);
        if used.insert(id) {
            objects.insert(id, Object::Dictionary(page));
            final_kids.push(id);
        } else {
            let copy = (next_id, 0);
            next_id += 1;
            objects.insert(copy, Object::Dictionary(page));
            final_kids.push(copy);
        }
    }
    let count = final_kids.len() as i64;
    out.objects = objects;
    out.objects.insert(
        pages_id,
        Object::Dictionary(Dictionary::from_iter(vec![
            ("Type", Object::Name(b"Pages".to_vec())),
            (
                "Kids",
                Object::Array(final_kids.into_iter().map(Object::Reference).collect()),
            ),
            ("Count", Object::Integer(count)),
        ])),
    );
    let catalog = out.add_object(Dictionary::from_iter(vec![
        ("Type", Object::Name(b"Catalog".to_vec())),
        ("Pages", Object::Reference(pages_id)),
    ]));
    out.trailer.set("Root", catalog);
    out.max_id = out.objects.keys().map(|k| k.0).max().unwrap_or(1);
    out.prune_objects();
    out.renumber_objects();
    out.compress();
    let mut bytes = Vec::new();
    out.save_to(&mut bytes).map_err(|e| PdfError::Write(e.to_string()))?;
    Ok(bytes)
}

/// The inheritable attributes a page lacks itself, from its nearest ancestor that has them.
fn inherited_attributes(doc: &Document, page: ObjectId) -> Vec<(Vec<u8>, Object)> {
    let Ok(dict) = doc.get_dictionary(page) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in INHERITED {
        if dict.has(key) {
            continue;
        }
        let mut node = dict;
        for _ in 0..64 {
            let Some(parent) = node
                .get(b"Parent")
                .ok()
                .and_then(|p| p.as_reference().ok())
                .and_then(|id| doc.get_dictionary(id).ok())
            else {
                break;
            };
            if let Ok(v) = parent.get(key) {
                out.push((key.to_vec(), v.clone()));
                break;
            }
            node = parent;
        }
    }
    out
}
