use std::io::Write;

use gerbang_core::Vocabulary;

use super::*;

const NIK: &str = "3201014101900001";
const NOP: &str = "331309000100200010";
const NPWPD: &str = "P.2.0001234.33.13";

fn with_fields<T>(run: impl FnOnce(&[&BalikanField]) -> T) -> T {
    let vocab = Vocabulary::embedded();
    let fields: Vec<&BalikanField> = ["NOP PBB-P2", "NPWPD"]
        .iter()
        .filter_map(|n| vocab.balikan(n))
        .collect();
    assert_eq!(fields.len(), 2);
    run(&fields)
}

fn read(bytes: &[u8], max: usize) -> Result<Vec<FileRow>, String> {
    with_fields(|fields| read_file(bytes, fields, max))
}

fn columns(pairs: &[(&str, &str)]) -> Row {
    Ok(pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// A minimal XLSX workbook of inline strings (and numbers where a cell parses as one), as
/// Excel and LibreOffice read it; `shared` adds a shared-strings part declaring that count.
fn xlsx(rows: &[&[&str]], shared: Option<u64>) -> Vec<u8> {
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        sheet.push_str(&format!("<row r=\"{}\">", r + 1));
        for (c, cell) in row.iter().enumerate() {
            let col = char::from(b'A' + u8::try_from(c).expect("few columns"));
            let at = format!("{col}{}", r + 1);
            if let Some(number) = cell.strip_prefix('=') {
                sheet.push_str(&format!("<c r=\"{at}\"><v>{number}</v></c>"));
            } else {
                let text = cell
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                sheet.push_str(&format!(
                    "<c r=\"{at}\" t=\"inlineStr\"><is><t>{text}</t></is></c>"
                ));
            }
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let mut parts = vec![
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.to_string(),
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_string(),
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Balikan" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_string(),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_string(),
        ),
        ("xl/worksheets/sheet1.xml", sheet),
    ];
    if let Some(count) = shared {
        parts.push((
            "xl/sharedStrings.xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{count}" uniqueCount="{count}"><si><t>x</t></si></sst>"#
            ),
        ));
    }
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, text) in parts {
        zip.start_file(name, options).expect("zip part");
        zip.write_all(text.as_bytes()).expect("zip write");
    }
    zip.finish().expect("zip").into_inner()
}

#[test]
fn a_csv_file_becomes_records_with_their_row_numbers() {
    let file = format!(
        "\u{feff}nik,NOP_PBB_P2,Npwpd\r\n{NIK},{NOP},{NPWPD}\r\n\r\n,,\r\n{NIK},,{NPWPD}\r\n{NIK},{NOP},{NPWPD},extra\r\n"
    );
    let rows = read(file.as_bytes(), 10).expect("read");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0].line, 2);
    assert_eq!(
        rows[0].row,
        columns(&[("NIK", NIK), ("NOP_PBB_P2", NOP), ("NPWPD", NPWPD)])
    );
    // An empty cell is left out: the record carries the fields it has. A blank line is no
    // record; a line of empty cells is one, skipped.
    assert_eq!(rows[1].line, 4);
    assert_eq!(rows[1].row, columns(&[("NIK", NIK), ("NPWPD", NPWPD)]));
    assert!(rows[2].row.as_ref().is_err_and(|e| e.contains("di luar")));
}

#[test]
fn a_semicolon_csv_from_an_indonesian_excel_is_read() {
    let rows = read(format!("NIK;NPWPD\n{NIK};{NPWPD}\n").as_bytes(), 10).expect("read");
    assert_eq!(rows[0].row, columns(&[("NIK", NIK), ("NPWPD", NPWPD)]));
}

#[test]
fn the_header_must_name_the_nik_and_only_the_pks_columns() {
    let refused = |file: &str| read(file.as_bytes(), 10).expect_err("refused");
    assert!(refused("NPWPD\nP.2.0001234.33.13\n").contains("kolom NIK"));
    assert!(refused("NIK,NAMA_LGKP\n1,x\n").contains("NAMA_LGKP tidak diatur"));
    assert!(refused("NIK,npwpd,NPWPD\n").contains("diulang"));
    assert!(refused("NIK\n1\n").contains("paling sedikit satu kolom"));
    assert!(refused("").contains("berkas kosong"));
    assert!(refused("NIK,,NPWPD\n").contains("tanpa nama"));
    let not_utf8 = read(b"NIK,NPWPD\n\xff\xfe,x\n", 10).expect_err("refused");
    assert!(not_utf8.contains("UTF-8"), "{not_utf8}");
    assert!(
        read(&[0xD0, 0xCF, 0x11, 0xE0, 0, 0], 10)
            .expect_err("xls")
            .contains(".xls")
    );
}

#[test]
fn files_are_bounded_in_records_and_cells() {
    let mut file = String::from("NIK,NPWPD\n");
    for _ in 0..3 {
        file.push_str(&format!("{NIK},{NPWPD}\n"));
    }
    assert_eq!(read(file.as_bytes(), 3).expect("three").len(), 3);
    assert!(
        read(file.as_bytes(), 2)
            .expect_err("four")
            .contains("lebih dari 2 baris")
    );
    let long = format!("NIK,NPWPD\n{NIK},{}\n", "x".repeat(CELL_CHARS + 1));
    let rows = read(long.as_bytes(), 3).expect("read");
    assert!(
        rows[0]
            .row
            .as_ref()
            .is_err_and(|e| e.contains("lebih dari 256"))
    );
}

#[test]
fn the_first_sheet_of_a_workbook_is_read_like_a_csv() {
    let book = xlsx(
        &[
            &["NIK", "nop_pbb_p2", "NPWPD"],
            &[NIK, NOP, NPWPD],
            &["=3201014101900001", "=331309000100200010", NPWPD],
            &[NIK, "", "<b>x</b>"],
        ],
        None,
    );
    let rows = read(&book, 10).expect("read");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        rows[0].row,
        columns(&[("NIK", NIK), ("NOP_PBB_P2", NOP), ("NPWPD", NPWPD)])
    );
    assert_eq!(rows[1].line, 3);
    // A 16-digit NIK stored as a number is exact; an 18-digit NOP is not, and is refused.
    let why = rows[1].row.as_ref().expect_err("NOP as a number");
    assert!(
        why.starts_with("NOP_PBB_P2:") && why.contains("teks"),
        "{why}"
    );
    assert_eq!(rows[2].row, columns(&[("NIK", NIK), ("NPWPD", "<b>x</b>")]));
    let too_many = xlsx(&[&["NIK", "NPWPD"], &[NIK, NPWPD], &[NIK, NPWPD]], None);
    assert!(
        read(&too_many, 1)
            .expect_err("two")
            .contains("lebih dari 1")
    );
    assert!(
        read(b"PK\x03\x04broken", 10)
            .expect_err("broken")
            .contains("XLSX")
    );
}

#[test]
fn a_workbook_claiming_huge_contents_is_refused_before_it_is_unpacked() {
    let book = xlsx(&[&["NIK", "NPWPD"], &[NIK, NPWPD]], Some(u64::MAX / 2));
    assert!(
        read(&book, 10)
            .expect_err("declared strings")
            .contains("terlalu banyak teks")
    );
    let book = xlsx(&[&["NIK", "NPWPD"], &[NIK, NPWPD]], Some(1));
    assert_eq!(read(&book, 10).expect("small").len(), 1);
}

#[test]
fn the_file_part_of_a_multipart_body_is_found() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"catatan\"\r\n\r\nhalo\r\n--XyZ\r\nContent-Disposition: form-data; name=\"berkas\"; filename=\"b.csv\"\r\nContent-Type: text/csv\r\n\r\nNIK,NPWPD\r\n1,2\r\n\r\n--XyZ--\r\n";
    let ct = "multipart/form-data; boundary=XyZ";
    assert_eq!(
        multipart_file(ct, body, "berkas").expect("file"),
        b"NIK,NPWPD\r\n1,2\r\n"
    );
    assert_eq!(
        multipart_file("multipart/form-data; boundary=\"XyZ\"", body, "catatan").expect("text"),
        b"halo"
    );
    assert!(multipart_file(ct, body, "lain").is_err());
    assert!(multipart_file("application/json", body, "berkas").is_err());
    assert!(multipart_file("multipart/form-data", body, "berkas").is_err());
    assert!(
        multipart_file(
            ct,
            b"--XyZ\r\nContent-Disposition: form-data; name=\"berkas\"\r\n\r\ntanpa akhir",
            "berkas"
        )
        .is_err()
    );
}

#[test]
fn carried_records_come_back_as_they_went_and_are_bounded() {
    let rows = vec![
        FileRow {
            line: 2,
            row: columns(&[("NIK", NIK), ("NPWPD", "<i>\"x\"</i>")]),
        },
        FileRow {
            line: 3,
            row: Err("whatever the preview said".into()),
        },
    ];
    let back = carried(&carry(&rows), 10).expect("carried");
    assert_eq!(back[0], rows[0]);
    assert_eq!(back[1].line, 3);
    assert_eq!(back[1].row, Err(UNREADABLE.to_string()));
    assert!(carried(&carry(&rows), 1).is_err());
    assert!(carried("[]", 10).is_err());
    assert!(carried("{\"baris\":1}", 10).is_err());
    assert!(carried(r#"[{"baris":1,"kolom":[["NIK"]]}]"#, 10).is_err());
    assert!(carried(r#"[{"baris":1,"lain":1}]"#, 10).is_err());
    let long = format!(r#"[{{"baris":1,"kolom":[["NIK","{}"]]}}]"#, "1".repeat(300));
    assert!(carried(&long, 10).is_err());
}
