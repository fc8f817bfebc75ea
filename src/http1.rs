//! One HTTP/1.1 exchange over a stream the caller connected (TCP or TLS): the few requests
//! `wasmbay` makes itself (a node's labels to the API server, an image to a registry) do not
//! justify an HTTP client stack. Each request closes its connection; every read and write is
//! bounded by the stream's timeouts.

use std::io::{self, Read, Write};

/// A request; `Host`, `Content-Length` and `Connection: close` are added.
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query, as sent.
    pub target: &'a str,
    pub host: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: &'a [u8],
}

/// A response: status, headers (names in lower case) and the whole body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// What the server said went wrong: a JSON error's message, else the body, shortened.
    pub fn message(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
            // Kubernetes' Status and the OCI distribution API's error list.
            if let Some(message) = json["message"].as_str() {
                return message.to_string();
            }
            if let Some(errors) = json["errors"].as_array() {
                let all: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e["code"].as_str().unwrap_or("error"),
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                return all.join("; ");
            }
        }
        text.chars().take(300).collect()
    }
}

/// Sends `request` and reads the response to the end of the connection.
pub fn exchange(stream: &mut (impl Read + Write), request: &Request<'_>) -> io::Result<Response> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: wasmbay/{}\r\n",
        request.method,
        request.target,
        request.host,
        request.body.len(),
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(request.body)?;
    stream.flush()?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify has still sent its answer.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse(&response).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the answer is not an HTTP/1.1 response",
        )
    })
}

fn parse(response: &[u8]) -> Option<Response> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let raw = &response[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    Some(Response {
        status,
        headers,
        body,
    })
}

/// A chunked body's data.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies_and_headers_are_read() {
        let plain = parse(b"HTTP/1.1 201 Created\r\nLocation: /v2/x/blobs/uploads/1\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert_eq!(plain.status, 201);
        assert_eq!(plain.header("location"), Some("/v2/x/blobs/uploads/1"));
        assert_eq!(plain.body, b"ok");
        let chunked =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(chunked.body, b"abcde");
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_none());
    }

    #[test]
    fn error_messages_come_from_the_json_the_server_sent() {
        let registry = parse(b"HTTP/1.1 404 Not Found\r\n\r\n{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"repository name not known to registry\"}]}").unwrap();
        assert_eq!(
            registry.message(),
            "NAME_UNKNOWN: repository name not known to registry"
        );
        let kube =
            parse(b"HTTP/1.1 403 Forbidden\r\n\r\n{\"kind\":\"Status\",\"message\":\"forbidden\"}")
                .unwrap();
        assert_eq!(kube.message(), "forbidden");
    }
}
