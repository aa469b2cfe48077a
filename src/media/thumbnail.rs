//! Making a thumbnail: decode (under [`super::probe::limits`]), turn by the EXIF orientation, shrink
//! to fit [`SIDE`] x [`SIDE`] (never enlarged), flatten transparency onto white, encode as JPEG.
//! CPU-bound and synchronous: the worker runs it on a blocking thread, one at a time per instance,
//! so a gateway never holds more than one decoded image ([`super::probe::MAX_DECODE_BYTES`]).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::probe::{MAX_DECODE_BYTES, limits};

/// A thumbnail fits in a square of this many pixels: a feed card at twice the density of a phone.
pub const SIDE: u32 = 320;
/// JPEG quality: small files (a 320 px photo is 15 to 30 KB) without visible blocks.
const QUALITY: u8 = 80;
/// What the thumbnail is served as.
pub const MIME: &str = "image/jpeg";

/// The thumbnail of an image file, or why none can be made (a damaged file, a format the codecs do
/// not read, a bomb): a permanent failure, never retried.
pub fn make(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    reader.limits(limits());
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(format!("the decoded image would take {} bytes", decoder.total_bytes()));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    img.apply_orientation(orientation);
    let img = if img.width() > SIDE || img.height() > SIDE { img.thumbnail(SIDE, SIDE) } else { img };
    let rgb = flatten(&img);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&rgb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// RGB with transparent parts on white (JPEG has no alpha; dropping it would show black).
fn flatten(img: &DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over_white = |c: u8| {
            let (c, a) = (u16::from(c), u16::from(a));
            u8::try_from((c * a + 255 * (255 - a)) / 255).unwrap_or(u8::MAX)
        };
        image::Rgb([over_white(r), over_white(g), over_white(b)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x % 256) as u8, (y % 256) as u8, 90, 128]));
        let mut out = Vec::new();
        DynamicImage::ImageRgba8(img).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn a_large_image_shrinks_to_fit_and_a_small_one_is_not_enlarged() {
        let thumb = image::load_from_memory(&make(&png(1000, 500)).unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (SIDE, SIDE / 2));
        let thumb = image::load_from_memory(&make(&png(40, 30)).unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (40, 30));
    }

    #[test]
    fn damaged_files_and_bombs_fail_without_panicking() {
        assert!(make(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0junk").is_err());
        assert!(make(&crate::media::probe::tests::png_header(100_000, 100_000)).is_err());
        assert!(make(b"").is_err());
    }
}
