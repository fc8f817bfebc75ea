//! The runner's HTTP/1.1 client, for `request` operations: parsing of message heads and
//! bodies (lengths, chunked coding, trailers), encoding a request, one exchange with a served
//! component, and comparing its response with the case's expectation.
//!
//! Hand-written rather than a dependency: it is small, and conformance needs exact control over
//! what goes on the wire and how it is framed. One exchange per connection (`Connection: close`);
//! what is parsed is bounded in size and every read and write by a deadline, so a guest that
//! answers wrongly or not at all fails its case and never hangs or swamps the runner.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::case::ExpectedResponse;

/// Most bytes a start line and its header fields (or a trailer section) may take.
const MAX_HEAD: usize = 64 * 1024;
/// Most bytes a body may take: far beyond any case, well within the runner's memory.
const MAX_BODY: usize = 64 * 1024 * 1024;

pub(crate) type Fields = Vec<(String, String)>;

/// A start line and the header fields after it; `len` bytes long with its blank line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) start: String,
    pub(crate) headers: Fields,
    pub(crate) len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Fields,
    pub(crate) body: Vec<u8>,
}

/// How a message's body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    /// Only a response may run to the end of the connection.
    UntilClose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Body {
    pub(crate) bytes: Vec<u8>,
    pub(crate) trailers: Fields,
}

/// All values of the field `name` (any case), joined by `, ` as one value: how a client
/// library (the reference runner's `requests`) shows a repeated header.
pub(crate) fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Field lines up to the blank line ending them: the fields and the bytes taken, or
/// `None` while the blank line has not come.
fn parse_fields(buf: &[u8]) -> Result<Option<(Fields, usize)>, String> {
    let mut fields = Vec::new();
    let mut pos = 0;
    loop {
        let Some(end) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return if buf.len() > MAX_HEAD {
                Err(format!("header section over {MAX_HEAD} bytes"))
            } else {
                Ok(None)
            };
        };
        let raw = &buf[pos..pos + end];
        // CRLF ends a line; a bare LF is tolerated, as RFC 9112 §2.2 allows.
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos += end + 1;
        if line.is_empty() {
            return Ok(Some((fields, pos)));
        }
        if pos > MAX_HEAD {
            return Err(format!("header section over {MAX_HEAD} bytes"));
        }
        let line = String::from_utf8_lossy(line);
        if line.starts_with([' ', '\t']) {
            return Err(format!("folded header line {line:?} (obsolete, refused)"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line without `:`: {line:?}"))?;
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(format!("bad header name in {line:?}"));
        }
        fields.push((
            name.to_string(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
}

/// A message head at the start of `buf`, or `None` while incomplete.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_HEAD {
            Err(format!("start line over {MAX_HEAD} bytes"))
        } else {
            Ok(None)
        };
    };
    let raw = &buf[..end];
    let start = String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw)).into_owned();
    Ok(parse_fields(&buf[end + 1..])?.map(|(headers, used)| Head {
        start,
        headers,
        len: end + 1 + used,
    }))
}

/// How the body after `headers` ends. Only called for messages that have one.
pub(crate) fn framing(headers: &[(String, String)], response: bool) -> Result<Framing, String> {
    if let Some(codings) = field(headers, "transfer-encoding") {
        let last = codings.rsplit(',').next().unwrap_or_default().trim();
        return if last.eq_ignore_ascii_case("chunked") {
            Ok(Framing::Chunked)
        } else if response {
            Ok(Framing::UntilClose)
        } else {
            Err(format!(
                "request body in transfer coding {codings:?}, not chunked"
            ))
        };
    }
    match field(headers, "content-length") {
        Some(lengths) => {
            // Repeated (or listed) lengths are accepted only when they agree.
            let mut values = lengths.split(',').map(str::trim);
            let first = values.next().unwrap_or_default();
            if first.is_empty()
                || !first.bytes().all(|b| b.is_ascii_digit())
                || values.any(|v| v != first)
            {
                return Err(format!("bad Content-Length {lengths:?}"));
            }
            let n: usize = first
                .parse()
                .map_err(|_| format!("bad Content-Length {lengths:?}"))?;
            if n > MAX_BODY {
                return Err(format!("a body of {n} bytes, over {MAX_BODY}"));
            }
            Ok(Framing::Length(n))
        }
        None if response => Ok(Framing::UntilClose),
        None => Ok(Framing::Length(0)),
    }
}

/// The body at the start of `buf` framed as `framing`, or `None` while incomplete; `eof`
/// says the peer closed, so nothing more will come.
pub(crate) fn parse_body(buf: &[u8], framing: Framing, eof: bool) -> Result<Option<Body>, String> {
    let whole = |bytes: &[u8]| Body {
        bytes: bytes.to_vec(),
        trailers: Vec::new(),
    };
    match framing {
        Framing::Length(n) if buf.len() >= n => Ok(Some(whole(&buf[..n]))),
        Framing::Length(n) if eof => Err(format!(
            "the connection closed after {} of {n} body bytes",
            buf.len()
        )),
        Framing::Length(_) => Ok(None),
        Framing::UntilClose if buf.len() > MAX_BODY => Err(format!("a body over {MAX_BODY} bytes")),
        Framing::UntilClose => Ok(eof.then(|| whole(buf))),
        Framing::Chunked => match decode_chunked(buf)? {
            Some(body) => Ok(Some(body)),
            None if eof => Err("the connection closed inside the chunked body".into()),
            None => Ok(None),
        },
    }
}

/// The chunked transfer coding (RFC 9112 §7.1): hexadecimal sizes (extensions after `;`
/// ignored), each chunk followed by CRLF, a zero size, then trailer fields and a blank line.
pub(crate) fn decode_chunked(buf: &[u8]) -> Result<Option<Body>, String> {
    let mut bytes = Vec::new();
    let mut pos = 0;
    loop {
        let Some(end) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return if buf.len() - pos > MAX_HEAD {
                Err("chunk size line too long".into())
            } else {
                Ok(None)
            };
        };
        let raw = &buf[pos..pos + end];
        let line = String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw));
        let size = line.split(';').next().unwrap_or_default().trim();
        // `from_str_radix` would take a sign too; a size is hex digits only.
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("bad chunk size line {line:?}"));
        }
        let size = usize::from_str_radix(size, 16)
            .ok()
            .filter(|n| bytes.len().saturating_add(*n) <= MAX_BODY)
            .ok_or_else(|| format!("chunk size {size} too large"))?;
        pos += end + 1;
        if size == 0 {
            return Ok(parse_fields(&buf[pos..])?.map(|(trailers, _)| Body { bytes, trailers }));
        }
        let Some(data) = buf.get(pos..pos + size) else {
            return Ok(None);
        };
        let after = &buf[pos + size..];
        let ending = if after.starts_with(b"\r\n") {
            2
        } else if after.starts_with(b"\n") {
            1
        } else if after.is_empty() || after == b"\r" {
            return Ok(None);
        } else {
            return Err("chunk data not followed by CRLF".into());
        };
        bytes.extend_from_slice(data);
        pos += size + ending;
    }
}

/// The status of an `HTTP/1.x` status line.
fn parse_status_line(line: &str) -> Result<u16, String> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(format!("not an HTTP/1.x status line: {line:?}"));
    }
    code.parse()
        .map_err(|_| format!("not an HTTP/1.x status line: {line:?}"))
}

/// A whole response at the start of `buf`, or `None` while incomplete. `head_request`:
/// it answers a HEAD, so no body follows whatever its headers say. Interim (1xx)
/// responses before it are passed over.
pub(crate) fn parse_response(
    buf: &[u8],
    head_request: bool,
    eof: bool,
) -> Result<Option<Response>, String> {
    let mut rest = buf;
    loop {
        let Some(head) = parse_head(rest)? else {
            return Ok(None);
        };
        let status = parse_status_line(&head.start)?;
        if (100..200).contains(&status) && status != 101 {
            rest = &rest[head.len..];
            continue;
        }
        let framing = if head_request || status < 200 || status == 204 || status == 304 {
            Framing::Length(0)
        } else {
            framing(&head.headers, true)?
        };
        return Ok(
            parse_body(&rest[head.len..], framing, eof)?.map(|body| Response {
                status,
                headers: head.headers,
                body: body.bytes,
            }),
        );
    }
}

/// Reads from `stream` into `buf` until `parse` finds what it needs there, the peer
/// closes, or `deadline` passes.
pub(crate) fn read_until<T>(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    mut parse: impl FnMut(&[u8], bool) -> Result<Option<T>, String>,
) -> Result<T, String> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(done) = parse(buf, false)? {
            return Ok(done);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no complete message in time ({} bytes came)",
                buf.len()
            ));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                return parse(buf, true)?.ok_or_else(|| {
                    format!(
                        "the connection closed before a complete message ({} bytes came)",
                        buf.len()
                    )
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!(
                    "no complete message in time ({} bytes came)",
                    buf.len()
                ))
            }
            Err(e) => return Err(format!("reading: {e}")),
        }
    }
}

/// A request's bytes. The runner frames the body itself (`Content-Length`, as the
/// reference runner's client does: always with a body, and for an empty one unless GET or
/// HEAD) and closes after one exchange, so a case's own `Content-Length`,
/// `Transfer-Encoding` or `Connection` are left out; its `Host` replaces the runner's.
pub(crate) fn encode_request(
    method: &str,
    target: &str,
    host: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.keys().any(|k| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    for (name, value) in headers {
        let framed_here = ["content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|f| name.eq_ignore_ascii_case(f));
        if !framed_here {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    let bodiless = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    if !body.is_empty() || !bodiless {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `request` on `stream` and reads the whole response, by `deadline`.
pub(crate) fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    head_request: bool,
    deadline: Instant,
) -> Result<Response, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    stream
        .set_write_timeout(Some(left.max(Duration::from_millis(1))))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request)
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut buf = Vec::new();
    read_until(stream, &mut buf, deadline, |b, eof| {
        parse_response(b, head_request, eof)
    })
}

/// What differs between `got` and `expected`: the status, each expected header (its name
/// in any case, its value exactly) and the body. Empty when they agree.
pub(crate) fn compare(expected: &ExpectedResponse, got: &Response) -> Vec<String> {
    let mut problems = Vec::new();
    if got.status != expected.status {
        problems.push(format!(
            "status {}, expected {}",
            got.status, expected.status
        ));
    }
    for (name, value) in &expected.headers {
        match field(&got.headers, name) {
            None => problems.push(format!("header {name:?} missing, expected {value:?}")),
            Some(actual) if actual != *value => {
                problems.push(format!("header {name:?} is {actual:?}, expected {value:?}"))
            }
            Some(_) => {}
        }
    }
    if got.body != expected.body.as_bytes() {
        problems.push(format!(
            "body {}, expected {:?}",
            shown(&got.body),
            expected.body
        ));
    }
    problems
}

/// Bytes for a message, cut short when long.
fn shown(bytes: &[u8]) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN)]);
    if bytes.len() > SHOWN {
        format!("{text:?}… ({} bytes)", bytes.len())
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Feeds `bytes` one at a time: the parser must ask for more until the very last one.
    fn parsed_only_at_the_end(bytes: &[u8], head_request: bool) -> Response {
        for cut in 0..bytes.len() {
            assert_eq!(
                parse_response(&bytes[..cut], head_request, false),
                Ok(None),
                "complete after {cut} of {} bytes",
                bytes.len()
            );
        }
        parse_response(bytes, head_request, false)
            .unwrap()
            .expect("complete")
    }

    #[test]
    fn a_chunked_response_is_decoded_with_extensions_and_trailers() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5;name=value\r\nhello\r\n1\r\n,\r\nB\r\n 0123456789\r\n0\r\nx-sum: 3\r\n\r\n";
        let response = parsed_only_at_the_end(wire, false);
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello, 0123456789");
        let body = decode_chunked(b"1\r\nx\r\n0\r\nX-Sum: 3\r\n\r\nnext").unwrap();
        assert_eq!(
            body.map(|b| b.trailers),
            Some(vec![("X-Sum".to_string(), "3".to_string())])
        );
    }

    #[test]
    fn chunked_bodies_with_bare_lf_and_trailers() {
        let body = decode_chunked(b"2\nab\n0\nX-T: 1\n\n").unwrap().unwrap();
        assert_eq!(body.bytes, b"ab");
        assert_eq!(body.trailers, [("X-T".to_string(), "1".to_string())]);
    }

    #[test]
    fn bad_chunked_bodies_are_errors() {
        for wire in [&b"zz\r\n"[..], b"+5\r\nhello\r\n", b"2\r\nabc\r\n", b"\r\n"] {
            assert!(
                decode_chunked(wire).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        assert!(parse_response(cut, false, true)
            .unwrap_err()
            .contains("closed inside the chunked body"));
    }

    #[test]
    fn content_length_close_and_bodiless_responses() {
        let wire = b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nmade";
        let response = parsed_only_at_the_end(wire, false);
        assert_eq!((response.status, &response.body[..]), (201, &b"made"[..]));
        // Without a length the body runs to the end of the connection.
        let until_close = b"HTTP/1.0 200 OK\r\n\r\nall of it";
        assert_eq!(parse_response(until_close, false, false), Ok(None));
        let response = parse_response(until_close, false, true).unwrap().unwrap();
        assert_eq!(response.body, b"all of it");
        // A HEAD answer, a 204 and a 304 have no body whatever their headers say.
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(parsed_only_at_the_end(head, true).body, b"");
        let empty = b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(parsed_only_at_the_end(empty, false).status, 204);
        // Interim responses are passed over.
        let interim =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parsed_only_at_the_end(interim, false).status, 404);
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhalf";
        assert!(parse_response(short, false, true)
            .unwrap_err()
            .contains("4 of 9"));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabc"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
        ] {
            assert!(
                parse_response(bad, false, true).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }

    /// What a case expects, from test literals (the servers' tests use it too).
    pub(crate) fn expected(status: u16, headers: &[(&str, &str)], body: &str) -> ExpectedResponse {
        ExpectedResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        }
    }

    #[test]
    fn responses_are_compared_by_status_headers_any_case_and_body() {
        let got = response(
            200,
            &[
                ("Content-Type", "text/plain"),
                ("X-Many", "a"),
                ("x-many", "b"),
            ],
            b"hi",
        );
        let want = expected(
            200,
            &[("content-type", "text/plain"), ("X-MANY", "a, b")],
            "hi",
        );
        assert!(compare(&want, &got).is_empty());
        let problems = compare(
            &expected(
                404,
                &[("content-type", "text/html"), ("x-gone", "1")],
                "hi!",
            ),
            &got,
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("status 200, expected 404"));
        assert!(problems[1].contains("\"content-type\" is \"text/plain\""));
        assert!(problems[2].contains("\"x-gone\" missing"));
        assert!(problems[3].contains("body \"hi\""));
        // As in the reference runner, an expectation without a body expects an empty one.
        let problems = compare(&ExpectedResponse::default(), &got);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn requests_are_framed_by_the_runner() {
        let headers = BTreeMap::from([
            ("x-echo".to_string(), "ping".to_string()),
            ("Content-Length".to_string(), "99".to_string()),
        ]);
        let wire = encode_request("POST", "/echo", "127.0.0.1:1", &headers, b"abc");
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:1\r\nx-echo: ping\r\n\
             Content-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
        let wire = encode_request("GET", "/", "h", &BTreeMap::new(), b"");
        assert!(!String::from_utf8(wire).unwrap().contains("Content-Length"));
    }
}
