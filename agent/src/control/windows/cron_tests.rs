use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn cron(text: &str) -> Cron {
    text.parse().unwrap()
}

fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin").unwrap()
}

#[test]
fn fields_take_numbers_ranges_steps_lists_and_names() {
    let c = cron("*/15 9-17/4 1,15 JAN-mar mon-FRI");
    assert_eq!(c.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 45);
    assert_eq!(c.hours, 1 << 9 | 1 << 13 | 1 << 17);
    assert_eq!(c.days, 1 << 1 | 1 << 15);
    assert_eq!(c.months, 0b1110);
    assert_eq!(c.weekdays, 0b11_1110);
    assert!(!c.any_day && !c.any_weekday);
    // Weekday 7 is Sunday, like 0; `a/n` runs to the end of the field.
    assert_eq!(cron("0 0 * * 7").weekdays, 1);
    assert_eq!(cron("50/5 0 * * *").minutes, 1 << 50 | 1 << 55);
    assert_eq!(cron("@daily"), cron("0 0 * * *"));
    assert_eq!(cron("@HOURLY"), cron("0 * * * *"));
}

#[test]
fn bad_schedules_say_which_field_and_why() {
    assert_eq!("0 22 * *".parse::<Cron>(), Err(CronError::FieldCount(4)));
    let range = "60 * * * *".parse::<Cron>().unwrap_err();
    assert_eq!(range.to_string(), "minute 60 is outside 0-59");
    let syntax = "0 x * * *".parse::<Cron>().unwrap_err();
    assert!(syntax.to_string().starts_with("hour \"x\""), "{syntax}");
    assert!("*/0 * * * *".parse::<Cron>().is_err());
    assert!("5-1 * * * *".parse::<Cron>().is_err());
    assert!("0 0 0 * *".parse::<Cron>().is_err());
    assert!(matches!("@often".parse::<Cron>(), Err(CronError::Macro(_))));
}

#[test]
fn the_next_occurrence_is_strictly_after_and_in_the_zone() {
    let utc = TimeZone::UTC;
    let c = cron("0 22 * * *");
    assert_eq!(
        c.next_after(&utc, at("2030-03-10T12:00:00Z")),
        Some(at("2030-03-10T22:00:00Z"))
    );
    assert_eq!(
        c.next_after(&utc, at("2030-03-10T22:00:00Z")),
        Some(at("2030-03-11T22:00:00Z"))
    );
    // 22:00 in Berlin is 21:00 UTC in winter, 20:00 in summer.
    assert_eq!(
        c.next_after(&berlin(), at("2030-03-10T12:00:00Z")),
        Some(at("2030-03-10T21:00:00Z"))
    );
    assert_eq!(
        c.next_after(&berlin(), at("2030-07-10T12:00:00Z")),
        Some(at("2030-07-10T20:00:00Z"))
    );
    // A date that never comes.
    assert_eq!(
        cron("0 0 30 2 *").next_after(&utc, at("2030-01-01T00:00:00Z")),
        None
    );
    // Leap days come every four years.
    assert_eq!(
        cron("0 0 29 2 *").next_after(&utc, at("2030-01-01T00:00:00Z")),
        Some(at("2032-02-29T00:00:00Z"))
    );
}

#[test]
fn dst_gaps_shift_forward_and_repeated_times_fire_once() {
    let c = cron("30 2 * * *");
    let tz = berlin();
    // 2030-03-31: clocks jump from 02:00 to 03:00 CEST; 02:30 happens at 03:30 CEST (01:30 UTC).
    assert_eq!(
        c.next_after(&tz, at("2030-03-30T12:00:00Z")),
        Some(at("2030-03-31T01:30:00Z"))
    );
    // 2030-10-27: 02:00-03:00 happens twice; 02:30 fires the first time only (CEST, 00:30 UTC).
    let first = c.next_after(&tz, at("2030-10-26T12:00:00Z")).unwrap();
    assert_eq!(first, at("2030-10-27T00:30:00Z"));
    assert_eq!(c.next_after(&tz, first), Some(at("2030-10-28T01:30:00Z")));
    // Looking back from the repeated 02:45 (CET, 01:45 UTC) finds the one 02:30 of that night.
    assert_eq!(
        c.last_between(&tz, at("2030-10-26T12:00:00Z"), at("2030-10-27T01:45:00Z")),
        Some(first)
    );
}

#[test]
fn restricted_day_fields_match_either() {
    // Fridays and the 13th of every month: 2030-09-13 is a Friday, 2030-09-12 a Thursday.
    let c = cron("0 0 13 * fri");
    let utc = TimeZone::UTC;
    assert_eq!(
        c.next_after(&utc, at("2030-09-01T00:00:00Z")),
        Some(at("2030-09-06T00:00:00Z"))
    );
    assert_eq!(
        c.next_after(&utc, at("2030-10-05T00:00:00Z")),
        Some(at("2030-10-11T00:00:00Z"))
    );
    assert_eq!(
        c.next_after(&utc, at("2030-10-11T00:00:00Z")),
        Some(at("2030-10-13T00:00:00Z"))
    );
    // Only the weekday restricted: Mondays.
    let mondays = cron("0 9 * * 1");
    assert_eq!(
        mondays.next_after(&utc, at("2030-09-12T00:00:00Z")),
        Some(at("2030-09-16T09:00:00Z"))
    );
}

#[test]
fn the_last_occurrence_is_at_or_before_and_after_since() {
    let c = cron("0 22 * * *");
    let utc = TimeZone::UTC;
    let since = at("2030-03-10T21:00:00Z");
    assert_eq!(
        c.last_between(&utc, since, at("2030-03-10T23:59:00Z")),
        Some(at("2030-03-10T22:00:00Z"))
    );
    assert_eq!(
        c.last_between(&utc, since, at("2030-03-10T22:00:00Z")),
        Some(at("2030-03-10T22:00:00Z"))
    );
    assert_eq!(c.last_between(&utc, since, at("2030-03-10T21:59:59Z")), None);
    assert_eq!(
        c.last_between(&utc, at("2030-03-10T22:00:00Z"), at("2030-03-11T21:00:00Z")),
        None
    );
    let every = cron("* * * * *");
    assert_eq!(
        every.last_between(&utc, since, at("2030-03-10T21:30:42Z")),
        Some(at("2030-03-10T21:30:00Z"))
    );
}
