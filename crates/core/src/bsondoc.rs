//! BSON documents with an explicit `_id`: how records, events and counts are stored.

use bson::RawDocumentBuf;
use serde::Serialize;

/// A value that does not encode as a BSON document.
#[derive(Debug, thiserror::Error)]
pub enum BsonError {
    #[error("does not serialize as BSON: {0}")]
    Serialize(#[from] bson::ser::Error),
    #[error("malformed BSON: {0}")]
    Raw(#[from] bson::raw::Error),
}

/// The value's fields as a BSON document (dates as BSON dates), with `_id` first.
pub fn with_id(id: &str, value: &impl Serialize) -> Result<RawDocumentBuf, BsonError> {
    let body = bson::to_raw_document_buf(value)?;
    let mut doc = RawDocumentBuf::new();
    doc.append("_id", id);
    for element in body.iter() {
        let (k, v) = element?;
        if k != "_id" {
            doc.append(k, v.to_raw_bson());
        }
    }
    Ok(doc)
}
