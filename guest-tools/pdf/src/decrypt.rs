//! The standard security handler for the encrypted PDFs lopdf refuses but
//! poppler opens: no `/ID` in the trailer (an empty one is used), `/O` and
//! `/U` of unusual lengths, crypt-filter `/Length` in bytes, no `/Perms` check
//! for revisions 5 and 6, and `/StmF` and `/StrF` both `/Identity` (strings and
//! page content are in clear: only embedded files, through `/EFF`, may be
//! encrypted), which opens without any password.
//!
//! lopdf never hands out the undecrypted objects of a file it could not
//! unlock, so [`open`] loads the bytes with the trailer's `/Encrypt` key
//! renamed (same length, so no offset moves) and the object streams kept
//! whole, then decrypts every string and stream here (ISO 32000-2, 7.6) and
//! unpacks the object streams itself.

use std::borrow::Cow;
use std::collections::BTreeMap;

use aes::cipher::{BlockCipherDecrypt as _, BlockCipherEncrypt as _, KeyInit as _};
use lopdf::xref::XrefEntry;
use lopdf::{Dictionary, Document, EncryptionState, LoadOptions, Object, ObjectId, ObjectStream};
use md5::{Digest as _, Md5};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::load::MAX_STREAM_BYTES;
use crate::{PdfError, from_lopdf};

/// `/Encrypt` as the raw load sees it: the same length, a name nobody uses.
const HIDDEN_ENCRYPT: &[u8; 8] = b"/DhCrypt";
/// An object stream's `/Type` while its content is still encrypted, so the
/// raw load keeps it instead of failing to unpack it.
const HIDDEN_OBJSTM: &[u8] = b"DhObjStm";

/// The padding string of Algorithm 2, step (a).
const PAD: [u8; 32] = [
    0x28, 0xBF, 0x4E, 0x5E, 0x4E, 0x75, 0x8A, 0x41, 0x64, 0x00, 0x4E, 0x56, 0xFF, 0xFA, 0x01, 0x08, 0x2E, 0x2E, 0x00,
    0xB6, 0xD0, 0x68, 0x3E, 0x80, 0x2F, 0x0C, 0xA9, 0xFE, 0x64, 0x53, 0x69, 0x7A,
];

/// Opens an encrypted PDF that lopdf did not. `locked` is lopdf's load that
/// stopped for want of a password (its trailer and `/Encrypt` dictionary let
/// a missing password be reported before the whole file is read again).
pub(crate) fn open(bytes: &[u8], password: Option<&str>, locked: Option<&Document>) -> Result<Document, PdfError> {
    let early = match locked {
        Some(doc) => Some(unlock(doc, doc.trailer.get(b"Encrypt").ok(), password)?),
        None => None,
    };
    let options = LoadOptions {
        filter: Some(keep_object_stream_whole),
        max_decompressed_size: Some(MAX_STREAM_BYTES),
        ..LoadOptions::default()
    };
    let mut doc = Document::load_mem_with_options(&hide_encrypt(bytes), options).map_err(from_lopdf)?;
    let entry = doc.trailer.remove(&HIDDEN_ENCRYPT[1..]);
    let (handler, key) = match early {
        Some(unlocked) => unlocked,
        None => unlock(&doc, entry.as_ref(), password)?,
    };
    // The encryption dictionary itself is in clear and no part of the document.
    if let Some(Object::Reference(id)) = entry {
        doc.objects.remove(&id);
    }
    for (id, object) in doc.objects.iter_mut() {
        handler.decrypt_object(key.as_deref(), *id, object);
    }
    unpack_object_streams(&mut doc)?;
    // Marks the document as one that was encrypted (`info` reports it); lopdf
    // reads this state only to re-encrypt incremental saves, which we never make.
    doc.encryption_state = Some(EncryptionState::default());
    Ok(doc)
}

/// The handler of the `/Encrypt` entry and its file key (none when strings and
/// streams are in clear), or the error that says a password is needed.
fn unlock(
    doc: &Document,
    entry: Option<&Object>,
    password: Option<&str>,
) -> Result<(Handler, Option<Vec<u8>>), PdfError> {
    let locked = || match password {
        None => PdfError::Encrypted,
        Some(_) => PdfError::WrongPassword,
    };
    let dict = match entry {
        Some(Object::Reference(id)) => doc.get_dictionary(*id).map_err(|_| locked())?,
        Some(Object::Dictionary(dict)) => dict,
        _ => return Err(locked()),
    };
    // Algorithm 2 hashes the first /ID element; without one poppler hashes nothing.
    let id0 = doc
        .trailer
        .get(b"ID")
        .and_then(Object::as_array)
        .ok()
        .and_then(|ids| ids.first())
        .and_then(|id| id.as_str().ok())
        .unwrap_or_default();
    let handler = Handler::new(dict, id0)?;
    if !handler.needs_key() {
        return Ok((handler, None));
    }
    let key = handler.file_key(password).ok_or_else(locked)?;
    Ok((handler, Some(key)))
}

/// `bytes` with every `/Encrypt` key (one per trailer) renamed, so lopdf loads
/// the objects as they are stored.
fn hide_encrypt(bytes: &[u8]) -> Cow<'_, [u8]> {
    let key = b"/Encrypt";
    let at: Vec<usize> = bytes
        .windows(key.len() + 1)
        .enumerate()
        .filter(|(_, w)| {
            w.starts_with(key) && matches!(w[key.len()], b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0' | b'<')
        })
        .map(|(i, _)| i)
        .collect();
    if at.is_empty() {
        return Cow::Borrowed(bytes);
    }
    let mut out = bytes.to_vec();
    for i in at {
        out[i..i + key.len()].copy_from_slice(HIDDEN_ENCRYPT);
    }
    Cow::Owned(out)
}

/// A load filter: object streams stay streams, to be decrypted then unpacked.
fn keep_object_stream_whole(id: ObjectId, object: &mut Object) -> Option<(ObjectId, Object)> {
    if let Object::Stream(stream) = object
        && stream.dict.has_type(b"ObjStm")
    {
        stream.dict.set("Type", Object::Name(HIDDEN_OBJSTM.to_vec()));
    }
    // lopdf keeps the object it passed in; what is returned is used only for
    // the members of object streams, which this filter keeps packed.
    Some((id, Object::Null))
}

/// Adds the members of the (now decrypted) object streams that the
/// cross-reference data places in them.
fn unpack_object_streams(doc: &mut Document) -> Result<(), PdfError> {
    let containers: Vec<ObjectId> = doc
        .objects
        .iter()
        .filter(|(_, o)| o.as_stream().is_ok_and(|s| s.dict.has_type(HIDDEN_OBJSTM)))
        .map(|(id, _)| *id)
        .collect();
    for container in containers {
        let Some(Object::Stream(stream)) = doc.objects.get_mut(&container) else {
            continue;
        };
        stream.dict.set("Type", Object::Name(b"ObjStm".to_vec()));
        let members = match ObjectStream::new_with_limit(stream, Some(MAX_STREAM_BYTES)) {
            Ok(unpacked) => unpacked.objects,
            Err(e @ lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. })) => {
                return Err(from_lopdf(e));
            }
            // A damaged container loses its members, as in lopdf's own lenient load.
            Err(_) => continue,
        };
        for (id, object) in members {
            let placed_here = match doc.reference_table.entries.get(&id.0) {
                Some(XrefEntry::Compressed { container: c, .. }) => *c == container.0,
                Some(_) => false,
                None => true,
            };
            if placed_here {
                doc.objects.entry(id).or_insert(object);
            }
        }
    }
    Ok(())
}

/// How a crypt filter transforms data (ISO 32000-2, table 25).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// `/Identity`, or `/CFM /None`: the data is in clear.
    Clear,
    Rc4,
    Aes128,
    Aes256,
}

/// The standard security handler of one document (ISO 32000-2, 7.6.4).
#[derive(Debug)]
struct Handler {
    version: i64,
    revision: i64,
    /// The file key's length in bytes.
    key_len: usize,
    owner: Vec<u8>,
    user: Vec<u8>,
    owner_encrypted: Vec<u8>,
    user_encrypted: Vec<u8>,
    permissions: u32,
    id0: Vec<u8>,
    encrypt_metadata: bool,
    strings: Method,
    streams: Method,
    embedded_files: Method,
    /// The `/CF` filters by name, for streams that choose their own with `/Crypt`.
    named: BTreeMap<Vec<u8>, Method>,
}

impl Handler {
    fn new(dict: &Dictionary, id0: &[u8]) -> Result<Self, PdfError> {
        let unsupported = |what: String| PdfError::UnsupportedEncryption(what);
        let filter = dict.get(b"Filter").and_then(Object::as_name).unwrap_or_default();
        if filter != b"Standard" {
            return Err(unsupported(format!(
                "security handler {}",
                String::from_utf8_lossy(filter)
            )));
        }
        let int = |key: &[u8]| dict.get(key).and_then(Object::as_i64).ok();
        let bytes = |key: &[u8]| dict.get(key).and_then(Object::as_str).map(<[u8]>::to_vec).ok();
        let version = int(b"V").unwrap_or(0);
        let revision = int(b"R").unwrap_or(0);
        let supported = match revision {
            2..=4 => matches!(version, 1 | 2 | 4),
            5 | 6 => matches!(version, 4 | 5),
            _ => false,
        };
        let (Some(mut owner), Some(mut user), Some(permissions), true) =
            (bytes(b"O"), bytes(b"U"), int(b"P"), supported)
        else {
            return Err(unsupported(format!(
                "standard security handler, version {version} revision {revision}"
            )));
        };
        let owner_encrypted = bytes(b"OE").unwrap_or_default();
        let user_encrypted = bytes(b"UE").unwrap_or_default();
        if revision <= 4 {
            if owner.is_empty() || user.is_empty() {
                return Err(unsupported("an empty /O or /U".into()));
            }
            // Acrobat writes a short /U padded with zeros; only 32 bytes count.
            owner.resize(32, 0);
            user.resize(32, 0);
        } else if owner.len() < 48 || user.len() < 48 || owner_encrypted.len() != 32 || user_encrypted.len() != 32 {
            return Err(unsupported(format!(
                "revision {revision} with malformed /O, /U, /OE or /UE"
            )));
        }

        let mut named = BTreeMap::new();
        let mut lengths = BTreeMap::new();
        if let Ok(filters) = dict.get(b"CF").and_then(Object::as_dict) {
            for (name, filter) in filters {
                let Ok(filter) = filter.as_dict() else { continue };
                let method = match filter.get(b"CFM").and_then(Object::as_name).unwrap_or(b"None") {
                    b"None" => Method::Clear,
                    b"V2" => Method::Rc4,
                    b"AESV2" => Method::Aes128,
                    b"AESV3" => Method::Aes256,
                    _ => continue,
                };
                named.insert(name.clone(), method);
                if let Ok(length) = filter.get(b"Length").and_then(Object::as_i64) {
                    lengths.insert(name.clone(), length);
                }
            }
        }
        let chosen = |key: &[u8]| dict.get(key).and_then(Object::as_name).ok();
        let resolve = |name: Option<&[u8]>| -> Result<Method, PdfError> {
            match name {
                None | Some(b"Identity") => Ok(Method::Clear),
                Some(name) => named.get(name).copied().ok_or_else(|| {
                    unsupported(format!("crypt filter {} is not defined", String::from_utf8_lossy(name)))
                }),
            }
        };
        let (strings, streams, embedded_files) = if version >= 4 {
            let strings = resolve(chosen(b"StrF"))?;
            let streams = resolve(chosen(b"StmF"))?;
            // Embedded files matter to no page: an odd /EFF must not stop the rest.
            let embedded = chosen(b"EFF").map_or(Ok(streams), |name| resolve(Some(name)));
            (strings, streams, embedded.unwrap_or(streams))
        } else {
            (Method::Rc4, Method::Rc4, Method::Rc4)
        };

        let key_len = if revision >= 5 {
            32
        } else if revision == 2 {
            // Revision 2 means 40 bits whatever /Length says.
            5
        } else {
            // A crypt filter's /Length is in bytes for poppler and most writers, in bits for the spec.
            let filter_length = chosen(b"StmF").and_then(|name| lengths.get(name)).copied();
            let length = match (filter_length, int(b"Length")) {
                (Some(n), _) if n <= 16 => n,
                (Some(bits), _) | (None, Some(bits)) => bits / 8,
                (None, None) if version >= 4 => 16,
                (None, None) => 5,
            };
            usize::try_from(length.clamp(5, 16)).unwrap_or(16)
        };
        Ok(Handler {
            version,
            revision,
            key_len,
            owner,
            user,
            owner_encrypted,
            user_encrypted,
            // /P is a 32-bit value written signed or unsigned.
            permissions: permissions as u32,
            id0: id0.to_vec(),
            encrypt_metadata: version < 4 || dict.get(b"EncryptMetadata").and_then(Object::as_bool).unwrap_or(true),
            strings,
            streams,
            embedded_files,
            named,
        })
    }

    /// Whether page content needs the file key: not when strings and streams
    /// are both in clear, whatever embedded files use.
    fn needs_key(&self) -> bool {
        self.strings != Method::Clear || self.streams != Method::Clear
    }

    /// The file key for the empty password or `password`, each tried as the
    /// owner's and as the user's, as poppler does.
    fn file_key(&self, password: Option<&str>) -> Option<Vec<u8>> {
        let mut candidates: Vec<Vec<u8>> = vec![Vec::new()];
        if let Some(password) = password {
            // Revision 6 asks for UTF-8 (SASLprep is the identity for most
            // passwords); revisions 2-4 for PDFDocEncoding, Latin-1 for most.
            candidates.push(password.as_bytes().to_vec());
            if self.revision <= 4 && !password.is_ascii() {
                let latin1: Option<Vec<u8>> = password.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                candidates.extend(latin1);
            }
        }
        candidates.iter().find_map(|candidate| {
            if self.revision >= 5 {
                self.key_r6(candidate)
            } else {
                self.owner_key_r4(candidate).or_else(|| self.user_key_r4(candidate))
            }
        })
    }

    /// Algorithm 2: the file key from a user password (revisions 2-4).
    fn key_r4(&self, password: &[u8]) -> Vec<u8> {
        let mut md5 = Md5::new();
        md5.update(padded(password));
        md5.update(&self.owner[..32]);
        md5.update(self.permissions.to_le_bytes());
        md5.update(&self.id0);
        if self.version >= 4 && !self.encrypt_metadata {
            md5.update([0xFF; 4]);
        }
        let mut hash = md5.finalize().to_vec();
        if self.revision >= 3 {
            for _ in 0..50 {
                hash = Md5::digest(&hash[..self.key_len]).to_vec();
            }
        }
        hash.truncate(self.key_len);
        hash
    }

    /// Algorithm 6: the file key if `password` is the user password (revisions 2-4).
    fn user_key_r4(&self, password: &[u8]) -> Option<Vec<u8>> {
        let key = self.key_r4(password);
        let fits = if self.revision == 2 {
            rc4(&key, &PAD) == self.user[..32]
        } else {
            let mut md5 = Md5::new();
            md5.update(PAD);
            md5.update(&self.id0);
            let mut hash = md5.finalize().to_vec();
            for round in 0..20u8 {
                hash = rc4(&xor_key(&key, round), &hash);
            }
            hash[..16] == self.user[..16]
        };
        fits.then_some(key)
    }

    /// Algorithm 7: the file key if `password` is the owner password
    /// (revisions 2-4), through the user password it recovers from `/O`.
    fn owner_key_r4(&self, password: &[u8]) -> Option<Vec<u8>> {
        let mut hash = Md5::digest(padded(password)).to_vec();
        if self.revision >= 3 {
            for _ in 0..50 {
                hash = Md5::digest(&hash).to_vec();
            }
        }
        let key = &hash[..self.key_len];
        let mut user_password = self.owner[..32].to_vec();
        if self.revision == 2 {
            user_password = rc4(key, &user_password);
        } else {
            for round in (0..20u8).rev() {
                user_password = rc4(&xor_key(key, round), &user_password);
            }
        }
        self.user_key_r4(&user_password)
    }

    /// Algorithms 2.A, 11 and 12: the file key from the owner or the user
    /// password (revisions 5 and 6). `/Perms` is not checked, as in poppler.
    fn key_r6(&self, password: &[u8]) -> Option<Vec<u8>> {
        let password = &password[..password.len().min(127)];
        let user = &self.user[..48];
        if self.hash_r6(password, &self.owner[32..40], user) == self.owner[..32] {
            let key = self.hash_r6(password, &self.owner[40..48], user);
            return Some(aes_cbc_decrypt(&key, &[0; 16], &self.owner_encrypted));
        }
        if self.hash_r6(password, &self.user[32..40], &[]) == self.user[..32] {
            let key = self.hash_r6(password, &self.user[40..48], &[]);
            return Some(aes_cbc_decrypt(&key, &[0; 16], &self.user_encrypted));
        }
        None
    }

    /// Algorithm 2.B (revision 6), or plain SHA-256 (revision 5).
    fn hash_r6(&self, password: &[u8], salt: &[u8], user: &[u8]) -> Vec<u8> {
        let mut k = Sha256::new_with_prefix(password)
            .chain_update(salt)
            .chain_update(user)
            .finalize()
            .to_vec();
        if self.revision == 5 {
            return k;
        }
        // At least 64 rounds; then until E's last byte is at most rounds - 32,
        // which ends by round 288.
        let mut round = 0u32;
        loop {
            let mut k1 = Vec::with_capacity(64 * (password.len() + k.len() + user.len()));
            for _ in 0..64 {
                k1.extend_from_slice(password);
                k1.extend_from_slice(&k);
                k1.extend_from_slice(user);
            }
            let e = aes128_cbc_encrypt(&k[..16], &k[16..32], &k1);
            let sum: u32 = e[..16].iter().map(|b| u32::from(*b)).sum();
            k = match sum % 3 {
                0 => Sha256::digest(&e).to_vec(),
                1 => Sha384::digest(&e).to_vec(),
                _ => Sha512::digest(&e).to_vec(),
            };
            round += 1;
            if round >= 64 && u32::from(e.last().copied().unwrap_or(0)) + 32 <= round {
                break;
            }
        }
        k.truncate(32);
        k
    }

    /// Decrypts the strings and streams of object `id` in place; with no
    /// `key`, only those in clear are left, which is all of them.
    fn decrypt_object(&self, key: Option<&[u8]>, id: ObjectId, object: &mut Object) {
        match object {
            Object::String(bytes, _) => {
                if let Some(key) = key {
                    *bytes = transform(self.strings, key, id, bytes);
                }
            }
            Object::Array(items) => {
                for item in items {
                    self.decrypt_object(key, id, item);
                }
            }
            Object::Dictionary(dict) => self.decrypt_dictionary(key, id, dict),
            Object::Stream(stream) => {
                // Cross-reference streams are never encrypted.
                if stream.dict.has_type(b"XRef") {
                    return;
                }
                let method = self.stream_method(&mut stream.dict);
                self.decrypt_dictionary(key, id, &mut stream.dict);
                if let (Some(key), false) = (key, method == Method::Clear) {
                    let content = transform(method, key, id, &stream.content);
                    stream.set_content(content);
                }
            }
            _ => {}
        }
    }

    fn decrypt_dictionary(&self, key: Option<&[u8]>, id: ObjectId, dict: &mut Dictionary) {
        // A signature's /Contents is in clear (ISO 32000-2, 7.6.2).
        let signature = dict.has_type(b"Sig")
            || dict.has_type(b"DocTimeStamp")
            || (dict.has(b"ByteRange") && dict.has(b"Contents"));
        for (name, value) in dict.iter_mut() {
            if !(signature && name == b"Contents") {
                self.decrypt_object(key, id, value);
            }
        }
    }

    /// The method for a stream's content. A stream naming its own crypt
    /// filter loses it from `/Filter`, so the rest decode as usual.
    fn stream_method(&self, dict: &mut Dictionary) -> Method {
        if let Some(name) = take_crypt_filter(dict) {
            return match name.as_slice() {
                b"Identity" => Method::Clear,
                name => self.named.get(name).copied().unwrap_or(Method::Clear),
            };
        }
        if dict.has_type(b"EmbeddedFile") {
            return self.embedded_files;
        }
        if dict.has_type(b"Metadata") && !self.encrypt_metadata {
            return Method::Clear;
        }
        self.streams
    }
}

/// Removes a leading `/Crypt` from a stream's `/Filter` (and its
/// `/DecodeParms`), returning the crypt filter it names (`/Identity` if none).
fn take_crypt_filter(dict: &mut Dictionary) -> Option<Vec<u8>> {
    let name_in = |parms: Option<&Object>| {
        parms
            .and_then(|p| p.as_dict().ok())
            .and_then(|p| p.get(b"Name").and_then(Object::as_name).ok())
            .unwrap_or(b"Identity")
            .to_vec()
    };
    match dict.get(b"Filter").ok()? {
        Object::Name(name) if name == b"Crypt" => {
            let name = name_in(dict.get(b"DecodeParms").ok());
            dict.remove(b"Filter");
            dict.remove(b"DecodeParms");
            Some(name)
        }
        Object::Array(filters) if filters.first().and_then(|f| f.as_name().ok()) == Some(b"Crypt") => {
            let mut filters = filters.clone();
            filters.remove(0);
            let mut parms = match dict.get(b"DecodeParms") {
                Ok(Object::Array(parms)) => parms.clone(),
                _ => Vec::new(),
            };
            let name = name_in(parms.first());
            if !parms.is_empty() {
                parms.remove(0);
                dict.set("DecodeParms", Object::Array(parms));
            }
            dict.set("Filter", Object::Array(filters));
            Some(name)
        }
        _ => None,
    }
}

/// Algorithm 1 (and 1.A for AES-256): decrypts one string or stream.
fn transform(method: Method, file_key: &[u8], id: ObjectId, data: &[u8]) -> Vec<u8> {
    let object_key = |salt: &[u8]| {
        let mut md5 = Md5::new();
        md5.update(file_key);
        md5.update(&id.0.to_le_bytes()[..3]);
        md5.update(id.1.to_le_bytes());
        md5.update(salt);
        let hash = md5.finalize();
        hash[..(file_key.len() + 5).min(16)].to_vec()
    };
    match method {
        Method::Clear => data.to_vec(),
        Method::Rc4 => rc4(&object_key(b""), data),
        Method::Aes128 => aes_decrypt_payload(&object_key(b"sAlT"), data),
        Method::Aes256 => aes_decrypt_payload(file_key, data),
    }
}

/// An AES payload: a 16-byte IV, then CBC blocks ending in PKCS#7 padding.
/// Damaged payloads decrypt as far as they go, as in poppler.
fn aes_decrypt_payload(key: &[u8], data: &[u8]) -> Vec<u8> {
    let Some((iv, blocks)) = data.split_first_chunk::<16>() else {
        return Vec::new();
    };
    let mut plain = aes_cbc_decrypt(key, iv, blocks);
    if let Some(&pad) = plain.last() {
        let n = usize::from(pad);
        if (1..=16).contains(&n) && n <= plain.len() && plain[plain.len() - n..].iter().all(|&b| b == pad) {
            plain.truncate(plain.len() - n);
        }
    }
    plain
}

/// AES-CBC decryption of the whole blocks of `data` without padding; a key
/// that is neither 16 nor 32 bytes leaves the data as it is.
fn aes_cbc_decrypt(key: &[u8], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let decrypt: Box<dyn Fn(&mut aes::Block)> = match key.len() {
        16 => match aes::Aes128::new_from_slice(key) {
            Ok(cipher) => Box::new(move |b| cipher.decrypt_block(b)),
            Err(_) => return data.to_vec(),
        },
        32 => match aes::Aes256::new_from_slice(key) {
            Ok(cipher) => Box::new(move |b| cipher.decrypt_block(b)),
            Err(_) => return data.to_vec(),
        },
        _ => return data.to_vec(),
    };
    let mut previous = *iv;
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks_exact(16) {
        let mut block = aes::Block::from([0; 16]);
        block.copy_from_slice(chunk);
        decrypt(&mut block);
        out.extend(block.iter().zip(previous).map(|(b, p)| b ^ p));
        previous.copy_from_slice(chunk);
    }
    out
}

/// AES-128-CBC encryption without padding, of whole blocks (Algorithm 2.B).
fn aes128_cbc_encrypt(key: &[u8], iv: &[u8], data: &[u8]) -> Vec<u8> {
    let Ok(cipher) = aes::Aes128::new_from_slice(key) else {
        return data.to_vec();
    };
    let mut previous = aes::Block::from([0; 16]);
    previous.copy_from_slice(&iv[..16]);
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks_exact(16) {
        let mut block = aes::Block::from([0; 16]);
        for ((b, c), p) in block.iter_mut().zip(chunk).zip(previous.iter()) {
            *b = c ^ p;
        }
        cipher.encrypt_block(&mut block);
        out.extend_from_slice(&block);
        previous = block;
    }
    out
}

/// RC4, the stream cipher of revisions 2-4.
fn rc4(key: &[u8], data: &[u8]) -> Vec<u8> {
    if key.is_empty() {
        return data.to_vec();
    }
    let mut s: [u8; 256] = std::array::from_fn(|i| i as u8);
    let mut j = 0u8;
    for i in 0..256 {
        j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
        s.swap(i, usize::from(j));
    }
    let (mut i, mut j) = (0u8, 0u8);
    data.iter()
        .map(|byte| {
            i = i.wrapping_add(1);
            j = j.wrapping_add(s[usize::from(i)]);
            s.swap(usize::from(i), usize::from(j));
            byte ^ s[usize::from(s[usize::from(i)].wrapping_add(s[usize::from(j)]))]
        })
        .collect()
}

fn xor_key(key: &[u8], round: u8) -> Vec<u8> {
    key.iter().map(|b| b ^ round).collect()
}

/// A password padded or cut to 32 bytes (Algorithm 2, step (a)).
fn padded(password: &[u8]) -> [u8; 32] {
    let n = password.len().min(32);
    let mut out = PAD;
    out[..n].copy_from_slice(&password[..n]);
    out[n..].copy_from_slice(&PAD[..32 - n]);
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use lopdf::encryption::crypt_filters::{Aes128CryptFilter, Aes256CryptFilter, CryptFilter};
    use lopdf::{EncryptionVersion, Permissions, Stream, dictionary};

    use super::*;

    fn corpus() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pdf")
    }

    /// The decoded content of every page, and the document's title.
    fn pages_and_title(doc: &Document) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
        let pages = doc.get_pages().values().map(|id| doc.get_page_content(*id)).collect();
        let title = doc
            .trailer
            .get(b"Info")
            .and_then(|info| doc.dereference(info))
            .and_then(|(_, info)| info.as_dict())
            .and_then(|info| info.get(b"Title"))
            .and_then(Object::as_str)
            .map(<[u8]>::to_vec)
            .ok();
        (pages, title)
    }

    #[test]
    fn decrypts_every_corpus_revision_as_lopdf_does() {
        let dir = corpus();
        if !dir.is_dir() {
            eprintln!("skipped: no corpus at {}", dir.display());
            return;
        }
        let cases = [
            ("r2-empty-password.pdf", ""),
            ("r2-owner-password.pdf", "asdfzxcv"),
            ("r2-user-password.pdf", "asdfzxcv"),
            ("r3-empty-password.pdf", ""),
            ("r3-user-password.pdf", "asdfzxcv"),
            ("r4-owner-password.pdf", "asdfzxcv"),
            ("r4-user-password.pdf", "asdfzxcv"),
            ("r4-aes-user-password.pdf", "asdfzxcv"),
            ("r4-aes-v2-no-key-length.pdf", ""),
            ("r5-empty-password.pdf", ""),
            ("r5-owner-password.pdf", "asdfzxcv"),
            ("r5-user-password.pdf", "asdfzxcv"),
            ("r6-empty-password.pdf", ""),
            ("r6-owner-password.pdf", "asdfzxcv"),
            ("r6-user-password.pdf", "asdfzxcv"),
            ("r6-both-passwords.pdf", "foo"),
            ("r6-both-passwords.pdf", "bar"),
            ("libreoffice-writer-password.pdf", "openpassword"),
            // AES-256 with object streams and a cross-reference stream.
            ("crazyones-encrypted-256.pdf", "password"),
            ("encrypted-file.pdf", "test"),
        ];
        for (name, password) in cases {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let expected = Document::load_mem_with_options(&bytes, LoadOptions::with_password(password)).unwrap();
            let ours = open(&bytes, Some(password), None).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (pages, title) = pages_and_title(&ours);
            assert!(!pages.is_empty() && pages.iter().all(|p| !p.is_empty()), "{name}");
            assert_eq!((pages, title), pages_and_title(&expected), "{name} with {password:?}");
        }
    }

    #[test]
    fn a_file_without_id_opens_with_the_empty_password() {
        let path = corpus().join("encrypted_doc_no_id.pdf");
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("skipped: no {}", path.display());
            return;
        };
        let doc = crate::open(&bytes, None).unwrap();
        let info = crate::info(&doc);
        // What pdfinfo reads.
        assert_eq!((info.pages, info.encrypted), (3, true));
        assert_eq!(info.producer.as_deref(), Some("European Patent Office"));
    }

    const CONTENT: &[u8] = b"BT /F1 12 Tf 72 700 Td (Hello, encrypted page) Tj ET";

    /// A one-page PDF with a title, encrypted by lopdf as `version` says.
    fn encrypted(version: impl Fn(&Document) -> EncryptionVersion<'_>, xref_stream: bool) -> Vec<u8> {
        encrypted_with(version, xref_stream, false)
    }

    /// [`encrypted`], and with `eff` the filter `StdCF` named for embedded files
    /// (lopdf does not write /EFF).
    fn encrypted_with(version: impl Fn(&Document) -> EncryptionVersion<'_>, xref_stream: bool, eff: bool) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages = doc.new_object_id();
        let font = doc.add_object(dictionary! {"Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica"});
        let content = doc.add_object(Stream::new(dictionary! {}, CONTENT.to_vec()));
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages, "Contents" => content,
            "Resources" => dictionary! {"Font" => dictionary! {"F1" => font}},
        });
        doc.objects.insert(
            pages,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1, "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            }),
        );
        let catalog = doc.add_object(dictionary! {"Type" => "Catalog", "Pages" => pages});
        let info = doc.add_object(dictionary! {"Title" => Object::string_literal("A secret title")});
        doc.trailer.set("Root", catalog);
        doc.trailer.set("Info", info);
        let id = Object::string_literal(b"0123456789abcdef".to_vec());
        doc.trailer.set("ID", vec![id.clone(), id]);
        let state = EncryptionState::try_from(version(&doc)).unwrap();
        doc.encrypt(&state).unwrap();
        if eff {
            let id = doc.trailer.get(b"Encrypt").and_then(Object::as_reference).unwrap();
            doc.get_dictionary_mut(id)
                .unwrap()
                .set("EFF", Object::Name(b"StdCF".to_vec()));
        }
        let mut bytes = Vec::new();
        let options = lopdf::SaveOptions::builder().use_xref_streams(xref_stream).build();
        doc.save_with_options(&mut bytes, options).unwrap();
        bytes
    }

    fn assert_reads(bytes: &[u8], password: Option<&str>) {
        let doc = crate::open(bytes, password).unwrap_or_else(|e| panic!("{password:?}: {e}"));
        let (pages, title) = pages_and_title(&doc);
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].trim_ascii_end(), CONTENT);
        assert_eq!(title.as_deref(), Some(&b"A secret title"[..]));
    }

    fn v4<'a>(doc: &'a Document, filter: Arc<dyn CryptFilter>, streams_and_strings: &[u8]) -> EncryptionVersion<'a> {
        EncryptionVersion::V4 {
            document: doc,
            encrypt_metadata: true,
            crypt_filters: BTreeMap::from([(b"StdCF".to_vec(), filter)]),
            stream_filter: streams_and_strings.to_vec(),
            string_filter: streams_and_strings.to_vec(),
            owner_password: "owner",
            user_password: "secret",
            permissions: Permissions::all(),
        }
    }

    #[test]
    fn identity_crypt_filters_open_without_the_user_password() {
        for xref_stream in [false, true] {
            let bytes = encrypted(|doc| v4(doc, Arc::new(Aes128CryptFilter), b"Identity"), xref_stream);
            // lopdf alone asks for the password.
            let locked = Document::load_mem(&bytes).unwrap();
            assert!(locked.trailer.has(b"Encrypt") && locked.encryption_state.is_none());
            assert_reads(&bytes, None);
            assert_reads(&bytes, Some("secret"));
            assert_reads(&bytes, Some("not it"));
        }
    }

    #[test]
    fn embedded_file_only_encryption_opens_without_the_user_password() {
        let bytes = encrypted_with(|doc| v4(doc, Arc::new(Aes128CryptFilter), b"Identity"), false, true);
        assert_reads(&bytes, None);
    }

    type MakeVersion = Box<dyn Fn(&Document) -> EncryptionVersion<'_>>;

    #[test]
    fn a_user_password_is_asked_for_and_a_wrong_one_named() {
        const KEY: [u8; 32] = [7; 32];
        let cases: [(&str, MakeVersion); 3] = [
            (
                "RC4 128",
                Box::new(|doc| EncryptionVersion::V2 {
                    document: doc,
                    owner_password: "owner",
                    user_password: "secret",
                    key_length: 128,
                    permissions: Permissions::all(),
                }),
            ),
            ("AESV2", Box::new(|doc| v4(doc, Arc::new(Aes128CryptFilter), b"StdCF"))),
            (
                "AESV3",
                Box::new(|_| EncryptionVersion::V5 {
                    encrypt_metadata: true,
                    crypt_filters: BTreeMap::from([(
                        b"StdCF".to_vec(),
                        Arc::new(Aes256CryptFilter) as Arc<dyn CryptFilter>,
                    )]),
                    file_encryption_key: &KEY,
                    stream_filter: b"StdCF".to_vec(),
                    string_filter: b"StdCF".to_vec(),
                    owner_password: "owner",
                    user_password: "secret",
                    permissions: Permissions::all(),
                }),
            ),
        ];
        for (what, version) in cases {
            let bytes = encrypted(version, true);
            assert!(matches!(crate::open(&bytes, None), Err(PdfError::Encrypted)), "{what}");
            assert!(
                matches!(crate::open(&bytes, Some("nope")), Err(PdfError::WrongPassword)),
                "{what}"
            );
            assert!(matches!(open(&bytes, None, None), Err(PdfError::Encrypted)), "{what}");
            assert!(
                matches!(open(&bytes, Some("nope"), None), Err(PdfError::WrongPassword)),
                "{what}"
            );
            for password in ["secret", "owner"] {
                assert_reads(&bytes, Some(password));
                // The same through this module alone, not lopdf's decryption.
                let doc = open(&bytes, Some(password), None).unwrap_or_else(|e| panic!("{what}: {e}"));
                let (pages, _) = pages_and_title(&doc);
                assert_eq!(pages.len(), 1, "{what}");
                assert_eq!(pages[0].trim_ascii_end(), CONTENT, "{what}");
            }
        }
    }

    #[test]
    fn only_trailer_keys_are_hidden() {
        let bytes = b"<</Encrypt 5 0 R/EncryptMetadata false>> /Encrypt<</V 1>> /Encrypted";
        assert_eq!(
            &*hide_encrypt(bytes),
            b"<</DhCrypt 5 0 R/EncryptMetadata false>> /DhCrypt<</V 1>> /Encrypted"
        );
    }
}
