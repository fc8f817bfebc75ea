//! The HTTP/1.1 test servers a case's `servers` stand up for the guest's own requests: each
//! answers one request per connection as its endpoints say (a static reply, the request's body
//! or its headers echoed), as the reference runner's servers do.
//!
//! Hand-written on the client's parsing (`http_client`), for the same reasons: small, no heavy
//! dependency, and exact control over how each answer is framed. Every connection is bounded by
//! a deadline, so a guest that stalls holds up nothing else.

use std::io::Write;
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::case::{Endpoint, EndpointMode, EndpointResponse, Server, ServerKind, HTTP_METHODS};
use crate::http_client::{field, framing, parse_body, parse_head, read_until, Fields};
use crate::operations::in_namespace;

/// How long a test server gives one connection: longer than any case's step, so that only
/// a guest that stalls runs into it.
const SERVER_PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Fields,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: Fields,
}

/// The test servers of a case, listening on the runner's loopback (and, once a served
/// guest in a network namespace of its own is reached, on the same ports of that
/// namespace's loopback). They stop when dropped.
#[derive(Default)]
pub(crate) struct TestServers {
    env: Vec<(String, String)>,
    /// Each listening server's port and endpoints.
    listening: Vec<(u16, Arc<Vec<Endpoint>>)>,
    /// Namespaces the servers were also bound in.
    reached: Vec<PathBuf>,
    stop: Arc<AtomicBool>,
    accept_loops: Vec<JoinHandle<()>>,
}

impl TestServers {
    pub(crate) fn start(servers: &[Server]) -> Result<TestServers, String> {
        let mut started = TestServers::default();
        for server in servers {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .map_err(|e| format!("test server {:?}: {e}", server.name))?;
            let port = listener
                .local_addr()
                .map_err(|e| format!("test server {:?}: {e}", server.name))?
                .port();
            started
                .env
                .push((server.env_var(), format!("127.0.0.1:{port}")));
            match server.kind {
                // A port just free and let go: nothing listens there, connecting is refused.
                ServerKind::Closed => drop(listener),
                ServerKind::Listening => {
                    let endpoints = Arc::new(server.endpoints.clone().unwrap_or_default());
                    started.accept(listener, endpoints.clone())?;
                    started.listening.push((port, endpoints));
                }
            }
        }
        Ok(started)
    }

    /// `NAME=HOST:PORT` of every server, for the guest's environment.
    pub(crate) fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Whether any server listens (a closed one needs nothing to reach the guest).
    pub(crate) fn listens(&self) -> bool {
        !self.listening.is_empty()
    }

    /// Makes the servers reachable from the network namespace `ns` too: each listens
    /// there on its port on the loopback, the address the guest was given (the namespace
    /// is a container's own, so the port is free there).
    pub(crate) fn reach_from(&mut self, ns: &Path) -> Result<(), String> {
        if self.listening.is_empty() || self.reached.iter().any(|r| r == ns) {
            return Ok(());
        }
        for (port, endpoints) in self.listening.clone() {
            let listener = in_namespace(Some(ns), move || {
                TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                    .map_err(|e| format!("test server on 127.0.0.1:{port}: {e}"))
            })
            .map_err(|e| format!("in the guest's network namespace: {e}"))?;
            self.accept(listener, endpoints)?;
        }
        self.reached.push(ns.to_path_buf());
        Ok(())
    }

    /// Answers connections to `listener` until the servers are dropped, each on a thread
    /// of its own so that a stalled guest connection holds up nothing else.
    fn accept(
        &mut self,
        listener: TcpListener,
        endpoints: Arc<Vec<Endpoint>>,
    ) -> Result<(), String> {
        // Polled, so the loop sees `stop` without a connection to wake it.
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("test server: {e}"))?;
        let stop = self.stop.clone();
        self.accept_loops.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let endpoints = endpoints.clone();
                        std::thread::spawn(move || answer(stream, &endpoints));
                    }
                    // Nothing waiting, or a passing failure (out of descriptors): go on.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
        Ok(())
    }
}

impl Drop for TestServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for accept_loop in self.accept_loops.drain(..) {
            let _ = accept_loop.join();
        }
    }
}

/// One connection to a test server: one request, one answer, closed.
fn answer(mut stream: TcpStream, endpoints: &[Endpoint]) {
    // An accepted socket may inherit the listener's non-blocking mode on some systems.
    let _ = stream.set_nonblocking(false);
    let deadline = Instant::now() + SERVER_PATIENCE;
    let reply = match read_request(&mut stream, deadline) {
        Ok(request) => respond(&request, endpoints),
        Err(e) => reply(400, &[], e.as_bytes(), false),
    };
    let _ = stream.set_write_timeout(Some(SERVER_PATIENCE));
    let _ = stream.write_all(&reply);
    let _ = stream.shutdown(Shutdown::Write);
}

fn read_request(stream: &mut TcpStream, deadline: Instant) -> Result<Request, String> {
    let mut buf = Vec::new();
    let head = read_until(stream, &mut buf, deadline, |b, _| parse_head(b))?;
    let mut parts = head.start.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line {:?}", head.start));
    };
    if method.is_empty() || target.is_empty() || !version.starts_with("HTTP/1.") {
        return Err(format!("bad request line {:?}", head.start));
    }
    let framing = framing(&head.headers, false)?;
    // A client waiting for leave to send its body gets it, as from an HTTP/1.1 server.
    if field(&head.headers, "expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        let _ = stream.set_write_timeout(Some(SERVER_PATIENCE));
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|e| format!("writing 100 Continue: {e}"))?;
    }
    let body = read_until(stream, &mut buf, deadline, |b, eof| {
        parse_body(&b[head.len..], framing, eof)
    })?;
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers: head.headers,
        body: body.bytes,
        trailers: body.trailers,
    })
}

/// The answer of `endpoints` to `request`, as the reference runner's servers give it: the
/// last endpoint for its method and exact target, else 404.
pub(crate) fn respond(request: &Request, endpoints: &[Endpoint]) -> Vec<u8> {
    let head = request.method == "HEAD";
    if !HTTP_METHODS.contains(&request.method.as_str()) {
        return reply(501, &[], b"", head);
    }
    let endpoint = endpoints
        .iter()
        .rev()
        .find(|e| e.method == request.method && e.path == request.target);
    let Some(endpoint) = endpoint else {
        return reply(404, &[], b"", head);
    };
    match (endpoint.mode, &endpoint.response) {
        (EndpointMode::EchoBody, _) => reply(200, &[], &request.body, head),
        (EndpointMode::EchoHeaders, _) => reply(200, &echoed(request), b"", head),
        (EndpointMode::Static, None) => reply(200, &[], b"", head),
        (EndpointMode::Static, Some(response)) => static_reply(response, head),
    }
}

fn static_reply(response: &EndpointResponse, head: bool) -> Vec<u8> {
    let headers: Fields = response
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let Some(chunks) = &response.chunks else {
        let body = response.body.as_deref().unwrap_or_default();
        return reply(response.status, &headers, body.as_bytes(), head);
    };
    let mut out = status_line(response.status);
    push_fields(&mut out, &headers);
    out.push_str("Transfer-Encoding: chunked\r\n");
    if !response.trailers.is_empty() {
        let names: Vec<&str> = response.trailers.keys().map(String::as_str).collect();
        out.push_str(&format!("Trailer: {}\r\n", names.join(", ")));
    }
    out.push_str("Connection: close\r\n\r\n");
    if head {
        return out.into_bytes();
    }
    // An empty chunk would be read as the last one: it is left out.
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        out.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    out.push_str("0\r\n");
    for (name, value) in &response.trailers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// `echo-headers`: the request line, each header (names in lower case, every value, in
/// the order names first came) and each trailer (the last value of a name), as response
/// headers under the reference runner's names.
fn echoed(request: &Request) -> Fields {
    let mut out = vec![
        ("x-request-method".to_string(), request.method.clone()),
        ("x-request-path".to_string(), request.target.clone()),
    ];
    let mut names: Vec<String> = Vec::new();
    for (name, _) in &request.headers {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        for (_, value) in request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
        {
            out.push((format!("x-echo-{name}"), value.clone()));
        }
    }
    let mut trailers: Fields = Vec::new();
    for (name, value) in &request.trailers {
        let name = name.to_ascii_lowercase();
        match trailers.iter_mut().find(|(n, _)| *n == name) {
            Some(seen) => seen.1 = value.clone(),
            None => trailers.push((name, value.clone())),
        }
    }
    out.extend(
        trailers
            .into_iter()
            .map(|(name, value)| (format!("x-trailer-{name}"), value)),
    );
    out
}

/// A whole response with a `Content-Length` body (none after a HEAD).
fn reply(status: u16, headers: &[(String, String)], body: &[u8], head: bool) -> Vec<u8> {
    let mut out = status_line(status);
    push_fields(&mut out, headers);
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    if !head {
        bytes.extend_from_slice(body);
    }
    bytes
}

fn push_fields(out: &mut String, fields: &[(String, String)]) {
    for (name, value) in fields {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
}

fn status_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        418 => "I'm a teapot",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "",
    };
    format!("HTTP/1.1 {status} {reason}\r\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::http_client::tests::expected;
    use crate::http_client::{compare, exchange, Response};

    fn endpoint(method: &str, path: &str, mode: EndpointMode) -> Endpoint {
        Endpoint {
            method: method.into(),
            path: path.into(),
            mode,
            response: None,
        }
    }

    /// One exchange with a test server, as a guest would make it.
    fn ask(addr: &str, request: &[u8]) -> Response {
        let mut stream = TcpStream::connect(addr).unwrap();
        let head = request.starts_with(b"HEAD ");
        exchange(
            &mut stream,
            request,
            head,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap()
    }

    #[test]
    fn test_servers_answer_as_their_endpoints_say() {
        let mut chunked = endpoint("GET", "/chunks", EndpointMode::Static);
        chunked.response = Some(EndpointResponse {
            status: 200,
            chunks: Some(vec!["ab".into(), "".into(), "cd".into()]),
            trailers: BTreeMap::from([("x-t".to_string(), "done".to_string())]),
            ..EndpointResponse::default()
        });
        let mut created = endpoint("GET", "/created", EndpointMode::Static);
        created.response = Some(EndpointResponse {
            status: 201,
            headers: BTreeMap::from([("x-h".to_string(), "v".to_string())]),
            body: Some("made".into()),
            ..EndpointResponse::default()
        });
        let servers = TestServers::start(&[
            Server {
                name: "main".into(),
                kind: ServerKind::Listening,
                endpoints: Some(vec![
                    created,
                    chunked,
                    endpoint("POST", "/echo-body", EndpointMode::EchoBody),
                    endpoint("POST", "/echo-headers", EndpointMode::EchoHeaders),
                ]),
            },
            Server {
                name: "gone".into(),
                kind: ServerKind::Closed,
                endpoints: None,
            },
        ])
        .unwrap();
        assert!(servers.listens());
        let env: BTreeMap<_, _> = servers.env().iter().cloned().collect();
        let main = &env["HTTP_SERVER_MAIN"];
        assert!(TcpStream::connect(&env["HTTP_SERVER_GONE"]).is_err());

        let got = ask(main, b"GET /created HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(compare(&expected(201, &[("X-H", "v")], "made"), &got).is_empty());
        // Methods match exactly, as in the reference runner: no GET endpoint answers a HEAD.
        let got = ask(main, b"HEAD /created HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((got.status, got.body.len()), (404, 0));
        let got = ask(main, b"GET /chunks HTTP/1.1\r\n\r\n");
        assert!(compare(&expected(200, &[("trailer", "x-t")], "abcd"), &got).is_empty());
        let got = ask(main, b"GET /nowhere HTTP/1.1\r\n\r\n");
        assert_eq!(got.status, 404);
        let got = ask(main, b"BREW /created HTTP/1.1\r\n\r\n");
        assert_eq!(got.status, 501);
        let got = ask(
            main,
            b"POST /echo-body HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert_eq!((got.status, &got.body[..]), (200, &b"hello"[..]));
        let got = ask(
            main,
            b"POST /echo-headers HTTP/1.1\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nx-a: 2\r\n\r\n\
              3\r\nabc\r\n0\r\nX-Trail: t1\r\nx-trail: t2\r\n\r\n",
        );
        let want = expected(
            200,
            &[
                ("x-request-method", "POST"),
                ("x-request-path", "/echo-headers"),
                ("x-echo-x-a", "1, 2"),
                ("x-echo-transfer-encoding", "chunked"),
                ("x-trailer-x-trail", "t2"),
            ],
            "",
        );
        assert!(compare(&want, &got).is_empty(), "{got:?}");
        let got = ask(main, b"garbage\r\n\r\n");
        assert_eq!(got.status, 400);
    }
}
