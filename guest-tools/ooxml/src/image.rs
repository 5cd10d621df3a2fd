//! PNG and JPEG files for embedding in docx and pptx: read and checked by
//! the sdk's image check ([`deskhand_guest::image`]), the same one the pdf
//! report makes, so a picture one writer refuses every writer refuses.

use std::path::Path;

use deskhand_guest::ToolError;
pub use deskhand_guest::image::{ImageFormat, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS};

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

/// Reads and checks the PNG or JPEG file at `path`; `arg` names the argument
/// in errors (e.g. `blocks[3].path`).
pub fn read_image(path: &str, arg: &str) -> Result<Image, ToolError> {
    let (bytes, info) = deskhand_guest::image::read_image(Path::new(path), arg)?;
    Ok(Image {
        bytes,
        format: info.format,
        width: info.width,
        height: info.height,
    })
}

/// Checks and measures an image from its bytes.
pub fn parse_image(bytes: Vec<u8>) -> Result<Image, String> {
    let info = deskhand_guest::image::inspect(&bytes)?;
    Ok(Image {
        bytes,
        format: info.format,
        width: info.width,
        height: info.height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid 40 x 20 PNG.
    const PNG: &[u8] = include_bytes!("../tests/gradient-40x20.png");

    #[test]
    fn a_png_is_measured_by_the_shared_check() {
        let img = parse_image(PNG.to_vec()).unwrap();
        assert_eq!((img.format, img.width, img.height), (ImageFormat::Png, 40, 20));
        let err = parse_image(PNG[..PNG.len() - 5].to_vec()).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
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
