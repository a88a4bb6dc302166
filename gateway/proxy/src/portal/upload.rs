//! The file of a data balikan upload on the Web Portal (`docs/balikan.md`): the one file of
//! a `multipart/form-data` post, read as CSV or as the first sheet of an XLSX workbook into
//! records the balikan checks take (`crate::balikan::Row`), and the records carried from the
//! preview to the send step in a hidden field.
//!
//! Everything is bounded before it is kept: the body by the caller, the records by `[balikan]
//! max_records`, each cell by [`CELL_CHARS`], and a workbook by its sizes before calamine
//! opens it (a few hundred kilobytes of deflated XML can unpack to hundreds of megabytes,
//! and calamine reserves room for the shared strings the file says it has).

use std::io::{Cursor, Read};

use calamine::{DataRef, Reader, Xlsx};

use gerbang_core::BalikanField;

use crate::balikan::Row;

/// Longest cell kept, in characters: above the longest balikan field (`teks`, 200).
pub(crate) const CELL_CHARS: usize = 256;

/// What a workbook may unpack to, in all: a balikan of `max_records` rows is far smaller.
const XLSX_UNPACKED_BYTES: u64 = 16 * 1024 * 1024;

/// Most parts a workbook may have (a plain one has about ten).
const XLSX_PARTS: usize = 64;

/// Most shared strings a workbook may declare: calamine reserves room for them up front.
const XLSX_SHARED_STRINGS: u64 = 100_000;

/// The reason shown for a record of the file that could not be read, on the send step
/// (the preview's own reason is not taken back from the browser).
pub(crate) const UNREADABLE: &str = "baris ini tidak dapat dibaca dari berkas";

/// One record of the file: its row number in the file (the header is row 1) and its columns,
/// or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRow {
    pub(crate) line: usize,
    pub(crate) row: Row,
}

/// The file field of a `multipart/form-data` body named `field`: its bytes, or why not.
pub(crate) fn multipart_file<'b>(
    content_type: &str,
    body: &'b [u8],
    field: &str,
) -> Result<&'b [u8], String> {
    let mut params = content_type.split(';');
    let mime = params.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Err("unggahan harus dikirim sebagai multipart/form-data".into());
    }
    let boundary = params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or("unggahan tanpa batas multipart (boundary)")?;
    let delimiter = [&b"\r\n--"[..], boundary.as_bytes()].concat();
    // The first delimiter may open the body without the line break before it.
    let mut rest = match body.strip_prefix(&delimiter[2..]) {
        Some(r) => r,
        None => {
            let at = find(body, &delimiter).ok_or("unggahan multipart tidak sah")?;
            &body[at + delimiter.len()..]
        }
    };
    loop {
        if rest.starts_with(b"--") {
            return Err("unggahan tidak memuat berkas".into());
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("unggahan multipart tidak sah")?;
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let (start, headers) = match httparse::parse_headers(rest, &mut headers) {
            Ok(httparse::Status::Complete((n, h))) => (n, h),
            _ => return Err("unggahan multipart tidak sah".into()),
        };
        let content = &rest[start..];
        let end = find(content, &delimiter).ok_or("unggahan multipart tidak sah")?;
        let named = headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("content-disposition")
                && std::str::from_utf8(h.value).is_ok_and(|v| {
                    v.split(';')
                        .filter_map(|p| p.split_once('='))
                        .any(|(k, n)| k.trim() == "name" && n.trim().trim_matches('"') == field)
                })
        });
        if named {
            return Ok(&content[..end]);
        }
        rest = &content[end + delimiter.len()..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The records of an uploaded file: an XLSX workbook (by its zip signature) or CSV. The
/// header row names `NIK` and the PKS's balikan columns, in any case and order; empty cells
/// are left out of a record, empty rows skipped. `Err`: the whole file is refused.
pub(crate) fn read_file(
    bytes: &[u8],
    fields: &[&BalikanField],
    max_records: usize,
) -> Result<Vec<FileRow>, String> {
    let table = if bytes.starts_with(b"PK\x03\x04") {
        xlsx_rows(bytes, max_records)?
    } else if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Err(
            "berkas Excel lama (.xls) tidak dapat dibaca; simpan sebagai .xlsx atau .csv".into(),
        );
    } else {
        csv_rows(bytes, max_records)?
    };
    records(table, fields)
}

/// A file's non-empty rows as cells, with their row numbers (from 1).
type Table = Vec<(usize, Vec<String>)>;

fn csv_rows(bytes: &[u8], max_records: usize) -> Result<Table, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // Excel in an Indonesian locale separates CSV columns with semicolons.
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let delimiter = if first.contains(&b';') && !first.contains(&b',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(bytes);
    let mut table = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "berkas CSV harus bersandi UTF-8".to_string(),
            _ => format!("berkas CSV tidak dapat dibaca (baris {})", i + 1),
        })?;
        let cells: Vec<String> = record.iter().map(str::to_string).collect();
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        // Its record number, the header being 1 (a blank line is no record).
        table.push((i + 1, cells));
        too_many(&table, max_records)?;
    }
    Ok(table)
}

/// Refuses a file past the header and `max_records` records, as soon as it gets there.
fn too_many(table: &Table, max_records: usize) -> Result<(), String> {
    if table.len() > max_records.saturating_add(1) {
        return Err(format!(
            "berkas memuat lebih dari {max_records} baris data; bagi menjadi beberapa berkas"
        ));
    }
    Ok(())
}

fn xlsx_rows(bytes: &[u8], max_records: usize) -> Result<Table, String> {
    let unreadable = |_| "berkas XLSX tidak dapat dibaca".to_string();
    check_workbook(bytes)?;
    let mut book = Xlsx::new(Cursor::new(bytes)).map_err(unreadable)?;
    let first = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or("berkas XLSX tidak memuat lembar kerja")?;
    let mut cells = book.worksheet_cells_reader(&first).map_err(unreadable)?;
    let mut table: Table = Vec::new();
    while let Some(cell) = cells.next_cell().map_err(unreadable)? {
        let (row, col) = cell.get_position();
        let value = match cell.get_value() {
            DataRef::Empty => continue,
            DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
            DataRef::SharedString(s) => (*s).to_string(),
            DataRef::Int(n) => n.to_string(),
            DataRef::Bool(b) => b.to_string(),
            // Whole numbers up to 2^53 are exact; Excel itself rounds longer ones (an
            // 18-digit NOP typed as a number is already wrong), so they are refused below.
            DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                format!("{f:.0}")
            }
            DataRef::Float(_) | DataRef::DateTime(_) | DataRef::Error(_) => NUMBER.to_string(),
        };
        let line = usize::try_from(row).unwrap_or(usize::MAX).saturating_add(1);
        let col = usize::try_from(col).unwrap_or(usize::MAX);
        if col > 64 {
            return Err("berkas memuat terlalu banyak kolom".into());
        }
        if table.last().is_none_or(|(l, _)| *l != line) {
            table.push((line, Vec::new()));
            too_many(&table, max_records)?;
        }
        if let Some((_, row)) = table.last_mut() {
            if row.len() <= col {
                row.resize(col + 1, String::new());
            }
            row[col] = value;
        }
    }
    table.retain(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()));
    table.sort_by_key(|(line, _)| *line);
    Ok(table)
}

/// Stands for a cell that is a number Excel cannot hold exactly, a date or an error: the
/// record is refused with [`NUMBER_REASON`].
const NUMBER: &str = "\u{0}angka";
const NUMBER_REASON: &str =
    "berupa angka desimal, tanggal atau galat Excel; isi sel sebagai teks (format sel: Text)";

/// A workbook's declared sizes, before calamine unpacks it.
fn check_workbook(bytes: &[u8]) -> Result<(), String> {
    let refused = |why: &str| format!("berkas XLSX ditolak: {why}");
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|_| "berkas XLSX tidak dapat dibaca".to_string())?;
    if zip.len() > XLSX_PARTS {
        return Err(refused("terlalu banyak bagian"));
    }
    let mut total = 0u64;
    for i in 0..zip.len() {
        let part = zip
            .by_index_raw(i)
            .map_err(|_| "berkas XLSX tidak dapat dibaca".to_string())?;
        total = total.saturating_add(part.size());
    }
    if total > XLSX_UNPACKED_BYTES {
        return Err(refused("isinya terlalu besar"));
    }
    // A deflated part may unpack to more than it declares, and nothing below stops it:
    // each is unpacked here once, at most one byte past what it declares.
    for i in 0..zip.len() {
        let part = zip
            .by_index(i)
            .map_err(|_| "berkas XLSX tidak dapat dibaca".to_string())?;
        let declared = part.size();
        let unpacked = std::io::copy(
            &mut part.take(declared.saturating_add(1)),
            &mut std::io::sink(),
        )
        .map_err(|_| "berkas XLSX tidak dapat dibaca".to_string())?;
        if unpacked > declared {
            return Err(refused("isinya lebih besar dari yang dinyatakan"));
        }
    }
    // `<sst uniqueCount="…">` near its start: calamine reserves that many strings.
    if let Ok(part) = zip.by_name("xl/sharedStrings.xml") {
        let mut head = Vec::new();
        part.take(1024)
            .read_to_end(&mut head)
            .map_err(|_| "berkas XLSX tidak dapat dibaca".to_string())?;
        let head = String::from_utf8_lossy(&head);
        let declared = head
            .split_once("uniqueCount=\"")
            .and_then(|(_, rest)| rest.split('"').next())
            .map(|n| n.parse::<u64>().unwrap_or(u64::MAX));
        if declared.is_some_and(|n| n > XLSX_SHARED_STRINGS) {
            return Err(refused("terlalu banyak teks"));
        }
    }
    Ok(())
}

/// The table's header checked against the PKS's columns, and its rows as records.
fn records(table: Table, fields: &[&BalikanField]) -> Result<Vec<FileRow>, String> {
    let mut rows = table.into_iter();
    let Some((_, mut header)) = rows.next() else {
        return Err("berkas kosong: baris pertama harus berisi nama kolom (NIK, …)".into());
    };
    while header.last().is_some_and(|h| h.trim().is_empty()) {
        header.pop();
    }
    let mut names: Vec<String> = Vec::with_capacity(header.len());
    for h in &header {
        let upper = h.trim().trim_start_matches('\u{feff}').to_ascii_uppercase();
        if upper.is_empty() {
            return Err("baris pertama memuat kolom tanpa nama".into());
        }
        if upper != "NIK" && !fields.iter().any(|f| f.kolom == upper) {
            return Err(format!(
                "kolom {} tidak diatur dalam data balikan PKS ini",
                shown(&upper)
            ));
        }
        if names.contains(&upper) {
            return Err(format!("kolom {} diulang", shown(&upper)));
        }
        names.push(upper);
    }
    if !names.iter().any(|n| n == "NIK") {
        return Err("baris pertama harus memuat kolom NIK".into());
    }
    if names.len() < 2 {
        return Err("baris pertama harus memuat paling sedikit satu kolom data balikan".into());
    }
    Ok(rows
        .map(|(line, cells)| FileRow {
            line,
            row: record(&names, &cells),
        })
        .collect())
}

fn record(names: &[String], cells: &[String]) -> Row {
    if cells.iter().skip(names.len()).any(|c| !c.trim().is_empty()) {
        return Err(format!(
            "baris memuat nilai di luar {} kolom yang bernama",
            names.len()
        ));
    }
    let mut columns = Vec::with_capacity(names.len());
    for (name, cell) in names.iter().zip(cells) {
        if cell == NUMBER {
            return Err(format!("{name}: {NUMBER_REASON}"));
        }
        if cell.chars().count() > CELL_CHARS {
            return Err(format!("{name}: lebih dari {CELL_CHARS} karakter"));
        }
        if !cell.trim().is_empty() {
            columns.push((name.clone(), cell.clone()));
        }
    }
    Ok(columns)
}

/// A column name from the file, made safe to show: printable, bounded.
fn shown(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(40)
        .collect()
}

/// The records carried from the preview to the send step, in the form's hidden field:
/// `[{"baris":2,"kolom":[["NIK","…"],…]},{"baris":3}]` (a record without `kolom` could not
/// be read). Re-read and re-checked on send, never trusted.
pub(crate) fn carry(rows: &[FileRow]) -> String {
    let value: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| match &r.row {
            Ok(columns) => serde_json::json!({"baris": r.line, "kolom": columns}),
            Err(_) => serde_json::json!({"baris": r.line}),
        })
        .collect();
    serde_json::Value::Array(value).to_string()
}

/// The records of the hidden field, bounded like a file's; `Err`: refused whole.
pub(crate) fn carried(text: &str, max_records: usize) -> Result<Vec<FileRow>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Carried {
        baris: usize,
        kolom: Option<Vec<(String, String)>>,
    }
    let bad = || "data pratinjau tidak sah; unggah berkasnya lagi".to_string();
    let rows: Vec<Carried> = serde_json::from_str(text).map_err(|_| bad())?;
    if rows.is_empty() {
        return Err(bad());
    }
    if rows.len() > max_records {
        return Err(format!(
            "paling banyak {max_records} data balikan sekali kirim"
        ));
    }
    rows.into_iter()
        .map(|r| {
            let row = match r.kolom {
                None => Err(UNREADABLE.to_string()),
                Some(columns) => {
                    // Names are re-checked by `check_row`; the lengths here keep a forged
                    // field from carrying more than a file could.
                    if columns.len() > 64
                        || columns.iter().any(|(k, v)| {
                            k.chars().count() > CELL_CHARS || v.chars().count() > CELL_CHARS
                        })
                    {
                        return Err(bad());
                    }
                    Ok(columns)
                }
            };
            Ok(FileRow { line: r.baris, row })
        })
        .collect()
}

#[cfg(test)]
mod tests;
