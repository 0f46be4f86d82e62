//! The inventory format: which layout of a parent Secret's data an agent reads and writes, so that an agent
//! never acts on a parent that a newer Outpost wrote in a layout it does not know (after a downgrade).
//!
//! The format is the parent's `outpost.dev/inventory-format` annotation, written on every save. Formats so far:
//!
//! | Format | Written by | Parent |
//! |---|---|---|
//! | (none) | the first releases | named `outpost-<bundle>-<hash>`, without the cluster; no marker |
//! | 1 | per-cluster names | named `outpost-<cluster>-<bundle>-<hash>`; no marker |
//! | 2 | this agent | as 1, plus the marker |
//!
//! The data (gzip JSON member list, bundle info JSON, sync annotation) is the same in all three, so a parent
//! without a marker reads as format 1; one named by the first layout is then moved to its per-cluster name by
//! [`super::migrate`]. Every write is in [`CURRENT`]: older parents are migrated by their bundle's next sync.
//!
//! A parent of a higher format is refused ([`Error::NewerFormat`]): its bundle is neither applied nor pruned
//! and its parent never rewritten (that would downgrade it). So is one whose `outpost.dev/inventory` label is
//! not `v1`: older agents list parents by that label, so it never changes — a parent without it would be
//! invisible to them, and they would overwrite it as a new bundle's.
//!
//! Bump [`CURRENT`] when an agent of the previous format would misread a parent of the new one (a new data
//! key it must honour, a changed meaning); fields an older agent may safely ignore keep the format.

use std::collections::BTreeMap;

use super::Error;
use super::applyset::INVENTORY_LABEL;

/// Annotation on the parent: its format, a decimal number.
pub const FORMAT_ANNOTATION: &str = "outpost.dev/inventory-format";
/// The format this agent writes, and the newest it reads.
pub const CURRENT: u32 = 2;
/// The format of a parent without the marker (every parent before the marker existed).
pub const UNMARKED: u32 = 1;
/// The value of [`INVENTORY_LABEL`] on every parent of every format (older agents select parents by it).
pub const LABEL_VALUE: &str = "v1";

/// The format of the parent `name` with these labels and annotations, if this agent reads it: [`UNMARKED`]
/// without a marker, the marker's number up to [`CURRENT`]. A higher number, or a label other than
/// [`LABEL_VALUE`], is [`Error::NewerFormat`]; a marker that is not a format number is [`Error::Corrupt`].
pub fn of(
    name: &str,
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<u32, Error> {
    let newer = |format: String| Error::NewerFormat {
        name: name.to_owned(),
        format,
        supported: CURRENT,
    };
    if let Some(label) = labels.and_then(|l| l.get(INVENTORY_LABEL))
        && label != LABEL_VALUE
    {
        return Err(newer(format!("{label:?} (label {INVENTORY_LABEL})")));
    }
    let Some(marker) = annotations.and_then(|a| a.get(FORMAT_ANNOTATION)) else {
        return Ok(UNMARKED);
    };
    // Only plain digits, as every agent writes them: `+2`, ` 2` or `02` are not a format.
    let number = !marker.is_empty() && marker.bytes().all(|b| b.is_ascii_digit()) && !marker.starts_with('0');
    if !number {
        return Err(Error::Corrupt {
            name: name.to_owned(),
            what: "format marker",
            reason: format!("{FORMAT_ANNOTATION} is {marker:?}, not a format number"),
        });
    }
    match marker.parse::<u32>() {
        Ok(n) if n <= CURRENT => Ok(n),
        // Larger than ours, or even than u32.
        _ => Err(newer(marker.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn format(label: Option<&str>, marker: Option<&str>) -> Result<u32, Error> {
        let labels = label.map(|l| map(&[(INVENTORY_LABEL, l)]));
        let annotations = marker.map(|m| map(&[(FORMAT_ANNOTATION, m)]));
        of("outpost-edge-web-1a2b", labels.as_ref(), annotations.as_ref())
    }

    #[test]
    fn a_parent_without_a_marker_is_format_one() {
        assert_eq!(format(Some("v1"), None).unwrap(), UNMARKED);
        assert_eq!(format(None, None).unwrap(), UNMARKED);
        // Other annotations are no marker.
        let annotations = map(&[("outpost.dev/bundle", "web")]);
        assert_eq!(of("p", None, Some(&annotations)).unwrap(), UNMARKED);
    }

    #[test]
    fn every_format_up_to_the_current_one_is_read() {
        for n in 1..=CURRENT {
            assert_eq!(format(Some("v1"), Some(&n.to_string())).unwrap(), n);
        }
    }

    #[test]
    fn a_newer_format_is_refused_naming_the_parent_its_format_and_ours() {
        for marker in [
            (CURRENT + 1).to_string(),
            "4294967296".to_owned(),
            "99999999999999999999999".to_owned(),
        ] {
            let err = format(Some("v1"), Some(&marker)).unwrap_err();
            assert!(matches!(err, Error::NewerFormat { .. }), "{marker}: {err:?}");
            let text = err.to_string();
            assert!(text.contains("outpost-edge-web-1a2b"), "{text}");
            assert!(text.contains(&format!("format {marker}")), "{text}");
            assert!(text.contains(&format!("formats up to {CURRENT}")), "{text}");
            assert!(text.contains("newer Outpost"), "{text}");
            assert_eq!(err.metric_label(), "newer_format");
        }
    }

    #[test]
    fn a_parent_under_another_label_value_is_refused_as_newer() {
        let err = format(Some("v2"), None).unwrap_err();
        assert!(matches!(err, Error::NewerFormat { .. }), "{err:?}");
        assert!(
            err.to_string().contains("\"v2\" (label outpost.dev/inventory)"),
            "{err}"
        );
    }

    #[test]
    fn a_marker_that_is_no_format_number_is_corrupt() {
        for marker in ["", "two", "v2", "0", "02", "+2", " 2", "2.0", "-1"] {
            let err = format(Some("v1"), Some(marker)).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{marker:?}: {err:?}");
            assert!(err.to_string().contains(FORMAT_ANNOTATION), "{err}");
        }
    }
}
