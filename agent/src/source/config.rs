//! What the source is told on the command line: the repository, the ref to follow in it, credentials and the
//! cache directory.

use std::path::PathBuf;

use super::auth::Auth;
use super::limits::Limits;
use super::revision::Revision;
use super::throttle::Throttle;
use super::url::RepoUrl;

/// Which commit to follow, as `--git-ref` says: a branch (default), a tag, or a fixed commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitRef {
    /// `main` or `refs/heads/main`.
    Branch(String),
    /// `refs/tags/v1.2.0`.
    Tag(String),
    /// A full 40-hex commit id.
    Commit(Revision),
    /// Whatever the repository's `HEAD` points at (its default branch). Never parsed from `--git-ref`; the status
    /// writer bases a branch it is about to create on it.
    Head,
}

impl GitRef {
    /// Parse `--git-ref`.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if let Some(tag) = text.strip_prefix("refs/tags/") {
            return GitRef::Tag(tag.to_owned());
        }
        if let Some(branch) = text.strip_prefix("refs/heads/") {
            return GitRef::Branch(branch.to_owned());
        }
        if text.len() == 40
            && text.bytes().all(|b| b.is_ascii_hexdigit())
            && let Some(id) = Revision::parse(text)
        {
            return GitRef::Commit(id);
        }
        GitRef::Branch(text.to_owned())
    }

    /// The full ref name on the remote (`refs/heads/main`), or the commit id.
    pub fn remote_name(&self) -> String {
        match self {
            GitRef::Branch(b) => format!("refs/heads/{b}"),
            GitRef::Tag(t) => format!("refs/tags/{t}"),
            GitRef::Commit(id) => id.to_string(),
            GitRef::Head => "HEAD".to_owned(),
        }
    }
}

impl std::fmt::Display for GitRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitRef::Branch(b) => write!(f, "branch {b:?}"),
            GitRef::Tag(t) => write!(f, "tag {t:?}"),
            GitRef::Commit(id) => write!(f, "commit {id}"),
            GitRef::Head => f.write_str("the default branch (HEAD)"),
        }
    }
}

/// Everything the source needs to know, from the command line.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the repository is.
    pub url: RepoUrl,
    /// What to follow in it.
    pub reference: GitRef,
    /// How to authenticate.
    pub auth: Auth,
    /// Where network repositories are cached between polls and restarts.
    pub cache_dir: PathBuf,
    /// Caps on what one commit may make us download and read.
    pub limits: Limits,
    /// Holds Git requests back when the server asks (429/503) or the agent's cap is reached; shared.
    pub throttle: Throttle,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_ref_kinds_are_recognised() {
        assert_eq!(GitRef::parse("main"), GitRef::Branch("main".into()));
        assert_eq!(GitRef::parse("refs/heads/dev"), GitRef::Branch("dev".into()));
        assert_eq!(GitRef::parse("refs/tags/v1.0"), GitRef::Tag("v1.0".into()));
        let hex = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(GitRef::parse(hex).remote_name(), hex);
        assert_eq!(
            GitRef::parse("release/1.x").remote_name(),
            "refs/heads/release/1.x"
        );
    }
}
