//! The admin HTTP server: `/metrics` for Prometheus, `/healthz` and `/readyz` for the kubelet (DESIGN §7).
//!
//! Data enters as an [`AdminState`]: the metrics [`Registry`] (filled before serving, see
//! [`crate::metrics`]) and a [`Readiness`] handle that the rest of the process flips as it starts, wins or
//! loses the lease, and stops. It leaves as HTTP/1.1 responses, one task per connection. [`serve`] takes an
//! already bound listener (so tests bind port 0) and a shutdown future; when that resolves it stops
//! accepting, lets in-flight requests finish for a short while, and returns.
//!
//! Both binaries reach it through [`super::Process`], which binds it to `--metrics-addr` ([`super::AdminArgs`]).
//!
//! A failing connection is the client's problem, never the server's: it is logged at debug level.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, debug_span, info, warn};

/// Role of a replica that holds the lease and acts.
pub const ROLE_LEADER: &str = "leader";
/// Role of a replica that waits for the lease; it is ready (it can take over) but does not act.
pub const ROLE_STANDBY: &str = "standby";
/// Role of the only replica, when leader election is off.
pub const ROLE_SINGLE: &str = "single";

/// Content type of the OpenMetrics text format that prometheus-client encodes.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the probe answers.
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// Probes and scrapers send their headers at once; a client slower than this is a port scanner or a
/// slowloris and must not hold a task.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Our requests are a line and a few headers; hyper's minimum buffer is plenty and caps memory per client.
const MAX_BUF_SIZE: usize = 8 * 1024;
/// After shutdown, in-flight requests get this long; pod termination must not wait on a slow scraper.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Whether the process is ready, as `/readyz` reports it. Cloning shares the state.
///
/// Starts not ready (reason "starting"); the process calls [`set_ready`](Self::set_ready) once it can do
/// its job and [`set_not_ready`](Self::set_not_ready) when it no longer can.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<Mutex<ReadyState>>);

/// The state behind [`Readiness`]; one lock so that a reader never sees a role from one update and a
/// verdict from another.
#[derive(Debug)]
struct ReadyState {
    /// Whether `/readyz` answers 200.
    ready: bool,
    /// The role last set by `set_ready`, reported while ready.
    role: String,
    /// Why the process is not ready, reported while not ready.
    reason: String,
    /// The work loop's last sign of progress and how long it may go without one; `/healthz` fails past it.
    /// `None` until the loop first beats (a standby waiting for its Lease has no loop to watch).
    beat: Option<(std::time::Instant, Duration)>,
}

impl Readiness {
    /// A handle that starts not ready, with role [`ROLE_SINGLE`] and reason "starting".
    pub fn new() -> Self {
        Readiness(Arc::new(Mutex::new(ReadyState {
            ready: false,
            role: ROLE_SINGLE.to_owned(),
            reason: "starting".to_owned(),
            beat: None,
        })))
    }

    /// Marks the process ready in `role` ([`ROLE_LEADER`], [`ROLE_STANDBY`] or [`ROLE_SINGLE`]).
    pub fn set_ready(&self, role: &str) {
        let mut state = self.lock();
        state.ready = true;
        role.clone_into(&mut state.role);
    }

    /// Marks the process not ready, saying why (e.g. "cannot reach the API server").
    pub fn set_not_ready(&self, reason: &str) {
        let mut state = self.lock();
        state.ready = false;
        reason.clone_into(&mut state.reason);
    }

    /// The work loop made progress; `/healthz` fails once `window` passes without another beat, so the
    /// kubelet restarts a process whose loop is stuck.
    pub fn beat(&self, window: Duration) {
        self.lock().beat = Some((std::time::Instant::now(), window));
    }

    /// The `/healthz` answer: 200 while the loop beats (or before it starts), 503 once it stopped.
    fn liveness(&self) -> (StatusCode, String) {
        match self.lock().beat {
            Some((at, window)) if at.elapsed() > window => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "no progress of the work loop for {}s (allowed {}s)",
                    at.elapsed().as_secs(),
                    window.as_secs()
                ),
            ),
            _ => (StatusCode::OK, "ok".to_owned()),
        }
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.lock().ready
    }

    /// The role last given to [`set_ready`](Self::set_ready); [`ROLE_SINGLE`] until then.
    pub fn role(&self) -> String {
        self.lock().role.clone()
    }

    /// The `/readyz` answer: its status and body.
    fn report(&self) -> (StatusCode, String) {
        let state = self.lock();
        if state.ready {
            (StatusCode::OK, format!("ready ({})", state.role))
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {}", state.reason),
            )
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReadyState> {
        // Every critical section is a plain field assignment, so a panic elsewhere cannot leave the state
        // half-written: recovering from poisoning is safe.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new()
    }
}

/// What the admin server serves. Cloning is cheap; every connection holds a clone.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// The metrics, registered before serving; `/metrics` encodes it on every scrape.
    pub registry: Arc<Registry>,
    /// The verdict `/readyz` reports.
    pub readiness: Readiness,
}

impl AdminState {
    /// Serves `registry` (a [`Registry`] or an `Arc` of one) and `readiness`.
    pub fn new(registry: impl Into<Arc<Registry>>, readiness: Readiness) -> Self {
        AdminState {
            registry: registry.into(),
            readiness,
        }
    }
}

/// Binds the admin server's listener, saying which address failed if it cannot.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot bind the admin server to {addr}: {error}"),
        )
    })
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves, then drains and returns.
///
/// Connections are served one task each. A failed accept is logged and retried, so the only error is
/// a listener without a local address.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    info!(%addr, "Admin server listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = joined {
                    debug!(%error, "Admin connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let task = serve_connection(stream, state.clone(), stop_rx.clone());
                    connections.spawn(task.instrument(debug_span!("admin_connection", %peer)));
                }
                Err(error) => {
                    warn!(%error, "Admin server failed to accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
        }
    }

    // New clients get "connection refused" from here on; connected ones finish their request.
    drop(listener);
    stop_tx.send_replace(true);
    let drain = async {
        while let Some(joined) = connections.join_next().await {
            if let Err(error) = joined {
                debug!(%error, "Admin connection task failed");
            }
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        debug!(
            remaining = connections.len(),
            "Admin connections outlived the drain timeout; aborting them"
        );
        connections.abort_all();
    }
    info!(%addr, "Admin server stopped");
    Ok(())
}

/// Serves one connection until the client is done or `stop` turns true, then finishes gracefully.
async fn serve_connection(stream: TcpStream, state: AdminState, mut stop: watch::Receiver<bool>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = route(&state, &request);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF_SIZE)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        // The block drops the watch guard at once: holding it across an await would make the task !Send.
        () = async { let _ = stop.wait_for(|&stopping| stopping).await; } => {
            // Finishes a request in flight, then closes; an idle keep-alive connection closes at once.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        debug!(%error, "Admin connection failed");
    }
}

/// Answers one request.
fn route(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return respond(StatusCode::NOT_FOUND, TEXT_CONTENT_TYPE, "not found");
    }
    // hyper leaves out the body of a HEAD answer itself.
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT_CONTENT_TYPE,
            "method not allowed",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/metrics" => respond(
            StatusCode::OK,
            OPENMETRICS_CONTENT_TYPE,
            crate::metrics::encode(&state.registry),
        ),
        "/readyz" => {
            let (status, body) = state.readiness.report();
            respond(status, TEXT_CONTENT_TYPE, body)
        }
        // Liveness: answering, and the work loop beating within its window.
        _ => {
            let (status, body) = state.readiness.liveness();
            respond(status, TEXT_CONTENT_TYPE, body)
        }
    }
}

/// A response with `status`, `content_type` and `body`, built without the fallible `Response::builder`.
fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::metrics::{self, Metrics};

    /// Long enough for a loaded CI machine, short enough that a hang fails the test.
    const TEST_TIMEOUT: Duration = Duration::from_secs(10);

    struct Running {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        server: JoinHandle<io::Result<()>>,
    }

    async fn start(state: AdminState) -> Running {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        Running { addr, stop, server }
    }

    fn empty_state() -> AdminState {
        AdminState::new(metrics::new_registry(), Readiness::new())
    }

    /// Sends one request and returns the status code, the head and the body.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let exchange = async {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.expect("read");
            String::from_utf8(raw).expect("utf-8 response")
        };
        let text = tokio::time::timeout(TEST_TIMEOUT, exchange)
            .await
            .expect("response in time");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        (status, head.to_owned(), body.to_owned())
    }

    #[tokio::test]
    async fn readyz_is_unavailable_until_marked_ready() {
        let state = empty_state();
        let readiness = state.readiness.clone();
        let running = start(state).await;

        let (status, _, body) = request(running.addr, "GET", "/readyz").await;
        assert_eq!((status, body.as_str()), (503, "not ready: starting"));

        readiness.set_ready(ROLE_LEADER);
        let (status, _, body) = request(running.addr, "GET", "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ready (leader)"));

        readiness.set_not_ready("lost the lease");
        let (status, _, body) = request(running.addr, "GET", "/readyz").await;
        assert_eq!((status, body.as_str()), (503, "not ready: lost the lease"));
        assert_eq!(readiness.role(), ROLE_LEADER);
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn healthz_answers_ok_even_when_not_ready() {
        let running = start(empty_state()).await;
        let (status, _, body) = request(running.addr, "GET", "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }

    #[tokio::test]
    async fn healthz_fails_once_the_work_loop_stops_beating() {
        let state = empty_state();
        let running = start(state.clone()).await;
        state.readiness.beat(Duration::from_millis(200));
        let (status, _, _) = request(running.addr, "GET", "/healthz").await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (status, _, body) = request(running.addr, "GET", "/healthz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("no progress of the work loop"), "{body}");
        state.readiness.beat(Duration::from_secs(60));
        let (status, _, _) = request(running.addr, "GET", "/healthz").await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let mut registry = metrics::new_registry();
        let agent_metrics = Metrics::register(&mut registry);
        agent_metrics.applied("web", 3);
        let running = start(AdminState::new(registry, Readiness::new())).await;

        let (status, head, body) = request(running.addr, "GET", "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
            "{head}"
        );
        assert!(
            body.lines()
                .any(|l| l == r#"outpost_objects_applied_total{bundle="web"} 3"#),
            "{body}"
        );
    }

    #[tokio::test]
    async fn unknown_paths_are_not_found() {
        let running = start(empty_state()).await;
        let (status, _, _) = request(running.addr, "GET", "/debug/pprof").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn writes_to_known_paths_are_not_allowed() {
        let running = start(empty_state()).await;
        let (status, head, _) = request(running.addr, "POST", "/readyz").await;
        assert_eq!(status, 405);
        assert!(head.to_ascii_lowercase().contains("allow: get, head"), "{head}");
    }

    #[tokio::test]
    async fn server_stops_when_shutdown_resolves_despite_an_idle_keep_alive_client() {
        let running = start(empty_state()).await;
        // A keep-alive client that has had its answer and stays connected must not hold the server up.
        let mut idle = TcpStream::connect(running.addr).await.expect("connect");
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0_u8; 512];
        let n = tokio::time::timeout(TEST_TIMEOUT, idle.read(&mut buf))
            .await
            .expect("answer")
            .expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );

        running.stop.send(()).expect("server still waiting");
        let result = tokio::time::timeout(DRAIN_TIMEOUT / 2, running.server).await;
        result
            .expect("stopped before the drain timeout")
            .expect("no panic")
            .expect("no error");
        assert!(
            TcpStream::connect(running.addr).await.is_err(),
            "still accepting after shutdown"
        );
    }
}
