//! Which DWH service a request path names, and the path the DWH is sent for it.
//!
//! The client's path is only read, never forwarded: what reaches the DWH is rebuilt from
//! the route and the authenticated User ID's own institution ([`upstream_path`]), so a
//! query string, an encoded or relative segment, or a path naming another institution or
//! User ID cannot travel past the gateway.

use gerbang_policy::Action;

/// Maps a DWH web-service path to its action.
///
/// Accepted: `/dukcapil/get_json/{instansi}/{SERVICE}` and the regional form
/// `/dukcapil/get_json/{PP-KK}/{user}/{service}` (`PP-KK` two digits, `-`, two digits), the
/// service name in any case, a query string ignored. Every segment must be ASCII letters,
/// digits, `_`, `-` or `.`, and not `.` or `..`: a percent-encoded (`%2F`), parameter (`;`)
/// or relative segment could name one path here and another at the DWH, so such a path is
/// not a service Gerbang forwards. Anything else is not either.
pub fn route(path: &str) -> Option<Action> {
    let path = path.split('?').next().unwrap_or_default();
    let mut segments = path.strip_prefix('/')?.split('/');
    if !segments.next()?.eq_ignore_ascii_case("dukcapil")
        || !segments.next()?.eq_ignore_ascii_case("get_json")
    {
        return None;
    }
    let rest: Vec<&str> = segments.collect();
    let (service, prefix) = rest.split_last()?;
    let prefix_ok = match prefix {
        [instansi] => plain_segment(instansi),
        [region, user] => region_code(region) && plain_segment(user),
        _ => false,
    };
    if !prefix_ok {
        return None;
    }
    Service::ALL
        .into_iter()
        .find(|s| service.eq_ignore_ascii_case(s.name()))
        .map(Service::action)
}

/// Whether `path` is the data-balikan web service: `/dukcapil/balikan/{instansi}`, a query
/// string ignored, `{instansi}` a plain segment (whatever it says, the DWH is sent the
/// authenticated User ID's own Pengguna).
pub fn is_balikan(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let mut segments = path.split('/');
    segments.next() == Some("")
        && segments
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("dukcapil"))
        && segments
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("balikan"))
        && segments.next().is_some_and(plain_segment)
        && segments.next().is_none()
}

/// The DWH's data-balikan path for the records of `pengguna`.
pub fn balikan_upstream_path(pengguna: &str) -> String {
    format!("/dukcapil/balikan/{pengguna}")
}

/// The path the DWH is sent for `action` of a User ID of `pengguna`:
/// `/dukcapil/get_json/{pengguna}/{SERVICE}`, the service in the DWH's upper case. The
/// `{instansi}` of the DWH's paths is the Pengguna's stable id from its PKS files (lower
/// case, digits and `-`, checked at load): the one name of the institution the agreements
/// hold. Whichever form the client used (the regional one included), this is the path
/// forwarded. `None` for an action that is not a web-service lookup.
pub fn upstream_path(action: Action, pengguna: &str) -> Option<String> {
    let service = Service::ALL.into_iter().find(|s| s.action() == action)?;
    Some(format!("/dukcapil/get_json/{pengguna}/{}", service.name()))
}

/// The DWH web services Gerbang forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    CallNik,
    VerifyByElemen,
    ByElemen,
}

impl Service {
    const ALL: [Self; 3] = [Self::CallNik, Self::VerifyByElemen, Self::ByElemen];

    fn name(self) -> &'static str {
        match self {
            Self::CallNik => "CALL_NIK",
            Self::VerifyByElemen => "CALL_VERIFY_BY_ELEMEN",
            Self::ByElemen => "CALL_BY_ELEMEN",
        }
    }

    fn action(self) -> Action {
        match self {
            Self::CallNik => Action::CallNik,
            Self::VerifyByElemen => Action::VerifyByElement,
            Self::ByElemen => Action::SearchByElements,
        }
    }
}

/// A segment that means the same to every reader: ASCII letters, digits, `_`, `-`, `.`, and
/// not a relative step.
fn plain_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// `PP-KK`: a province and a regency code.
fn region_code(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5 && b[2] == b'-' && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_route_to_their_action() {
        assert_eq!(
            route("/dukcapil/get_json/BKD_KRA/CALL_NIK"),
            Some(Action::CallNik)
        );
        assert_eq!(
            route("/dukcapil/get_json/BKD_KRA/call_nik?x=1"),
            Some(Action::CallNik)
        );
        assert_eq!(
            route("/dukcapil/get_json/33-13/bkd_kra/call_nik"),
            Some(Action::CallNik)
        );
        assert_eq!(
            route("/dukcapil/get_json/X/CALL_VERIFY_BY_ELEMEN"),
            Some(Action::VerifyByElement)
        );
        assert_eq!(
            route("/dukcapil/get_json/X/CALL_BY_ELEMEN"),
            Some(Action::SearchByElements)
        );
    }

    #[test]
    fn other_paths_do_not_route() {
        for p in [
            "/",
            "/dukcapil/get_json/CALL_NIK",
            "/dukcapil/get_json//CALL_NIK",
            "/dukcapil/get_json/a/b/c/CALL_NIK",
            "/dukcapil/get_json/X/CALL_NIK_EXPORT",
            "/other/get_json/X/CALL_NIK",
            "/__sim/stats",
            "/dukcapil/get_json/../CALL_NIK",
            "/dukcapil/get_json/./CALL_NIK",
            "/dukcapil/get_json/X%2FY/CALL_NIK",
            "/dukcapil/get_json/X;jsessionid=1/CALL_NIK",
            "/dukcapil/get_json/X/CALL_NIK;x",
            "/dukcapil/get_json/33-13/../CALL_NIK",
            "/dukcapil/get_json/bkd/user/CALL_NIK",
            "/dukcapil/get_json/33-1a/user/CALL_NIK",
            "/dukcapil/get_json/X/CALL_NIK/",
        ] {
            assert_eq!(route(p), None, "{p}");
        }
    }

    #[test]
    fn the_balikan_path_takes_one_plain_segment() {
        for p in [
            "/dukcapil/balikan/rsud-kota-contoh",
            "/DUKCAPIL/Balikan/X?y=1",
        ] {
            assert!(is_balikan(p), "{p}");
        }
        for p in [
            "/dukcapil/balikan",
            "/dukcapil/balikan/",
            "/dukcapil/balikan/a/b",
            "/dukcapil/balikan/..",
            "/dukcapil/balikan/a%2Fb",
            "/dukcapil/balikan/a;b",
            "//dukcapil/balikan/a",
            "/dukcapil/get_json/a/CALL_NIK",
        ] {
            assert!(!is_balikan(p), "{p}");
        }
        assert_eq!(route("/dukcapil/balikan/a"), None);
    }

    #[test]
    fn the_dwh_is_sent_the_pengguna_and_the_service_in_its_own_spelling() {
        assert_eq!(
            upstream_path(Action::CallNik, "bkd-karanganyar").as_deref(),
            Some("/dukcapil/get_json/bkd-karanganyar/CALL_NIK")
        );
        assert_eq!(
            upstream_path(Action::VerifyByElement, "bank-asing").as_deref(),
            Some("/dukcapil/get_json/bank-asing/CALL_VERIFY_BY_ELEMEN")
        );
        assert_eq!(
            upstream_path(Action::SearchByElements, "polri").as_deref(),
            Some("/dukcapil/get_json/polri/CALL_BY_ELEMEN")
        );
        assert_eq!(upstream_path(Action::PortalRead, "x"), None);
    }
}
