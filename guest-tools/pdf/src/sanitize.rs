//! An inert copy of a PDF for a viewer that runs scripts (a browser's):
//! every script and action that does more than move within the document is
//! taken out, and the copy is checked again after it is written.
//!
//! What goes: the catalog's `/OpenAction`, `/AA` (additional actions) on
//! anything (catalog, pages, annotations, form fields), `/JS` wherever it
//! appears, the name trees `/JavaScript` and `/EmbeddedFiles`, portfolios
//! (`/Collection`), `/AcroForm`'s `/XFA`, every action but a plain `GoTo`
//! (JavaScript, Launch, SubmitForm, ImportData, ResetForm, GoToR, GoToE,
//! URI, Named, Rendition, ...; a `GoTo` loses its `/Next` chain), and the
//! annotations that play or open embedded content (file attachments, sound,
//! movie, screen, rich media, 3D). Links to web addresses are dropped, not
//! kept: a click on one would leave the page. The text and look of the pages
//! stay as they were. An encrypted file is decrypted (only when it opens
//! without a password) and saved without encryption.

use std::collections::BTreeSet;

use lopdf::{Dictionary, Document, Object, ObjectId};
use serde::Serialize;

use crate::{PdfError, open};

/// Keys removed from every dictionary: each only ever holds scripts, actions
/// run on events, or content a viewer may open by itself.
const STRIPPED_KEYS: [&[u8]; 10] = [
    b"OpenAction",
    b"AA",
    b"JS",
    b"JavaScript",
    b"EmbeddedFiles",
    b"Collection",
    b"XFA",
    b"NeedsRendering",
    b"PA",
    b"OnInstantiate",
];

/// The action types of the PDF specification (ISO 32000-2, 12.6.4) and the
/// rich-media one: a dictionary whose `/S` names one of these is an action.
const ACTION_TYPES: [&[u8]; 21] = [
    b"GoTo",
    b"GoToR",
    b"GoToE",
    b"GoToDp",
    b"Launch",
    b"Thread",
    b"URI",
    b"Sound",
    b"Movie",
    b"Hide",
    b"Named",
    b"SubmitForm",
    b"ResetForm",
    b"ImportData",
    b"SetOCGState",
    b"Rendition",
    b"Trans",
    b"GoTo3DView",
    b"JavaScript",
    b"RichMediaExecute",
    b"ECMAScript",
];

/// Annotations that play, run or open embedded content.
const DROPPED_ANNOTATIONS: [&[u8]; 6] = [b"FileAttachment", b"Sound", b"Movie", b"Screen", b"RichMedia", b"3D"];

/// How deep objects may nest inside one another before the file is refused.
const MAX_DEPTH: usize = 256;

/// What [`sanitize`] took out.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// Actions other than a plain `GoTo`, wherever they were.
    pub actions: u32,
    /// Entries of [`STRIPPED_KEYS`] (`/OpenAction`, `/AA`, `/JS`, `/JavaScript`, ...).
    pub entries: u32,
    /// Annotations that play or open embedded content.
    pub annotations: u32,
    /// Whether the file was encrypted (and opened with the empty password).
    pub decrypted: bool,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.actions == 0 && self.entries == 0 && self.annotations == 0
    }
}

/// The bytes of an inert copy of the PDF in `bytes`, and what was taken out.
/// A file that needs a password, or that cannot be read or checked, is
/// [`PdfError::NotInert`] saying why.
pub fn sanitize(bytes: &[u8]) -> Result<(Vec<u8>, Removed), PdfError> {
    let mut doc = open(bytes, None).map_err(|e| match e {
        PdfError::Encrypted | PdfError::WrongPassword => PdfError::NotInert(
            "is protected by a password, so it cannot be made safe to show here; download it and open it with its \
             password"
                .into(),
        ),
        other => other,
    })?;
    let mut removed = Removed {
        decrypted: doc.encryption_state.is_some() || doc.trailer.has(b"Encrypt"),
        ..Removed::default()
    };
    if let Ok(id) = doc.trailer.get(b"Encrypt").and_then(Object::as_reference) {
        doc.objects.remove(&id);
    }
    doc.trailer.remove(b"Encrypt");
    doc.encryption_state = None;

    drop_annotations(&mut doc, &mut removed);
    // Actions that are objects of their own: emptied, and every /A that
    // points at one removed below.
    let bad: BTreeSet<ObjectId> = doc
        .objects
        .iter()
        .filter(|(_, o)| o.as_dict().is_ok_and(is_unsafe_action))
        .map(|(id, _)| *id)
        .collect();
    for id in &bad {
        doc.objects.insert(*id, Object::Null);
        removed.actions += 1;
    }
    clean(&mut doc.trailer, &bad, &mut removed, 0)?;
    for object in doc.objects.values_mut() {
        clean_object(object, &bad, &mut removed, 0)?;
    }
    doc.prune_objects();

    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| PdfError::Write(e.to_string()))?;
    check(&out)?;
    Ok((out, removed))
}

/// The copy reads back, with nothing left that [`sanitize`] removes.
fn check(bytes: &[u8]) -> Result<(), PdfError> {
    let doc =
        open(bytes, None).map_err(|e| PdfError::NotInert(format!("its cleaned copy does not read back ({e})")))?;
    let mut found = Removed::default();
    let mut objects: Vec<Object> = doc.objects.values().cloned().collect();
    objects.push(Object::Dictionary(doc.trailer.clone()));
    for mut object in objects {
        clean_object(&mut object, &BTreeSet::new(), &mut found, 0)?;
    }
    if !found.is_empty() || doc.trailer.has(b"Encrypt") {
        return Err(PdfError::NotInert(
            "still holds scripts or actions after cleaning; download it and open it in a viewer with JavaScript \
             turned off"
                .into(),
        ));
    }
    Ok(())
}

/// Whether `dict` is an action other than a plain `GoTo` within the document.
fn is_unsafe_action(dict: &Dictionary) -> bool {
    let kind = dict.get(b"S").and_then(Object::as_name).ok();
    let is_action = dict
        .get(b"Type")
        .and_then(Object::as_name)
        .is_ok_and(|t| t == b"Action")
        || kind.is_some_and(|k| ACTION_TYPES.contains(&k));
    let struct_elem = dict
        .get(b"Type")
        .and_then(Object::as_name)
        .is_ok_and(|t| t == b"StructElem");
    is_action && !struct_elem && kind != Some(b"GoTo".as_slice())
}

fn clean_object(
    object: &mut Object,
    bad: &BTreeSet<ObjectId>,
    removed: &mut Removed,
    depth: usize,
) -> Result<(), PdfError> {
    if depth > MAX_DEPTH {
        return Err(PdfError::NotInert(format!(
            "nests objects more than {MAX_DEPTH} deep, so it cannot be checked for scripts; download it to open it"
        )));
    }
    match object {
        Object::Dictionary(d) => clean(d, bad, removed, depth),
        Object::Stream(s) => clean(&mut s.dict, bad, removed, depth),
        Object::Array(items) => items
            .iter_mut()
            .try_for_each(|o| clean_object(o, bad, removed, depth + 1)),
        _ => Ok(()),
    }
}

fn clean(dict: &mut Dictionary, bad: &BTreeSet<ObjectId>, removed: &mut Removed, depth: usize) -> Result<(), PdfError> {
    if is_unsafe_action(dict) {
        *dict = Dictionary::new();
        removed.actions += 1;
        return Ok(());
    }
    for key in STRIPPED_KEYS {
        if dict.remove(key).is_some() {
            removed.entries += 1;
        }
    }
    if dict.get(b"S").and_then(Object::as_name).is_ok_and(|s| s == b"GoTo") {
        // A GoTo's chain of further actions may hold any of them.
        dict.remove(b"Next");
    }
    let action_gone = match dict.get(b"A") {
        Ok(Object::Reference(id)) => bad.contains(id),
        Ok(Object::Dictionary(a)) => is_unsafe_action(a),
        _ => false,
    };
    if action_gone {
        dict.remove(b"A");
        removed.actions += 1;
    }
    for (_, value) in dict.iter_mut() {
        clean_object(value, bad, removed, depth + 1)?;
    }
    Ok(())
}

/// Takes the annotations in [`DROPPED_ANNOTATIONS`] off every page.
fn drop_annotations(doc: &mut Document, removed: &mut Removed) {
    let subtype = |doc: &Document, annot: &Object| -> Option<Vec<u8>> {
        let (_, annot) = doc.dereference(annot).ok()?;
        annot
            .as_dict()
            .ok()?
            .get(b"Subtype")
            .ok()?
            .as_name()
            .ok()
            .map(<[u8]>::to_vec)
    };
    for page in doc.get_pages().into_values() {
        let Some(annots) = doc
            .get_dictionary(page)
            .ok()
            .and_then(|p| p.get(b"Annots").ok())
            .cloned()
        else {
            continue;
        };
        let Ok((list_id, Object::Array(list))) = doc.dereference(&annots).map(|(id, o)| (id, o.clone())) else {
            continue;
        };
        let kept: Vec<Object> = list
            .iter()
            .filter(|a| !subtype(doc, a).is_some_and(|s| DROPPED_ANNOTATIONS.contains(&s.as_slice())))
            .cloned()
            .collect();
        if kept.len() == list.len() {
            continue;
        }
        removed.annotations += u32::try_from(list.len() - kept.len()).unwrap_or(u32::MAX);
        match list_id {
            Some(id) => {
                doc.objects.insert(id, Object::Array(kept));
            }
            None => {
                if let Ok(p) = doc.get_dictionary_mut(page) {
                    p.set("Annots", Object::Array(kept));
                }
            }
        }
    }
}
