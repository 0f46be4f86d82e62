//! `.outpostignore` files (gitignore syntax), as Flux's `.sourceignore`: each file excludes paths below its own
//! directory; deeper files win over shallower ones, and `!pattern` re-includes.

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::source::SourceFile;

/// Name of the ignore files.
pub const IGNORE_FILE: &str = ".outpostignore";

/// A bad pattern in an ignore file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct Error {
    /// The ignore file.
    pub file: String,
    /// What is wrong.
    pub reason: String,
}

impl Error {
    /// The kind of failure as a metric label value.
    pub fn metric_label(&self) -> &'static str {
        "manifest_ignore"
    }
}

/// The ignore rules of one cluster path.
pub struct Rules {
    /// (directory relative to the cluster path, its matcher), deepest first.
    matchers: Vec<(String, Gitignore)>,
}

impl Rules {
    /// Collect every `.outpostignore` among `files` (paths relative to the cluster path).
    pub fn from_files(root: &str, files: &[SourceFile]) -> Result<Self, Error> {
        let mut matchers = Vec::new();
        for f in files
            .iter()
            .filter(|f| f.path.rsplit('/').next() == Some(IGNORE_FILE))
        {
            let dir = f.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("").to_owned();
            let mut builder = GitignoreBuilder::new(virtual_path(&dir));
            let text = String::from_utf8_lossy(&f.data);
            for line in text.lines() {
                builder.add_line(None, line).map_err(|e| Error {
                    file: format!("{root}/{}", f.path),
                    reason: e.to_string(),
                })?;
            }
            let matcher = builder.build().map_err(|e| Error {
                file: format!("{root}/{}", f.path),
                reason: e.to_string(),
            })?;
            matchers.push((dir, matcher));
        }
        matchers.sort_by_key(|(dir, _)| {
            std::cmp::Reverse(dir.matches('/').count() + usize::from(!dir.is_empty()))
        });
        Ok(Rules { matchers })
    }

    /// Whether `path` (relative to the cluster path) is excluded.
    pub fn is_ignored(&self, path: &str) -> bool {
        for (dir, matcher) in &self.matchers {
            let inside = dir.is_empty() || path.starts_with(&format!("{dir}/"));
            if !inside {
                continue;
            }
            let m = matcher.matched_path_or_any_parents(virtual_path(path), false);
            if m.is_ignore() {
                return true;
            }
            if m.is_whitelist() {
                return false;
            }
        }
        false
    }
}

/// Matchers need absolute-looking paths; the cluster path is mapped to `/`.
fn virtual_path(rel: &str) -> std::path::PathBuf {
    std::path::Path::new("/").join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> SourceFile {
        SourceFile::new(path, data)
    }

    #[test]
    fn patterns_apply_below_their_directory_and_can_be_negated() {
        let files = [
            file(".outpostignore", "*.tmp.yaml\ndrafts/\n"),
            file("web/.outpostignore", "!keep.tmp.yaml\nlocal-*.yaml\n"),
        ];
        let rules = Rules::from_files("clusters/c", &files).unwrap();
        assert!(rules.is_ignored("a.tmp.yaml"));
        assert!(rules.is_ignored("drafts/x.yaml"));
        assert!(rules.is_ignored("web/drafts/x.yaml"));
        assert!(rules.is_ignored("web/local-dev.yaml"));
        assert!(!rules.is_ignored("web/keep.tmp.yaml"));
        assert!(!rules.is_ignored("db/local-dev.yaml"));
        assert!(!rules.is_ignored("web/deploy.yaml"));
    }

    #[test]
    fn no_ignore_files_ignore_nothing() {
        let rules = Rules::from_files("c", &[file("a.yaml", "")]).unwrap();
        assert!(!rules.is_ignored("a.yaml"));
    }
}
