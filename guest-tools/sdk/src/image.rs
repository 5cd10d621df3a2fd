//! The one check every document writer (docx, pptx and the pdf report) makes
//! of an image before it embeds it, so that a picture one writer refuses is
//! refused by all of them, in the same words: a PNG or JPEG by its signature,
//! at most [`MAX_IMAGE_PIXELS`] pixels, and not damaged (a PNG is decoded
//! row by row to its end; a JPEG's segments are walked to its end-of-image
//! marker).

use std::path::Path;

use crate::{ToolError, path_error, read_capped};

/// The largest image file a document embeds.
pub const MAX_IMAGE_BYTES: u64 = 64 * 1024 * 1024;
/// The most pixels one image may have (about an 8000 by 6000 photo).
pub const MAX_IMAGE_PIXELS: u64 = 50_000_000;

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

/// What [`inspect`] found: the format and the size in pixels; for a JPEG,
/// its colour components (1, 3 or 4) and whether an Adobe segment marks
/// inverted CMYK, which a PDF has to be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub components: u8,
    pub adobe: bool,
}

/// Checks an image's bytes. The error completes a sentence that names the
/// image ("the image photo.png …") and says what to do about it.
pub fn inspect(bytes: &[u8]) -> Result<ImageInfo, String> {
    let info = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png_info(bytes)?
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        jpeg_info(bytes)?
    } else if bytes.is_empty() {
        return Err("is empty; give a PNG or JPEG image".into());
    } else {
        return Err("is not a PNG or JPEG image (its first bytes match neither); convert it to PNG or JPEG".into());
    };
    Ok(info)
}

/// Reads the image file at `path` under [`MAX_IMAGE_BYTES`] and checks it
/// with [`inspect`]. `arg` names the argument that gave the path (e.g.
/// `blocks[3].path`), so the model knows which one to fix.
pub fn read_image(path: &Path, arg: &str) -> Result<(Vec<u8>, ImageInfo), ToolError> {
    let bytes = read_image_file(path, arg)?;
    let info = inspect(&bytes).map_err(|m| ToolError::BadContent(named(path, arg, &m)))?;
    Ok((bytes, info))
}

/// Reads the image file at `path` under [`MAX_IMAGE_BYTES`], for a writer
/// that runs [`inspect`] itself where it embeds the bytes.
pub fn read_image_file(path: &Path, arg: &str) -> Result<Vec<u8>, ToolError> {
    read_capped(path, MAX_IMAGE_BYTES, |size| {
        ToolError::TooLarge(named(
            path,
            arg,
            &format!(
                "is {} MiB; at most {} MiB is embedded (scale it down first)",
                size.div_ceil(1024 * 1024),
                MAX_IMAGE_BYTES / (1024 * 1024)
            ),
        ))
    })
    .map_err(|e| match e {
        ToolError::NotFound(pe) => ToolError::NotFound(named(path, arg, &format!("cannot be found ({})", pe.message))),
        ToolError::Denied(pe) => ToolError::Denied(named(
            path,
            arg,
            &format!(
                "is outside the folders granted to this call ({}); put it in a granted folder or output/",
                pe.message
            ),
        )),
        ToolError::InvalidArgs(_) => ToolError::BadContent(named(
            path,
            arg,
            "is not a regular file (a folder?); give the path of a PNG or JPEG file",
        )),
        other => other,
    })
}

/// `blocks[3].path: the image photo.png is ...`
fn named(path: &Path, arg: &str, problem: &str) -> crate::PathError {
    path_error(path, format!("{arg}: the image {} {problem}", path.display()))
}

fn check_pixels(format: &str, width: u32, height: u32) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("is a damaged {format}: it claims {width} by {height} pixels"));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_IMAGE_PIXELS {
        return Err(format!(
            "is {width} by {height} pixels; images of up to {MAX_IMAGE_PIXELS} pixels (about 8000 by 6000) are \
             embedded: scale it down first"
        ));
    }
    Ok(())
}

/// The header's size, then every row decoded and the chunks read to IEND,
/// holding one row at a time: damaged or truncated data fails here.
fn png_info(bytes: &[u8]) -> Result<ImageInfo, String> {
    let damaged = |e: png::DecodingError| match e {
        png::DecodingError::IoError(_) => format!("is a truncated PNG ({e})"),
        _ => format!("is a damaged PNG ({e})"),
    };
    let decoder = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), png::Limits { bytes: 64 << 20 });
    let mut reader = decoder.read_info().map_err(damaged)?;
    let (width, height, channels) = {
        let info = reader.info();
        (info.width, info.height, info.color_type.samples())
    };
    check_pixels("PNG", width, height)?;
    while reader.next_row().map_err(damaged)?.is_some() {}
    reader.finish().map_err(damaged)?;
    Ok(ImageInfo {
        format: ImageFormat::Png,
        width,
        height,
        components: u8::try_from(channels).unwrap_or(u8::MAX),
        adobe: false,
    })
}

/// The frame header's size and components, every segment's length checked
/// up to the scan, and an end-of-image marker after it.
fn jpeg_info(b: &[u8]) -> Result<ImageInfo, String> {
    let mut i = 2;
    let mut adobe = false;
    let mut frame = None;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return Err("is a damaged JPEG (a marker is missing where one belongs)".into());
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
        if marker == 0xD9 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if len < 2 || i + 2 + len > b.len() {
            return Err("is a truncated JPEG (a segment runs past the end of the file)".into());
        }
        let seg = &b[i + 4..i + 2 + len];
        if marker == 0xEE && seg.starts_with(b"Adobe") {
            adobe = true;
        }
        let is_sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof && frame.is_none() {
            let [_, h1, h0, w1, w0, components, ..] = *seg else {
                return Err("is a damaged JPEG (its frame header is cut short)".into());
            };
            let (height, width) = (u16::from_be_bytes([h1, h0]), u16::from_be_bytes([w1, w0]));
            frame = Some((u32::from(width), u32::from(height), components));
        }
        if marker == 0xDA {
            let Some((width, height, components)) = frame else {
                return Err("is a damaged JPEG (its image data comes before any frame header)".into());
            };
            check_pixels("JPEG", width, height)?;
            if !matches!(components, 1 | 3 | 4) {
                return Err(format!(
                    "is a JPEG with {components} colour components; 1 (gray), 3 (colour) or 4 (CMYK) can be \
                     embedded: convert it"
                ));
            }
            if !b[i..].windows(2).any(|w| w == [0xFF, 0xD9]) {
                return Err("is a truncated JPEG (it has no end-of-image marker)".into());
            }
            return Ok(ImageInfo {
                format: ImageFormat::Jpeg,
                width,
                height,
                components,
                adobe,
            });
        }
        i += 2 + len;
    }
    Err("is a truncated or damaged JPEG (no frame header and image data were found)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG of `width` x `height` gray pixels.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        let mut writer = encoder.write_header().unwrap();
        let data: Vec<u8> = (0..width * height).map(|i| (i % 251) as u8).collect();
        writer.write_image_data(&data).unwrap();
        writer.finish().unwrap();
        out
    }

    /// SOI, APP0, SOF0 of `width` x `height` with `components`, SOS, data, EOI.
    fn jpeg(width: u16, height: u16, components: u8) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        j.extend_from_slice(&[0; 14]);
        j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
        j.extend_from_slice(&height.to_be_bytes());
        j.extend_from_slice(&width.to_be_bytes());
        j.push(components);
        j.extend_from_slice(&[0; 9]);
        j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
        j.extend_from_slice(&[0x12, 0x34, 0x56]);
        j.extend_from_slice(&[0xFF, 0xD9]);
        j
    }

    #[test]
    fn a_good_png_and_jpeg_are_measured() {
        let info = inspect(&png(40, 20)).unwrap();
        assert_eq!(
            (info.format, info.width, info.height, info.components),
            (ImageFormat::Png, 40, 20, 1)
        );
        let info = inspect(&jpeg(640, 480, 3)).unwrap();
        assert_eq!(
            (info.format, info.width, info.height, info.components),
            (ImageFormat::Jpeg, 640, 480, 3)
        );
    }

    #[test]
    fn damaged_png_data_is_refused_even_with_a_sound_header_and_end() {
        let mut bad = png(64, 64);
        // Inside the IDAT data, after the zlib header: the checksum no longer fits.
        let idat = bad.windows(4).position(|w| w == b"IDAT").unwrap();
        for b in &mut bad[idat + 8..idat + 40] {
            *b ^= 0x5A;
        }
        let err = inspect(&bad).unwrap_err();
        assert!(err.contains("damaged PNG"), "{err}");
        let good = png(64, 64);
        let err = inspect(&good[..good.len() - 30]).unwrap_err();
        assert!(err.contains("PNG"), "{err}");
    }

    #[test]
    fn a_20000_by_20000_image_is_refused_before_it_is_decoded() {
        // Only the header says so; the refusal comes before any row is read.
        let mut huge = png(1, 1);
        huge[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let crc = crc32(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = inspect(&huge).unwrap_err();
        assert!(
            err.contains("20000 by 20000 pixels") && err.contains("scale it down"),
            "{err}"
        );
        let err = inspect(&jpeg(20_000, 20_000, 3)).unwrap_err();
        assert!(err.contains("20000 by 20000 pixels"), "{err}");
    }

    #[test]
    fn truncated_or_odd_jpegs_and_other_files_are_refused() {
        let j = jpeg(10, 10, 3);
        assert!(inspect(&j[..j.len() - 2]).unwrap_err().contains("truncated"));
        assert!(inspect(&j[..30]).unwrap_err().contains("truncated"));
        assert!(inspect(&jpeg(10, 10, 2)).unwrap_err().contains("2 colour components"));
        assert!(inspect(&jpeg(0, 10, 3)).unwrap_err().contains("damaged JPEG"));
        assert!(inspect(b"%PDF-1.7").unwrap_err().contains("not a PNG or JPEG"));
        assert!(inspect(b"").unwrap_err().contains("empty"));
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
