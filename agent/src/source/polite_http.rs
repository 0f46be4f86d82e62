//! The agent's HTTP backend for gix: gix's own reqwest backend, wrapped so every request passes the
//! [`Throttle`] and every `429`/`503` answer holds the next ones.
//!
//! gix's backend turns an error status into an error whose text names the status but drops the response, and
//! with it `Retry-After`. So the first request of every conversation, the ref advertisement (`GET
//! info/refs`, the one a throttling server answers first), is sent here, with a reqwest client configured as
//! gix's is (our CA, timeouts, user agent); its status and `Retry-After` are read before anything else. The
//! requests after it (`POST`s carrying the negotiation, streamed) go through gix's backend; a `429`/`503`
//! there is recognised from the error and held for [`super::throttle::DEFAULT_HOLD`].

use std::io::{self, BufRead, Cursor, Read, Write};

use gix::protocol::transport::client::AuthenticationRequired;
use gix::protocol::transport::client::blocking_io::http::{
    self, GetResponse, Http, PostBodyDataKind, PostResponse,
};

use super::throttle::Throttle;

/// gix's backend, the one [`Polite`] wraps in the agent.
pub type Reqwest = http::reqwest::Remote;

/// An HTTP backend that asks `throttle` before each request.
pub struct Polite<H> {
    /// gix's backend, for the streamed requests.
    inner: H,
    /// Shared by every conversation of the agent.
    throttle: Throttle,
    /// From gix's options: our user agent.
    user_agent: Option<String>,
    /// From gix's options: the hook that configures a reqwest client (CA bundle, timeouts).
    backend: Option<std::sync::Arc<std::sync::Mutex<dyn std::any::Any + Send + Sync + 'static>>>,
    /// Built at the first `GET`.
    client: Option<reqwest::blocking::Client>,
    /// Where a redirect of the `GET` took the repository.
    redirected: Option<String>,
}

impl<H: Http> Polite<H> {
    /// `inner`, asking `throttle` first.
    pub fn new(inner: H, throttle: Throttle) -> Self {
        Polite {
            inner,
            throttle,
            user_agent: None,
            backend: None,
            client: None,
            redirected: None,
        }
    }

    /// The client for our own requests, configured by the same hook as gix's.
    fn client(&mut self) -> io::Result<reqwest::blocking::Client> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let mut builder = reqwest::blocking::ClientBuilder::new()
            .connect_timeout(std::time::Duration::from_secs(20))
            .http1_title_case_headers();
        if let Some(backend) = &self.backend {
            let mut backend = backend
                .lock()
                .map_err(|_| io::Error::other("HTTP backend configuration lock is poisoned"))?;
            if let Some(options) = backend.downcast_mut::<http::reqwest::Options>()
                && let Some(configure) = options.configure_client.as_mut()
            {
                builder = configure(builder).map_err(io::Error::other)?;
            }
        }
        let client = builder.build().map_err(|e| io::Error::other(e.without_url()))?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Send the ref advertisement request ourselves; a failure is the error its headers yield, as in gix.
    fn advertisement(&mut self, url: &str, base_url: &str, headers: Vec<String>) -> io::Result<Response> {
        let client = self.client()?;
        let mut request = client.get(url);
        for line in &headers {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if self.user_agent.is_some() && name.trim().eq_ignore_ascii_case("user-agent") {
                continue;
            }
            request = request.header(name.trim(), value.trim());
        }
        if let Some(agent) = &self.user_agent {
            request = request.header(reqwest::header::USER_AGENT, agent);
        }
        let response = request.send().map_err(|e| io::Error::other(e.without_url()))?;
        let tail = url.strip_prefix(base_url).unwrap_or_default();
        let landed = response.url().as_str();
        if landed != url
            && let Some(base) = landed.strip_suffix(tail).filter(|_| !tail.is_empty())
        {
            self.redirected = Some(base.trim_end_matches('/').to_owned());
        }
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            let www_authenticate = response
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.as_bytes().into())
                .collect();
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                AuthenticationRequired { www_authenticate },
            ));
        }
        if matches!(status.as_u16(), 429 | 503) {
            let retry_after = response.headers().get(reqwest::header::RETRY_AFTER);
            let retry_after = retry_after.and_then(|v| v.to_str().ok());
            let wait = self.throttle.hold(status.as_u16(), retry_after);
            return Err(io::Error::other(super::throttle::Held::Server {
                status: status.as_u16(),
                remaining: wait,
            }));
        }
        if !status.is_success() {
            return Err(io::Error::other(format!(
                "Received HTTP status {}",
                status.as_str()
            )));
        }
        let mut lines = Vec::new();
        for (name, value) in response.headers() {
            lines.extend_from_slice(name.as_str().as_bytes());
            lines.push(b':');
            lines.extend_from_slice(value.as_bytes());
            lines.push(b'\n');
        }
        Ok(Response {
            headers: lines,
            body: io::BufReader::new(response),
        })
    }
}

/// A response of ours: its header lines and its body.
struct Response {
    headers: Vec<u8>,
    body: io::BufReader<reqwest::blocking::Response>,
}

impl<H: Http> Http for Polite<H> {
    type Headers = Headers<H::Headers>;
    type ResponseBody = Body<H::ResponseBody>;
    type PostBody = PostBody<H::PostBody>;

    fn get(
        &mut self,
        url: &str,
        base_url: &str,
        headers: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> gix::Result<GetResponse<Self::Headers, Self::ResponseBody>> {
        let headers = headers.into_iter().map(|h| h.as_ref().to_owned()).collect();
        let sent = self
            .throttle
            .admit()
            .map_err(io::Error::other)
            .and_then(|()| self.advertisement(url, base_url, headers));
        Ok(match sent {
            Ok(response) => GetResponse {
                headers: Headers::Own(Cursor::new(response.headers)),
                body: Body::Own(Box::new(response.body)),
            },
            Err(e) => GetResponse {
                headers: Headers::Failed(Some(e)),
                body: Body::Empty,
            },
        })
    }

    fn post(
        &mut self,
        url: &str,
        base_url: &str,
        headers: impl IntoIterator<Item = impl AsRef<str>>,
        body: PostBodyDataKind,
    ) -> gix::Result<PostResponse<Self::Headers, Self::ResponseBody, Self::PostBody>> {
        if let Err(held) = self.throttle.admit() {
            return Ok(PostResponse {
                post_body: PostBody::Sink,
                headers: Headers::Failed(Some(io::Error::other(held))),
                body: Body::Empty,
            });
        }
        let response = self.inner.post(url, base_url, headers, body)?;
        Ok(PostResponse {
            post_body: PostBody::Inner(response.post_body),
            headers: Headers::Watched(response.headers, self.throttle.clone()),
            body: Body::Inner(response.body),
        })
    }

    fn configure(&mut self, config: &dyn std::any::Any) -> gix::Result {
        if let Some(options) = config.downcast_ref::<http::Options>() {
            self.user_agent = options.user_agent.clone();
            self.backend = options.backend.clone();
            self.client = None;
        }
        self.inner.configure(config)
    }

    fn redirected_base_url(&self) -> Option<String> {
        self.redirected
            .clone()
            .or_else(|| self.inner.redirected_base_url())
    }
}

/// The HTTP status an error of gix's backend names, when it is one we honour (`429`, `503`).
fn throttling_status(err: &io::Error) -> Option<u16> {
    let mut text = err.to_string();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
    while let Some(e) = cause {
        if let Some(status) = e
            .downcast_ref::<reqwest::Error>()
            .and_then(reqwest::Error::status)
        {
            return matches!(status.as_u16(), 429 | 503).then_some(status.as_u16());
        }
        text.push('\n');
        text.push_str(&e.to_string());
        cause = e.source();
    }
    [429, 503]
        .into_iter()
        .find(|code| text.contains(&format!("HTTP status {code}")))
}

/// The header lines of a response: ours, gix's (watched for a throttling status), or the error they yield.
pub enum Headers<H> {
    /// From our own request.
    Own(Cursor<Vec<u8>>),
    /// From gix's backend; an error naming `429`/`503` holds the throttle.
    Watched(H, Throttle),
    /// The request failed (or was never sent): reading yields this error once.
    Failed(Option<io::Error>),
}

impl<H: BufRead> Headers<H> {
    /// Hold the throttle if `err` names a throttling status.
    fn watch(throttle: &Throttle, err: io::Error) -> io::Error {
        if let Some(status) = throttling_status(&err) {
            throttle.hold(status, None);
        }
        err
    }
}

impl<H: BufRead> Read for Headers<H> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Headers::Own(c) => c.read(buf),
            Headers::Watched(h, throttle) => h.read(buf).map_err(|e| Self::watch(throttle, e)),
            Headers::Failed(err) => err.take().map_or(Ok(0), Err),
        }
    }
}

impl<H: BufRead> BufRead for Headers<H> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Headers::Own(c) => c.fill_buf(),
            Headers::Watched(h, throttle) => h.fill_buf().map_err(|e| Self::watch(throttle, e)),
            Headers::Failed(err) => match err.take() {
                Some(e) => Err(e),
                None => Ok(&[]),
            },
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Headers::Own(c) => c.consume(amount),
            Headers::Watched(h, _) => h.consume(amount),
            Headers::Failed(_) => {}
        }
    }
}

/// A response body: ours, gix's, or none.
pub enum Body<B> {
    /// From our own request (boxed: a response is large beside gix's pipe).
    Own(Box<io::BufReader<reqwest::blocking::Response>>),
    /// From gix's backend.
    Inner(B),
    /// The request failed.
    Empty,
}

impl<B: BufRead> Read for Body<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Own(r) => r.read(buf),
            Body::Inner(r) => r.read(buf),
            Body::Empty => Ok(0),
        }
    }
}

impl<B: BufRead> BufRead for Body<B> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Body::Own(r) => r.fill_buf(),
            Body::Inner(r) => r.fill_buf(),
            Body::Empty => Ok(&[]),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Body::Own(r) => r.consume(amount),
            Body::Inner(r) => r.consume(amount),
            Body::Empty => {}
        }
    }
}

/// A request body: gix's stream, or a sink for a request that was never sent.
pub enum PostBody<W> {
    /// Streamed to gix's backend.
    Inner(W),
    /// Discarded.
    Sink,
}

impl<W: Write> Write for PostBody<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            PostBody::Inner(w) => w.write(buf),
            PostBody::Sink => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            PostBody::Inner(w) => w.flush(),
            PostBody::Sink => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use crate::source::throttle::DEFAULT_HOLD;

    /// A server on loopback answering every request with `answer`, counting the requests it got.
    fn server(answer: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/repo.git", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (url, count)
    }

    fn advertise(http: &mut Polite<Reqwest>, base: &str) -> io::Error {
        let url = format!("{base}/info/refs?service=git-upload-pack");
        let response = http.get(&url, base, ["Git-Protocol: version=2"]).unwrap();
        let mut headers = response.headers;
        let mut text = String::new();
        headers
            .read_to_string(&mut text)
            .expect_err("an error status reads as an error")
    }

    #[test]
    fn a_429_with_retry_after_holds_the_next_request_unsent() {
        let (base, count) = server(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        let throttle = Throttle::default();
        let mut http = Polite::new(Reqwest::default(), throttle.clone());
        let first = advertise(&mut http, &base);
        assert!(first.to_string().contains("HTTP 429"), "{first}");
        let wait = throttle.remaining();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        let second = advertise(&mut http, &base);
        assert!(
            second.to_string().contains("no Git request for another"),
            "{second}"
        );
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "the held request reached the server"
        );
    }

    #[test]
    fn a_503_without_retry_after_holds_the_default() {
        let (base, _) =
            server("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let throttle = Throttle::default();
        let mut http = Polite::new(Reqwest::default(), throttle.clone());
        advertise(&mut http, &base);
        let wait = throttle.remaining();
        assert!(
            wait > DEFAULT_HOLD - Duration::from_secs(10) && wait <= DEFAULT_HOLD,
            "{wait:?}"
        );
    }

    #[test]
    fn a_401_asks_for_credentials_the_way_gix_expects() {
        let (base, _) = server(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        let mut http = Polite::new(Reqwest::default(), Throttle::default());
        let err = advertise(&mut http, &base);
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let challenge = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<AuthenticationRequired>())
            .unwrap();
        assert_eq!(challenge.www_authenticate.len(), 1);
    }

    #[test]
    fn a_success_hands_over_headers_and_body() {
        let (base, _) = server(
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        );
        let mut http = Polite::new(Reqwest::default(), Throttle::default());
        let url = format!("{base}/info/refs?service=git-upload-pack");
        let response = http.get(&url, &base, ["Git-Protocol: version=2"]).unwrap();
        let mut headers = String::new();
        let mut body = String::new();
        { response.headers }.read_to_string(&mut headers).unwrap();
        { response.body }.read_to_string(&mut body).unwrap();
        assert!(
            headers.contains("content-type:application/x-git-upload-pack-advertisement"),
            "{headers}"
        );
        assert_eq!(body, "hello");
    }
}
