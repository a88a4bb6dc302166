//! Which DWH service a request path names.

use gerbang_policy::Action;

/// Maps a DWH web-service path to its action.
///
/// Accepted: `/dukcapil/get_json/{instansi}/{SERVICE}` and the regional form
/// `/dukcapil/get_json/{PP-KK}/{user}/{service}`, the service name in any case, a query
/// string ignored. Anything else is not a service Gerbang forwards.
pub fn route(path: &str) -> Option<Action> {
    let path = path.split('?').next().unwrap_or_default();
    let mut segments = path.strip_prefix('/')?.split('/');
    if !segments.next()?.eq_ignore_ascii_case("dukcapil")
        || !segments.next()?.eq_ignore_ascii_case("get_json")
    {
        return None;
    }
    let rest: Vec<&str> = segments.collect();
    if !(2..=3).contains(&rest.len()) || rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    let service = rest.last()?;
    if service.eq_ignore_ascii_case("CALL_NIK") {
        Some(Action::CallNik)
    } else if service.eq_ignore_ascii_case("CALL_VERIFY_BY_ELEMEN") {
        Some(Action::VerifyByElement)
    } else if service.eq_ignore_ascii_case("CALL_BY_ELEMEN") {
        Some(Action::SearchByElements)
    } else {
        None
    }
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
        ] {
            assert_eq!(route(p), None, "{p}");
        }
    }
}
