//! Repository layout contract (DESIGN §2): which files of `clusters/<cluster>/` form which bundle.
//!
//! - EMCO layout: `context/<cid>/app/<app>/**` is bundle `<cid>-<app>`; the Flux files rsync writes at the root
//!   (`<cid>.yaml`, `kust<cid>.yaml`, recognised by content in [`super::flux`]) and `flux-system/` are ignored.
//! - Plain layout: every other top-level directory is a bundle named after it; root files form `_root`.
//! - `status/` belongs to status writers and is never applied.
//!
//! `ResourceBundleState` documents are status tracker declarations: kept apart, never applied.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use super::bundle::{Bundle, Layout, Manifest, Origin};
use super::parse::{self, parse_file};
use super::render::{self, Identity, Render};
use super::{flux, ignore};
use crate::source::SourceFile;

/// The bundle made of files directly in the cluster directory.
pub const ROOT_BUNDLE: &str = "_root";
/// Written by status writers, never applied.
const STATUS_DIR: &str = "status";
/// Flux's own manifests, which rsync writes next to ours.
const FLUX_DIR: &str = "flux-system";
/// EMCO rsync's top-level directory.
const EMCO_CONTEXT_DIR: &str = "context";
/// Per-bundle settings file (dependsOn); not a manifest.
pub const BUNDLE_CONFIG_FILE: &str = "outpost.yaml";
/// Tracker declarations: `apiVersion` and `kind`.
const TRACKER_API_VERSION: &str = "k8splugin.io/v1alpha1";
const TRACKER_KIND: &str = "ResourceBundleState";
/// Parse errors listed in one message before "and N more".
const MAX_LISTED_ERRORS: usize = 5;

/// The manifests of a cluster path could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more files failed to parse; nothing from this commit may be applied.
    #[error("{}", list_errors(.0))]
    Parse(Vec<parse::Error>),
    /// An `.outpostignore` pattern is invalid.
    #[error(transparent)]
    Ignore(#[from] ignore::Error),
    /// A bundle's `outpost.yaml` is invalid.
    #[error("{file}: {reason}")]
    Config {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A render step failed for a bundle's file.
    #[error("render: {0}")]
    Render(#[from] render::Error),
    /// Two documents describe the same object.
    #[error("{first} and {second} both define {object}: remove one of them")]
    Duplicate {
        /// `Kind/namespace/name`.
        object: String,
        /// Where it was first defined.
        first: Origin,
        /// Where it was defined again.
        second: Origin,
    },
}

impl Error {
    /// The kind of failure as a metric label value: short, snake_case, from a fixed set.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Parse(_) => "manifest_parse",
            Error::Ignore(e) => e.metric_label(),
            Error::Config { .. } => "bundle_config",
            Error::Duplicate { .. } => "manifest_duplicate",
            Error::Render(e) => e.metric_label(),
        }
    }
}

/// The first parse errors, joined, with a count of the rest.
fn list_errors(errors: &[parse::Error]) -> String {
    let mut text = errors
        .iter()
        .take(MAX_LISTED_ERRORS)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > MAX_LISTED_ERRORS {
        text.push_str(&format!("; and {} more", errors.len() - MAX_LISTED_ERRORS));
    }
    text
}

/// A bundle's `outpost.yaml`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BundleConfig {
    /// Bundle names.
    #[serde(default)]
    depends_on: Vec<String>,
    /// Apply, prune and revert nothing (an operator's `outpost.dev/suspend: "false"` wins).
    #[serde(default)]
    suspend: bool,
    /// `revert` (default) or `report`.
    #[serde(default)]
    drift: Option<crate::policy::DriftMode>,
    /// `delete` (default) or `orphan`.
    #[serde(default)]
    prune: Option<crate::policy::PrunePolicy>,
    /// ServiceAccount in the agent's namespace whose rights the bundle's writes have.
    #[serde(default)]
    service_account_name: Option<String>,
}

/// Split the files of a cluster path (paths relative to it) into bundles, parsing every manifest as it is.
///
/// `root` is the repository path of the cluster directory, used to name files in errors.
pub fn bundles(root: &str, files: &[SourceFile]) -> Result<Vec<Bundle>, Error> {
    bundles_rendered(root, files, &Identity)
}

/// Split the files of a cluster path into bundles, pass each bundle's files through `renderer`, and parse the
/// manifests it returns. Every file that fails to parse is reported, and any parse failure rejects the whole
/// commit; a bundle whose files cannot be rendered is returned [held](Bundle::held), without manifests.
pub fn bundles_rendered(
    root: &str,
    files: &[SourceFile],
    renderer: &dyn Render,
) -> Result<Vec<Bundle>, Error> {
    let ignore = ignore::Rules::from_files(root, files)?;
    let files: Vec<&SourceFile> = files.iter().filter(|f| !ignore.is_ignored(&f.path)).collect();
    let emco_contexts = emco_contexts(files.iter().copied());
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut configs: BTreeMap<String, BundleConfig> = BTreeMap::new();
    for file in files {
        if let Some(bundle) = config_file_bundle(&file.path, &emco_contexts) {
            let config: BundleConfig = serde_saphyr::from_slice(&file.data).map_err(|e| Error::Config {
                file: format!("{}/{}", root.trim_end_matches('/'), file.path),
                reason: e.to_string().lines().next().unwrap_or_default().to_owned(),
            })?;
            if let Some(name) = config.service_account_name.as_deref()
                && !crate::identity::valid_account_name(name)
            {
                return Err(Error::Config {
                    file: format!("{}/{}", root.trim_end_matches('/'), file.path),
                    reason: format!(
                        "serviceAccountName {name:?} is not a ServiceAccount name (lowercase letters, digits, '-' and '.')"
                    ),
                });
            }
            configs.insert(bundle, config);
            continue;
        }
        let Some((name, dir, layout)) = classify(&file.path, &emco_contexts) else {
            continue;
        };
        groups
            .entry(name)
            .or_insert_with(|| Group {
                dir,
                layout,
                files: Vec::new(),
            })
            .files
            .push(Cow::Borrowed(file));
    }
    let mut by_name: BTreeMap<String, Bundle> = BTreeMap::new();
    let mut errors = Vec::new();
    // Root files are held back until all are parsed: whether one is EMCO's Flux root file depends on the others.
    let mut root_files: Vec<Vec<Manifest>> = Vec::new();
    for (name, group) in groups {
        let rendered = match renderer.render_sealed(root, &name, group.files) {
            Ok(rendered) => rendered,
            Err(e) => {
                // Only this bundle waits: its files are not parsed, and nothing of it is applied or pruned.
                let bundle = entry(&mut by_name, name, group.dir, group.layout);
                bundle.held = Some(Error::Render(e).to_string());
                continue;
            }
        };
        for (file, sealed) in rendered.iter().filter(|(f, _)| is_manifest_file(&f.path)) {
            let repo_path = format!("{}/{}", root.trim_end_matches('/'), file.path);
            let manifests = match parse_file(&repo_path, &file.data) {
                Ok(mut m) => {
                    if !sealed.is_empty() {
                        m.iter_mut().for_each(|m| m.origin.sealed = sealed.clone());
                    }
                    m
                }
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if name == ROOT_BUNDLE {
                root_files.push(manifests);
            } else {
                add(
                    &mut by_name,
                    name.clone(),
                    group.dir.clone(),
                    group.layout.clone(),
                    manifests,
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err(Error::Parse(errors));
    }
    let flux_roots = flux::emco_root_files(root, &root_files);
    for (i, manifests) in root_files.into_iter().enumerate() {
        if !flux_roots.contains(&i) {
            add(
                &mut by_name,
                ROOT_BUNDLE.to_owned(),
                String::new(),
                Layout::Plain,
                manifests,
            );
        }
    }
    for (name, config) in configs {
        if let Some(bundle) = by_name.get_mut(&name) {
            bundle.depends_on = config.depends_on;
            bundle.settings = crate::policy::BundleSettings {
                suspend: config.suspend,
                drift: config.drift,
                prune: config.prune,
                service_account: config.service_account_name,
            };
        }
    }
    Ok(by_name.into_values().collect())
}

/// One bundle's files before rendering.
struct Group<'a> {
    /// Its directory relative to the cluster path.
    dir: String,
    /// Plain or EMCO.
    layout: Layout,
    /// Its files, in path order.
    files: Vec<Cow<'a, SourceFile>>,
}

/// The bundle named `name`, created empty when new.
fn entry(by_name: &mut BTreeMap<String, Bundle>, name: String, dir: String, layout: Layout) -> &mut Bundle {
    by_name.entry(name.clone()).or_insert_with(|| Bundle {
        name,
        dir,
        layout,
        manifests: Vec::new(),
        trackers: Vec::new(),
        depends_on: Vec::new(),
        settings: Default::default(),
        held: None,
    })
}

/// Add a file's documents to its bundle: trackers apart, everything else to apply.
fn add(
    by_name: &mut BTreeMap<String, Bundle>,
    name: String,
    dir: String,
    layout: Layout,
    docs: Vec<Manifest>,
) {
    let bundle = entry(by_name, name, dir, layout);
    for m in docs {
        if is_tracker(&m) {
            bundle.trackers.push(m);
        } else {
            bundle.manifests.push(m);
        }
    }
}

/// The bundle whose `outpost.yaml` this is, if it is one (`<dir>/outpost.yaml` or
/// `context/<cid>/app/<app>/outpost.yaml`).
fn config_file_bundle(path: &str, emco_contexts: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [EMCO_CONTEXT_DIR, cid, "app", app, BUNDLE_CONFIG_FILE] if emco_contexts.contains(*cid) => {
            Some(format!("{cid}-{app}"))
        }
        [BUNDLE_CONFIG_FILE] => Some(ROOT_BUNDLE.to_owned()),
        [dir, BUNDLE_CONFIG_FILE] if *dir != STATUS_DIR && *dir != FLUX_DIR && *dir != EMCO_CONTEXT_DIR => {
            Some((*dir).to_owned())
        }
        _ => None,
    }
}

/// Context ids present under `context/<cid>/app/`.
fn emco_contexts<'a>(files: impl Iterator<Item = &'a SourceFile>) -> BTreeSet<String> {
    files
        .filter_map(|f| {
            let mut parts = f.path.split('/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(EMCO_CONTEXT_DIR), Some(cid), Some("app")) => Some(cid.to_owned()),
                _ => None,
            }
        })
        .collect()
}

/// Which bundle a file belongs to: `(name, dir, layout)`, or `None` when it is never applied.
fn classify(path: &str, emco_contexts: &BTreeSet<String>) -> Option<(String, String, Layout)> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.iter().any(|p| p.starts_with('.')) {
        return None; // hidden files and directories (.outpostignore, .git*)
    }
    match parts.as_slice() {
        [_file] => Some((ROOT_BUNDLE.to_owned(), String::new(), Layout::Plain)),
        [STATUS_DIR, ..] | [FLUX_DIR, ..] => None,
        [EMCO_CONTEXT_DIR, cid, "app", app, _, ..] => Some((
            format!("{cid}-{app}"),
            format!("{EMCO_CONTEXT_DIR}/{cid}/app/{app}"),
            Layout::Emco {
                context: (*cid).to_owned(),
                app: (*app).to_owned(),
            },
        )),
        // Other files under context/ (not in an app directory) are EMCO bookkeeping, not manifests.
        [EMCO_CONTEXT_DIR, ..] if !emco_contexts.is_empty() => None,
        [dir, _, ..] => Some(((*dir).to_owned(), (*dir).to_owned(), Layout::Plain)),
        [] => None,
    }
}

/// A `ResourceBundleState` status tracker declaration (kept for the status writer, never applied).
pub fn is_tracker(m: &Manifest) -> bool {
    m.api_version == TRACKER_API_VERSION && m.kind == TRACKER_KIND
}

/// Whether the files of one bundle directory (paths relative to it) hold status trackers and nothing to apply:
/// EMCO's request to delete the app. A file that does not parse makes the answer no.
pub fn is_tracker_only(dir: &str, files: &[SourceFile]) -> bool {
    let mut trackers = 0;
    for f in files {
        let hidden = f.path.split('/').any(|p| p.starts_with('.'));
        if hidden || f.path == BUNDLE_CONFIG_FILE || !is_manifest_file(&f.path) {
            continue;
        }
        let Ok(docs) = parse_file(&format!("{dir}/{}", f.path), &f.data) else {
            return false;
        };
        for m in &docs {
            if !is_tracker(m) {
                return false;
            }
            trackers += 1;
        }
    }
    trackers > 0
}

/// YAML and JSON files are manifests; anything else (README.md, scripts) is ignored.
fn is_manifest_file(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> SourceFile {
        SourceFile::new(path, data)
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";

    #[test]
    fn plain_layout_makes_a_bundle_per_directory_and_root() {
        let files = [
            file("a.yaml", CM),
            file("web/deploy.yaml", CM),
            file("web/nested/more.yml", CM),
            file("web/README.md", "not yaml"),
            file("web/outpost.yaml", "dependsOn: [db]"),
            file("web/draft.yaml", "kind: [ broken but ignored"),
            file(".outpostignore", "draft.yaml\n"),
            file("status/web/web-status.yaml", CM),
            file(".outpostignore", "x"),
        ];
        let bundles = bundles("clusters/c1", &files).unwrap();
        let summary: Vec<_> = bundles
            .iter()
            .map(|b| (b.name.as_str(), b.manifests.len()))
            .collect();
        assert_eq!(summary, [("_root", 1), ("web", 2)]);
        assert_eq!(
            bundles[1].manifests[1].origin.file,
            "clusters/c1/web/nested/more.yml"
        );
    }

    #[test]
    fn emco_layout_names_bundles_by_context_and_app_and_skips_flux() {
        let rbs = "apiVersion: k8splugin.io/v1alpha1\nkind: ResourceBundleState\nmetadata: {name: s}\n";
        let files = [
            file(
                "123.yaml",
                "apiVersion: source.toolkit.fluxcd.io/v1beta1\nkind: GitRepository\nmetadata: {name: \"123\"}",
            ),
            file(
                "kust123.yaml",
                "apiVersion: kustomize.toolkit.fluxcd.io/v1beta2\nkind: Kustomization\nmetadata: {name: kust123}\nspec: {path: clusters/p+c/context/123, sourceRef: {kind: GitRepository, name: \"123\"}}",
            ),
            file("flux-system/gotk.yaml", CM),
            file("context/123/app/web/web+Deployment.yaml", CM),
            file("context/123/app/web/status+ResourceBundleState.yaml", rbs),
            file("context/123/app/db/db+StatefulSet.yaml", CM),
        ];
        let bundles = bundles("clusters/p+c", &files).unwrap();
        let names: Vec<_> = bundles.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["123-db", "123-web"]);
        assert_eq!(bundles[1].trackers.len(), 1);
        assert_eq!(bundles[1].manifests.len(), 1);
        assert_eq!(
            bundles[1].layout,
            Layout::Emco {
                context: "123".into(),
                app: "web".into()
            }
        );
    }

    #[test]
    fn every_broken_file_is_reported() {
        let files = [
            file("a/x.yaml", "kind: [\n"),
            file("b/y.yaml", "apiVersion: v1\n"),
        ];
        let err = bundles("clusters/c", &files).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("clusters/c/a/x.yaml"), "{text}");
        assert!(text.contains("clusters/c/b/y.yaml"), "{text}");
    }
}

#[cfg(test)]
mod tracker_tests {
    use super::*;

    fn file(path: &str, data: &str) -> SourceFile {
        SourceFile::new(path, data)
    }

    const TRACKER: &str = r#"{"apiVersion":"k8splugin.io/v1alpha1","kind":"ResourceBundleState","metadata":{"name":"7-web","namespace":"default"}}"#;

    #[test]
    fn a_directory_with_only_its_tracker_is_a_deletion_request() {
        let only = [file("7-web.yaml", TRACKER), file("README.md", "notes")];
        assert!(is_tracker_only("context/7/app/web", &only));
        let with_resource = [
            file("7-web.yaml", TRACKER),
            file(
                "web+ConfigMap.yaml",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"}}"#,
            ),
        ];
        assert!(!is_tracker_only("context/7/app/web", &with_resource));
        assert!(!is_tracker_only("context/7/app/web", &[]));
        assert!(!is_tracker_only(
            "d",
            &[file("7-web.yaml", TRACKER), file("x.yaml", "kind: [")]
        ));
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn an_invalid_bundle_config_names_the_file() {
        let files = [SourceFile::new("web/outpost.yaml", "dependOn: [db]\n")];
        let err = bundles("clusters/c", &files).unwrap_err();
        assert!(
            err.to_string().starts_with("clusters/c/web/outpost.yaml:"),
            "{err}"
        );
    }

    #[test]
    fn a_service_account_name_is_read_and_checked() {
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
        let files = [
            SourceFile::new("web/outpost.yaml", "serviceAccountName: web-deployer\n"),
            SourceFile::new("web/cm.yaml", cm),
        ];
        let bundles_read = bundles("clusters/c", &files).unwrap();
        assert_eq!(
            bundles_read[0].settings.service_account.as_deref(),
            Some("web-deployer")
        );
        let files = [
            SourceFile::new("web/outpost.yaml", "serviceAccountName: \"system:masters\"\n"),
            SourceFile::new("web/cm.yaml", cm),
        ];
        let err = bundles("clusters/c", &files).unwrap_err().to_string();
        assert!(
            err.starts_with("clusters/c/web/outpost.yaml: serviceAccountName"),
            "{err}"
        );
    }
}
