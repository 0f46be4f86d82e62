//! A reverse proxy in front of the test Git HTTPS server (nginx + `git http-backend`) that answers the
//! requests a test chooses with `429`/`503` (and a `Retry-After`), passes every other request through, and
//! records every request it saw — so a test counts what the agent sent, instead of timing it.
//!
//! The agent talks plain HTTP to the proxy, without credentials; the proxy adds the server's basic auth on its
//! way to nginx, which trusts nothing else.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

use crate::git::{GitServers, TestRepo};

/// What the proxy answers a request with, instead of passing it through.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// `429` or `503`.
    pub status: u16,
    /// The `Retry-After` value, if any.
    pub retry_after: Option<String>,
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When it arrived (wall clock, as `Retry-After` dates are).
    pub at: SystemTime,
    /// `GET` or `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The status answered.
    pub status: u16,
}

/// What the proxy shares with its handlers.
#[derive(Default)]
struct State {
    refusals: Mutex<VecDeque<Refusal>>,
    seen: Mutex<Vec<Seen>>,
}

/// The running proxy; it serves until the test process exits.
pub struct ThrottlingProxy {
    /// Its loopback port (plain HTTP).
    pub port: u16,
    state: Arc<State>,
}

impl ThrottlingProxy {
    /// Start a proxy in front of `servers`' HTTPS server.
    pub fn start(servers: &GitServers) -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let ca = std::fs::read(&servers.ca_file).context("reading the test CA")?;
        let certs = reqwest::Certificate::from_pem_bundle(&ca)?;
        let client = reqwest::Client::builder().tls_certs_merge(certs).build()?;
        let upstream = Upstream {
            client,
            base: format!("https://127.0.0.1:{}", servers.https_port),
            user: servers.http_user.clone(),
            password: servers.http_password.clone(),
        };
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::Builder::new()
            .name("throttling-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(serve(listener, Arc::new(upstream), shared));
            })?;
        Ok(ThrottlingProxy { port, state })
    }

    /// `repo` through the proxy: `http://127.0.0.1:<port>/<name>.git`.
    pub fn url(&self, repo: &TestRepo) -> String {
        format!("http://127.0.0.1:{}/{}.git", self.port, repo.name)
    }

    /// Answer the next request that arrives with `refusal` (queued after earlier ones).
    pub fn refuse_next(&self, refusal: Refusal) {
        self.state.refusals.lock().unwrap().push_back(refusal);
    }

    /// Every request seen so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

/// Where passed-through requests go.
struct Upstream {
    client: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

async fn serve(listener: std::net::TcpListener, upstream: Arc<Upstream>, state: Arc<State>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("proxy listener");
    loop {
        let Ok((stream, _)): std::io::Result<(tokio::net::TcpStream, SocketAddr)> = listener.accept().await
        else {
            continue;
        };
        let (upstream, state) = (upstream.clone(), state.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (upstream, state) = (upstream.clone(), state.clone());
                async move { handle(request, &upstream, &state).await }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// Refuse `request` as queued, or pass it through; record it either way.
async fn handle(
    request: Request<Incoming>,
    upstream: &Upstream,
    state: &State,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let at = SystemTime::now();
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let refusal = state.refusals.lock().unwrap().pop_front();
    let response = match refusal {
        Some(refusal) => {
            let mut response = Response::builder().status(refusal.status);
            if let Some(value) = &refusal.retry_after {
                response = response.header("Retry-After", value);
            }
            response
                .body(Full::new(Bytes::from_static(b"slow down\n")))
                .expect("refusal")
        }
        None => pass(request, &path, upstream).await.unwrap_or_else(|e| {
            Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(format!("proxy: {e:#}\n"))))
                .expect("502")
        }),
    };
    state.seen.lock().unwrap().push(Seen {
        at,
        method,
        path,
        status: response.status().as_u16(),
    });
    Ok(response)
}

/// Send `request` on to nginx with the server's credentials; hand back its answer.
async fn pass(request: Request<Incoming>, path: &str, upstream: &Upstream) -> Result<Response<Full<Bytes>>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())?;
    let mut forward = upstream
        .client
        .request(method, format!("{}{path}", upstream.base))
        .basic_auth(&upstream.user, Some(&upstream.password));
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host" | "authorization" | "content-length" | "transfer-encoding" | "connection"
        ) {
            forward = forward.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = forward.body(body.to_vec()).send().await?;
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let bytes = answer.bytes().await?;
    Ok(response.body(Full::new(bytes))?)
}
