//! How `status` shows the sync windows: open or closed now, when they next open, and which are set.

use serde::Serialize;

use super::{State, SyncWindows};

/// The sync windows in `status` (`syncWindows` in JSON and YAML).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WindowStatus {
    /// New commits are applied and members pruned now.
    pub open: bool,
    /// While closed: when a window next opens (RFC 3339, UTC); absent when none opens within five years.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_open: Option<String>,
    /// The windows as set (`--sync-window`).
    pub windows: Vec<String>,
}

impl WindowStatus {
    /// The windows' state now (`None`: no window set, always open).
    pub fn of(windows: &SyncWindows) -> Option<Self> {
        if windows.is_empty() {
            return None;
        }
        let (open, next_open) = match windows.state() {
            State::Open => (true, None),
            State::Closed { next } => (false, next.map(|t| t.to_string())),
        };
        Some(WindowStatus {
            open,
            next_open,
            windows: windows.windows().iter().map(|w| w.text().to_owned()).collect(),
        })
    }

    /// The table's `Sync windows:` line.
    pub fn line(&self) -> String {
        let state = match (&self.next_open, self.open) {
            (_, true) => "open: new commits are applied".to_owned(),
            (Some(at), false) => format!("closed: new commits wait; next window opens at {at}"),
            (None, false) => "closed: new commits wait; no window opens within five years".to_owned(),
        };
        format!("Sync windows: {state} ({})", self.windows.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_says_when_the_next_window_opens() {
        let at: jiff::Timestamp = "2030-03-10T12:00:00Z".parse().unwrap();
        let closed = SyncWindows::new(
            vec!["allow 0 22 * * * 4h Europe/Berlin".parse().unwrap()],
            Some(at),
        );
        let status = WindowStatus::of(&closed).unwrap();
        assert_eq!(status.next_open.as_deref(), Some("2030-03-10T21:00:00Z"));
        assert_eq!(
            status.line(),
            "Sync windows: closed: new commits wait; next window opens at 2030-03-10T21:00:00Z (allow 0 22 * * * 4h Europe/Berlin)"
        );
        let open = SyncWindows::new(vec!["deny 0 22 * * * 4h".parse().unwrap()], Some(at));
        assert!(WindowStatus::of(&open).unwrap().open);
        assert_eq!(WindowStatus::of(&SyncWindows::default()), None);
    }
}
