//! The Kubernetes client, with every request counted (`outpost_kube_requests_total{method}`): the number that
//! proves an unchanged poll costs the API server nothing.

use kube::Client;
use kube::client::ClientBuilder;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// HTTP methods the client uses; anything else is `Other` (bounded label values).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Method {
    get,
    post,
    put,
    patch,
    delete,
    other,
}

/// Label set of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    /// The HTTP method (GET, PATCH, ...).
    method: Method,
}

/// Counts API requests.
#[derive(Clone, Default)]
pub struct RequestCounter {
    /// By HTTP method.
    requests: Family<MethodLabels, Counter>,
}

impl RequestCounter {
    /// Register `outpost_kube_requests_total` in `registry` (which carries the `outpost` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let counter = RequestCounter::default();
        registry.register(
            "kube_requests",
            "Requests the agent sent to the Kubernetes API server, by HTTP method",
            counter.requests.clone(),
        );
        counter
    }

    fn count(&self, method: &http::Method) {
        let method = match *method {
            http::Method::GET => Method::get,
            http::Method::POST => Method::post,
            http::Method::PUT => Method::put,
            http::Method::PATCH => Method::patch,
            http::Method::DELETE => Method::delete,
            _ => Method::other,
        };
        self.requests.get_or_create(&MethodLabels { method }).inc();
    }

    /// Total so far.
    pub fn total(&self) -> u64 {
        [
            Method::get,
            Method::post,
            Method::put,
            Method::patch,
            Method::delete,
            Method::other,
        ]
        .into_iter()
        .map(|method| self.requests.get_or_create(&MethodLabels { method }).get())
        .sum()
    }
}

/// Longest wait for any answer from the API server.
const API_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
/// Longest a request may take to send.
const API_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A client from the inferred configuration (in-cluster or KUBECONFIG), counting requests when `counter` is
/// given. Proxy variables are ignored for the API server (they are for Git).
pub async fn client(counter: Option<RequestCounter>) -> Result<Client, kube::Error> {
    from_config(config().await?, counter)
}

/// The inferred configuration (in-cluster or KUBECONFIG) with the agent's timeouts and no proxy.
pub async fn config() -> Result<kube::Config, kube::Error> {
    let mut config = kube::Config::infer().await.map_err(kube::Error::InferConfig)?;
    // The API server is local to the cluster: never reach it through HTTPS_PROXY, which is meant for Git.
    config.proxy_url = None;
    // An API server that accepts a request and never answers must not hold the agent: kube leaves reads
    // unbounded by default. Longer than the watches' own 290 s server-side timeout, so a quiet watch is not cut
    // (that would cost a re-list), counted from each request rather than from when its connection went idle.
    config.read_timeout = Some(API_READ_TIMEOUT);
    config.write_timeout = Some(API_WRITE_TIMEOUT);
    config.reset_reader_on_write = true;
    Ok(config)
}

/// A client for `config` (from [`config`], perhaps set to impersonate), counting requests when `counter` is
/// given.
pub fn from_config(config: kube::Config, counter: Option<RequestCounter>) -> Result<Client, kube::Error> {
    let Some(counter) = counter else {
        return Client::try_from(config);
    };
    let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        counter.count(req.method());
        req
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}
