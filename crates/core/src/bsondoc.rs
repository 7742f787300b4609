//! BSON documents with an explicit `_id`: how records, events and counts are stored.

use bson::RawDocumentBuf;
use serde::Serialize;

/// The value's fields as a BSON document (dates as BSON dates), with `_id` first.
pub fn with_id(id: &str, value: &impl Serialize) -> Result<RawDocumentBuf, String> {
    let body = bson::to_raw_document_buf(value).map_err(|e| e.to_string())?;
    let mut doc = RawDocumentBuf::new();
    doc.append("_id", id);
    for element in body.iter() {
        let (k, v) = element.map_err(|e| e.to_string())?;
        if k != "_id" {
            doc.append(k, v.to_raw_bson());
        }
    }
    Ok(doc)
}
