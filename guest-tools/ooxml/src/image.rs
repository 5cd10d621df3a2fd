//! PNG and JPEG files for embedding: read through the sandbox's preopens,
//! recognised by their signature, measured from their headers (no decoding),
//! and refused with a clear error when missing, too large, truncated or not
//! an image at all.

use std::path::Path;

use deskhand_guest::{ToolError, path_error, read_capped};

/// The largest image file a document may embed, and the most pixels on a side.
pub const MAX_IMAGE_BYTES: u64 = 32 * 1024 * 1024;
pub const MAX_IMAGE_PIXELS: u32 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpeg",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        }
    }
}

/// An image file's bytes, its format and its size in pixels.
#[derive(Debug, Clone)]
pub struct Image {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

impl Image {
    /// The size in EMUs at `width_mm` (or the pixels at 96 dpi when none is
    /// given), keeping the aspect ratio, scaled down to fit `max_w` x `max_h`.
    pub fn fit(&self, width_mm: Option<f32>, max_w: i64, max_h: i64) -> (i64, i64) {
        let w = match width_mm {
            Some(mm) => (f64::from(mm) * crate::EMU_PER_MM as f64) as i64,
            None => i64::from(self.width) * crate::EMU_PER_INCH / 96,
        };
        let ratio = f64::from(self.height) / f64::from(self.width);
        let mut w = w.max(1) as f64;
        let mut h = w * ratio;
        let scale = (max_w as f64 / w).min(max_h as f64 / h).min(1.0);
        w *= scale;
        h *= scale;
        ((w as i64).max(1), (h as i64).max(1))
    }
}

/// Reads the PNG or JPEG file at `path`; `arg` names the argument in errors
/// (e.g. `blocks[3].path`).
pub fn read_image(path: &str, arg: &str) -> Result<Image, ToolError> {
    let p = Path::new(path);
    let named = |e: ToolError| -> ToolError {
        match e {
            ToolError::NotFound(pe) => ToolError::NotFound(path_error(
                p,
                format!("{arg}: the image {} cannot be found ({})", path, pe.message),
            )),
            ToolError::Denied(pe) => ToolError::Denied(path_error(
                p,
                format!(
                    "{arg}: the image {path} is outside the folders granted to this call ({}); put it in a granted folder or output/",
                    pe.message
                ),
            )),
            other => other,
        }
    };
    // The sdk's capped read: a regular file, never followed through a link,
    // refused when it grows past the cap while read.
    let bytes = read_capped(p, MAX_IMAGE_BYTES, |size| {
        ToolError::TooLarge(path_error(
            p,
            format!(
                "{arg}: the image is {} MiB; at most {} MiB is embedded (scale it down first)",
                size / (1024 * 1024),
                MAX_IMAGE_BYTES / (1024 * 1024)
            ),
        ))
    })
    .map_err(|e| match e {
        ToolError::InvalidArgs(_) => ToolError::BadContent(path_error(
            p,
            format!("{arg}: is not a regular file (a folder?); give the path of a PNG or JPEG file"),
        )),
        other => named(other),
    })?;
    parse_image(bytes).map_err(|m| ToolError::BadContent(path_error(p, format!("{arg}: the file {m}"))))
}

/// Recognises and measures an image from its bytes.
pub fn parse_image(bytes: Vec<u8>) -> Result<Image, String> {
    let (format, width, height) = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let (w, h) = png_size(&bytes)?;
        (ImageFormat::Png, w, h)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let (w, h) = jpeg_size(&bytes)?;
        (ImageFormat::Jpeg, w, h)
    } else if bytes.is_empty() {
        return Err("is empty; give a PNG or JPEG image".into());
    } else {
        return Err("is not a PNG or JPEG image (its first bytes match neither); convert it to PNG or JPEG".into());
    };
    if width == 0 || height == 0 || width > MAX_IMAGE_PIXELS || height > MAX_IMAGE_PIXELS {
        return Err(format!(
            "claims {width} x {height} pixels; a side must be 1 to {MAX_IMAGE_PIXELS}"
        ));
    }
    Ok(Image {
        bytes,
        format,
        width,
        height,
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Width and height from IHDR; the file must end with its IEND chunk, so a
/// truncated download is caught here and not as a broken picture later.
fn png_size(b: &[u8]) -> Result<(u32, u32), String> {
    if b.get(12..16) != Some(b"IHDR") {
        return Err("is a damaged PNG (no IHDR header chunk)".into());
    }
    let (Some(w), Some(h)) = (be32(b, 16), be32(b, 20)) else {
        return Err("is a truncated PNG (its header is cut short)".into());
    };
    let tail = b.len().saturating_sub(12);
    if b.len() < 45 || b.get(tail + 4..tail + 8) != Some(b"IEND") {
        return Err("is a truncated or damaged PNG (it does not end with an IEND chunk)".into());
    }
    Ok((w, h))
}

/// Width and height from the first start-of-frame marker; the file must
/// hold an end-of-image marker after it.
fn jpeg_size(b: &[u8]) -> Result<(u32, u32), String> {
    let mut i = 2;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return Err("is a damaged JPEG (a marker is missing)".into());
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        // Markers without a length: RSTn, SOI, TEM.
        if (0xD0..=0xD8).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let (Some(&h1), Some(&h0), Some(&w1), Some(&w0)) = (b.get(i + 5), b.get(i + 6), b.get(i + 7), b.get(i + 8))
            else {
                return Err("is a truncated JPEG (its frame header is cut short)".into());
            };
            let has_end = b[i..].windows(2).any(|w| w == [0xFF, 0xD9]);
            if !has_end {
                return Err("is a truncated JPEG (no end-of-image marker)".into());
            }
            return Ok((
                u32::from(u16::from_be_bytes([w1, w0])),
                u32::from(u16::from_be_bytes([h1, h0])),
            ));
        }
        if marker == 0xD9 || marker == 0xDA || len < 2 {
            break;
        }
        i += 2 + len;
    }
    Err("is a truncated or damaged JPEG (no frame header with its size)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid 40 x 20 PNG.
    const PNG: &[u8] = include_bytes!("../tests/gradient-40x20.png");

    #[test]
    fn png_is_measured_and_truncation_caught() {
        let img = parse_image(PNG.to_vec()).unwrap();
        assert_eq!((img.format, img.width, img.height), (ImageFormat::Png, 40, 20));
        let err = parse_image(PNG[..PNG.len() - 5].to_vec()).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn jpeg_is_measured_from_its_frame_header() {
        // SOI, APP0 (len 16), SOF0 (len 17) 480 x 640, then EOI.
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        j.extend_from_slice(&[0; 14]);
        j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03]);
        j.extend_from_slice(&[0; 9]);
        j.extend_from_slice(&[0xFF, 0xD9]);
        let img = parse_image(j.clone()).unwrap();
        assert_eq!((img.format, img.width, img.height), (ImageFormat::Jpeg, 640, 480));
        j.truncate(j.len() - 2);
        assert!(parse_image(j).unwrap_err().contains("truncated"));
    }

    #[test]
    fn other_files_are_refused() {
        assert!(
            parse_image(b"%PDF-1.7".to_vec())
                .unwrap_err()
                .contains("not a PNG or JPEG")
        );
        assert!(parse_image(Vec::new()).unwrap_err().contains("empty"));
    }

    #[test]
    fn fitting_keeps_the_aspect_ratio() {
        let img = Image {
            bytes: Vec::new(),
            format: ImageFormat::Png,
            width: 2000,
            height: 1000,
        };
        let (w, h) = img.fit(None, 5_000_000, 10_000_000);
        assert_eq!(w, 5_000_000);
        assert_eq!(h, 2_500_000);
        let (w, h) = img.fit(Some(50.0), 5_000_000, 10_000_000);
        assert_eq!((w, h), (1_800_000, 900_000));
    }
}
