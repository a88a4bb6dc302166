//! Writing the DWH's JSON by hand: the answers have a fixed shape, and writing bytes
//! directly keeps 16-digit NIKs digit-exact and avoids building a value tree per request.

/// Writes `v` in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// Writes `s` as a JSON string.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Writes `"key":`.
pub(crate) fn push_key(out: &mut Vec<u8>, key: &str) {
    push_str(out, key);
    out.push(b':');
}

/// The Spring-style page around answer content.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Page {
    pub(crate) elements: usize,
    pub(crate) total: usize,
    pub(crate) size: usize,
    pub(crate) quota: Option<u64>,
}

impl Page {
    /// A page holding exactly one item (a record, a verdict or an error).
    pub(crate) fn single(quota: Option<u64>) -> Page {
        Page {
            elements: 1,
            total: 1,
            size: 1,
            quota,
        }
    }
}

/// Starts the envelope: `{"content":[`.
pub(crate) fn open_page(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"content\":[");
}

/// Ends the envelope opened by [`open_page`].
pub(crate) fn close_page(out: &mut Vec<u8>, page: Page) {
    out.extend_from_slice(b"],\"lastPage\":");
    out.extend_from_slice(if page.total <= page.size {
        b"true"
    } else {
        b"false"
    });
    out.extend_from_slice(b",\"numberOfElements\":");
    push_u64(out, page.elements as u64);
    out.extend_from_slice(b",\"sort\":null,\"totalElements\":");
    push_u64(out, page.total as u64);
    out.extend_from_slice(b",\"firstPage\":true,\"number\":0,\"size\":");
    push_u64(out, page.size as u64);
    if let Some(quota) = page.quota {
        out.extend_from_slice(b",\"quotaLimiter\":");
        push_u64(out, quota);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_strings() {
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_u64(&mut out, u64::MAX);
        out.push(b' ');
        push_str(&mut out, "a\"b\\c\u{1}é");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "0 18446744073709551615 \"a\\\"b\\\\c\\u0001é\""
        );
    }
}
