//! Requests whose HTTP/1 framing is ambiguous are refused before any of their body is read
//! (RFC 9112 §6.3: such a message "ought to be handled as an error").
//!
//! Where a body ends must be read the same way by every party on the path, or bytes of one
//! request become another (request smuggling). Pingora refuses some shapes itself (two
//! different `Content-Length`s, a final transfer coding other than `chunked`,
//! `Transfer-Encoding` on HTTP/1.0, folded header lines, which httparse does not accept in
//! requests) but serves others: with both `Content-Length` and `Transfer-Encoding` it drops
//! the length and reads the body chunked; it accepts a `Content-Length` repeated with the
//! same value or as a list `5, 5`, a coding list such as `gzip, chunked`, bare LF line ends,
//! and a body on a GET. Gerbang refuses all of these: its clients are programs that send one
//! `Content-Length` or one `Transfer-Encoding: chunked`, and a request shaped otherwise is a
//! client bug or an attack. The check reads the head as it arrived, because pingora's parsed
//! header no longer shows a `Content-Length` it dropped.

use http::Method;

/// Methods whose requests carry no body (RFC 9110 §9.3: a body on them has no meaning, and
/// "may cause some implementations to reject the request and close the connection because of
/// its potential as a request smuggling attack").
const BODILESS: [Method; 4] = [Method::GET, Method::HEAD, Method::DELETE, Method::TRACE];

/// Most header lines a head may have: pingora's own limit, so a head it parsed fits.
const MAX_HEADERS: usize = 256;

/// Checks the framing of a request head exactly as received (request line, header lines,
/// the empty line). `Err` says why it is refused, in Indonesian for `RESPONSE_DESC`.
pub(crate) fn check(head: &[u8]) -> Result<(), &'static str> {
    if !crlf_only(head) {
        return Err("setiap baris kepala permintaan harus diakhiri CRLF");
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        // Pingora parsed the same bytes; this is only reached if the two ever disagree.
        _ => return Err("kepala permintaan tidak dapat diurai"),
    }
    let (mut lengths, mut codings) = (Vec::new(), Vec::new());
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths.push(h.value.trim_ascii());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            codings.push(h.value.trim_ascii());
        }
    }
    if !lengths.is_empty() && !codings.is_empty() {
        return Err("Content-Length dan Transfer-Encoding tidak boleh ada bersamaan");
    }
    match codings.as_slice() {
        [] => {}
        [coding] if coding.eq_ignore_ascii_case(b"chunked") => {}
        _ => return Err("Transfer-Encoding hanya boleh satu kali, bernilai chunked"),
    }
    let length = match lengths.as_slice() {
        [] => None,
        [value] if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => Some(*value),
        [_] => return Err("Content-Length harus satu bilangan bulat"),
        _ => return Err("Content-Length hanya boleh satu kali"),
    };
    let has_body = !codings.is_empty() || length.is_some_and(|v| v.iter().any(|&d| d != b'0'));
    let method = req.method.unwrap_or_default();
    if has_body && BODILESS.iter().any(|m| m.as_str() == method) {
        return Err("permintaan dengan metode ini tidak boleh membawa badan");
    }
    Ok(())
}

/// Whether every line of the head ends with CRLF: no bare LF, no lone CR.
fn crlf_only(head: &[u8]) -> bool {
    head.iter().enumerate().all(|(i, &b)| match b {
        b'\n' => i > 0 && head[i - 1] == b'\r',
        b'\r' => head.get(i + 1) == Some(&b'\n'),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(lines: &[&str]) -> Vec<u8> {
        let mut h = lines.join("\r\n");
        h.push_str("\r\n\r\n");
        h.into_bytes()
    }

    #[test]
    fn one_length_or_one_chunked_coding_passes() {
        for ok in [
            head(&["POST /x HTTP/1.1", "Host: a", "Content-Length: 12"]),
            head(&["POST /x HTTP/1.1", "Host: a", "Transfer-Encoding: chunked"]),
            head(&[
                "POST /x HTTP/1.1",
                "Host: a",
                "transfer-encoding:  CHUNKED ",
            ]),
            head(&["GET /portal/ HTTP/1.1", "Host: a"]),
            head(&["GET /portal/ HTTP/1.1", "Host: a", "Content-Length: 0"]),
            head(&["POST /x HTTP/1.1", "Host: a"]),
        ] {
            assert_eq!(check(&ok), Ok(()), "{}", String::from_utf8_lossy(&ok));
        }
    }

    #[test]
    fn every_ambiguous_shape_is_refused() {
        for bad in [
            head(&[
                "POST /x HTTP/1.1",
                "Content-Length: 5",
                "Transfer-Encoding: chunked",
            ]),
            head(&["POST /x HTTP/1.1", "Content-Length: 5", "Content-Length: 5"]),
            head(&["POST /x HTTP/1.1", "Content-Length: 5, 5"]),
            head(&["POST /x HTTP/1.1", "Content-Length: 5", "content-length: 6"]),
            head(&["POST /x HTTP/1.1", "Content-Length: +5"]),
            head(&["POST /x HTTP/1.1", "Content-Length: "]),
            head(&["POST /x HTTP/1.1", "Transfer-Encoding: gzip, chunked"]),
            head(&["POST /x HTTP/1.1", "Transfer-Encoding: chunked, chunked"]),
            head(&["POST /x HTTP/1.1", "Transfer-Encoding: identity"]),
            head(&[
                "POST /x HTTP/1.1",
                "Transfer-Encoding: chunked",
                "Transfer-Encoding: chunked",
            ]),
            head(&["POST /x HTTP/1.1", "X-A: 1", " folded", "Content-Length: 2"]),
            head(&["GET /portal/ HTTP/1.1", "Content-Length: 5"]),
            head(&["HEAD /portal/ HTTP/1.1", "Transfer-Encoding: chunked"]),
            head(&["DELETE /portal/ HTTP/1.1", "Content-Length: 1"]),
            b"POST /x HTTP/1.1\nContent-Length: 2\n\n".to_vec(),
            b"POST /x HTTP/1.1\r\nContent-Length: 2\n\r\n".to_vec(),
            b"POST /x HTTP/1.1\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\n".to_vec(),
        ] {
            assert!(check(&bad).is_err(), "{}", String::from_utf8_lossy(&bad));
        }
    }
}
