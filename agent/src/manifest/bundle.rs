//! The data the manifest stage hands on: [`Manifest`]s (validated objects with their [`Origin`]), grouped into
//! [`Bundle`]s laid out as [`Layout`] says. Produced by [`super::parse`] and [`super::layout`], read by every
//! later stage; this module only defines them.

use serde_json::Value;

/// Where a manifest came from, for error messages and `plan` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Repository path of the file (`clusters/edge-1/web/deploy.yaml`).
    pub file: String,
    /// 1-based index of the document in the file (among non-empty documents).
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: u64,
    /// Paths of values that were encrypted in Git (SOPS): never shown.
    pub sealed: super::render::Sealed,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (document {}, line {})",
            self.file, self.document, self.line
        )
    }
}

/// One desired object, validated: it has apiVersion, kind and metadata.name.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Where it was written.
    pub origin: Origin,
    /// `apps/v1`, `v1`, ...
    pub api_version: String,
    /// `Deployment`, ...
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` as written (dropped later for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// The whole object as compact JSON: a parsed tree is several times larger, and a first sync of ten
    /// thousand files would otherwise hold them all at once. [`Manifest::value`] parses it when needed.
    pub body: Box<serde_json::value::RawValue>,
}

impl PartialEq for Manifest {
    fn eq(&self, other: &Self) -> bool {
        self.origin == other.origin
            && self.api_version == other.api_version
            && self.kind == other.kind
            && self.name == other.name
            && self.namespace == other.namespace
            && self.body.get() == other.body.get()
    }
}

impl Manifest {
    /// The object as a JSON value (parsed from the compact body).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.body.get()).unwrap_or(Value::Null)
    }

    /// The API group (`apps`; empty for the core group).
    pub fn group(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        }
    }

    /// The API version without the group (`v1`).
    pub fn version(&self) -> &str {
        match self.api_version.split_once('/') {
            Some((_, version)) => version,
            None => &self.api_version,
        }
    }

    /// `Kind/namespace/name` or `Kind/name`, for messages.
    pub fn display_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.kind, ns, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// How a bundle was laid out in the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A top-level directory (or the root files).
    Plain,
    /// EMCO's `context/<cid>/app/<app>`.
    Emco {
        /// The composite-app deployment intent id.
        context: String,
        /// The app name.
        app: String,
    },
}

/// One unit of sync: its objects are applied together and pruned when the bundle leaves Git.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// `web`, `_root`, or `<cid>-<app>`.
    pub name: String,
    /// Repository directory of the bundle, relative to the cluster path (`context/1/app/web`, `web`, ``).
    pub dir: String,
    /// Which layout it came from.
    pub layout: Layout,
    /// The objects to apply, in file order.
    pub manifests: Vec<Manifest>,
    /// `ResourceBundleState` declarations found in the bundle (for the status writer).
    pub trackers: Vec<Manifest>,
    /// Bundles that must be healthy first (`dependsOn` in the bundle's `outpost.yaml`).
    pub depends_on: Vec<String>,
    /// Its `suspend`, `drift` and `prune` in `outpost.yaml`.
    pub settings: crate::policy::BundleSettings,
    /// Why the bundle's files could not be rendered (a SOPS file that does not decrypt), naming the file:
    /// the bundle has no manifests this time, and nothing of it is applied or pruned.
    pub held: Option<String>,
}
