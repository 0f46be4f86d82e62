//! Five-field cron schedules (`minute hour day-of-month month day-of-week`, as crontab(5) and Argo CD's sync
//! windows write them) and their occurrences in a time zone.
//!
//! Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n` (and `a/n`: from `a` to the end), and lists
//! of those; months and weekdays also take English names (`JAN`, `MON`); weekday 7 is Sunday like 0. As in
//! crontab, when both day fields are restricted a day matches if either does. `@yearly`, `@monthly`,
//! `@weekly`, `@daily` (`@midnight`) and `@hourly` stand for their usual expansions.
//!
//! Occurrences are civil times in the schedule's zone. A civil time that a DST change skips happens at the
//! same offset past the change (02:30 becomes 03:30 when clocks jump from 02:00 to 03:00); one that repeats
//! happens once, the first time.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// How far searches look, in days: beyond this a schedule counts as never firing (`0 0 30 2 *`).
const SEARCH_DAYS: i64 = 5 * 366;

/// A schedule that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CronError {
    /// Not five fields.
    #[error("a cron schedule has five fields (minute hour day-of-month month day-of-week), not {0}")]
    FieldCount(usize),
    /// A field's text is not a number, name, range or step.
    #[error("{field} {text:?} is not a number, range (a-b), step (*/n) or list of them")]
    Syntax {
        /// Which field.
        field: &'static str,
        /// Its text.
        text: String,
    },
    /// A value outside the field's range.
    #[error("{field} {value} is outside {min}-{max}")]
    Range {
        /// Which field.
        field: &'static str,
        /// The value.
        value: u32,
        /// Lowest allowed.
        min: u32,
        /// Highest allowed.
        max: u32,
    },
    /// An unknown `@` macro.
    #[error("unknown schedule {0:?} (use @yearly, @monthly, @weekly, @daily or @hourly)")]
    Macro(String),
}

/// One field's grammar.
struct Field {
    /// Its name in errors.
    name: &'static str,
    /// Lowest value.
    min: u32,
    /// Highest value.
    max: u32,
    /// Names of values from `min` on, if any.
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const WEEKDAY: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    /// Bits 0-59.
    minutes: u64,
    /// Bits 0-23.
    hours: u64,
    /// Bits 1-31.
    days: u64,
    /// Bits 1-12.
    months: u64,
    /// Bits 0-6, Sunday 0.
    weekdays: u64,
    /// The day-of-month field is `*`.
    any_day: bool,
    /// The day-of-week field is `*`.
    any_weekday: bool,
}

impl std::str::FromStr for Cron {
    type Err = CronError;

    fn from_str(text: &str) -> Result<Self, CronError> {
        let text = text.trim();
        let expanded = match text.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            m if m.starts_with('@') => return Err(CronError::Macro(text.to_owned())),
            _ => text,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(CronError::FieldCount(fields.len()));
        };
        let mut weekdays = parse_field(weekday, &WEEKDAY)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        Ok(Cron {
            minutes: parse_field(minute, &MINUTE)?,
            hours: parse_field(hour, &HOUR)?,
            days: parse_field(day, &DAY)?,
            months: parse_field(month, &MONTH)?,
            weekdays,
            any_day: day == "*",
            any_weekday: weekday == "*",
        })
    }
}

/// The bits a field's text allows.
fn parse_field(text: &str, field: &Field) -> Result<u64, CronError> {
    let syntax = || CronError::Syntax {
        field: field.name,
        text: text.to_owned(),
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step.parse::<u32>().map_err(|_| syntax())?)),
            None => (part, None),
        };
        if step == Some(0) {
            return Err(syntax());
        }
        let (low, high) = match range.split_once('-') {
            _ if range == "*" => (field.min, field.max),
            Some((a, b)) => (
                value(a, field).ok_or_else(syntax)?,
                value(b, field).ok_or_else(syntax)?,
            ),
            None => {
                let a = value(range, field).ok_or_else(syntax)?;
                (a, if step.is_some() { field.max } else { a })
            }
        };
        for v in [low, high] {
            if v < field.min || v > field.max {
                return Err(CronError::Range {
                    field: field.name,
                    value: v,
                    min: field.min,
                    max: field.max,
                });
            }
        }
        if low > high {
            return Err(syntax());
        }
        let step = step.unwrap_or(1) as usize;
        for v in (low..=high).step_by(step) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

/// A number, or one of the field's names.
fn value(text: &str, field: &Field) -> Option<u32> {
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    let upper = text.to_ascii_uppercase();
    let i = field.names.iter().position(|n| *n == upper)?;
    Some(field.min + u32::try_from(i).ok()?)
}

/// `bits` has bit `v`.
fn has(bits: u64, v: i8) -> bool {
    (0..64).contains(&v) && bits & (1 << v) != 0
}

impl Cron {
    /// Whether the schedule fires on `date`.
    fn day_matches(&self, date: Date) -> bool {
        if !has(self.months, date.month()) {
            return false;
        }
        let day = has(self.days, date.day());
        let weekday = has(self.weekdays, date.weekday().to_sunday_zero_offset());
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => weekday,
            (false, true) => day,
            (false, false) => day || weekday,
        }
    }

    /// The first occurrence strictly after `after` in `tz`, if any within the search horizon.
    pub fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        let mut dt = minute_of(tz, after);
        let last = dt.date().checked_add(Span::new().days(SEARCH_DAYS)).ok()?;
        while dt.date() <= last {
            if !self.day_matches(dt.date()) {
                dt = dt.date().tomorrow().ok()?.to_datetime(Time::midnight());
            } else if !has(self.hours, dt.hour()) {
                dt = next_hour(dt)?;
            } else if !has(self.minutes, dt.minute()) {
                dt = dt.checked_add(Span::new().minutes(1)).ok()?;
            } else {
                let at = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
                if at > after {
                    return Some(at);
                }
                dt = dt.checked_add(Span::new().minutes(1)).ok()?;
            }
        }
        None
    }

    /// The last occurrence at or before `at` and strictly after `since`, if any.
    pub fn last_between(&self, tz: &TimeZone, since: Timestamp, at: Timestamp) -> Option<Timestamp> {
        let mut dt = minute_of(tz, at);
        // Offsets differ by less than a day: no occurrence after `since` is older than this civil day.
        let first = minute_of(tz, since).date().yesterday().ok()?;
        while dt.date() >= first {
            if !self.day_matches(dt.date()) {
                dt = dt
                    .date()
                    .yesterday()
                    .ok()?
                    .to_datetime(Time::constant(23, 59, 0, 0));
            } else if !has(self.hours, dt.hour()) {
                dt = previous_hour(dt)?;
            } else if !has(self.minutes, dt.minute()) {
                dt = dt.checked_sub(Span::new().minutes(1)).ok()?;
            } else {
                let start = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
                if start <= at {
                    return (start > since).then_some(start);
                }
                dt = dt.checked_sub(Span::new().minutes(1)).ok()?;
            }
        }
        None
    }
}

/// `at`'s civil time in `tz`, to the minute.
fn minute_of(tz: &TimeZone, at: Timestamp) -> DateTime {
    let dt = at.to_zoned(tz.clone()).datetime();
    dt.date().at(dt.hour(), dt.minute(), 0, 0)
}

/// The start of the hour after `dt`'s.
fn next_hour(dt: DateTime) -> Option<DateTime> {
    match dt.hour() {
        23 => Some(dt.date().tomorrow().ok()?.to_datetime(Time::midnight())),
        h => Some(dt.date().at(h + 1, 0, 0, 0)),
    }
}

/// The last minute of the hour before `dt`'s.
fn previous_hour(dt: DateTime) -> Option<DateTime> {
    match dt.hour() {
        0 => Some(dt.date().yesterday().ok()?.at(23, 59, 0, 0)),
        h => Some(dt.date().at(h - 1, 59, 0, 0)),
    }
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
