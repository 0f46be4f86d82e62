//! Recognising the Flux objects EMCO's rsync writes at the cluster root, by their content.
//!
//! rsync's Flux plugin commits `<cid>.yaml` (a `GitRepository`) and `kust<cid>.yaml` (a `Kustomization` whose
//! `spec.path` is `clusters/<cluster>/context/<cid>`) *before* any file under `context/<cid>/` exists, and
//! removes them before the app's status tracker goes. They tell Flux what to apply; Outpost does that job
//! itself, so applying them would start a second applier on a cluster that has Flux's CRDs. They are known by
//! what they say, never by their file names or by the presence of `context/`:
//!
//! - a Flux `Kustomization` whose `spec.path` points into this cluster's `context/` directory, and
//! - a Flux `GitRepository` that such a Kustomization names as its `sourceRef`.
//!
//! Data enters as the parsed documents of the root files and leaves as the indexes of the files to skip.

use std::collections::BTreeSet;

use serde_json::Value;

use super::bundle::Manifest;

/// API group of Flux's Kustomization.
const KUSTOMIZE_GROUP: &str = "kustomize.toolkit.fluxcd.io";
/// API group of Flux's GitRepository.
const SOURCE_GROUP: &str = "source.toolkit.fluxcd.io";

/// Indexes of the files (each given as its parsed documents) that are EMCO's Flux root files for the cluster
/// directory `root` (`clusters/<cluster>`): every document in them is one of the two kinds above.
pub fn emco_root_files(root: &str, files: &[Vec<Manifest>]) -> BTreeSet<usize> {
    let context_prefix = format!("{}/context/", root.trim_matches('/'));
    let sources: BTreeSet<String> = files
        .iter()
        .flatten()
        .filter(|m| points_into(m, &context_prefix))
        .filter_map(source_name)
        .collect();
    files
        .iter()
        .enumerate()
        .filter(|(_, docs)| {
            !docs.is_empty()
                && docs
                    .iter()
                    .all(|m| points_into(m, &context_prefix) || is_named_source(m, &sources))
        })
        .map(|(i, _)| i)
        .collect()
}

/// A Flux Kustomization whose `spec.path` is inside `context_prefix` (or is that directory).
fn points_into(m: &Manifest, context_prefix: &str) -> bool {
    if m.group() != KUSTOMIZE_GROUP || m.kind != "Kustomization" {
        return false;
    }
    let body = m.value();
    let Some(path) = body.pointer("/spec/path").and_then(Value::as_str) else {
        return false;
    };
    let path = path.trim_start_matches("./").trim_start_matches('/');
    let path = format!("{}/", path.trim_end_matches('/'));
    path.starts_with(context_prefix) && path.len() > context_prefix.len()
}

/// The GitRepository a Kustomization takes its files from.
fn source_name(m: &Manifest) -> Option<String> {
    let body = m.value();
    let source = body.pointer("/spec/sourceRef")?;
    let kind = source
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("GitRepository");
    (kind == "GitRepository").then(|| source.get("name").and_then(Value::as_str).map(str::to_owned))?
}

/// A Flux GitRepository named by one of the recognised Kustomizations.
fn is_named_source(m: &Manifest, sources: &BTreeSet<String>) -> bool {
    m.group() == SOURCE_GROUP && m.kind == "GitRepository" && sources.contains(&m.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse::parse_file;

    fn docs(text: &str) -> Vec<Manifest> {
        parse_file("f.yaml", text.as_bytes()).unwrap()
    }

    /// What rsync's Flux plugin marshals (ghodss/yaml of the v1beta1/v1beta2 structs).
    fn git_repository(name: &str) -> String {
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1beta1\nkind: GitRepository\nmetadata:\n  creationTimestamp: null\n  name: \"{name}\"\n  namespace: default\nspec:\n  gitImplementation: go-git\n  interval: 30s\n  ref:\n    branch: main\n  timeout: 20s\n  url: https://git.example/emco/repo\nstatus: {{}}\n"
        )
    }

    fn kustomization(name: &str, path: &str, source: &str) -> String {
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1beta2\nkind: Kustomization\nmetadata:\n  creationTimestamp: null\n  name: {name}\n  namespace: default\nspec:\n  interval: 5s\n  path: {path}\n  prune: true\n  retryInterval: 5s\n  sourceRef:\n    kind: GitRepository\n    name: \"{source}\"\n  timeout: 5s\nstatus: {{}}\n"
        )
    }

    #[test]
    fn rsyncs_root_files_are_recognised_before_any_context_directory_exists() {
        let root = "clusters/provider1+cluster1";
        let files = [
            docs(&git_repository("8311547307375540033")),
            docs(&kustomization(
                "kust8311547307375540033",
                "clusters/provider1+cluster1/context/8311547307375540033",
                "8311547307375540033",
            )),
            docs("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\n"),
        ];
        assert_eq!(emco_root_files(root, &files), BTreeSet::from([0, 1]));
    }

    #[test]
    fn the_logical_cloud_kustomization_without_its_own_source_is_recognised() {
        let root = "clusters/p+c";
        let files = [docs(&kustomization(
            "flux-system",
            "./clusters/p+c/context/42",
            "flux-system",
        ))];
        assert_eq!(emco_root_files(root, &files), BTreeSet::from([0]));
    }

    #[test]
    fn flux_objects_of_the_user_are_applied() {
        let root = "clusters/p+c";
        let files = [
            // Points elsewhere: the user's own Flux setup.
            docs(&kustomization("apps", "./apps", "infra")),
            docs(&git_repository("infra")),
            // Another cluster's context.
            docs(&kustomization("k", "clusters/p+other/context/1", "s")),
            docs(&git_repository("s")),
            // The context directory itself, not inside it.
            docs(&kustomization("k2", "clusters/p+c/context", "s2")),
        ];
        assert!(emco_root_files(root, &files).is_empty());
    }

    #[test]
    fn a_file_mixing_a_root_object_with_another_object_is_applied() {
        let root = "clusters/p+c";
        let mixed = format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n",
            kustomization("k", "clusters/p+c/context/1", "1")
        );
        assert!(emco_root_files(root, &[docs(&mixed)]).is_empty());
    }
}
