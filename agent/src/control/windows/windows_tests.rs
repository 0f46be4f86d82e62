use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn windows(list: &[&str]) -> SyncWindows {
    SyncWindows::new(list.iter().map(|w| w.parse().unwrap()).collect(), None)
}

#[test]
fn no_window_means_always_open() {
    let w = windows(&[]);
    assert!(w.is_empty());
    assert_eq!(w.state_at(at("2030-03-10T12:00:00Z")), State::Open);
}

#[test]
fn an_allow_window_opens_at_its_start_in_its_zone_and_closes_after_its_duration() {
    // 22:00-02:00 in Berlin: 21:00-01:00 UTC in winter.
    let w = windows(&["allow 0 22 * * * 4h Europe/Berlin"]);
    assert_eq!(
        w.state_at(at("2030-03-10T12:00:00Z")),
        State::Closed {
            next: Some(at("2030-03-10T21:00:00Z"))
        }
    );
    assert!(!w.is_open_at(at("2030-03-10T20:59:59Z")));
    assert!(w.is_open_at(at("2030-03-10T21:00:00Z")));
    // Past midnight, still inside the window that opened the day before.
    assert!(w.is_open_at(at("2030-03-11T00:59:59Z")));
    assert!(!w.is_open_at(at("2030-03-11T01:00:00Z")));
    // In summer the same window is 20:00-24:00 UTC.
    assert!(w.is_open_at(at("2030-07-10T20:30:00Z")));
    assert!(!w.is_open_at(at("2030-07-10T19:59:00Z")));
    assert_eq!(
        w.next_open(at("2030-07-10T12:00:00Z")),
        Some(at("2030-07-10T20:00:00Z"))
    );
}

#[test]
fn a_window_across_the_spring_dst_change_lasts_its_real_duration() {
    // Opens 01:00 CET (00:00 UTC) on 2030-03-31, the night clocks jump from 02:00 to 03:00: 2 h of real time
    // end at 02:00 UTC, which is 04:00 CEST.
    let w = windows(&["allow 0 1 31 3 * 2h Europe/Berlin"]);
    assert!(w.is_open_at(at("2030-03-31T01:59:00Z")));
    assert!(!w.is_open_at(at("2030-03-31T02:00:00Z")));
}

#[test]
fn a_deny_window_wins_over_every_allow_window() {
    let w = windows(&["allow 0 0 * * * 24h", "deny 0 12 * * * 1h"]);
    assert!(w.is_open_at(at("2030-03-10T11:59:00Z")));
    assert!(!w.is_open_at(at("2030-03-10T12:30:00Z")));
    // The next opening is the deny window's end, inside the allow window.
    assert_eq!(
        w.state_at(at("2030-03-10T12:30:00Z")),
        State::Closed {
            next: Some(at("2030-03-10T13:00:00Z"))
        }
    );
    // Deny windows alone leave everything else open.
    let deny = windows(&["deny 0 8 * * 1-5 10h"]);
    assert!(!deny.is_open_at(at("2030-03-11T09:00:00Z"))); // a Monday
    assert!(deny.is_open_at(at("2030-03-10T09:00:00Z"))); // a Sunday
    assert!(deny.is_open_at(at("2030-03-11T18:00:00Z")));
}

#[test]
fn overlapping_windows_chain() {
    // Two allow windows overlapping, a deny window overlapping the end of the second: the next opening after
    // the deny window is the next day's first allow window.
    let w = windows(&["allow 0 1 * * * 2h", "allow 0 2 * * * 2h", "deny 30 3 * * * 2h"]);
    assert!(w.is_open_at(at("2030-03-10T02:30:00Z")));
    assert!(w.is_open_at(at("2030-03-10T03:29:00Z")));
    assert!(!w.is_open_at(at("2030-03-10T03:30:00Z")));
    assert_eq!(
        w.next_open(at("2030-03-10T03:30:00Z")),
        Some(at("2030-03-11T01:00:00Z"))
    );
    // Overlapping deny windows: closed until the last one ends.
    let denies = windows(&["deny 0 10 * * * 2h", "deny 0 11 * * * 3h"]);
    assert_eq!(
        denies.next_open(at("2030-03-10T10:30:00Z")),
        Some(at("2030-03-10T14:00:00Z"))
    );
}

#[test]
fn a_deny_window_that_never_ends_leaves_no_opening() {
    // A 24 h deny window starting every minute: always closed, and found so quickly.
    let w = windows(&["deny * * * * * 24h", "allow @daily 1h"]);
    assert_eq!(
        w.state_at(at("2030-03-10T12:00:00Z")),
        State::Closed { next: None }
    );
}

#[test]
fn bad_windows_name_themselves_and_what_is_wrong() {
    let err = |text: &str| text.parse::<Window>().unwrap_err().to_string();
    assert!(err("sometimes 0 22 * * * 4h").contains("kind \"sometimes\""));
    assert!(err("allow 0 22 * * *").contains("is not a sync window"));
    assert!(err("allow 0 25 * * * 4h").contains("hour 25 is outside 0-23"));
    assert!(err("allow 0 22 * * * 4 UTC").contains("duration \"4\""));
    assert!(err("allow 0 22 * * * 30s").contains("outside 1m"));
    let zone = err("allow 0 22 * * * 4h Mars/Olympus");
    assert!(zone.contains("\"allow 0 22 * * * 4h Mars/Olympus\"") && zone.contains("Mars/Olympus"));
    let ok: Window = "DENY @weekly 2d".parse().unwrap();
    assert_eq!((ok.kind, ok.text()), (Kind::Deny, "DENY @weekly 2d"));
}

#[test]
fn the_flags_read_several_windows_and_a_fixed_now() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        w: WindowArgs,
    }
    let cli = Cli::parse_from([
        "x",
        "--sync-window",
        "allow 0 22 * * * 4h Europe/Berlin;deny @daily 1h",
        "--sync-window",
        "deny 0 8 * * 1-5 10h",
        "--sync-window-now",
        "2030-03-10T21:30:00Z",
    ]);
    let w = cli.w.windows().unwrap();
    assert_eq!(w.windows().len(), 3);
    assert_eq!(w.now(), at("2030-03-10T21:30:00Z"));
    assert_eq!(w.state(), State::Open);
    let bad = Cli::try_parse_from(["x", "--sync-window", "allow 0 22 * * * 4h Nowhere"]);
    assert!(bad.is_err());
}
