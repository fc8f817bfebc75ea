//! Serving HTTP handler components: `wasi:http/incoming-handler` of WASI 0.2 (the proxy world)
//! and `wasi:http/handler` of 0.3 (the service world).
//!
//! Each request gets a fresh instance from the pre-linked component (the pooling allocator
//! makes that a slot reuse, not an `mmap`), so no request sees another's memory and a trap ends
//! only its own request. wasmtime-wasi-http's [`ProxyHandler`] drives the call for both
//! releases; this module decides when instances end, bounds each request (memory, wall clock,
//! concurrency) and speaks HTTP/1.1 with keep-alive and HTTP/2 over cleartext (hyper, protocol
//! told from the connection preface).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use wasmbay_shim_core::{
    CompiledModule, EngineError, ExitStatus, ModuleKind, ServeLimits, StopHandle, WasiConfig,
};
use wasmtime::component::{GuestTaskId, ResourceTable};
use wasmtime::{StoreContextMut, UpdateDeadline};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtxView, WasiHttpView};

use crate::limits::MemoryLimiter;
use crate::run_component::{wasi_builder, ComponentState};

/// How often guest code checks its request's deadline (an epoch tick). Also the most a busy
/// request can hold a runtime thread before yielding it to other requests.
const TICK: Duration = Duration::from_millis(10);

/// How long after the request budget a drain waits for responses still being written.
const DRAIN_SLACK: Duration = Duration::from_secs(5);

/// A component exporting an HTTP handler, linked and ready to instantiate per request.
pub(crate) struct HttpHandlerModule {
    engine: wasmtime::Engine,
    pre: Arc<ProxyPre<ComponentState>>,
    export: String,
}

impl HttpHandlerModule {
    /// `export` is the handler's full export name, which also says its WASI release.
    pub(crate) fn new(
        engine: wasmtime::Engine,
        pre: wasmtime::component::InstancePre<ComponentState>,
        export: String,
    ) -> Result<Self, EngineError> {
        let missing = |e: wasmtime::Error| EngineError::MissingExport {
            name: format!("{export} ({e:#})"),
        };
        let pre = if export.starts_with("wasi:http/handler@") {
            ProxyPre::P3(wasmtime_wasi_http::p3::bindings::ServicePre::new(pre).map_err(missing)?)
        } else {
            ProxyPre::P2(wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre).map_err(missing)?)
        };
        Ok(HttpHandlerModule {
            engine,
            pre: Arc::new(pre),
            export,
        })
    }
}

impl CompiledModule for HttpHandlerModule {
    fn kind(&self) -> ModuleKind {
        ModuleKind::Component
    }

    fn run(
        &self,
        _config: WasiConfig,
        _entry: Option<&str>,
        _stop: &StopHandle,
    ) -> Result<ExitStatus, EngineError> {
        Err(EngineError::NotACommand(format!(
            "it exports {}, an HTTP handler, which is served, not run (`wasmbay serve`)",
            self.export
        )))
    }

    fn serves_http(&self) -> bool {
        true
    }

    fn serve(
        &self,
        config: WasiConfig,
        listener: std::net::TcpListener,
        limits: &ServeLimits,
        stop: &StopHandle,
    ) -> Result<(), EngineError> {
        let failed = |what: &str, e: std::io::Error| EngineError::Serve(format!("{what}: {e}"));
        listener
            .set_nonblocking(true)
            .map_err(|e| failed("listener", e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("http")
            .build()
            .map_err(|e| failed("runtime", e))?;
        let request_memory = match (limits.request_memory, config.memory_limit) {
            (Some(request), Some(workload)) => Some(request.min(workload)),
            (request, workload) => request.or(workload),
        };
        let instances = Instances {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            network: config.network,
            config,
            request_memory,
            timeout: limits.request_timeout,
        };
        let ticker = EpochTicker::start(self.engine.clone());
        let result = runtime.block_on(accept_until_stopped(
            listener,
            ProxyHandler::new(instances),
            limits,
            stop,
        ));
        drop(ticker);
        // Connections still open after the drain are only idle keep-alives: do not wait on them.
        runtime.shutdown_timeout(Duration::from_millis(100));
        result
    }
}

/// Makes instances, one per request, and says when each ends.
struct Instances {
    engine: wasmtime::Engine,
    pre: Arc<ProxyPre<ComponentState>>,
    config: WasiConfig,
    network: bool,
    request_memory: Option<u64>,
    timeout: Duration,
}

impl HandlerState for Instances {
    type StoreData = ComponentState;
    type WorkerExpiration = Expiration;
    type WorkerState = OneRequest;

    fn instantiate(
        &self,
    ) -> impl Future<Output = wasmtime::Result<Instance<ComponentState, Expiration, OneRequest>>> + Send
    {
        let prepared = wasi_builder(&self.config)
            .map(|mut builder| builder.build())
            .map_err(wasmtime::Error::msg);
        let engine = self.engine.clone();
        let pre = self.pre.clone();
        let network = self.network;
        let memory = self.request_memory;
        let timeout = self.timeout;
        async move {
            let ctx = prepared?;
            let mut store = wasmtime::Store::new(
                &engine,
                ComponentState::new(
                    ctx,
                    ResourceTable::new(),
                    MemoryLimiter::new(memory),
                    network,
                ),
            );
            store.limiter(|state| state.limiter());
            // Guest code checks the epoch every tick: past the request's budget it traps
            // (the request is answered 500); before, it yields, so that a busy request shares
            // the runtime's threads with the others.
            let started = Instant::now();
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                if started.elapsed() > timeout {
                    Err(wasmtime::Trap::Interrupt.into())
                } else {
                    Ok(UpdateDeadline::Yield(1))
                }
            });
            let proxy = pre.instantiate_async(&mut store).await?;
            Ok(Instance {
                store,
                proxy,
                view: http_view,
                expiration: Expiration::new(timeout),
                state: OneRequest { timeout },
            })
        }
    }
}

fn http_view(state: &mut ComponentState) -> WasiHttpCtxView<'_> {
    state.http()
}

/// An instance takes exactly one request: a fresh instance per request is the isolation
/// promise, and the pool makes it cheap.
struct OneRequest {
    timeout: Duration,
}

impl WorkerState for OneRequest {
    type StoreData = ComponentState;
    type RequestData = ();

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total == 0 {
            ShouldAccept::Yes
        } else {
            ShouldAccept::Never
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, ComponentState>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + 'static + Send + Sync>> {
        Box::pin(tokio::time::sleep(self.timeout))
    }

    fn drop(&self, _store: wasmtime::Store<ComponentState>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            tracing::debug!(error = %format!("{e:#}"), "request instance ended with an error");
        }
    }
}

/// Ends an instance whose request has outlived its budget, from outside the guest: a guest
/// blocked in a host call never reaches an epoch check.
struct Expiration {
    timeout: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Expiration {
    fn new(timeout: Duration) -> Self {
        Expiration {
            timeout,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        state: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        match state {
            // The one request is answered and its post-return work done: nothing else will
            // ever run in this instance.
            WorkerStatus::Idle => Poll::Ready(()),
            WorkerStatus::Requests | WorkerStatus::PostReturn => {
                let deadline = tokio::time::Instant::from_std(start + this.timeout);
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                this.timer.as_mut().poll(cx)
            }
        }
    }
}

/// Bumps the engine's epoch every [`TICK`] while a server runs.
struct EpochTicker {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(TICK)
                {
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `stop`, then lets every connection finish the requests it has
/// in flight (each connection closes once idle) and returns.
async fn accept_until_stopped(
    listener: std::net::TcpListener,
    handler: ProxyHandler<Instances>,
    limits: &ServeLimits,
    stop: &StopHandle,
) -> Result<(), EngineError> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| EngineError::Serve(format!("listener: {e}")))?;
    let stopping = Arc::new(tokio::sync::Notify::new());
    {
        let stopping = stopping.clone();
        stop.set_waker(move || stopping.notify_one());
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrency.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let accepted = tokio::select! {
            _ = stopping.notified() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            // Out of descriptors or a connection reset before accept: the listener is fine.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small response writes should leave at once, not wait for an ACK (Nagle).
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let handler = handler.clone();
        let slots = slots.clone();
        let service = hyper::service::service_fn(move |request| {
            let handler = handler.clone();
            let slots = slots.clone();
            async move { Ok::<_, Infallible>(answer(&handler, &slots, request, local).await) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    stop.clear_waker();
    drop(listener);
    // Requests in flight end within their budget; a response still streaming after that (or
    // a client that never reads it) does not hold the drain up for ever.
    let drain = limits.request_timeout + DRAIN_SLACK;
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain,
            "connections still open after the drain; closing them"
        );
    }
    Ok(())
}

/// One request through the guest: its answer, or 500 when the guest trapped, went over a limit
/// or never answered.
async fn answer(
    handler: &ProxyHandler<Instances>,
    slots: &tokio::sync::Semaphore,
    request: hyper::Request<hyper::body::Incoming>,
    local: Option<std::net::SocketAddr>,
) -> hyper::Response<WasiBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let request = match absolute(request, local) {
        Ok(request) => request,
        Err(why) => return plain(hyper::StatusCode::BAD_REQUEST, why),
    };
    let Ok(_slot) = slots.acquire().await else {
        return plain(hyper::StatusCode::SERVICE_UNAVAILABLE, "server stopping");
    };
    match handler.handle((), request).await {
        Ok(response) => response,
        Err(e) => {
            // The container's log gets the cause; the client only the status.
            eprintln!("wasmbay: {method} {path}: {}", one_line(&e));
            plain(
                hyper::StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n",
            )
        }
    }
}

/// The request as a guest sees it: an absolute URI (scheme and authority), its body boxed.
/// hyper gives origin-form URIs (`/path`); the authority comes from `Host` (HTTP/1.1) or the
/// URI itself (HTTP/2), else the address the connection came in on.
fn absolute(
    request: hyper::Request<hyper::body::Incoming>,
    local: Option<std::net::SocketAddr>,
) -> Result<http::Request<WasiBody>, &'static str> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.authority().is_none() {
        let authority = match parts.headers.get(http::header::HOST) {
            Some(host) => host.to_str().map_err(|_| "Host is not text\n")?.to_string(),
            None => local
                .map(|a| a.to_string())
                .ok_or("no Host and no local address\n")?,
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        parts.uri = http::Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|_| "Host is not a valid authority\n")?;
    }
    let body = body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync();
    Ok(http::Request::from_parts(parts, body))
}

fn plain(status: hyper::StatusCode, text: &'static str) -> hyper::Response<WasiBody> {
    let mut response = hyper::Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

fn one_line(error: &wasmtime::Error) -> String {
    let text = format!("{error:#}");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
