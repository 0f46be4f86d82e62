//! The verdict of a health rule: a kstatus [`Status`] and a short message, as [`Health`]. Every rule in
//! [`super`] returns one, and [`aggregate`] folds many into one.

use std::fmt;

/// Where an object stands, in kstatus terms. `Ord` is declaration order (for sorting and map keys), not
/// severity: [`aggregate`] ranks Failed > InProgress > Unknown > Current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// The object has reached its desired state.
    Current,
    /// A controller is still working towards the desired state.
    InProgress,
    /// The object cannot reach its desired state without intervention.
    Failed,
    /// The status says nothing we can judge (e.g. a condition with status `Unknown`).
    Unknown,
}

impl Status {
    /// How bad a status is when folding a set: Failed outranks InProgress outranks Unknown outranks Current.
    pub(super) fn severity(self) -> u8 {
        match self {
            Status::Current => 0,
            Status::Unknown => 1,
            Status::InProgress => 2,
            Status::Failed => 3,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Current => "Current",
            Status::InProgress => "InProgress",
            Status::Failed => "Failed",
            Status::Unknown => "Unknown",
        })
    }
}

/// The health of one object or of a set of objects.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// The verdict.
    pub status: Status,
    /// Why, in a few words ("2/3 replicas ready"), for logs and the status file.
    pub message: String,
}

impl Health {
    /// Only Current counts as ready: Unknown is a reason to keep waiting, not to proceed.
    pub fn is_ready(&self) -> bool {
        self.status == Status::Current
    }
}

/// A verdict with its message.
pub(super) fn health(status: Status, message: impl Into<String>) -> Health {
    Health {
        status,
        message: message.into(),
    }
}
/// Current, because `message`.
pub(super) fn current(message: impl Into<String>) -> Health {
    health(Status::Current, message)
}
/// InProgress, because `message`.
pub(super) fn progressing(message: impl Into<String>) -> Health {
    health(Status::InProgress, message)
}
/// Failed, because `message`.
pub(super) fn failed(message: impl Into<String>) -> Health {
    health(Status::Failed, message)
}

/// Health of a set: Failed if any Failed, else InProgress if any InProgress, else Unknown if any Unknown,
/// else Current (an empty set is Current). The message names the first object of the worst status and
/// counts the other objects that are not current; `items` pairs a display name with each object's health.
pub fn aggregate<'a>(items: impl IntoIterator<Item = (&'a str, &'a Health)>) -> Health {
    let mut total = 0usize;
    let mut not_current = 0usize;
    let mut worst: Option<(&str, &Health)> = None;
    for (name, h) in items {
        total += 1;
        if h.status == Status::Current {
            continue;
        }
        not_current += 1;
        if worst.is_none_or(|(_, w)| h.status.severity() > w.status.severity()) {
            worst = Some((name, h));
        }
    }
    match worst {
        None if total == 0 => current("no objects"),
        None => current(format!("{total} objects current")),
        Some((name, h)) if not_current == 1 => health(h.status, format!("{name}: {}", h.message)),
        Some((name, h)) => {
            let others = not_current - 1;
            health(
                h.status,
                format!("{name}: {} (and {others} more not current)", h.message),
            )
        }
    }
}
