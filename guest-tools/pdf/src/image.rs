//! PNG and JPEG files as PDF image XObjects, after the sdk's image check
//! ([`deskhand_guest::image::inspect`], the one docx and pptx make too): a
//! JPEG goes in as it is (DCTDecode); a PNG is decoded to 8-bit gray or RGB,
//! its alpha channel becoming a soft mask, and stored Flate-compressed.

use deskhand_guest::image::{ImageFormat, ImageInfo, inspect};
use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

use crate::PdfError;

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
    let info = inspect(bytes).map_err(bad)?;
    match info.format {
        ImageFormat::Png => png_image(doc, bytes).map_err(bad),
        ImageFormat::Jpeg => Ok(jpeg_image(doc, bytes, &info)),
    }
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
    // The check has bounded the pixels; the limit is the decoded image's own size.
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits {
            bytes: 512 * 1024 * 1024,
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("is not a readable PNG: {e}"))?;
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

/// Embeds a checked JPEG as it is.
fn jpeg_image(doc: &mut Document, bytes: &[u8], info: &ImageInfo) -> Placed {
    let space: &[u8] = match info.components {
        1 => b"DeviceGray",
        4 => b"DeviceCMYK",
        _ => b"DeviceRGB",
    };
    let mut dict = image_dict(info.width, info.height, space, 8);
    dict.set("Filter", Object::Name(b"DCTDecode".to_vec()));
    if info.components == 4 && info.adobe {
        dict.set(
            "Decode",
            Object::Array([1, 0, 1, 0, 1, 0, 1, 0].map(Object::Integer).to_vec()),
        );
    }
    let mut stream = Stream::new(dict, bytes.to_vec());
    stream.allows_compression = false;
    Placed {
        id: doc.add_object(stream),
        width: info.width,
        height: info.height,
    }
}
