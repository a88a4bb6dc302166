//! What a portal request is: classified from its method and path alone, and whether an
//! upstream answer may be shown as a page.

use http::Method;

use gerbang_policy::Action;

use super::PREFIX;

/// What a portal request is, decided from its method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalRoute {
    /// `GET masuk` (or `login`): the gateway's login form.
    LoginPage,
    /// `POST masuk` (or `login`): a login attempt.
    Login,
    /// `POST keluar` (or `logout`): ends the session.
    Logout,
    /// `GET _gerbang.css`: the style of the gateway's own pages.
    Style,
    /// A page or asset of the portal application, read (`PortalRead`, not counted).
    Page,
    /// The NIK search's JSON call (`PortalRead`, one hit, answer filtered).
    Search,
    /// `GET balikan`: the data balikan page (`SubmitBalikan`): the PKS's fields, the
    /// upload and the form. The gateway's own page; nothing of the DWH's data on it.
    Balikan,
    /// `POST balikan/pratinjau`: an uploaded CSV or XLSX file, checked and shown back to
    /// its sender; nothing is sent (`SubmitBalikan`).
    BalikanPreview,
    /// `POST balikan/kirim`: the previewed records, checked again and sent
    /// (`SubmitBalikan`).
    BalikanSend,
    /// `POST balikan/isi`: one record from the online form, checked and sent
    /// (`SubmitBalikan`).
    BalikanForm,
    /// Export, download, print or bulk search (`PortalExport`, always refused).
    Export,
    /// Any other method than GET (`PortalWrite`, always refused).
    Write,
    /// A GET of a path the portal does not have: refused (default deny).
    Unknown,
}

impl PortalRoute {
    /// The business action Cedar decides, for the routes that reach the portal.
    pub fn action(self) -> Option<Action> {
        match self {
            Self::Page | Self::Search | Self::Login => Some(Action::PortalRead),
            // Data going *to* Dukcapil under the PKS, not population data leaving the
            // portal: decided as the web service's balikan is, over `web_portal`.
            Self::Balikan | Self::BalikanPreview | Self::BalikanSend | Self::BalikanForm => {
                Some(Action::SubmitBalikan)
            }
            Self::Export => Some(Action::PortalExport),
            Self::Write => Some(Action::PortalWrite),
            Self::LoginPage | Self::Logout | Self::Style | Self::Unknown => None,
        }
    }
}

/// Words in a path that mark an export, download, print or bulk endpoint, whatever the
/// method: caught before any other rule so a GET link cannot slip a download through.
const EXPORT_WORDS: &[&str] = &[
    "ekspor", "export", "unduh", "download", "cetak", "print", "pdf", "csv", "xls", "massal",
    "bulk", "batch",
];

/// The portal application's pages and assets (GET only).
const PAGES: &[&str] = &["", "index.html", "app.js", "app.css"];

/// The NIK search's JSON endpoint (POST).
const SEARCH: &str = "api/cari";

/// Classifies a request by its method and its path (without the query string).
pub fn classify(method: &Method, path: &str) -> PortalRoute {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return PortalRoute::Unknown;
    };
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    match rest {
        "masuk" | "login" if get => return PortalRoute::LoginPage,
        "masuk" | "login" if post => return PortalRoute::Login,
        "keluar" | "logout" if post => return PortalRoute::Logout,
        "_gerbang.css" if get => return PortalRoute::Style,
        // The gateway's own data balikan pages, before the export words and the writes:
        // their names hold none, and their posts are balikan, not writes to the portal.
        "balikan" if get => return PortalRoute::Balikan,
        "balikan/pratinjau" if post => return PortalRoute::BalikanPreview,
        "balikan/kirim" if post => return PortalRoute::BalikanSend,
        "balikan/isi" if post => return PortalRoute::BalikanForm,
        _ => {}
    }
    let lower = rest.to_ascii_lowercase();
    if EXPORT_WORDS.iter().any(|w| lower.contains(w)) {
        return PortalRoute::Export;
    }
    // Encoded or relative segments could name one path here and another upstream.
    let odd = rest.contains(['%', '\\']) || rest.split('/').any(|s| s == ".." || s == ".");
    if !get {
        return if post && rest == SEARCH && !odd {
            PortalRoute::Search
        } else {
            PortalRoute::Write
        };
    }
    if !odd && PAGES.contains(&rest) {
        PortalRoute::Page
    } else {
        PortalRoute::Unknown
    }
}

/// Whether a request path is the portal's.
pub fn is_portal(path: &str) -> bool {
    path.starts_with(PREFIX) || path == "/portal"
}

/// Whether an upstream answer is a download the portal must not pass on (art. 30(2)):
/// `Content-Disposition: attachment`, or a CSV, spreadsheet or PDF content type.
pub fn is_download(content_type: Option<&str>, disposition: Option<&str>) -> bool {
    if disposition.is_some_and(|d| {
        d.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("attachment"))
    }) {
        return true;
    }
    let Some(mime) = content_type.map(mime) else {
        return false;
    };
    mime == "text/csv"
        || mime == "application/csv"
        || mime == "application/pdf"
        || mime.contains("excel")
        || mime.contains("spreadsheet")
        || mime == "application/octet-stream"
}

/// The media type of a `Content-Type` value, lower-cased, without parameters.
fn mime(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Content types a portal page or asset may have.
pub fn is_page_type(content_type: Option<&str>) -> bool {
    let Some(mime) = content_type.map(mime) else {
        return false;
    };
    matches!(
        mime.as_str(),
        "text/html" | "text/css" | "text/javascript" | "application/javascript" | "image/png"
    )
}

/// Cross-site request check for state-changing requests (login, logout, search): the
/// cookie is `SameSite=Strict` already; a browser must also say the request comes from
/// the portal's own pages. `Sec-Fetch-Site`, which every current browser sends and a page
/// cannot forge, decides when present. Without it `Origin`, when sent, must be this host.
/// (Under `Referrer-Policy: no-referrer` browsers send `Origin: null` on form posts, so
/// `null` passes only with `Sec-Fetch-Site: same-origin`.) Clients that send neither
/// (scripts, tests) still need the session cookie.
pub fn same_origin(host: Option<&str>, origin: Option<&str>, fetch_site: Option<&str>) -> bool {
    if let Some(site) = fetch_site {
        return site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none");
    }
    match origin {
        None => true,
        Some(origin) => {
            let authority = origin.split_once("://").map(|(_, a)| a);
            matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_is_by_method_and_path() {
        use PortalRoute::*;
        let cases = [
            (Method::GET, "/portal/", Page),
            (Method::GET, "/portal/app.js", Page),
            (Method::GET, "/portal/app.css", Page),
            (Method::POST, "/portal/api/cari", Search),
            (Method::GET, "/portal/api/cari", Unknown),
            (Method::GET, "/portal/masuk", LoginPage),
            (Method::POST, "/portal/login", Login),
            (Method::POST, "/portal/keluar", Logout),
            (Method::GET, "/portal/keluar", Unknown),
            (Method::POST, "/portal/ekspor/csv", Export),
            (Method::GET, "/portal/ekspor/csv", Export),
            (Method::GET, "/portal/data.CSV", Export),
            (Method::POST, "/portal/ekspor/pdf", Export),
            (Method::GET, "/portal/cetak", Export),
            (Method::POST, "/portal/api/cari-massal", Export),
            (Method::DELETE, "/portal/api/cari-massal", Export),
            (Method::POST, "/portal/ubah-alamat", Write),
            (Method::PUT, "/portal/api/penduduk", Write),
            (Method::PATCH, "/portal/api/cari", Write),
            (Method::DELETE, "/portal/", Write),
            (Method::HEAD, "/portal/", Write),
            (Method::POST, "/portal/api/./cari", Write),
            (Method::GET, "/portal/admin", Unknown),
            (Method::GET, "/portal/%61pp.js", Unknown),
            (Method::GET, "/portal/../dukcapil", Unknown),
            (Method::GET, "/portal/balikan", Balikan),
            (Method::POST, "/portal/balikan/pratinjau", BalikanPreview),
            (Method::POST, "/portal/balikan/kirim", BalikanSend),
            (Method::POST, "/portal/balikan/isi", BalikanForm),
            (Method::POST, "/portal/balikan", Write),
            (Method::PUT, "/portal/balikan/kirim", Write),
            (Method::GET, "/portal/balikan/kirim", Unknown),
            (Method::POST, "/portal/balikan/kirim.csv", Export),
            (Method::POST, "/portal/balikan/%6birim", Write),
        ];
        for (method, path, want) in cases {
            assert_eq!(classify(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn writes_and_exports_are_the_refused_actions() {
        assert_eq!(PortalRoute::Export.action(), Some(Action::PortalExport));
        assert_eq!(PortalRoute::Write.action(), Some(Action::PortalWrite));
        assert_eq!(PortalRoute::Search.action(), Some(Action::PortalRead));
        assert_eq!(PortalRoute::Unknown.action(), None);
        assert_eq!(
            PortalRoute::BalikanSend.action(),
            Some(Action::SubmitBalikan)
        );
    }

    #[test]
    fn downloads_are_recognised() {
        assert!(is_download(
            Some("text/html"),
            Some("attachment; filename=\"a.csv\"")
        ));
        assert!(is_download(Some("text/html"), Some("ATTACHMENT")));
        assert!(is_download(Some("text/csv; charset=utf-8"), None));
        assert!(is_download(Some("application/pdf"), None));
        assert!(is_download(Some("application/vnd.ms-excel"), None));
        assert!(is_download(
            Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            None
        ));
        assert!(!is_download(
            Some("text/html; charset=utf-8"),
            Some("inline")
        ));
        assert!(!is_download(Some("text/javascript"), None));
        assert!(is_page_type(Some("text/css; charset=utf-8")));
        assert!(!is_page_type(Some("application/json")));
        assert!(!is_page_type(None));
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        assert!(same_origin(Some("127.0.0.1:8443"), None, None));
        assert!(same_origin(
            Some("127.0.0.1:8443"),
            Some("https://127.0.0.1:8443"),
            Some("same-origin")
        ));
        assert!(!same_origin(
            Some("127.0.0.1:8443"),
            Some("https://evil.example"),
            None
        ));
        assert!(!same_origin(Some("127.0.0.1:8443"), Some("null"), None));
        assert!(same_origin(
            Some("127.0.0.1:8443"),
            Some("null"),
            Some("same-origin")
        ));
        assert!(!same_origin(
            Some("127.0.0.1:8443"),
            Some("https://127.0.0.1:8443"),
            Some("cross-site")
        ));
        assert!(!same_origin(
            Some("127.0.0.1:8443"),
            None,
            Some("cross-site")
        ));
        assert!(!same_origin(
            Some("127.0.0.1:8443"),
            None,
            Some("same-site")
        ));
    }
}
