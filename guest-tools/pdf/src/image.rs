//! PNG and JPEG files as PDF image XObjects: a JPEG goes in as it is
//! (DCTDecode); a PNG is decoded to 8-bit gray or RGB, its alpha channel
//! becoming a soft mask, and stored Flate-compressed.

use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

use crate::PdfError;

/// The most pixels one image may have (about an 8000 by 6000 photo).
const MAX_PIXELS: u64 = 50_000_000;

/// An image added to the document: its XObject and its size in pixels.
pub(crate) struct Placed {
    pub id: ObjectId,
    pub width: u32,
    pub height: u32,
}

pub(crate) fn add_image(doc: &mut Document, path: &str, bytes: &[u8]) -> Result<Placed, PdfError> {
    let bad = |message: String| PdfError::Image {
        path: path.to_owned(),
        message,
    };
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png_image(doc, bytes).map_err(bad)
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        jpeg_image(doc, bytes).map_err(bad)
    } else {
        Err(bad("is not a PNG or JPEG file; convert it to one of those".into()))
    }
}

fn check_size(width: u32, height: u32) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err("has no pixels".into());
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(format!(
            "is {width} by {height} pixels; images up to {MAX_PIXELS} pixels fit in a report (scale it down)"
        ));
    }
    Ok(())
}

fn image_dict(width: u32, height: u32, color_space: &[u8], bits: i64) -> Dictionary {
    Dictionary::from_iter(vec![
        ("Type", Object::Name(b"XObject".to_vec())),
        ("Subtype", Object::Name(b"Image".to_vec())),
        ("Width", Object::Integer(i64::from(width))),
        ("Height", Object::Integer(i64::from(height))),
        ("ColorSpace", Object::Name(color_space.to_vec())),
        ("BitsPerComponent", Object::Integer(bits)),
    ])
}

fn png_image(doc: &mut Document, bytes: &[u8]) -> Result<Placed, String> {
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits {
            bytes: 512 * 1024 * 1024,
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("is not a readable PNG: {e}"))?;
    {
        let info = reader.info();
        check_size(info.width, info.height)?;
    }
    let size = reader.output_buffer_size().ok_or("is too large to decode")?;
    let mut buf = vec![0; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("is damaged or truncated: {e}"))?;
    buf.truncate(frame.buffer_size());
    let (width, height) = (frame.width, frame.height);
    let (channels, has_alpha, space): (usize, bool, &[u8]) = match frame.color_type {
        png::ColorType::Grayscale => (1, false, b"DeviceGray"),
        png::ColorType::GrayscaleAlpha => (2, true, b"DeviceGray"),
        png::ColorType::Rgb => (3, false, b"DeviceRGB"),
        png::ColorType::Rgba => (4, true, b"DeviceRGB"),
        png::ColorType::Indexed => return Err("uses a palette the decoder did not expand".into()),
    };
    let color_channels = if has_alpha { channels - 1 } else { channels };
    let mut color = Vec::with_capacity(buf.len());
    let mut alpha = Vec::new();
    for px in buf.chunks_exact(channels) {
        color.extend_from_slice(&px[..color_channels]);
        if has_alpha {
            alpha.push(px[channels - 1]);
        }
    }
    let mut dict = image_dict(width, height, space, 8);
    if has_alpha && alpha.iter().any(|a| *a != 255) {
        let mut mask = Stream::new(image_dict(width, height, b"DeviceGray", 8), alpha);
        let _ = mask.compress();
        let mask_id = doc.add_object(mask);
        dict.set("SMask", mask_id);
    }
    let mut stream = Stream::new(dict, color);
    let _ = stream.compress();
    Ok(Placed {
        id: doc.add_object(stream),
        width,
        height,
    })
}

/// Reads a JPEG's frame header (size and components) and embeds the file as it is.
fn jpeg_image(doc: &mut Document, bytes: &[u8]) -> Result<Placed, String> {
    let mut i = 2;
    let mut adobe = false;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return Err("is damaged: a JPEG marker was expected".into());
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if len < 2 || i + 2 + len > bytes.len() {
            return Err("is truncated".into());
        }
        let seg = &bytes[i + 4..i + 2 + len];
        if marker == 0xEE && seg.starts_with(b"Adobe") {
            adobe = true;
        }
        let is_sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            if seg.len() < 6 {
                return Err("is truncated".into());
            }
            let height = u32::from(u16::from_be_bytes([seg[1], seg[2]]));
            let width = u32::from(u16::from_be_bytes([seg[3], seg[4]]));
            let components = seg[5];
            check_size(width, height)?;
            let space: &[u8] = match components {
                1 => b"DeviceGray",
                3 => b"DeviceRGB",
                4 => b"DeviceCMYK",
                n => return Err(format!("has {n} colour components; 1, 3 or 4 can be embedded")),
            };
            let mut dict = image_dict(width, height, space, 8);
            dict.set("Filter", Object::Name(b"DCTDecode".to_vec()));
            if components == 4 && adobe {
                dict.set(
                    "Decode",
                    Object::Array([1, 0, 1, 0, 1, 0, 1, 0].map(Object::Integer).to_vec()),
                );
            }
            let mut stream = Stream::new(dict, bytes.to_vec());
            stream.allows_compression = false;
            return Ok(Placed {
                id: doc.add_object(stream),
                width,
                height,
            });
        }
        if marker == 0xDA {
            break;
        }
        i += 2 + len;
    }
    Err("is damaged or truncated: no frame header was found".into())
}
