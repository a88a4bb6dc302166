//! The gateway's own portal pages (login and refusal), built with `maud`, which escapes
//! every value put into a page: a detail naming a PKS or a User ID cannot open markup.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use gerbang_core::Refusal;

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

/// What a refused route was, in words for the person at the browser.
pub(super) fn what(route: PortalRoute) -> &'static str {
    match route {
        PortalRoute::Export => "ekspor, unduh, cetak atau pencarian massal data",
        PortalRoute::Write => "perubahan data (penulisan)",
        PortalRoute::Search => "pencarian NIK",
        PortalRoute::Login => "masuk ke portal",
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
