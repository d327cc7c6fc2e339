//! Compression of tar streams: recognizes gzip and zstd by their magic bytes (whatever a file
//! name or media type claims) and undoes them; anything else is passed through as plain tar.

use std::io::{self, BufRead, Read};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Wraps `reader` in the decompressor its first bytes call for.
pub(crate) fn decompress<'a, R: BufRead + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = reader.fill_buf()?;
    if head.starts_with(GZIP_MAGIC) {
        // Go's gzip reader (Docker, containerd) accepts multi-member streams; so do we.
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else if head.starts_with(ZSTD_MAGIC) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(reader)?))
    } else {
        Ok(Box::new(reader))
    }
}
