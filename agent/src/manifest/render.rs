//! The render stage: between a bundle's files and their parsing, the place where decryption (SOPS), templating
//! or overlays turn what is in Git into the manifests to apply.
//!
//! [`Sops`](super::sops::Sops) decrypts SOPS files with age identities when `--sops-age-keys-dir` or
//! `--sops-age-key-file` is set.
//!
//! [`layout`](super::layout) groups a cluster path's files into bundles and hands each bundle's files to a
//! [`Render`], then parses what it returns. The agent uses [`Identity`] today: the files are parsed as they
//! are, without a copy. A renderer sees every file of the bundle (not only `.yaml`), with paths relative to the
//! cluster path, and may add, drop or rewrite files; its error names the file and holds that bundle only
//! (nothing of it is applied or pruned, its last applied state stays; the other bundles sync).

use std::borrow::Cow;
use std::sync::Arc;

use crate::source::SourceFile;

/// Paths (`data.password`, `spec.items[0].value`) of a rendered file's values that were encrypted in Git:
/// `plan` masks them. Empty for files that were not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sealed(Option<Arc<Vec<String>>>);

impl Sealed {
    /// These paths.
    pub fn new(paths: Vec<String>) -> Self {
        Sealed((!paths.is_empty()).then(|| Arc::new(paths)))
    }

    /// Whether a change at `path` shows a sealed value: the path is sealed, inside a sealed value, or holds one.
    pub fn covers(&self, path: &str) -> bool {
        let nested = |outer: &str, inner: &str| {
            inner == outer
                || (outer.is_empty() && !inner.is_empty())
                || inner
                    .strip_prefix(outer)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        self.0
            .iter()
            .flat_map(|p| p.iter())
            .any(|p| nested(p, path) || nested(path, p))
    }

    /// Whether nothing is sealed.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

/// A render step could not produce a bundle's files.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct Error {
    /// Repository path of the file that could not be rendered.
    pub file: String,
    /// What went wrong, and what to do about it.
    pub reason: String,
}

impl Error {
    /// The kind of failure as a metric label value.
    pub fn metric_label(&self) -> &'static str {
        "render"
    }
}

/// Turns one bundle's files into the files to parse.
pub trait Render: Send + Sync {
    /// Render the files of `bundle` (paths relative to the cluster path, in path order); `root` is the
    /// repository path of the cluster directory, for naming files in errors.
    fn render<'a>(
        &self,
        root: &str,
        bundle: &str,
        files: Vec<Cow<'a, SourceFile>>,
    ) -> Result<Vec<Cow<'a, SourceFile>>, Error>;

    /// [`Render::render`], with the paths of each file's values that were encrypted in Git (never shown).
    fn render_sealed<'a>(
        &self,
        root: &str,
        bundle: &str,
        files: Vec<Cow<'a, SourceFile>>,
    ) -> Result<Vec<(Cow<'a, SourceFile>, Sealed)>, Error> {
        Ok(self
            .render(root, bundle, files)?
            .into_iter()
            .map(|f| (f, Sealed::default()))
            .collect())
    }
}

/// Parses the files as they are in Git.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl Render for Identity {
    fn render<'a>(
        &self,
        _root: &str,
        _bundle: &str,
        files: Vec<Cow<'a, SourceFile>>,
    ) -> Result<Vec<Cow<'a, SourceFile>>, Error> {
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::layout::bundles_rendered;

    /// A stand-in for decryption: files named `*.rot13.yaml` are rotated back; a file saying `broken` fails.
    struct Rot13;

    impl Render for Rot13 {
        fn render<'a>(
            &self,
            root: &str,
            _bundle: &str,
            files: Vec<Cow<'a, SourceFile>>,
        ) -> Result<Vec<Cow<'a, SourceFile>>, Error> {
            files
                .into_iter()
                .map(|f| {
                    let Some(stem) = f.path.strip_suffix(".rot13") else {
                        return Ok(f);
                    };
                    if f.data.starts_with(b"broken") {
                        return Err(Error {
                            file: format!("{root}/{}", f.path),
                            reason: "cannot decrypt".into(),
                        });
                    }
                    let plain: Vec<u8> = f.data.iter().map(|b| rot13(*b)).collect();
                    Ok(Cow::Owned(SourceFile::new(stem, plain)))
                })
                .collect()
        }
    }

    fn rot13(b: u8) -> u8 {
        match b {
            b'a'..=b'z' => (b - b'a' + 13) % 26 + b'a',
            b'A'..=b'Z' => (b - b'A' + 13) % 26 + b'A',
            _ => b,
        }
    }

    const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: ns\n";

    #[test]
    fn a_renderer_sees_each_bundles_files_before_they_are_parsed() {
        let hidden: Vec<u8> = CONFIG_MAP.bytes().map(rot13).collect();
        let files = [
            SourceFile::new("web/a.yaml.rot13", hidden),
            SourceFile::new("db/b.yaml", CONFIG_MAP.replace("name: a", "name: b")),
        ];
        let bundles = bundles_rendered("clusters/c", &files, &Rot13).expect("renders and parses");
        let names: Vec<(&str, usize)> = bundles
            .iter()
            .map(|b| (b.name.as_str(), b.manifests.len()))
            .collect();
        assert_eq!(names, [("db", 1), ("web", 1)]);
        // Without the renderer the rotated file is not a manifest at all.
        let plain = bundles_rendered("clusters/c", &files, &Identity).expect("parses");
        assert_eq!(plain.len(), 1, "{plain:?}");
    }

    #[test]
    fn sealed_paths_cover_their_values_parents_and_children() {
        let sealed = Sealed::new(vec!["data.password".into(), "spec.items[0].v".into()]);
        assert!(sealed.covers("data.password"));
        assert!(sealed.covers("data"));
        assert!(sealed.covers(""));
        assert!(sealed.covers("spec.items[0].v.deep"));
        assert!(!sealed.covers("data.passwords"));
        assert!(!sealed.covers("metadata.name"));
        assert!(!Sealed::default().covers("data"));
    }

    #[test]
    fn a_render_failure_names_the_file_and_holds_only_its_bundle() {
        let files = [
            SourceFile::new("web/a.yaml.rot13", "broken"),
            SourceFile::new("web/c.yaml", CONFIG_MAP.replace("name: a", "name: c")),
            SourceFile::new("db/b.yaml", CONFIG_MAP),
        ];
        let bundles = bundles_rendered("clusters/c", &files, &Rot13).expect("one bundle held");
        let held: Vec<(&str, usize, Option<&str>)> = bundles
            .iter()
            .map(|b| (b.name.as_str(), b.manifests.len(), b.held.as_deref()))
            .collect();
        assert_eq!(
            held,
            [
                ("db", 1, None),
                (
                    "web",
                    0,
                    Some("render: clusters/c/web/a.yaml.rot13: cannot decrypt")
                ),
            ]
        );
    }
}
