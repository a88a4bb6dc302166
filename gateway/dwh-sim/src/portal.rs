//! A stand-in for the DWH's Web Portal ("call NIK" in a browser), below `/portal/`.
//!
//! It is deliberately *not* read-only: besides the page, its assets and the NIK search it
//! offers what the real portal's users ask for and the regulation forbids (art. 30(2)):
//! a CSV export, a PDF download, a bulk search and a write form. The gateway must stop
//! them; these handlers answer them for real, so a test proves they are blocked and not
//! merely absent.
//!
//! Login is the gateway's: the simulator trusts the User ID the gateway asserts in
//! [`IDENTITY_HEADER`], as a simulator may, and refuses a request without it.

use http::header::{CONTENT_DISPOSITION, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde_json::Value;

use crate::handlers;
use crate::population::Population;
use crate::server::{Answer, respond};

/// The header carrying the User ID the gateway authenticated.
pub const IDENTITY_HEADER: &str = "x-gerbang-portal-user";

const INDEX_HTML: &str = include_str!("portal/index.html");
const APP_JS: &str = include_str!("portal/app.js");
const APP_CSS: &str = include_str!("portal/app.css");

/// Most NIKs one bulk search answers.
const BULK_LIMIT: usize = 100;

/// What a request below `/portal/` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PortalOp {
    Page,
    Script,
    Style,
    Search,
    BulkSearch,
    ExportCsv,
    ExportPdf,
    EditAddress,
    /// PUT, PATCH or DELETE of a record.
    RecordWrite,
}

/// Routes `rest` (the path after `/portal/`) and the method to an operation.
pub(crate) fn route(method: &Method, rest: &str) -> Option<PortalOp> {
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    Some(match rest {
        "" | "index.html" if get => PortalOp::Page,
        "app.js" if get => PortalOp::Script,
        "app.css" if get => PortalOp::Style,
        "api/cari" if post => PortalOp::Search,
        "api/cari-massal" if post => PortalOp::BulkSearch,
        "ekspor/csv" if post || get => PortalOp::ExportCsv,
        "ekspor/pdf" if post || get => PortalOp::ExportPdf,
        "ubah-alamat" if post => PortalOp::EditAddress,
        "api/penduduk"
            if *method == Method::PUT || *method == Method::PATCH || *method == Method::DELETE =>
        {
            PortalOp::RecordWrite
        }
        _ => return None,
    })
}

/// Answers one portal request. `body` is the whole request body.
pub(crate) fn answer(
    population: &Population,
    op: PortalOp,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let Some(user) = headers
        .get(IDENTITY_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return respond(
            StatusCode::UNAUTHORIZED,
            "text/html; charset=utf-8",
            b"<!DOCTYPE html><title>Tidak masuk</title><p>Portal hanya dapat dibuka melalui Gerbang.</p>".to_vec(),
        );
    };
    match op {
        PortalOp::Page => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            INDEX_HTML
                .replace("{{USER}}", &maud::html! { (user) }.into_string())
                .into_bytes(),
        ),
        PortalOp::Script => respond(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            APP_JS.as_bytes().to_vec(),
        ),
        PortalOp::Style => respond(
            StatusCode::OK,
            "text/css; charset=utf-8",
            APP_CSS.as_bytes().to_vec(),
        ),
        PortalOp::Search => respond(
            StatusCode::OK,
            "application/json",
            handlers::call_nik(population, body),
        ),
        PortalOp::BulkSearch => bulk(population, body),
        PortalOp::ExportCsv => {
            let records = records_of(population, body);
            attachment("text/csv; charset=utf-8", "penduduk.csv", csv(&records))
        }
        PortalOp::ExportPdf => {
            let records = records_of(population, body);
            attachment("application/pdf", "penduduk.pdf", pdf(&records))
        }
        PortalOp::EditAddress | PortalOp::RecordWrite => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            b"<!DOCTYPE html><title>Tersimpan</title><p>Perubahan data tersimpan (simulasi).</p>"
                .to_vec(),
        ),
    }
}

/// The NIKs a form or JSON body names: `nik=…` fields (one or several per line), or
/// `{"nik": "…"}` / `{"nik": ["…", …]}`.
fn niks_of(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        match value.get("nik") {
            Some(Value::String(s)) => out.push(s.clone()),
            Some(Value::Number(n)) => out.push(n.to_string()),
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        Value::Number(n) => out.push(n.to_string()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        return out;
    }
    for (key, value) in form_urlencoded::parse(body) {
        if key == "nik" {
            out.extend(value.split_whitespace().map(str::to_string));
        }
    }
    out
}

/// The full records of the NIKs a body names (unknown ones skipped), as JSON values.
fn records_of(population: &Population, body: &[u8]) -> Vec<Value> {
    niks_of(body)
        .iter()
        .take(BULK_LIMIT)
        .filter_map(|nik| nik.parse::<u64>().ok())
        .filter_map(|nik| population.record_json(nik))
        .filter_map(|json| serde_json::from_str(&json).ok())
        .collect()
}

fn bulk(population: &Population, body: &[u8]) -> Answer {
    let records: Vec<String> = records_of(population, body)
        .iter()
        .map(Value::to_string)
        .collect();
    let mut out = String::from("{\"content\":[");
    out.push_str(&records.join(","));
    out.push_str(&format!(
        "],\"numberOfElements\":{n},\"totalElements\":{n}}}",
        n = records.len()
    ));
    respond(StatusCode::OK, "application/json", out.into_bytes())
}

fn attachment(content_type: &'static str, file: &str, body: Vec<u8>) -> Answer {
    let mut answer = respond(StatusCode::OK, content_type, body);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        answer.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    answer
}

/// The records as CSV, one column per field of the first record.
fn csv(records: &[Value]) -> Vec<u8> {
    let Some(first) = records.first().and_then(Value::as_object) else {
        return Vec::new();
    };
    let keys: Vec<&String> = first.keys().collect();
    let cell = |v: Option<&Value>| match v {
        Some(Value::String(s)) => format!("\"{}\"", s.replace('"', "\"\"")),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let mut out = keys
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for record in records {
        let row: Vec<String> = keys.iter().map(|k| cell(record.get(k.as_str()))).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

/// A one-page PDF listing the records' NIK and name: enough for a browser to download it.
fn pdf(records: &[Value]) -> Vec<u8> {
    let mut text = String::new();
    for r in records {
        let field = |k: &str| r.get(k).map(Value::to_string).unwrap_or_default();
        text.push_str(&format!("({} {}) Tj T* ", field("NIK"), field("NAMA_LGKP")));
    }
    let text = text.replace(['\\', '"'], "");
    let stream = format!("BT /F1 10 Tf 12 TL 40 800 Td {text}ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj\n{object}\nendobj\n", i + 1));
    }
    let xref = out.len();
    out.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for o in offsets {
        out.push_str(&format!("{o:010} 00000 n \n"));
    }
    out.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// The body of an answer.
    fn body_of(answer: Answer) -> Bytes {
        use http_body_util::BodyExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        match runtime.block_on(answer.into_body().collect()) {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        }
    }
    use crate::population::SampleKind;

    fn with_user() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(IDENTITY_HEADER, HeaderValue::from_static("uji_<01>"));
        h
    }

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(route(&Method::GET, ""), Some(PortalOp::Page));
        assert_eq!(route(&Method::POST, "api/cari"), Some(PortalOp::Search));
        assert_eq!(route(&Method::GET, "api/cari"), None);
        assert_eq!(
            route(&Method::POST, "ekspor/csv"),
            Some(PortalOp::ExportCsv)
        );
        assert_eq!(
            route(&Method::DELETE, "api/penduduk"),
            Some(PortalOp::RecordWrite)
        );
        assert_eq!(route(&Method::GET, "nope"), None);
    }

    #[test]
    fn without_the_gateway_identity_nothing_is_answered() {
        let population = Population::generate(3, 200);
        let answer = answer(&population, PortalOp::Page, &HeaderMap::new(), b"");
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn page_names_the_user_escaped() {
        let population = Population::generate(3, 200);
        let page = body_of(answer(&population, PortalOp::Page, &with_user(), b""));
        let page = String::from_utf8(page.to_vec()).expect("utf8");
        assert!(page.contains("uji_&lt;01&gt;"), "{page}");
        assert!(
            !page.contains("<script>"),
            "no inline script under a strict CSP"
        );
    }

    #[test]
    fn forbidden_actions_really_answer() {
        let population = Population::generate(3, 200);
        let nik = population.sample(SampleKind::Alive, 1).remove(0);
        let form = format!("nik={nik}");
        let csv_answer = answer(
            &population,
            PortalOp::ExportCsv,
            &with_user(),
            form.as_bytes(),
        );
        assert!(
            csv_answer.headers()[CONTENT_DISPOSITION]
                .to_str()
                .expect("ascii")
                .starts_with("attachment")
        );
        let csv = String::from_utf8(body_of(csv_answer).to_vec()).expect("utf8");
        assert!(
            csv.starts_with("NIK") || csv.contains(",NIK") || csv.contains("NIK,"),
            "{csv}"
        );
        assert!(csv.contains(&nik), "{csv}");
        let pdf = body_of(answer(
            &population,
            PortalOp::ExportPdf,
            &with_user(),
            form.as_bytes(),
        ));
        assert!(pdf.starts_with(b"%PDF-1.4") && pdf.ends_with(b"%%EOF\n"));
        let bulk_body = format!(r#"{{"nik":["{nik}",{nik}]}}"#);
        let bulk = body_of(answer(
            &population,
            PortalOp::BulkSearch,
            &with_user(),
            bulk_body.as_bytes(),
        ));
        let v: Value = serde_json::from_slice(&bulk).expect("json");
        assert_eq!(v["numberOfElements"], 2);
    }

    #[test]
    fn form_bodies_list_niks_per_line() {
        assert_eq!(
            niks_of(b"nik=1111%0D%0A2222+3333&x=4"),
            vec!["1111", "2222", "3333"]
        );
        assert_eq!(niks_of(br#"{"nik":"5"}"#), vec!["5"]);
    }
}
