//! What an upload's header says: an image's pixel size (EXIF rotation applied), a video's pixel
//! size and duration. Headers only: nothing here decodes pixels or frames, so it runs at upload.
//!
//! Every file is hostile. An image whose header declares more than [`MAX_IMAGE_SIDE`] pixels on a
//! side is refused ([`Probe::TooLarge`]): decoding it would take more memory than any photo needs
//! (a "decompression bomb" is a few kilobytes that claim 100,000 x 100,000 pixels). A header that
//! cannot be read is not an error: the file was already checked to be of its kind by its magic
//! bytes; its size is then unknown (null) and the thumbnail worker records the failure.

use std::io::{BufRead, Read, Seek};

use image::{ImageDecoder, ImageReader, Limits};

/// The widest or tallest image accepted, in pixels: above a 48-megapixel phone photo's 8064.
pub const MAX_IMAGE_SIDE: u32 = 10_000;
/// The most memory one decode may allocate (the thumbnail worker's bound): a 10,000 x 10,000 RGB
/// image needs 300 MB, so larger colour depths at that size are refused while decoding.
pub const MAX_DECODE_BYTES: u64 = 320 * 1024 * 1024;

/// The limits every decoder here runs under.
pub fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// What a header told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Details {
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Read(Details),
    /// The header declares more pixels than [`MAX_IMAGE_SIDE`] or [`MAX_DECODE_BYTES`] allow.
    TooLarge,
}

/// An image's size as shown: the header's width and height, swapped when its EXIF orientation
/// turns it a quarter.
pub fn image<R: BufRead + Seek>(reader: R) -> Probe {
    let Ok(mut reader) = ImageReader::new(reader).with_guessed_format() else { return Probe::Read(Details::default()) };
    reader.limits(limits());
    let mut decoder = match reader.into_decoder() {
        Ok(d) => d,
        Err(image::ImageError::Limits(_)) => return Probe::TooLarge,
        Err(_) => return Probe::Read(Details::default()),
    };
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Probe::TooLarge;
    }
    let (w, h) = decoder.dimensions();
    let turned = matches!(
        decoder.orientation(),
        Ok(image::metadata::Orientation::Rotate90
            | image::metadata::Orientation::Rotate270
            | image::metadata::Orientation::Rotate90FlipH
            | image::metadata::Orientation::Rotate270FlipH)
    );
    let (w, h) = if turned { (h, w) } else { (w, h) };
    Probe::Read(Details { width: i32::try_from(w).ok(), height: i32::try_from(h).ok(), duration_ms: None })
}

/// An MP4 or QuickTime video's display size and duration from its `moov` box (the first video
/// track; the size as the track header shows it, turned by its matrix). WebM, and files the parser
/// does not understand, give nulls.
pub fn video<R: Read>(reader: &mut R) -> Details {
    let Ok(context) = mp4parse::read_mp4(reader) else { return Details::default() };
    let Some(track) = context.tracks.iter().find(|t| t.track_type == mp4parse::TrackType::Video) else {
        return Details::default();
    };
    let duration_ms = match (track.duration, track.timescale) {
        (Some(d), Some(scale)) if scale.0 > 0 => i64::try_from(u128::from(d.0) * 1000 / u128::from(scale.0)).ok(),
        _ => None,
    };
    let (mut w, mut h) = match &track.tkhd {
        // 16.16 fixed point.
        Some(tkhd) if tkhd.width >> 16 > 0 && tkhd.height >> 16 > 0 => (tkhd.width >> 16, tkhd.height >> 16),
        _ => coded_size(track).unwrap_or((0, 0)),
    };
    if let Some(tkhd) = &track.tkhd
        && tkhd.matrix.a == 0
        && tkhd.matrix.d == 0
    {
        // A quarter turn (portrait phone video): the matrix has only its b and c terms.
        std::mem::swap(&mut w, &mut h);
    }
    let side = |n: u32| (n > 0).then(|| i32::try_from(n).ok()).flatten();
    Details { width: side(w), height: side(h), duration_ms }
}

/// The size coded in the sample description, when the track header has none.
fn coded_size(track: &mp4parse::Track) -> Option<(u32, u32)> {
    track.stsd.as_ref()?.descriptions.iter().find_map(|d| match d {
        mp4parse::SampleEntry::Video(v) => Some((u32::from(v.width), u32::from(v.height))),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    /// A PNG that declares `w` x `h` pixels and holds none.
    pub(crate) fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend_from_slice(&13u32.to_be_bytes());
        out.extend_from_slice(&ihdr);
        out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        out
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for b in bytes {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn a_header_gives_the_size_and_a_bomb_is_refused() {
        let mut real = Cursor::new(Vec::new());
        image::DynamicImage::new_rgb8(640, 480).write_to(&mut real, image::ImageFormat::Png).unwrap();
        assert_eq!(
            image(Cursor::new(real.into_inner())),
            Probe::Read(Details { width: Some(640), height: Some(480), duration_ms: None })
        );
        assert_eq!(image(Cursor::new(png_header(100_000, 100_000))), Probe::TooLarge);
        assert_eq!(image(Cursor::new(png_header(MAX_IMAGE_SIDE + 1, 10))), Probe::TooLarge);
        assert_eq!(image(Cursor::new(b"\x89PNG\r\n\x1a\ngarbage".to_vec())), Probe::Read(Details::default()));
    }

    fn mp4_box(kind: &[u8; 4], parts: &[&[u8]]) -> Vec<u8> {
        let payload = parts.concat();
        let mut out = u32::try_from(payload.len() + 8).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(&payload);
        out
    }

    /// The `moov` of a 1920x1080 video track of `seconds`, at 90 kHz, turned a quarter if `portrait`.
    fn mp4(seconds: u32, portrait: bool) -> Vec<u8> {
        let one = 0x0001_0000_i32;
        let matrix: [i32; 9] = if portrait {
            [0, one, 0, -one, 0, 0, 0, 0, 0x4000_0000]
        } else {
            [one, 0, 0, 0, one, 0, 0, 0, 0x4000_0000]
        };
        let matrix: Vec<u8> = matrix.iter().flat_map(|v| v.to_be_bytes()).collect();
        let mut mvhd = vec![0u8; 12];
        mvhd.extend_from_slice(&1000u32.to_be_bytes());
        mvhd.extend_from_slice(&(seconds * 1000).to_be_bytes());
        mvhd.extend_from_slice(&[0, 1, 0, 0, 1, 0]);
        mvhd.extend_from_slice(&[0; 10]);
        mvhd.extend_from_slice(&matrix);
        mvhd.extend_from_slice(&[0; 24]);
        mvhd.extend_from_slice(&2u32.to_be_bytes());
        let mut tkhd = vec![0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        tkhd.extend_from_slice(&(seconds * 1000).to_be_bytes());
        tkhd.extend_from_slice(&[0; 16]);
        tkhd.extend_from_slice(&matrix);
        tkhd.extend_from_slice(&(1920u32 << 16).to_be_bytes());
        tkhd.extend_from_slice(&(1080u32 << 16).to_be_bytes());
        let mut mdhd = vec![0u8; 12];
        mdhd.extend_from_slice(&90_000u32.to_be_bytes());
        mdhd.extend_from_slice(&(seconds * 90_000 + 4_500).to_be_bytes());
        mdhd.extend_from_slice(&[0x55, 0xc4, 0, 0]);
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(b"vide");
        hdlr.extend_from_slice(&[0; 12]);
        hdlr.extend_from_slice(b"video\0");
        let mdia = mp4_box(b"mdia", &[&mp4_box(b"mdhd", &[&mdhd]), &mp4_box(b"hdlr", &[&hdlr])]);
        let trak = mp4_box(b"trak", &[&mp4_box(b"tkhd", &[&tkhd]), &mdia]);
        let moov = mp4_box(b"moov", &[&mp4_box(b"mvhd", &[&mvhd]), &trak]);
        let ftyp = mp4_box(b"ftyp", &[b"isom\0\0\x02\0isomiso2mp41"]);
        let mdat = mp4_box(b"mdat", &[&[7u8; 64]]);
        [ftyp, moov, mdat].concat()
    }

    #[test]
    fn a_video_header_gives_its_size_and_duration() {
        let landscape = video(&mut Cursor::new(mp4(12, false)));
        assert_eq!(landscape, Details { width: Some(1920), height: Some(1080), duration_ms: Some(12_050) });
        let portrait = video(&mut Cursor::new(mp4(3, true)));
        assert_eq!(portrait, Details { width: Some(1080), height: Some(1920), duration_ms: Some(3_050) });
    }

    #[test]
    fn a_video_without_a_readable_moov_has_no_details() {
        let mut junk = Cursor::new(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2mp41\x07\x07\x07\x07".to_vec());
        assert_eq!(video(&mut junk), Details::default());
    }
}
