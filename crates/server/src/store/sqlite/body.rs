//! Raw report bodies at rest: zstd-compressed BLOBs, read back byte for byte.
//!
//! A report body is about 4 kB of JSON, just more than fits in a 4 kB B-tree page, so
//! stored as text each one took an overflow page of its own; compressed (level 1, about a
//! quarter of its size) it fits in its row's page. The column keeps its `TEXT` declaration:
//! rows written before bodies were compressed are TEXT values, the new ones BLOB values
//! (SQLite keeps a blob a blob whatever the column's affinity), and the value's type is what
//! tells a reader which it holds. A body that could not be compressed is stored as text too.

use std::cell::RefCell;

use sqlx::sqlite::SqliteRow;
use sqlx::Row as _;

use super::super::StoreError;

/// zstd's fastest regular level: report bodies are repetitive JSON and compress to about a
/// quarter at level 1 already; higher levels gain little for the time the handler spends.
const LEVEL: i32 = 1;

thread_local! {
    /// Each thread's compression context, made on its first body and kept: making one per
    /// body (what `zstd::bulk::compress` does) zeroes its tables every time, which cost
    /// more than compressing the body did (7 % of the server's CPU under ingest, session 7).
    /// The context's tables grow to suit the largest body it compressed.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

thread_local! {
    /// Each thread's decompression context, kept for the reason [`COMPRESSOR`] is: the
    /// writer inflates a device's results for every report it stores, and a context made
    /// and freed each time cost more in the allocator than the inflating did.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// `raw` compressed for storage, or `None` to store it as text.
pub fn pack(raw: &str) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut compressor = cell.try_borrow_mut().ok()?;
        if compressor.is_none() {
            *compressor = Some(zstd::bulk::Compressor::new(LEVEL).ok()?);
        }
        compressor.as_mut()?.compress(raw.as_bytes()).ok()
    })
}

/// The SQL that reads a `body` column as two columns, `body_packed` (a compressed body, else
/// NULL) and `body_text` (a body stored as text, else NULL), for [`from_row`].
pub const SELECT_BODY: &str = "CASE WHEN typeof(body) = 'blob' THEN body END AS body_packed, \
     CASE WHEN typeof(body) = 'blob' THEN NULL ELSE body END AS body_text";

/// The body exactly as it was received, from a row that selected [`SELECT_BODY`].
pub fn from_row(row: &SqliteRow) -> Result<String, StoreError> {
    unpack(row.try_get("body_packed")?, row.try_get("body_text")?)
}

/// The body exactly as it was received, from the two columns of [`SELECT_BODY`].
fn unpack(packed: Option<Vec<u8>>, text: Option<String>) -> Result<String, StoreError> {
    match (packed, text) {
        (Some(packed), _) => inflate(&packed, "stored report body"),
        (None, Some(text)) => Ok(text),
        (None, None) => Err(StoreError::Corrupt("stored report body is NULL".into())),
    }
}

/// A value [`pack`] made, as the text it was; `what` names it in the error a damaged one
/// gives.
pub fn inflate(packed: &[u8], what: &str) -> Result<String, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{what}: {e}"));
    // `pack` records the size in the frame; a frame without one, or claiming more than a
    // value this store writes could be, is not one of ours.
    let size = match zstd::zstd_safe::get_frame_content_size(packed) {
        Ok(Some(size)) if size <= MAX_INFLATED => size as usize,
        Ok(Some(size)) => return Err(corrupt(&format!("claims {size} bytes"))),
        Ok(None) => return Err(corrupt(&"no content size")),
        Err(e) => return Err(corrupt(&format!("{e:?}"))),
    };
    let bytes = DECOMPRESSOR.with(|cell| {
        let mut decompressor = cell.try_borrow_mut().map_err(|e| corrupt(&e))?;
        if decompressor.is_none() {
            *decompressor = Some(zstd::bulk::Decompressor::new().map_err(|e| corrupt(&e))?);
        }
        match decompressor.as_mut() {
            Some(d) => d.decompress(packed, size).map_err(|e| corrupt(&e)),
            None => Err(corrupt(&"no decompressor")),
        }
    })?;
    String::from_utf8(bytes).map_err(|e| corrupt(&e))
}

/// The most a packed value may inflate to: far above any body the API accepts.
const MAX_INFLATED: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_comes_back_byte_for_byte_and_smaller() {
        // Odd spacing, key order and escapes an agent might send: none of it may change.
        let raw = format!(
            "{{ \"z\":1,\"a\" : \"caf\\u00e9 \u{1F600}\",\n\"pad\":\"{}\"}}",
            "all quiet ".repeat(400)
        );
        let packed = pack(&raw).unwrap();
        assert!(
            packed.len() < raw.len() / 4,
            "{} of {}",
            packed.len(),
            raw.len()
        );
        assert_eq!(unpack(Some(packed), None).unwrap(), raw);
        assert_eq!(unpack(Some(pack("").unwrap()), None).unwrap(), "");
    }

    #[test]
    fn a_body_stored_as_text_reads_as_it_is() {
        assert_eq!(unpack(None, Some("{\"a\":1}".into())).unwrap(), "{\"a\":1}");
    }

    #[test]
    fn a_damaged_or_missing_body_is_an_error_not_a_panic() {
        let mut packed = pack(&"x".repeat(1000)).unwrap();
        packed.truncate(packed.len() / 2);
        assert!(matches!(
            unpack(Some(packed), None),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            unpack(Some(b"not zstd".to_vec()), None),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(unpack(None, None), Err(StoreError::Corrupt(_))));
    }
}
