//! Sync windows (`--sync-window`): when new commits may be applied and members pruned, for metered links and
//! maintenance hours, as Argo CD's sync windows say it.
//!
//! A window is a kind (`allow` or `deny`), a cron schedule of its starts, a duration and a time zone. While any
//! allow window exists, syncing is allowed only inside one; a deny window wins over every allow window. What a
//! closed window holds back is the new commit: drift correction goes on reverting to the last applied commit,
//! and a new install's first sync (nothing applied yet) runs whatever the windows say ([`crate::reconcile`]).

pub mod cron;
pub mod report;

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use cron::{Cron, CronError};

/// Shortest window: cron's resolution.
const MIN_DURATION: Duration = Duration::from_secs(60);
/// Longest window: a month (a longer one is a suspension, and looks back that far at every check).
const MAX_DURATION: Duration = Duration::from_secs(31 * 86_400);
/// Windows and deny periods followed before `next_open` gives up.
const MAX_STEPS: usize = 100_000;
/// How far ahead `next_open` looks.
const HORIZON: Duration = Duration::from_secs(5 * 366 * 86_400);

/// A `--sync-window` that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not `KIND SCHEDULE DURATION [ZONE]`.
    #[error(
        "{0:?} is not a sync window: write KIND SCHEDULE DURATION [TIME-ZONE], e.g. \"allow 0 22 * * * 4h Europe/Berlin\""
    )]
    Shape(String),
    /// A kind other than allow or deny.
    #[error("sync window {window:?}: kind {kind:?} is neither allow nor deny")]
    Kind {
        /// The window's text.
        window: String,
        /// Its first word.
        kind: String,
    },
    /// The schedule does not parse.
    #[error("sync window {window:?}: {source}")]
    Schedule {
        /// The window's text.
        window: String,
        /// Why.
        source: CronError,
    },
    /// The duration does not parse or is out of range.
    #[error("sync window {window:?}: duration {duration:?} {why}")]
    Duration {
        /// The window's text.
        window: String,
        /// Its duration's text.
        duration: String,
        /// Why.
        why: String,
    },
    /// An unknown time zone.
    #[error(
        "sync window {window:?}: unknown time zone {zone:?} (use an IANA name such as Europe/Berlin, or UTC)"
    )]
    Zone {
        /// The window's text.
        window: String,
        /// The zone's name.
        zone: String,
    },
    /// `--sync-window-now` is not an RFC 3339 time.
    #[error("--sync-window-now {0:?} is not an RFC 3339 time (2030-03-10T12:00:00Z)")]
    Now(String),
}

/// What a window does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Syncing is allowed inside it (and, once any exists, only inside one).
    Allow,
    /// Syncing is not allowed inside it, whatever the allow windows say.
    Deny,
}

/// One window.
#[derive(Clone, Debug)]
pub struct Window {
    /// Allow or deny.
    pub kind: Kind,
    /// When it opens.
    schedule: Cron,
    /// How long it stays open.
    duration: Duration,
    /// The zone the schedule is read in.
    zone: TimeZone,
    /// The flag's text, for logs and `status`.
    text: String,
}

impl std::str::FromStr for Window {
    type Err = Error;

    /// `KIND SCHEDULE DURATION [ZONE]`: `allow 0 22 * * * 4h Europe/Berlin`, `deny @daily 1h` (UTC).
    fn from_str(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let words: Vec<&str> = text.split_whitespace().collect();
        let shape = || Error::Shape(text.to_owned());
        let (kind, rest) = words.split_first().ok_or_else(shape)?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "allow" => Kind::Allow,
            "deny" => Kind::Deny,
            _ => {
                return Err(Error::Kind {
                    window: text.to_owned(),
                    kind: (*kind).to_owned(),
                });
            }
        };
        let fields = if rest.first().is_some_and(|w| w.starts_with('@')) {
            1
        } else {
            5
        };
        if rest.len() != fields + 1 && rest.len() != fields + 2 {
            return Err(shape());
        }
        let schedule = rest[..fields]
            .join(" ")
            .parse()
            .map_err(|source| Error::Schedule {
                window: text.to_owned(),
                source,
            })?;
        let duration = parse_duration(rest[fields]).map_err(|why| Error::Duration {
            window: text.to_owned(),
            duration: rest[fields].to_owned(),
            why,
        })?;
        let name = rest.get(fields + 1).copied().unwrap_or("UTC");
        let zone = TimeZone::get(name).map_err(|_| Error::Zone {
            window: text.to_owned(),
            zone: name.to_owned(),
        })?;
        Ok(Window {
            kind,
            schedule,
            duration,
            zone,
            text: words.join(" "),
        })
    }
}

/// A window's duration: a minute to a month.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(text).map_err(|e| format!("does not parse: {e} (use e.g. 30m, 4h, 2d)"))?;
    if d < MIN_DURATION || d > MAX_DURATION {
        return Err("is outside 1m..=31days".to_owned());
    }
    Ok(d)
}

impl Window {
    /// The start of this window's occurrence that covers `at`, if one does (the latest, when several do).
    pub fn covering(&self, at: Timestamp) -> Option<Timestamp> {
        let since = at.checked_sub(self.duration).ok()?;
        self.schedule.last_between(&self.zone, since, at)
    }

    /// Where the flag said it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// When it next opens after `after`.
    fn next_start(&self, after: Timestamp) -> Option<Timestamp> {
        self.schedule.next_after(&self.zone, after)
    }
}

/// Every configured window, and the clock they are read by.
#[derive(Clone, Debug, Default)]
pub struct SyncWindows {
    /// In flag order.
    windows: Vec<Window>,
    /// A fixed "now" (`--sync-window-now`, for tests); the system clock otherwise.
    fixed_now: Option<Timestamp>,
}

/// Whether syncing is allowed at some time, and when it next is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// New commits are applied and members pruned.
    Open,
    /// New commits wait; `next` is when a window next opens (`None`: not within five years).
    Closed {
        /// When syncing is next allowed.
        next: Option<Timestamp>,
    },
}

impl SyncWindows {
    /// These windows, read by the system clock (or by `fixed_now`).
    pub fn new(windows: Vec<Window>, fixed_now: Option<Timestamp>) -> Self {
        SyncWindows { windows, fixed_now }
    }

    /// No window is configured: syncing is always allowed.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The windows, in flag order.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Now, by the windows' clock.
    pub fn now(&self) -> Timestamp {
        self.fixed_now.unwrap_or_else(Timestamp::now)
    }

    /// The state now.
    pub fn state(&self) -> State {
        self.state_at(self.now())
    }

    /// The state at `at`.
    pub fn state_at(&self, at: Timestamp) -> State {
        if self.is_open_at(at) {
            State::Open
        } else {
            State::Closed {
                next: self.next_open(at),
            }
        }
    }

    /// Inside an allow window (or there is none), and inside no deny window.
    pub fn is_open_at(&self, at: Timestamp) -> bool {
        let mut allows = self.of(Kind::Allow).peekable();
        let allowed = allows.peek().is_none() || allows.any(|w| w.covering(at).is_some());
        allowed && !self.of(Kind::Deny).any(|w| w.covering(at).is_some())
    }

    /// The first time at or after `from` when syncing is allowed, within five years.
    pub fn next_open(&self, from: Timestamp) -> Option<Timestamp> {
        let horizon = from.checked_add(HORIZON).ok()?;
        let mut t = from;
        for _ in 0..MAX_STEPS {
            if t > horizon {
                return None;
            }
            // Inside deny windows: skip to the end of the latest one covering `t`.
            let deny_end = self
                .of(Kind::Deny)
                .filter_map(|w| w.covering(t)?.checked_add(w.duration).ok())
                .max();
            if let Some(end) = deny_end {
                t = end;
                continue;
            }
            let mut allows = self.of(Kind::Allow).peekable();
            if allows.peek().is_none() || self.of(Kind::Allow).any(|w| w.covering(t).is_some()) {
                return Some(t);
            }
            t = allows.filter_map(|w| w.next_start(t)).min()?;
        }
        None
    }

    /// The windows of `kind`.
    fn of(&self, kind: Kind) -> impl Iterator<Item = &Window> {
        self.windows.iter().filter(move |w| w.kind == kind)
    }
}

/// `--sync-window` and its test clock.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct WindowArgs {
    /// When new commits may be applied and members pruned: `KIND SCHEDULE DURATION [TIME-ZONE]`, e.g.
    /// `allow 0 22 * * * 4h Europe/Berlin` or `deny 0 8 * * 1-5 10h`; repeatable, `;`-separated in the
    /// variable. With any allow window, only inside one; never inside a deny window. Drift correction and a
    /// new install's first sync run always.
    #[arg(long = "sync-window", env = "OUTPOST_SYNC_WINDOW", value_delimiter = ';', value_parser = parse_window)]
    pub sync_windows: Vec<Window>,

    /// Read the windows at this fixed time instead of the clock (tests only).
    #[arg(long = "sync-window-now", env = "OUTPOST_SYNC_WINDOW_NOW", hide = true)]
    pub sync_window_now: Option<String>,
}

/// Clap's parser of one `--sync-window`.
fn parse_window(text: &str) -> Result<Window, String> {
    text.parse().map_err(|e: Error| e.to_string())
}

impl WindowArgs {
    /// The windows these flags configure.
    pub fn windows(&self) -> Result<SyncWindows, Error> {
        let now = match &self.sync_window_now {
            Some(text) => Some(text.parse().map_err(|_| Error::Now(text.clone()))?),
            None => None,
        };
        Ok(SyncWindows::new(self.sync_windows.clone(), now))
    }
}

#[cfg(test)]
#[path = "windows_tests.rs"]
mod tests;
