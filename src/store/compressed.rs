//! Compressed event rows: a row's `event.original` and packed fields, compressed together with a zstd dictionary
//! trained on the database's own first lines.
//!
//! A line alone is too short for a compressor to find much to repeat in it, but lines of one fleet are alike: the same
//! header shapes, program names, LunaSH phrases, host names and relay address. A dictionary of those, trained once from
//! a sample of the lines stored so far, takes a row's line and fields from about 210 to about 50 bytes.
//!
//! A compressed row holds the BLOB of [`Compressor::compress`] in `original` and an empty `fields`; rows stored before
//! the dictionary (and those compression would not shrink) keep `original` as TEXT. The store expands rows as it reads
//! them (an [`Expander`] with the database's dictionaries), so filters on the line run in Rust, not in SQL.
//!
//! BLOB layout: the dictionary's id (LEB128), the plain length (LEB128), then a zstd frame without magic number,
//! content size, checksum or dictionary id (the first two fields say what those would). The plain bytes are the
//! line's length (LEB128), the line, then the packed fields.

use std::collections::HashMap;
use std::sync::Arc;

use zstd_safe::{CCtx, CDict, CParameter, DCtx, DDict, DParameter, FrameFormat};

/// Lines sampled to train a dictionary (the newest stored, uncompressed ones).
pub const SAMPLE_ROWS: i64 = 10_000;

/// A dictionary's size: past this, larger ones compressed the sample no better (measured on generated Luna traffic:
/// 8 KiB 53 bytes a row, 32 KiB 55).
const DICTIONARY_BYTES: usize = 8 * 1024;

/// zstd's level: 1 and 3 compress a row within a byte of each other; 3 is zstd's default.
const LEVEL: i32 = 3;

/// Why compressing or expanding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressError {
    /// zstd refused (a sample too small or too uniform to train on, a corrupt frame).
    #[error("zstd: {0}")]
    Zstd(&'static str),
    /// The BLOB is not one [`compress`] wrote.
    #[error("compressed row is corrupt: {0}")]
    Corrupt(&'static str),
    /// The row names a dictionary the database does not have.
    #[error("compressed row names dictionary {0}, which the database does not have")]
    UnknownDictionary(i64),
}

fn zstd_error(code: usize) -> CompressError {
    CompressError::Zstd(zstd_safe::get_error_name(code))
}

/// Trains a dictionary on `samples` (each a row's plain bytes, as [`plain_bytes`] lays them out).
pub fn train(samples: &[Vec<u8>]) -> Result<Vec<u8>, CompressError> {
    let sizes: Vec<usize> = samples.iter().map(Vec::len).collect();
    let joined = samples.concat();
    let mut dictionary = Vec::with_capacity(DICTIONARY_BYTES);
    zstd_safe::train_from_buffer(&mut dictionary, &joined, &sizes).map_err(zstd_error)?;
    Ok(dictionary)
}

/// A row's line and packed fields as one run of bytes: the line's length, the line, the fields.
pub fn plain_bytes(original: &str, fields: &[u8], out: &mut Vec<u8>) {
    out.clear();
    push_varint(out, original.len() as u64);
    out.extend_from_slice(original.as_bytes());
    out.extend_from_slice(fields);
}

/// A trained dictionary, ready to compress rows with; shared by the threads that prepare rows.
pub struct Dictionary {
    id: i64,
    compress: CDict<'static>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Dictionary {
    /// The dictionary stored as `id` with these bytes.
    pub fn new(id: i64, bytes: &[u8]) -> Self {
        Dictionary { id, compress: CDict::create(bytes, LEVEL) }
    }

    /// A compressor for one thread at a time.
    pub fn compressor(self: &Arc<Self>) -> Result<Compressor, CompressError> {
        let mut context = CCtx::create();
        for parameter in [
            CParameter::Format(FrameFormat::Magicless),
            CParameter::ContentSizeFlag(false),
            CParameter::ChecksumFlag(false),
            CParameter::DictIdFlag(false),
        ] {
            context.set_parameter(parameter).map_err(zstd_error)?;
        }
        context.ref_cdict(&self.compress).map_err(zstd_error)?;
        Ok(Compressor { context, dictionary: self.clone(), plain: Vec::new() })
    }
}

/// Compresses rows with one dictionary.
pub struct Compressor {
    /// Refers to `dictionary`'s CDict, and so is declared (and dropped) before it.
    context: CCtx<'static>,
    dictionary: Arc<Dictionary>,
    plain: Vec<u8>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor").field("dictionary", &self.dictionary.id).finish_non_exhaustive()
    }
}

impl Compressor {
    /// The BLOB of a row's line and fields, or `None` when it would not be smaller than they are.
    pub fn compress(&mut self, original: &str, fields: &[u8]) -> Option<Vec<u8>> {
        plain_bytes(original, fields, &mut self.plain);
        let mut out = Vec::with_capacity(20 + zstd_safe::compress_bound(self.plain.len()));
        push_varint(&mut out, self.dictionary.id as u64);
        push_varint(&mut out, self.plain.len() as u64);
        let header = out.len();
        let mut frame = std::io::Cursor::new(&mut out);
        frame.set_position(header as u64);
        self.context.compress2(&mut frame, &self.plain).ok()?;
        (out.len() < original.len() + fields.len()).then_some(out)
    }
}

/// Expands compressed rows with the dictionaries it was given.
#[derive(Default)]
pub struct Expander {
    context: Option<DCtx<'static>>,
    dictionaries: HashMap<i64, DDict<'static>>,
}

impl Expander {
    /// An expander for rows compressed with these dictionaries (id, bytes).
    pub fn new(dictionaries: impl IntoIterator<Item = (i64, Vec<u8>)>) -> Self {
        let mut expander = Expander::default();
        for (id, bytes) in dictionaries {
            expander.add(id, &bytes);
        }
        expander
    }

    /// Whether `blob` (a compressed row) names a dictionary this expander has.
    pub fn knows(&self, blob: &[u8]) -> bool {
        read_varint(blob, &mut 0).is_some_and(|id| self.dictionaries.contains_key(&(id as i64)))
    }

    /// Adds a dictionary (a newly trained one).
    pub fn add(&mut self, id: i64, bytes: &[u8]) {
        self.dictionaries.insert(id, DDict::create(bytes));
    }

    /// The line and packed fields of a compressed row.
    pub fn expand(&mut self, blob: &[u8]) -> Result<(String, Vec<u8>), CompressError> {
        let mut at = 0;
        let id = read_varint(blob, &mut at).ok_or(CompressError::Corrupt("no dictionary id"))? as i64;
        let plain_len = read_varint(blob, &mut at).ok_or(CompressError::Corrupt("no length"))?;
        let plain_len = usize::try_from(plain_len)
            .ok()
            .filter(|len| *len <= MAX_PLAIN_BYTES)
            .ok_or(CompressError::Corrupt("length out of range"))?;
        let dictionary = self.dictionaries.get(&id).ok_or(CompressError::UnknownDictionary(id))?;
        let context = match &mut self.context {
            Some(context) => context,
            None => {
                let mut context = DCtx::create();
                context.set_parameter(DParameter::Format(FrameFormat::Magicless)).map_err(zstd_error)?;
                self.context.insert(context)
            }
        };
        let mut plain = Vec::with_capacity(plain_len);
        context.decompress_using_ddict(&mut plain, &blob[at..], dictionary).map_err(zstd_error)?;
        if plain.len() != plain_len {
            return Err(CompressError::Corrupt("length differs from the stored one"));
        }
        let mut at = 0;
        let line_len = read_varint(&plain, &mut at)
            .and_then(|len| usize::try_from(len).ok())
            .filter(|len| at.checked_add(*len).is_some_and(|end| end <= plain.len()))
            .ok_or(CompressError::Corrupt("line length out of range"))?;
        let original = std::str::from_utf8(&plain[at..at + line_len])
            .map_err(|_| CompressError::Corrupt("line is not UTF-8"))?
            .to_owned();
        Ok((original, plain[at + line_len..].to_vec()))
    }
}

/// The largest plain row accepted when expanding: a line is capped far below this (`limits.max_line`), so a larger
/// stored length is corruption, not something to allocate.
const MAX_PLAIN_BYTES: usize = 64 << 20;

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(count: usize) -> Vec<String> {
        (0..count)
            .map(|n| {
                format!(
                    "<174>1 2026-01-10T08:{:02}:{:02}.{:03}Z hsm-{:02} lunash {} - - info : 0 : Command: partition \
                     show -partition par{} : operator : 10.{}.{}.{}/{}",
                    n / 60 % 60,
                    n % 60,
                    n % 1000,
                    n % 50,
                    1000 + n % 9000,
                    n % 40,
                    n % 4,
                    n * 7 % 256,
                    n * 13 % 256,
                    40000 + n % 20000
                )
            })
            .collect()
    }

    /// A dictionary trained on `rows`, each with the same few bytes of fields.
    fn dictionary_bytes(rows: &[String]) -> Vec<u8> {
        let mut plain = Vec::new();
        let samples: Vec<Vec<u8>> = rows
            .iter()
            .map(|line| {
                plain_bytes(line, FIELDS, &mut plain);
                plain.clone()
            })
            .collect();
        train(&samples).unwrap()
    }

    const FIELDS: &[u8] = b"\x01\x0cfields";

    #[test]
    fn rows_come_back_as_they_went_in_and_several_times_smaller() {
        let rows = lines(3000);
        let bytes = dictionary_bytes(&rows[..2000]);
        let dictionary = Arc::new(Dictionary::new(7, &bytes));
        let mut compressor = dictionary.compressor().unwrap();
        let mut expander = Expander::new([(7, bytes.clone())]);
        let (mut plain, mut stored) = (0, 0);
        for line in &rows[2000..] {
            let blob = compressor.compress(line, FIELDS).expect("a row like the sample shrinks");
            plain += line.len() + FIELDS.len();
            stored += blob.len();
            let (original, back) = expander.expand(&blob).unwrap();
            assert_eq!((original.as_str(), back.as_slice()), (line.as_str(), FIELDS));
        }
        assert!(stored * 2 < plain, "{stored} bytes stored for {plain}");
    }

    #[test]
    fn a_row_compression_cannot_shrink_is_left_alone() {
        let rows = lines(2000);
        let dictionary = Arc::new(Dictionary::new(1, &dictionary_bytes(&rows)));
        assert_eq!(dictionary.compressor().unwrap().compress("", b""), None);
    }

    #[test]
    fn corrupt_and_unknown_blobs_are_errors_not_panics() {
        let rows = lines(2000);
        let bytes = dictionary_bytes(&rows);
        let blob = Arc::new(Dictionary::new(7, &bytes)).compressor().unwrap().compress(&rows[5], FIELDS).unwrap();
        assert_eq!(Expander::default().expand(&blob).unwrap_err(), CompressError::UnknownDictionary(7));
        let mut expander = Expander::new([(7, bytes)]);
        for end in 0..blob.len() {
            assert!(expander.expand(&blob[..end]).is_err(), "cut at {end}");
        }
        let mut flipped = blob.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x55;
        let _ = expander.expand(&flipped);
        let mut huge = vec![7];
        push_varint(&mut huge, u64::MAX);
        assert!(expander.expand(&huge).is_err());
    }
}
