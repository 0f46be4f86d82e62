//! Reading the control annotations of one object (the control ConfigMap or a bundle's parent).

use std::collections::BTreeMap;

use crate::policy::DriftMode;

/// `"true"` suspends (the agent on its control ConfigMap, a bundle on its parent); `"false"` resumes, and on
/// a parent also overrides `suspend: true` in Git.
pub const SUSPEND_ANNOTATION: &str = "outpost.dev/suspend";
/// Any new value asks for a full sync now (Flux's `reconcile.fluxcd.io/requestedAt`).
pub const REQUESTED_AT_ANNOTATION: &str = "outpost.dev/requested-at";
/// The agent copies `requested-at` here once it synced for that request.
pub const HANDLED_AT_ANNOTATION: &str = "outpost.dev/handled-at";
/// `revert` or `report`, on a parent: the bundle's drift mode, over Git's and the flag's.
pub const DRIFT_ANNOTATION: &str = "outpost.dev/drift";

/// The controls one object carries. Values the agent cannot read are kept as messages (and otherwise ignored:
/// a typo never suspends or resumes anything).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// `outpost.dev/suspend`: `Some(true)` suspended, `Some(false)` resumed explicitly.
    pub suspend: Option<bool>,
    /// `outpost.dev/drift`.
    pub drift: Option<DriftMode>,
    /// `outpost.dev/requested-at`.
    pub requested_at: Option<String>,
    /// `outpost.dev/handled-at`, written by the agent.
    pub handled_at: Option<String>,
    /// Unreadable values, naming the annotation.
    pub invalid: Vec<String>,
}

impl Marks {
    /// Read the control annotations in `annotations`.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Self {
        let mut marks = Marks::default();
        if let Some(value) = annotations.get(SUSPEND_ANNOTATION) {
            match value.trim() {
                "true" => marks.suspend = Some(true),
                "false" => marks.suspend = Some(false),
                other => marks.invalid.push(format!(
                    "{SUSPEND_ANNOTATION}: {other:?} is neither \"true\" nor \"false\" (ignored)"
                )),
            }
        }
        if let Some(value) = annotations.get(DRIFT_ANNOTATION) {
            match DriftMode::parse(value) {
                Some(mode) => marks.drift = Some(mode),
                None => marks.invalid.push(format!(
                    "{DRIFT_ANNOTATION}: {value:?} is neither \"revert\" nor \"report\" (ignored)"
                )),
            }
        }
        let text = |key: &str| {
            annotations
                .get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        marks.requested_at = text(REQUESTED_AT_ANNOTATION);
        marks.handled_at = text(HANDLED_AT_ANNOTATION);
        marks
    }

    /// The `requested-at` value not yet handled, if any.
    pub fn pending_request(&self) -> Option<&str> {
        self.requested_at
            .as_deref()
            .filter(|r| self.handled_at.as_deref() != Some(*r))
    }

    /// What an operator changes (everything but the agent's own `handled-at`), to tell a control change
    /// from the agent's bookkeeping.
    pub fn operator_view(&self) -> (Option<bool>, Option<DriftMode>, Option<&str>) {
        (self.suspend, self.drift, self.pending_request())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(pairs: &[(&str, &str)]) -> Marks {
        Marks::from_annotations(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn annotations_read_as_controls_and_typos_change_nothing() {
        let m = marks(&[
            ("outpost.dev/suspend", "true"),
            ("outpost.dev/drift", "report"),
            ("outpost.dev/requested-at", "2026-12-01T10:00:00Z"),
            ("other", "x"),
        ]);
        assert_eq!(m.suspend, Some(true));
        assert_eq!(m.drift, Some(DriftMode::Report));
        assert_eq!(m.pending_request(), Some("2026-12-01T10:00:00Z"));
        assert!(m.invalid.is_empty());
        let typo = marks(&[("outpost.dev/suspend", "yes"), ("outpost.dev/drift", "ignore")]);
        assert_eq!((typo.suspend, typo.drift), (None, None));
        assert_eq!(typo.invalid.len(), 2, "{:?}", typo.invalid);
        assert!(
            typo.invalid[0].contains("outpost.dev/suspend"),
            "{:?}",
            typo.invalid
        );
    }

    #[test]
    fn a_request_is_pending_until_its_value_is_handled() {
        let handled = marks(&[("outpost.dev/requested-at", "a"), ("outpost.dev/handled-at", "a")]);
        assert_eq!(handled.pending_request(), None);
        let again = marks(&[("outpost.dev/requested-at", "b"), ("outpost.dev/handled-at", "a")]);
        assert_eq!(again.pending_request(), Some("b"));
        assert_ne!(handled.operator_view(), again.operator_view());
    }
}
