//! The portal's sessions: the cookie that carries one, and which sessions a reload ends. The
//! store that binds a token to a User ID and the client's address is `gerbang-shared`'s
//! `SessionStore`: in this process, or in Redis for every instance (`crate::shared`).

use gerbang_core::UserStatus;
use gerbang_policy::Snapshot;

use super::PREFIX;

/// The value of cookie `name` in a request's `Cookie` headers, if any.
pub fn cookie<'a>(headers: impl Iterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value that hands a browser its session.
pub fn session_cookie(name: &str, token: &str) -> String {
    format!("{name}={token}; Path={PREFIX}; HttpOnly; Secure; SameSite=Strict")
}

/// The `Set-Cookie` value that makes a browser forget its session.
pub fn cleared_cookie(name: &str) -> String {
    format!("{name}=; Path={PREFIX}; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// The User IDs whose portal sessions a reload from `old` to `new` must end: removed,
/// deactivated (by their PKS file or a sanction), given another password hash, or given
/// another IP LAN. Only User IDs active in `old` can hold a session. Ended through the
/// session store, so the sessions end on every instance sharing it, whichever instance
/// reloads first; the reload of each instance runs this, so one that logged a User ID in
/// with the old password before reloading itself ends that session too.
pub fn changed_users(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    old.agreements()
        .iter()
        .flat_map(|pks| pks.users.iter())
        .filter(|was| was.status == UserStatus::Aktif)
        .filter(|was| {
            new.user_by_id(&was.id).is_none_or(|r| {
                let now = new.user(r);
                now.status != UserStatus::Aktif
                    || now.password_hash != was.password_hash
                    || now.ip_lan != was.ip_lan
            })
        })
        .map(|was| was.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_and_set_strictly() {
        let headers = ["a=1; gerbang_portal=abc ; b=2", "c=3"];
        assert_eq!(cookie(headers.into_iter(), "gerbang_portal"), Some("abc"));
        assert_eq!(cookie(headers.into_iter(), "c"), Some("3"));
        assert_eq!(cookie(headers.into_iter(), "gerbang"), None);
        let set = session_cookie("gerbang_portal", "tok");
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/portal/"] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(cleared_cookie("x").contains("Max-Age=0"));
    }
}
