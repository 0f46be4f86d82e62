//! [`Revision`]: which version of the desired state a source found — for Git, a commit id.
//!
//! Later stages (reconcile, inventories, status) keep, compare, print and parse revisions; they never need to
//! know it is a Git object id, so `gix` stays inside the source stage. Inventories store a revision as its
//! [`Display`](std::fmt::Display) text and [`Revision::parse`] reads it back.

use std::fmt;

/// Hex digits of [`Revision::short`]: what `outpost-agent status` prints, unique in any repository we meet.
const SHORT_LEN: usize = 12;

/// One version of the desired state: the commit a Git source found. `Display` is the full hex id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(gix::ObjectId);

impl Revision {
    /// Read a revision from its full hex text, as [`Display`](fmt::Display) wrote it; `None` for anything else
    /// (an abbreviated id, a ref name, an empty annotation).
    pub fn parse(text: &str) -> Option<Self> {
        gix::ObjectId::from_hex(text.as_bytes()).ok().map(Revision)
    }

    /// The first twelve hex digits, for tables and log lines.
    pub fn short(&self) -> String {
        let mut text = self.to_string();
        text.truncate(SHORT_LEN);
        text
    }

    /// The Git object id, for code that works on the repository itself (the status writer builds its commits
    /// with gix on the revision it fetched).
    pub fn object_id(&self) -> gix::ObjectId {
        self.0
    }
}

impl From<gix::ObjectId> for Revision {
    fn from(id: gix::ObjectId) -> Self {
        Revision(id)
    }
}

impl From<Revision> for gix::ObjectId {
    fn from(revision: Revision) -> Self {
        revision.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Revision({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn a_revision_prints_as_full_hex_and_reads_back() {
        let revision = Revision::parse(HEX).unwrap();
        assert_eq!(revision.to_string(), HEX);
        assert_eq!(revision.short(), "0123456789ab");
        assert_eq!(format!("{revision:?}"), format!("Revision({HEX})"));
        assert_eq!(Revision::from(revision.object_id()), revision);
    }

    #[test]
    fn anything_but_a_full_id_is_not_a_revision() {
        assert_eq!(Revision::parse("0123456"), None);
        assert_eq!(Revision::parse("main"), None);
        assert_eq!(Revision::parse(""), None);
        assert_eq!(Revision::parse("refs/heads/main"), None);
    }
}
