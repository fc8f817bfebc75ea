//! An HTTP handler component (the WASI 0.2 proxy world) with one route per behaviour the
//! serving tests and the HTTP benchmark need:
//!
//! - `GET /` answers `hello from wasm\n`;
//! - `POST /echo` answers the request body;
//! - `POST /sha256` answers the hex SHA-256 of the body (the benchmark's work per request);
//! - `GET /env/NAME` answers the guest variable NAME (404 when unset);
//! - `GET /sleep/MS` waits MS milliseconds on the monotonic clock, then answers `slept\n`;
//! - `GET /alloc/MIB` grows linear memory by MIB mebibytes and answers its new size;
//! - `GET /trap` panics (a wasm trap); `GET /spin` loops forever;
//! - anything else answers 404.

use sha2::{Digest, Sha256};
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam,
};

struct Handler;

wasi::http::proxy::export!(Handler);

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let method = request.method();
        let (status, body) = route(&method, &path, request);
        respond(response_out, status, &body);
    }
}

fn route(method: &Method, path: &str, request: IncomingRequest) -> (u16, Vec<u8>) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::Get, [""]) => (200, b"hello from wasm\n".to_vec()),
        (Method::Post, ["echo"]) => (200, read_body(request)),
        (Method::Post, ["sha256"]) => {
            let digest = Sha256::digest(read_body(request));
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            (200, format!("{hex}\n").into_bytes())
        }
        (Method::Get, ["env", name]) => match std::env::var(name) {
            Ok(value) => (200, format!("{value}\n").into_bytes()),
            Err(_) => (404, format!("{name} is not set\n").into_bytes()),
        },
        (Method::Get, ["sleep", ms]) => match ms.parse::<u64>() {
            Ok(ms) => {
                wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                (200, b"slept\n".to_vec())
            }
            Err(_) => (400, b"not a number of milliseconds\n".to_vec()),
        },
        (Method::Get, ["alloc", mib]) => match mib.parse::<usize>() {
            Ok(mib) => {
                let block = vec![1u8; mib << 20];
                let touched: usize = block.iter().step_by(4096).map(|&b| b as usize).sum();
                (200, format!("allocated {} pages\n", touched).into_bytes())
            }
            Err(_) => (400, b"not a number of MiB\n".to_vec()),
        },
        (Method::Get, ["trap"]) => panic!("the handler traps on purpose"),
        (Method::Get, ["spin"]) => spin(),
        _ => (404, b"no such route\n".to_vec()),
    }
}

#[allow(clippy::empty_loop)]
fn spin() -> ! {
    loop {}
}

fn read_body(request: IncomingRequest) -> Vec<u8> {
    let Ok(body) = request.consume() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    {
        let Ok(stream) = body.stream() else {
            return out;
        };
        while let Ok(chunk) = stream.blocking_read(64 * 1024) {
            out.extend_from_slice(&chunk);
        }
    }
    IncomingBody::finish(body);
    out
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
    let _ = headers.set("content-length", &[body.len().to_string().into_bytes()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = outgoing.write() {
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
