//! Politeness towards the Git server: every Git request the agent sends passes [`Throttle::admit`], which
//! refuses it while the server asked us to wait (HTTP `429`/`503`, with or without `Retry-After`) or while
//! `--git-max-requests-per-minute` requests went out in the last minute. A refused request is never sent: the
//! round fails at once with [`Held`] and the loop waits [`Throttle::remaining`] before trying again.
//!
//! The server's answer reaches us through [`Throttle::hold`], called by [`super::polite_http`] (which reads the
//! status and `Retry-After` of every HTTP response). Everything is counted in the metrics, so an operator sees
//! the agent being throttled: `outpost_git_throttled_total{reason}` and `outpost_git_throttle_wait_seconds`.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// How long we hold back after a `429`/`503` that names no (readable) `Retry-After`.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(60);
/// The window of `--git-max-requests-per-minute`.
const WINDOW: Duration = Duration::from_secs(60);

/// Why requests are held back: the `reason` label of `outpost_git_throttled_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Reason {
    /// The server answered `429 Too Many Requests`.
    too_many_requests,
    /// The server answered `503 Service Unavailable`.
    unavailable,
    /// `--git-max-requests-per-minute` stopped a request of ours.
    request_cap,
}

/// The `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    /// Why.
    reason: Reason,
}

/// A request refused before it was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Held {
    /// The server asked us to wait.
    #[error(
        "the Git server answered HTTP {status} (Retry-After honoured): no Git request for another {}s",
        .remaining.as_secs().max(1)
    )]
    Server {
        /// `429` or `503`.
        status: u16,
        /// How much longer we wait.
        remaining: Duration,
    },
    /// Our own cap.
    #[error(
        "--git-max-requests-per-minute ({cap}) reached: no Git request for another {}s",
        .remaining.as_secs().max(1)
    )]
    Cap {
        /// The cap.
        cap: u32,
        /// Until a request of the last minute ages out.
        remaining: Duration,
    },
}

/// Settings of the throttle (`--git-max-requests-per-minute`, `--git-max-retry-after`).
#[derive(clap::Args, Clone, Debug)]
pub struct ThrottleArgs {
    /// Most Git requests (HTTP requests or SSH connections) the agent sends in any minute; more wait, counted in
    /// outpost_git_throttled_total{reason="request_cap"}. A poll costs 2 (3 when a commit is fetched). 0: no cap.
    #[arg(long, env = "OUTPOST_GIT_MAX_REQUESTS_PER_MINUTE", default_value_t = 60)]
    pub git_max_requests_per_minute: u32,

    /// Longest wait a server's Retry-After (on 429 or 503) may impose; a longer one is cut to this.
    #[arg(
        long,
        env = "OUTPOST_GIT_MAX_RETRY_AFTER",
        default_value = "1h",
        value_parser = humantime::parse_duration
    )]
    pub git_max_retry_after: Duration,
}

impl ThrottleArgs {
    /// The throttle these flags describe.
    pub fn throttle(&self) -> Throttle {
        Throttle::new(
            NonZeroU32::new(self.git_max_requests_per_minute),
            self.git_max_retry_after,
        )
    }
}

/// What the throttle remembers.
#[derive(Debug, Default)]
struct State {
    /// When each request of the last minute went out (oldest first).
    sent: VecDeque<Instant>,
    /// The server asked us to wait until then, answering this status.
    held: Option<(Instant, u16)>,
}

/// The shared part of a [`Throttle`].
#[derive(Debug)]
struct Inner {
    cap: Option<NonZeroU32>,
    max_hold: Duration,
    state: Mutex<State>,
    requests: Counter,
    throttled: Family<ReasonLabels, Counter>,
    wait: Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// Decides whether a Git request may go out now; cloning shares it (one per agent).
#[derive(Clone, Debug)]
pub struct Throttle(Arc<Inner>);

impl Default for Throttle {
    /// No cap; a server's wait up to an hour.
    fn default() -> Self {
        Throttle::new(None, Duration::from_secs(3600))
    }
}

impl Throttle {
    /// At most `cap` requests a minute (none: no cap); a server's wait is cut to `max_hold`.
    pub fn new(cap: Option<NonZeroU32>, max_hold: Duration) -> Self {
        Throttle(Arc::new(Inner {
            cap,
            max_hold,
            state: Mutex::default(),
            requests: Counter::default(),
            throttled: Family::default(),
            wait: Gauge::default(),
        }))
    }

    /// Register the metrics in `registry` (with the `outpost_` prefix).
    pub fn register(&self, registry: &mut Registry) {
        let m = &self.0;
        registry.register(
            "git_server_requests",
            "Git requests sent (HTTP requests, SSH connections); refused ones are not sent and not counted",
            m.requests.clone(),
        );
        registry.register(
            "git_throttled",
            "Times Git requests were held back: the server answered 429 or 503, or --git-max-requests-per-minute",
            m.throttled.clone(),
        );
        registry.register_with_unit(
            "git_throttle_wait",
            "How long the agent still waits before its next Git request (0: not throttled), as of its last look",
            prometheus_client::registry::Unit::Seconds,
            m.wait.clone(),
        );
    }

    /// Let one request go now (recording it), or say how long it must wait.
    pub fn admit(&self) -> Result<(), Held> {
        self.ask(true)
    }

    /// Whether a request could go now (recording nothing), or how long it must wait: before a conversation
    /// starts, so none starts that would be held half-way.
    pub fn check(&self) -> Result<(), Held> {
        self.ask(false)
    }

    /// [`Throttle::admit`], recording the request when `send`.
    fn ask(&self, send: bool) -> Result<(), Held> {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(held) = self.server_hold(&state, now) {
            return Err(held);
        }
        prune(&mut state.sent, now);
        if let Some(cap) = self.0.cap
            && state.sent.len() >= cap.get() as usize
        {
            let remaining = cap_wait(&state.sent, now);
            self.0
                .throttled
                .get_or_create(&ReasonLabels {
                    reason: Reason::request_cap,
                })
                .inc();
            self.0.wait.set(remaining.as_secs_f64());
            tracing::warn!(cap = cap.get(), wait = ?remaining, "Git request cap reached: holding requests");
            return Err(Held::Cap {
                cap: cap.get(),
                remaining,
            });
        }
        if send {
            state.sent.push_back(now);
            self.0.requests.inc();
        }
        Ok(())
    }

    /// The server answered `status` (429 or 503) with `retry_after` (the header's value, if any): hold every
    /// request until then (at least [`DEFAULT_HOLD`] without one, at most `--git-max-retry-after`). Returns
    /// the wait.
    pub fn hold(&self, status: u16, retry_after: Option<&str>) -> Duration {
        let wait = retry_after
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()))
            .unwrap_or(DEFAULT_HOLD)
            .min(self.0.max_hold);
        let until = Instant::now() + wait;
        let mut state = self.lock();
        // A later answer never shortens a longer wait already promised.
        if state.held.is_none_or(|(t, _)| t < until) {
            state.held = Some((until, status));
        }
        let reason = if status == 429 {
            Reason::too_many_requests
        } else {
            Reason::unavailable
        };
        self.0.throttled.get_or_create(&ReasonLabels { reason }).inc();
        self.0.wait.set(wait.as_secs_f64());
        tracing::warn!(status, retry_after, wait = ?wait, "Git server asked us to slow down: holding Git requests");
        wait
    }

    /// How long before the next request may go (0: now); refreshes the wait gauge.
    pub fn remaining(&self) -> Duration {
        let now = Instant::now();
        let mut state = self.lock();
        prune(&mut state.sent, now);
        let server = match self.server_hold(&state, now) {
            Some(Held::Server { remaining, .. }) => remaining,
            _ => Duration::ZERO,
        };
        let cap = match self.0.cap {
            Some(cap) if state.sent.len() >= cap.get() as usize => cap_wait(&state.sent, now),
            _ => Duration::ZERO,
        };
        let wait = server.max(cap);
        self.0.wait.set(wait.as_secs_f64());
        wait
    }

    /// The server's wait still running at `now`.
    fn server_hold(&self, state: &State, now: Instant) -> Option<Held> {
        let (until, status) = state.held?;
        (until > now).then(|| Held::Server {
            status,
            remaining: until - now,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Forget requests older than the window.
fn prune(sent: &mut VecDeque<Instant>, now: Instant) {
    while sent.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
        sent.pop_front();
    }
}

/// Until the oldest request of the window ages out.
fn cap_wait(sent: &VecDeque<Instant>, now: Instant) -> Duration {
    sent.front()
        .map(|t| (*t + WINDOW).saturating_duration_since(now))
        .unwrap_or_default()
}

/// `Retry-After` as a wait from `now`: delay-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00
/// GMT`; one in the past is no wait). `None` when unreadable.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let ahead = at.duration_since(now);
    Some(Duration::try_from(ahead).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now: jiff::Timestamp = "2026-10-21T07:27:00Z".parse().unwrap();
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn a_server_hold_refuses_requests_until_it_passes_and_is_capped() {
        let throttle = Throttle::new(None, Duration::from_secs(600));
        assert_eq!(throttle.admit(), Ok(()));
        assert_eq!(throttle.hold(429, Some("120")), Duration::from_secs(120));
        let Err(Held::Server { status, remaining }) = throttle.admit() else {
            panic!("a request went out during Retry-After");
        };
        assert_eq!(status, 429);
        assert!(remaining > Duration::from_secs(100) && remaining <= Duration::from_secs(120));
        assert!(throttle.remaining() > Duration::from_secs(100));
        // A day is cut to the maximum; no header is the default hold.
        assert_eq!(throttle.hold(503, Some("86400")), Duration::from_secs(600));
        assert_eq!(throttle.hold(503, None), DEFAULT_HOLD);
        // The shorter answer did not shorten the longer wait.
        assert!(throttle.remaining() > Duration::from_secs(500));
    }

    #[test]
    fn a_past_date_holds_nothing() {
        let throttle = Throttle::default();
        assert_eq!(
            throttle.hold(503, Some("Mon, 01 Jan 2001 00:00:00 GMT")),
            Duration::ZERO
        );
        assert_eq!(throttle.admit(), Ok(()));
        assert_eq!(throttle.remaining(), Duration::ZERO);
    }

    #[test]
    fn the_cap_refuses_the_request_over_it_and_counts_it() {
        let throttle = Throttle::new(NonZeroU32::new(3), Duration::from_secs(3600));
        let mut registry = Registry::with_prefix("outpost");
        throttle.register(&mut registry);
        for _ in 0..3 {
            assert_eq!(throttle.admit(), Ok(()));
        }
        let Err(Held::Cap { cap: 3, remaining }) = throttle.admit() else {
            panic!("a fourth request went out");
        };
        assert!(remaining > Duration::from_secs(50), "{remaining:?}");
        assert!(throttle.remaining() > Duration::from_secs(50));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("outpost_git_server_requests_total 3"), "{text}");
        assert!(
            text.contains(r#"outpost_git_throttled_total{reason="request_cap"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn no_cap_lets_every_request_go() {
        let throttle = Throttle::default();
        for _ in 0..1000 {
            assert_eq!(throttle.admit(), Ok(()));
        }
        assert_eq!(throttle.remaining(), Duration::ZERO);
    }
}
