//! The gateway's own portal pages (login and refusal), built with `maud`, which escapes
//! every value put into a page: a detail naming a PKS or a User ID cannot open markup.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use gerbang_core::{BalikanField, Refusal};

use super::PortalRoute;

/// The style of the gateway's own pages (`GET /portal/_gerbang.css`).
pub(super) const STYLE: &str = include_str!("gerbang.css");

/// The frame of every page the gateway writes itself.
fn page(title: &str, main: Markup) -> String {
    // Line breaks as the pages had them before templates: the source reads the same, and
    // nothing after a replaced upstream page looks like that page's own `</body></html>`.
    html! {
        (DOCTYPE) "\n"
        html lang="id" {
            "\n"
            head {
                "\n" meta charset="utf-8"; "\n"
                title { (title) } "\n"
                link rel="stylesheet" href="/portal/_gerbang.css"; "\n"
            }
            "\n"
            body {
                "\n"
                header { p class="merek" { "Gerbang " (PreEscaped("&middot;")) " Portal DWH Dukcapil" } } "\n"
                main { "\n" (main) "\n" } "\n"
            }
            "\n"
        }
        "\n"
    }
    .into_string()
}

/// The login form, with a message when a previous attempt failed.
pub fn login_page(message: Option<&str>) -> String {
    page(
        "Masuk — Portal DWH",
        html! {
            h1 { "Masuk ke Portal DWH" } "\n"
            @if let Some(message) = message {
                p id="pesan" class="galat" role="alert" { (message) } "\n"
            }
            form method="post" action="/portal/masuk" id="masuk" {
                "\n" label for="user_id" { "User ID" } "\n"
                input id="user_id" name="user_id" autocomplete="username" required; "\n"
                label for="password" { "Password" } "\n"
                input id="password" name="password" type="password" autocomplete="current-password" required; "\n"
                button type="submit" id="tombol-masuk" { "Masuk" } "\n"
            } "\n"
            p class="catatan" {
                "Akses hanya dari IP LAN yang terdaftar untuk User ID Anda. Data yang ditampilkan hanya dapat dibaca (Permendagri 102/2019 pasal 30 ayat 2)."
            }
        },
    )
}

/// A refusal page naming what was refused and why.
pub fn refusal_page(what: &str, why: &str, refusal: Refusal) -> String {
    page(
        "Permintaan ditolak — Portal DWH",
        html! {
            h1 id="ditolak" { "Permintaan ditolak" } "\n"
            p { strong { "Yang ditolak:" } " " span id="yang-ditolak" { (what) } } "\n"
            p { strong { "Alasan:" } " " span id="alasan" { (why) } } "\n"
            p class="kode" { (refusal.respon()) " (kode " (refusal.code()) ")" } "\n"
            p { a href="/portal/" { "Kembali ke portal" } }
        },
    )
}

/// The data balikan page: the PKS's fields, the upload of a file and the form for one
/// record; a `message` when a previous upload or form was refused.
pub fn balikan_page(
    pks: &str,
    fields: &[&BalikanField],
    max_records: usize,
    message: Option<&str>,
) -> String {
    page(
        "Data balikan — Portal DWH",
        html! {
            h1 { "Data balikan" } "\n"
            @if let Some(message) = message {
                p id="pesan" class="galat" role="alert" { (message) } "\n"
            }
            @if fields.is_empty() {
                p id="tanpa-balikan" {
                    "PKS " (pks) " tidak menyebut data balikan: tidak ada data yang wajib dikirim kembali, dan kiriman data balikan ditolak (kode 34)."
                } "\n"
            } @else {
                p {
                    "Sesuai PKS " (pks) ", data berikut dikirim kembali ke Dukcapil tentang penduduk yang NIK-nya telah diakses melalui PKS ini. Setiap data memuat NIK dan paling sedikit satu kolom berikut:"
                } "\n"
                table id="kolom-balikan" {
                    thead { tr { th { "Nama" } th { "Kolom" } th { "Format" } th { "Keterangan" } } }
                    tbody {
                        @for f in fields {
                            tr { td { (f.nama) } td { code { (f.kolom) } } td { (f.describe()) } td { (f.label) } }
                        }
                    }
                } "\n"
                h2 { "Unggah berkas CSV atau Excel (.xlsx)" } "\n"
                p class="catatan" {
                    "Baris pertama berisi nama kolom: NIK dan kolom di atas. Paling banyak " (max_records) " baris data per berkas. Isi berkas diperiksa dan ditampilkan dulu; belum ada yang dikirim sebelum Anda menekan Kirim."
                } "\n"
                form method="post" action="/portal/balikan/pratinjau" enctype="multipart/form-data" id="unggah" {
                    "\n" label for="berkas" { "Berkas" } "\n"
                    input id="berkas" name="berkas" type="file" accept=".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" required; "\n"
                    button type="submit" id="tombol-pratinjau" { "Pratinjau" } "\n"
                } "\n"
                h2 { "Isi satu data" } "\n"
                form method="post" action="/portal/balikan/isi" id="isian" {
                    "\n" label for="isi-NIK" { "NIK" } "\n"
                    input id="isi-NIK" name="NIK" inputmode="numeric" pattern="[0-9]{16}" maxlength="16" required; "\n"
                    @for f in fields {
                        label for={ "isi-" (f.kolom) } { (f.nama) " (" (f.describe()) ")" } "\n"
                        input id={ "isi-" (f.kolom) } name=(f.kolom) maxlength="256"; "\n"
                    }
                    button type="submit" id="tombol-isi" { "Kirim" } "\n"
                } "\n"
            }
            p { a href="/portal/" { "Kembali ke portal" } }
        },
    )
}

/// One record of a preview or a result: its row in the file, its columns as sent (the
/// sender's own values, escaped like everything else) and its verdict.
pub struct Shown<'a> {
    pub line: usize,
    pub columns: Option<&'a [(String, String)]>,
    pub verdict: Result<(), &'a str>,
}

/// The preview of an uploaded file: every record with its values and whether it is valid;
/// nothing sent yet. `carried` is the hidden field the send step reads back.
pub fn preview_page(names: &[&str], rows: &[Shown<'_>], carried: &str) -> String {
    let valid = rows.iter().filter(|r| r.verdict.is_ok()).count();
    page(
        "Pratinjau data balikan — Portal DWH",
        html! {
            h1 { "Pratinjau data balikan" } "\n"
            p id="ringkasan" {
                span id="jumlah-valid" { (valid) } " baris valid, "
                span id="jumlah-tidak-valid" { (rows.len() - valid) } " baris tidak valid. Belum ada yang dikirim."
            } "\n"
            (records_table("pratinjau", names, rows, "Valid", "Tidak valid")) "\n"
            @if valid > 0 {
                form method="post" action="/portal/balikan/kirim" id="kirim" {
                    input type="hidden" name="data" value=(carried);
                    button type="submit" id="tombol-kirim" { "Kirim " (valid) " baris valid" }
                } "\n"
                p class="catatan" { "Baris yang tidak valid tidak dikirim. Setiap baris diperiksa lagi saat dikirim." } "\n"
            }
            p { a href="/portal/balikan" { "Unggah berkas lain" } " · " a href="/portal/" { "Kembali ke portal" } }
        },
    )
}

/// The outcome of a send: each record accepted or refused, and the counts.
pub fn result_page(names: &[&str], rows: &[Shown<'_>]) -> String {
    let accepted = rows.iter().filter(|r| r.verdict.is_ok()).count();
    page(
        "Hasil data balikan — Portal DWH",
        html! {
            h1 { "Hasil pengiriman data balikan" } "\n"
            p id="ringkasan" {
                span id="jumlah-diterima" { (accepted) } " diterima, "
                span id="jumlah-ditolak" { (rows.len() - accepted) } " ditolak."
            } "\n"
            (records_table("hasil", names, rows, "Diterima", "Ditolak")) "\n"
            p { a href="/portal/balikan" { "Kirim data balikan lain" } " · " a href="/portal/" { "Kembali ke portal" } }
        },
    )
}

fn records_table(id: &str, names: &[&str], rows: &[Shown<'_>], ok: &str, refused: &str) -> Markup {
    html! {
        table id=(id) {
            thead { tr { th { "Baris" } @for n in names { th { (n) } } th { "Status" } th { "Alasan" } } }
            tbody {
                @for r in rows {
                    tr class=(if r.verdict.is_ok() { "valid" } else { "tidak-valid" }) {
                        td { (r.line) }
                        @for n in names {
                            td { (r.columns.and_then(|c| c.iter().find(|(k, _)| k.eq_ignore_ascii_case(n))).map_or("", |(_, v)| v.as_str())) }
                        }
                        @match r.verdict {
                            Ok(()) => { td class="status" { (ok) } td {} }
                            Err(why) => { td class="status" { (refused) } td class="alasan" { (why) } }
                        }
                    }
                }
            }
        }
    }
}

/// What a refused route was, in words for the person at the browser.
pub(super) fn what(route: PortalRoute) -> &'static str {
    match route {
        PortalRoute::Export => "ekspor, unduh, cetak atau pencarian massal data",
        PortalRoute::Write => "perubahan data (penulisan)",
        PortalRoute::Search => "pencarian NIK",
        PortalRoute::Login => "masuk ke portal",
        PortalRoute::Balikan => "halaman data balikan",
        PortalRoute::BalikanPreview => "pratinjau unggahan data balikan",
        PortalRoute::BalikanSend | PortalRoute::BalikanForm => "pengiriman data balikan",
        PortalRoute::Unknown => "halaman yang tidak dikenal",
        PortalRoute::Page | PortalRoute::LoginPage | PortalRoute::Logout | PortalRoute::Style => {
            "halaman portal"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_and_say_why() {
        let page = refusal_page("ekspor <csv>", "pasal 30 ayat 2", Refusal::NotPermitted);
        assert!(page.contains("ekspor &lt;csv&gt;"));
        assert!(page.contains("pasal 30 ayat 2"));
        assert!(page.contains("Akses Tidak Diizinkan oleh PKS"));
        assert!(!page.contains("<script") && !page.contains("style="));
        let login = login_page(Some("Login Gagal: <x>"));
        assert!(login.contains("Login Gagal: &lt;x&gt;"));
        assert!(login.contains("action=\"/portal/masuk\""));
    }

    /// A detail can carry a PKS number or a User ID from a PKS file, which anyone who
    /// writes one could fill with markup: it comes out as text, quotes included.
    #[test]
    fn values_from_files_and_requests_cannot_open_markup() {
        let hostile = "9/<script>alert(\"x\")</script>/'a' & b";
        let escaped = "9/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;/'a' &amp; b";
        for page in [
            refusal_page(hostile, hostile, Refusal::NotPermitted),
            login_page(Some(hostile)),
        ] {
            assert!(!page.contains("<script"), "{page}");
            assert!(!page.contains("alert(\""), "{page}");
            assert!(page.contains(escaped), "{page}");
        }
        assert_eq!(
            refusal_page("a", hostile, Refusal::NotPermitted)
                .matches(escaped)
                .count(),
            1
        );
    }
}
