//! Caps on what one commit can make the agent download and read (`--max-*` flags).
//!
//! A commit is input from whoever can push to the repository: a 300 MB blob, fifty thousand files or a tree
//! five thousand directories deep would otherwise be read whole into memory and the pod killed for it, over and
//! over, one poll after another. [`Limits`] is checked before anything is read: the fetch counts the bytes of the
//! pack as they arrive (`fetch_cap.rs`), and the tree walk (`tree.rs`) learns every entry's size from the object
//! headers before a single blob is loaded. Breaking a cap fails the sync with [`Exceeded`], which names the path
//! and the flag; nothing is applied or pruned, and the last good state stays.
//!
//! The defaults are far above what a real EMCO or Flux repository holds for one cluster, and low enough that a
//! commit at every cap at once still fits the chart's agent memory limit (256Mi).

use std::fmt;

/// One cap, by the flag that sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `--max-blob-bytes`: the size of one file.
    BlobBytes,
    /// `--max-files`: files below the cluster path.
    Files,
    /// `--max-tree-depth`: directories nested below the cluster path.
    TreeDepth,
    /// `--max-total-bytes`: everything read below the cluster path (files and directory listings).
    TotalBytes,
    /// `--max-fetch-bytes`: what one fetch may download (and, halved, the largest object it may inflate).
    FetchBytes,
}

impl Limit {
    /// The flag that sets this cap.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::BlobBytes => "--max-blob-bytes",
            Limit::Files => "--max-files",
            Limit::TreeDepth => "--max-tree-depth",
            Limit::TotalBytes => "--max-total-bytes",
            Limit::FetchBytes => "--max-fetch-bytes",
        }
    }

    /// Whether the cap counts bytes (shown with a unit) rather than files or levels.
    fn is_bytes(self) -> bool {
        matches!(self, Limit::BlobBytes | Limit::TotalBytes | Limit::FetchBytes)
    }
}

/// A commit broke a cap: the sync fails before anything is applied or pruned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}: {} exceeds {} ({}); nothing was applied or pruned (raise the flag if the commit is meant to be this large)",
    .found,
    .limit.flag(),
    show(*.limit, *.max)
)]
pub struct Exceeded {
    /// The file or directory (inside the repository) at which the cap broke, or the repository for a fetch.
    pub path: String,
    /// Which cap.
    pub limit: Limit,
    /// Its value.
    pub max: u64,
    /// What was found, in words ("a file of 300.0 MiB", "more than 20000 files").
    pub found: String,
}

/// The caps, as the flags set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest file read, in bytes.
    pub max_blob_bytes: u64,
    /// Most files read below the cluster path.
    pub max_files: u64,
    /// Deepest directory below the cluster path (its direct files are at depth 0).
    pub max_tree_depth: u64,
    /// Most bytes read below the cluster path, files and directory listings together.
    pub max_total_bytes: u64,
    /// Most bytes one fetch may download; an object in it may inflate to half of that.
    pub max_fetch_bytes: u64,
}

/// One mebibyte.
const MIB: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // The largest manifests in the wild (prometheus-operator's CRD bundle) are a few MiB; a Kubernetes
            // object cannot exceed etcd's 1.5 MiB request limit anyway.
            max_blob_bytes: 16 * MIB,
            // EMCO writes one file per object: a cluster with 200 apps of 50 objects each is 10,000 files.
            max_files: 20_000,
            // EMCO's deepest layout is context/<cid>/app/<app>/<file>: four levels.
            max_tree_depth: 64,
            // Read files are held while parsed and again as objects, and dense YAML grows several times over
            // into values: 24 MiB of it keeps the agent under its 256Mi chart limit.
            max_total_bytes: 24 * MIB,
            // A depth-1 pack of a whole fleet repository, compressed; the pack of one object is buffered whole
            // while it is indexed, so this also bounds the memory a fetch takes.
            max_fetch_bytes: 96 * MIB,
        }
    }
}

impl Limits {
    /// `Err` naming `path` when `found` is over `limit`'s cap; `describe` says what was found.
    pub(super) fn check(
        &self,
        limit: Limit,
        found: u64,
        path: &str,
        describe: impl FnOnce(u64) -> String,
    ) -> Result<(), Exceeded> {
        let max = self.max(limit);
        if found <= max {
            return Ok(());
        }
        Err(Exceeded {
            path: path.to_owned(),
            limit,
            max,
            found: describe(found),
        })
    }

    /// The largest object a fetch may inflate: half of `--max-fetch-bytes`, because indexing the pack holds the
    /// object's pack entry and the object itself at once, so the fetch never holds more than the cap.
    pub fn max_inflated_object(&self) -> u64 {
        (self.max_fetch_bytes / 2).max(1)
    }

    /// The value of one cap.
    pub fn max(&self, limit: Limit) -> u64 {
        match limit {
            Limit::BlobBytes => self.max_blob_bytes,
            Limit::Files => self.max_files,
            Limit::TreeDepth => self.max_tree_depth,
            Limit::TotalBytes => self.max_total_bytes,
            Limit::FetchBytes => self.max_fetch_bytes,
        }
    }
}

/// A cap's value as people read it.
fn show(limit: Limit, value: u64) -> String {
    if limit.is_bytes() {
        Bytes(value).to_string()
    } else {
        value.to_string()
    }
}

/// A byte count shown in the largest binary unit that keeps it readable (`16 MiB`, `300.0 MiB`, `512 B`).
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [("GiB", 1u64 << 30), ("MiB", MIB), ("KiB", 1 << 10)];
        for (unit, size) in units {
            if self.0 >= size {
                return if self.0.is_multiple_of(size) {
                    write!(f, "{} {unit}", self.0 / size)
                } else {
                    write!(f, "{:.1} {unit}", self.0 as f64 / size as f64)
                };
            }
        }
        write!(f, "{} B", self.0)
    }
}

/// Parse a byte count: `1048576`, `512KiB`, `16MiB`, `1GiB` (also `Ki`/`Mi`/`Gi`, `K`/`M`/`G` as binary units,
/// as Kubernetes quantities read). Zero is refused: it would refuse every commit.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count (use e.g. 16MiB, 512KiB, 1GiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "ki" | "kib" => 10,
        "m" | "mi" | "mib" => 20,
        "g" | "gi" | "gib" => 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use KiB, MiB or GiB)")),
    };
    let value = number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if value == 0 {
        return Err("0 would refuse every commit".to_owned());
    }
    Ok(value)
}

/// Parse a count of files or directory levels (at least 1).
pub fn parse_count(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("0 would refuse every commit".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_in_binary_units() {
        assert_eq!(parse_bytes("16MiB"), Ok(16 * MIB));
        assert_eq!(parse_bytes("16Mi"), Ok(16 * MIB));
        assert_eq!(parse_bytes("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("12XB").is_err());
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_count("20000"), Ok(20_000));
        assert!(parse_count("0").is_err());
    }

    #[test]
    fn a_broken_cap_names_the_path_the_flag_and_its_value() {
        let limits = Limits::default();
        assert!(
            limits
                .check(Limit::BlobBytes, 16 * MIB, "a.yaml", |_| unreachable!())
                .is_ok()
        );
        let err = limits
            .check(Limit::BlobBytes, 300 * MIB, "clusters/c/big.yaml", |n| {
                format!("a file of {}", Bytes(n))
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "clusters/c/big.yaml: a file of 300 MiB exceeds --max-blob-bytes (16 MiB); nothing was applied or \
             pruned (raise the flag if the commit is meant to be this large)"
        );
        let err = limits
            .check(Limit::Files, 20_001, "clusters/c", |_| {
                "more than 20000 files".into()
            })
            .unwrap_err();
        assert!(err.to_string().contains("exceeds --max-files (20000)"), "{err}");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
    }
}
