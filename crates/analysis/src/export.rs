//! Collections to CSV or Parquet, for notebooks.
//!
//! Nested documents become dotted columns (`author.id`, `sentiment.vader.compound`);
//! arrays become JSON text. The columns and their types come from the first documents
//! (up to [`SCHEMA_SAMPLE`]); a field that first appears later is left out and named in
//! the summary, and a value that does not fit its column's type is written as empty and
//! counted — nothing is dropped silently. Documents are written in the collection's
//! natural order; sort in the notebook.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bson::{Bson, Document, doc};
use cashtag_core::collections;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::Database;
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde::Serialize;

use crate::AnalysisError;

/// Documents looked at to decide the columns.
pub const SCHEMA_SAMPLE: usize = 10_000;
/// Rows per Parquet row group.
const ROW_GROUP: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            _ => Err(format!("unknown format {s:?}: csv or parquet")),
        }
    }
}

/// The field `--from/--to` filter on, by collection.
pub fn default_time_field(collection: &str) -> Option<&'static str> {
    match collection {
        collections::POSTS => Some("created_at"),
        collections::TRADES | collections::QUOTES => Some("ts"),
        collections::BARS => Some("start"),
        collections::EVENTS => Some("at"),
        collections::COUNTS | collections::SENTIMENT_1M | collections::PRICE_1M => Some("minute"),
        collections::PREDICTIONS => Some("made_at"),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub collection: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Overrides [`default_time_field`].
    pub time_field: Option<String>,
    pub format: Format,
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Int,
    Float,
    Bool,
    Time,
    Text,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub path: String,
    pub rows: u64,
    pub columns: Vec<(String, ColumnType)>,
    /// Fields first seen after the schema sample, left out.
    pub left_out_fields: Vec<String>,
    /// Values that did not fit their column's type, written as empty.
    pub type_mismatches: u64,
}

fn flatten_into(prefix: &str, d: &Document, out: &mut Vec<(String, Bson)>) {
    for (k, v) in d {
        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Bson::Document(inner) => flatten_into(&name, inner, out),
            other => out.push((name, other.clone())),
        }
    }
}

/// A document as (dotted column, value) pairs.
pub fn flatten(d: &Document) -> Vec<(String, Bson)> {
    let mut out = Vec::new();
    flatten_into("", d, &mut out);
    out
}

fn kind(v: &Bson) -> Option<ColumnType> {
    match v {
        Bson::Null | Bson::Undefined => None,
        Bson::Int32(_) | Bson::Int64(_) => Some(ColumnType::Int),
        Bson::Double(_) => Some(ColumnType::Float),
        Bson::Boolean(_) => Some(ColumnType::Bool),
        Bson::DateTime(_) => Some(ColumnType::Time),
        _ => Some(ColumnType::Text),
    }
}

fn merge(a: Option<ColumnType>, b: ColumnType) -> ColumnType {
    use ColumnType::*;
    match (a, b) {
        (None, b) => b,
        (Some(a), b) if a == b => a,
        (Some(Int), Float) | (Some(Float), Int) => Float,
        _ => Text,
    }
}

/// Column names in first-seen order and their types, from a sample of documents.
pub fn infer(sample: &[Vec<(String, Bson)>]) -> Vec<(String, ColumnType)> {
    let mut order: Vec<String> = Vec::new();
    let mut types: BTreeMap<String, Option<ColumnType>> = BTreeMap::new();
    for row in sample {
        for (k, v) in row {
            let slot = types.entry(k.clone()).or_insert_with(|| {
                order.push(k.clone());
                None
            });
            if let Some(t) = kind(v) {
                *slot = Some(merge(*slot, t));
            }
        }
    }
    order
        .into_iter()
        .map(|k| {
            let t = types[&k].unwrap_or(ColumnType::Text);
            (k, t)
        })
        .collect()
}

/// A value in a column's type; `Err` when it does not fit (written as empty).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Milliseconds since the epoch.
    Time(i64),
    Text(String),
}

fn text_of(v: &Bson) -> String {
    match v {
        Bson::String(s) => s.clone(),
        Bson::ObjectId(o) => o.to_hex(),
        Bson::DateTime(d) => cashtag_core::time::rfc3339(&d.to_chrono()),
        other => other.clone().into_relaxed_extjson().to_string(),
    }
}

/// A value that does not fit its column's type (written as an empty cell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeMismatch;

pub fn cell(v: Option<&Bson>, t: ColumnType) -> Result<Cell, TypeMismatch> {
    let Some(v) = v else { return Ok(Cell::Empty) };
    Ok(match (t, v) {
        (_, Bson::Null | Bson::Undefined) => Cell::Empty,
        (ColumnType::Int, Bson::Int32(i)) => Cell::Int(*i as i64),
        (ColumnType::Int, Bson::Int64(i)) => Cell::Int(*i),
        (ColumnType::Float, Bson::Double(f)) => Cell::Float(*f),
        (ColumnType::Float, Bson::Int32(i)) => Cell::Float(*i as f64),
        (ColumnType::Float, Bson::Int64(i)) => Cell::Float(*i as f64),
        (ColumnType::Bool, Bson::Boolean(b)) => Cell::Bool(*b),
        (ColumnType::Time, Bson::DateTime(d)) => Cell::Time(d.timestamp_millis()),
        (ColumnType::Text, v) => Cell::Text(text_of(v)),
        _ => return Err(TypeMismatch),
    })
}

fn cell_text(c: &Cell) -> String {
    match c {
        Cell::Empty => String::new(),
        Cell::Int(i) => i.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Time(ms) => {
            DateTime::from_timestamp_millis(*ms).map(|d| cashtag_core::time::rfc3339(&d)).unwrap_or_default()
        }
        Cell::Text(s) => s.clone(),
    }
}

/// Where rows go.
trait RowSink {
    fn write(&mut self, rows: &[Vec<Cell>]) -> Result<(), AnalysisError>;
    fn finish(self: Box<Self>) -> Result<(), AnalysisError>;
}

struct CsvSink {
    w: BufWriter<File>,
    path: String,
}

impl CsvSink {
    fn create(path: &Path, columns: &[(String, ColumnType)]) -> Result<Self, AnalysisError> {
        let io = |source| AnalysisError::Io { path: path.display().to_string(), source };
        let mut w = BufWriter::new(File::create(path).map_err(io)?);
        let mut line = String::new();
        for (i, (c, _)) in columns.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            crate::csv::push_field(&mut line, c);
        }
        line.push('\n');
        w.write_all(line.as_bytes()).map_err(io)?;
        Ok(CsvSink { w, path: path.display().to_string() })
    }
}

impl RowSink for CsvSink {
    fn write(&mut self, rows: &[Vec<Cell>]) -> Result<(), AnalysisError> {
        let mut s = String::new();
        for r in rows {
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                crate::csv::push_field(&mut s, &cell_text(c));
            }
            s.push('\n');
        }
        self.w.write_all(s.as_bytes()).map_err(|source| AnalysisError::Io { path: self.path.clone(), source })
    }

    fn finish(mut self: Box<Self>) -> Result<(), AnalysisError> {
        self.w.flush().map_err(|source| AnalysisError::Io { path: self.path.clone(), source })
    }
}

struct ParquetSink {
    writer: SerializedFileWriter<File>,
    types: Vec<ColumnType>,
}

/// The Parquet schema: every column optional; times are UTC milliseconds.
pub fn parquet_schema(columns: &[(String, ColumnType)]) -> Result<Type, AnalysisError> {
    let fields = columns
        .iter()
        .map(|(name, t)| {
            let (physical, logical) = match t {
                ColumnType::Int => (Physical::INT64, None),
                ColumnType::Float => (Physical::DOUBLE, None),
                ColumnType::Bool => (Physical::BOOLEAN, None),
                ColumnType::Time => (Physical::INT64, Some(LogicalType::timestamp(true, TimeUnit::MILLIS))),
                ColumnType::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
            };
            Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Type::group_type_builder("schema").with_fields(fields).build()?)
}

impl ParquetSink {
    fn create(path: &Path, columns: &[(String, ColumnType)]) -> Result<Self, AnalysisError> {
        let file =
            File::create(path).map_err(|source| AnalysisError::Io { path: path.display().to_string(), source })?;
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let writer = SerializedFileWriter::new(file, Arc::new(parquet_schema(columns)?), Arc::new(props))?;
        Ok(ParquetSink { writer, types: columns.iter().map(|c| c.1).collect() })
    }
}

impl RowSink for ParquetSink {
    fn write(&mut self, rows: &[Vec<Cell>]) -> Result<(), AnalysisError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut rg = self.writer.next_row_group()?;
        let mut ci = 0;
        while let Some(mut col) = rg.next_column()? {
            let defs: Vec<i16> = rows.iter().map(|r| i16::from(r[ci] != Cell::Empty)).collect();
            let cells = rows.iter().map(|r| &r[ci]);
            match self.types[ci] {
                ColumnType::Int | ColumnType::Time => {
                    let v: Vec<i64> = cells
                        .filter_map(|c| if let Cell::Int(x) | Cell::Time(x) = c { Some(*x) } else { None })
                        .collect();
                    col.typed::<Int64Type>().write_batch(&v, Some(&defs), None)?;
                }
                ColumnType::Float => {
                    let v: Vec<f64> =
                        cells.filter_map(|c| if let Cell::Float(x) = c { Some(*x) } else { None }).collect();
                    col.typed::<DoubleType>().write_batch(&v, Some(&defs), None)?;
                }
                ColumnType::Bool => {
                    let v: Vec<bool> =
                        cells.filter_map(|c| if let Cell::Bool(x) = c { Some(*x) } else { None }).collect();
                    col.typed::<BoolType>().write_batch(&v, Some(&defs), None)?;
                }
                ColumnType::Text => {
                    let v: Vec<ByteArray> = cells
                        .filter_map(|c| if let Cell::Text(x) = c { Some(ByteArray::from(x.as_str())) } else { None })
                        .collect();
                    col.typed::<ByteArrayType>().write_batch(&v, Some(&defs), None)?;
                }
            }
            col.close()?;
            ci += 1;
        }
        rg.close()?;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), AnalysisError> {
        self.writer.close()?;
        Ok(())
    }
}

/// The filter of an export.
pub fn filter(spec: &ExportSpec) -> Result<Document, AnalysisError> {
    if spec.from.is_none() && spec.to.is_none() {
        return Ok(doc! {});
    }
    let field = spec.time_field.as_deref().or(default_time_field(&spec.collection)).ok_or_else(|| {
        AnalysisError::Input(format!(
            "collection {:?} has no known time field; pass --time-field to use --from/--to",
            spec.collection
        ))
    })?;
    let mut range = Document::new();
    if let Some(f) = spec.from {
        range.insert("$gte", bson::DateTime::from_chrono(f));
    }
    if let Some(t) = spec.to {
        range.insert("$lt", bson::DateTime::from_chrono(t));
    }
    Ok(doc! { field: range })
}

/// Exports the documents of a collection; `progress` is called with the rows written so far.
pub async fn export(
    db: &Database,
    spec: &ExportSpec,
    mut progress: impl FnMut(u64),
) -> Result<ExportSummary, AnalysisError> {
    let mut cursor = db.collection::<Document>(&spec.collection).find(filter(spec)?).await?;
    let mut sample: Vec<Vec<(String, Bson)>> = Vec::new();
    while sample.len() < SCHEMA_SAMPLE {
        match cursor.try_next().await? {
            Some(d) => sample.push(flatten(&d)),
            None => break,
        }
    }
    let columns = infer(&sample);
    let index: BTreeMap<&str, usize> = columns.iter().enumerate().map(|(i, (c, _))| (c.as_str(), i)).collect();
    let mut sink: Box<dyn RowSink> = match spec.format {
        Format::Csv => Box::new(CsvSink::create(&spec.out, &columns)?),
        Format::Parquet => Box::new(ParquetSink::create(&spec.out, &columns)?),
    };
    let mut summary = ExportSummary {
        path: spec.out.display().to_string(),
        rows: 0,
        columns: columns.clone(),
        left_out_fields: vec![],
        type_mismatches: 0,
    };
    let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(ROW_GROUP);
    let to_row = |flat: Vec<(String, Bson)>, summary: &mut ExportSummary| -> Vec<Cell> {
        let mut values: Vec<Option<Bson>> = vec![None; columns.len()];
        for (k, v) in flat {
            match index.get(k.as_str()) {
                Some(&i) => values[i] = Some(v),
                None if !summary.left_out_fields.contains(&k) => summary.left_out_fields.push(k),
                None => {}
            }
        }
        values
            .iter()
            .zip(&columns)
            .map(|(v, (_, t))| {
                cell(v.as_ref(), *t).unwrap_or_else(|TypeMismatch| {
                    summary.type_mismatches += 1;
                    Cell::Empty
                })
            })
            .collect()
    };
    for flat in sample {
        batch.push(to_row(flat, &mut summary));
    }
    loop {
        if batch.len() >= ROW_GROUP {
            sink.write(&batch)?;
            summary.rows += batch.len() as u64;
            batch.clear();
            progress(summary.rows);
        }
        match cursor.try_next().await? {
            Some(d) => batch.push(to_row(flatten(&d), &mut summary)),
            None => break,
        }
    }
    sink.write(&batch)?;
    summary.rows += batch.len() as u64;
    progress(summary.rows);
    sink.finish()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_and_infers_types() {
        let a = doc! {"_id": "x:1", "n": 1, "f": 1.5, "ok": true, "at": bson::DateTime::from_millis(0), "author": {"id": "7", "followers": 12_i64}, "tickers": ["AAPL", "MSFT"]};
        let b = doc! {"_id": "x:2", "n": 2_i64, "f": 2, "ok": bson::Bson::Null, "at": bson::DateTime::from_millis(60_000), "author": {"id": 8}};
        let cols = infer(&[flatten(&a), flatten(&b)]);
        let want = [
            ("_id", ColumnType::Text),
            ("n", ColumnType::Int),
            ("f", ColumnType::Float),
            ("ok", ColumnType::Bool),
            ("at", ColumnType::Time),
            ("author.id", ColumnType::Text),
            ("author.followers", ColumnType::Int),
            ("tickers", ColumnType::Text),
        ];
        assert_eq!(cols, want.iter().map(|(n, t)| (n.to_string(), *t)).collect::<Vec<_>>());
        assert_eq!(
            cell(Some(&Bson::from(vec!["AAPL", "MSFT"])), ColumnType::Text),
            Ok(Cell::Text("[\"AAPL\",\"MSFT\"]".into()))
        );
        assert_eq!(cell(Some(&Bson::from("x")), ColumnType::Int), Err(TypeMismatch));
        assert_eq!(cell(None, ColumnType::Int), Ok(Cell::Empty));
        assert_eq!(cell_text(&Cell::Time(60_000)), "1970-01-01T00:01:00.000Z");
        assert!(parquet_schema(&cols).is_ok());
    }
}
