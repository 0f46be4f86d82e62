//! Apply stage (DESIGN §3.4): staged, bounded-concurrency server-side apply of desired objects.
//!
//! Objects enter as [`Desired`] (a manifest and its bundle), are resolved through discovery stage by stage
//! (so custom resources resolve once their CRD is Established), and leave as a [`Report`] of what was applied
//! and what failed. One object's failure never stops the others.

pub mod stage;
pub mod wait;

use std::collections::BTreeMap;

use futures::StreamExt;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

pub use stage::Stage;

use crate::manifest::{Manifest, Origin, digest};
use crate::resolve::{self, Resolved, Resolver};

/// Why one object was not applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Its kind is not served.
    #[error(transparent)]
    Resolve(#[from] resolve::Error),
    /// RBAC does not let us write it.
    #[error("forbidden by RBAC: {0}; grant the agent's ServiceAccount access to this kind and namespace")]
    Forbidden(String),
    /// The API server rejected the object (schema, immutable field).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Another field manager owns a field we set, and conflicts are not forced.
    #[error("conflict with another field manager: {0}")]
    Conflict(String),
    /// Its namespace does not exist (and is not in Git).
    #[error("not found: {0}; is its namespace missing from Git?")]
    NotFound(String),
    /// Any other API answer.
    #[error("the API server answered {code}: {message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The request did not get an answer (connection, TLS, timeout).
    #[error("request failed: {0}")]
    Client(String),
    /// A CRD applied in this commit did not become Established.
    #[error("CustomResourceDefinition not usable: {0}")]
    NotEstablished(String),
    /// A Namespace we applied is being deleted.
    #[error("namespace is Terminating; it cannot hold new objects until deletion finishes")]
    Terminating,
}

impl Error {
    /// Classify a client error by HTTP status (STYLE: 403 RBAC, 409 conflict, 422 invalid, 404 missing).
    pub fn from_kube(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => match status.code {
                403 => Error::Forbidden(status.message.clone()),
                404 => Error::NotFound(status.message.clone()),
                409 => Error::Conflict(status.message.clone()),
                422 => Error::Invalid(status.message.clone()),
                code => Error::Api {
                    code,
                    message: status.message.clone(),
                },
            },
            other => Error::Client(other.to_string()),
        }
    }
}

/// One object to apply.
#[derive(Clone, Debug)]
pub struct Desired {
    /// The bundle it belongs to.
    pub bundle: String,
    /// The manifest as parsed.
    pub manifest: Manifest,
}

/// Identity of an applied object, with namespace settled by discovery.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// API group (empty for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gk = if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{gk}/{ns}/{}", self.name),
            None => write!(f, "{gk}/{}", self.name),
        }
    }
}

/// An object the API server accepted.
#[derive(Clone, Debug)]
pub struct Applied {
    /// Its bundle.
    pub bundle: String,
    /// Its identity.
    pub key: ObjectKey,
    /// Digest of the desired body we sent.
    pub digest: String,
}

/// An object that was not applied, with where it was written.
#[derive(Debug)]
pub struct Failure {
    /// Its bundle.
    pub bundle: String,
    /// `Kind/namespace/name` as written.
    pub object: String,
    /// File, document and line.
    pub origin: Origin,
    /// Why.
    pub error: Error,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} from {}: {}", self.object, self.origin, self.error)
    }
}

/// What one apply run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Accepted objects.
    pub applied: Vec<Applied>,
    /// Rejected objects.
    pub failed: Vec<Failure>,
}

/// Server-side apply settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Field manager name (`outpost`).
    pub field_manager: String,
    /// Take ownership of fields other managers set (`--force-conflicts`).
    pub force_conflicts: bool,
    /// Concurrent requests within one stage (`--apply-concurrency`).
    pub concurrency: usize,
    /// Server-side dry run: validate and diff, change nothing.
    pub dry_run: bool,
}

/// Namespace given to namespaced objects written without one (as kubectl does without a context namespace).
pub const DEFAULT_NAMESPACE: &str = "default";

/// A desired object with its kind resolved and namespace settled, ready to send.
struct Prepared {
    bundle: String,
    object: String,
    origin: Origin,
    key: ObjectKey,
    resolved: Resolved,
    body: Value,
}

/// Applies desired objects to one cluster.
#[derive(Clone)]
pub struct Applier {
    /// The shared client.
    client: Client,
    /// How to apply.
    options: Options,
}

impl Applier {
    /// An applier for `client`.
    pub fn new(client: Client, options: Options) -> Self {
        Applier { client, options }
    }

    /// Apply everything in stage order. CRDs applied in the Foundation stage are waited for, and their groups
    /// re-discovered, before later stages resolve their kinds.
    pub async fn apply(&self, resolver: &mut Resolver, desired: Vec<Desired>) -> Report {
        let mut by_stage: BTreeMap<Stage, Vec<Desired>> = BTreeMap::new();
        for d in desired {
            by_stage
                .entry(Stage::of(d.manifest.group(), &d.manifest.kind))
                .or_default()
                .push(d);
        }
        let mut report = Report::default();
        for stage in Stage::ALL {
            let Some(objects) = by_stage.remove(&stage) else {
                continue;
            };
            let mut ready = Vec::with_capacity(objects.len());
            for d in objects {
                match resolver.resolve(&d.manifest.api_version, &d.manifest.kind).await {
                    Ok(resolved) => ready.push(prepare(d, resolved)),
                    Err(e) => report.failed.push(Failure {
                        bundle: d.bundle,
                        object: d.manifest.display_name(),
                        origin: d.manifest.origin,
                        error: e.into(),
                    }),
                }
            }
            let results: Vec<(Prepared, Result<DynamicObject, Error>)> = futures::stream::iter(ready)
                .map(|p| async move {
                    let result = self.apply_one(&p).await;
                    (p, result)
                })
                .buffer_unordered(self.options.concurrency.max(1))
                .collect()
                .await;
            for (p, result) in results {
                let result = match result {
                    Ok(live) => self.settle(&p, &live, resolver).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => report.applied.push(Applied {
                        bundle: p.bundle,
                        digest: digest::of_value(&p.body),
                        key: p.key,
                    }),
                    Err(error) => report.failed.push(Failure {
                        bundle: p.bundle,
                        object: p.object,
                        origin: p.origin,
                        error,
                    }),
                }
            }
        }
        report
    }

    /// One server-side apply request.
    async fn apply_one(&self, p: &Prepared) -> Result<DynamicObject, Error> {
        let api: Api<DynamicObject> = match &p.key.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &p.resolved.resource),
            None => Api::all_with(self.client.clone(), &p.resolved.resource),
        };
        let mut params = PatchParams::apply(&self.options.field_manager);
        if self.options.force_conflicts {
            params = params.force();
        }
        if self.options.dry_run {
            params = params.dry_run();
        }
        api.patch(&p.key.name, &params, &Patch::Apply(&p.body))
            .await
            .map_err(Error::from_kube)
    }

    /// After a Foundation object is accepted: a Namespace must be Active, a CRD Established (and its group
    /// re-discovered so its kinds resolve in later stages).
    async fn settle(&self, p: &Prepared, live: &DynamicObject, resolver: &mut Resolver) -> Result<(), Error> {
        if self.options.dry_run {
            return Ok(());
        }
        match (p.key.group.as_str(), p.key.kind.as_str()) {
            ("", "Namespace") => {
                let phase = live.data.pointer("/status/phase").and_then(Value::as_str);
                if phase == Some("Terminating") {
                    return Err(Error::Terminating);
                }
                Ok(())
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                wait::crd_established(&self.client, &p.key.name)
                    .await
                    .map_err(Error::NotEstablished)?;
                if let Some(group) = p.body.pointer("/spec/group").and_then(Value::as_str) {
                    resolver.forget(group);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Settle the namespace (dropped for cluster-scoped kinds, `default` when missing) and build the key.
fn prepare(d: Desired, resolved: Resolved) -> Prepared {
    let object = d.manifest.display_name();
    let mut body = d.manifest.body;
    crate::manifest::normalize::apply_defaults(&resolved.resource.group, &resolved.resource.kind, &mut body);
    let namespace = if resolved.namespaced() {
        let ns = d
            .manifest
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        Some(ns)
    } else {
        // EMCO's rsync writes a namespace even on cluster-scoped kinds; the API server would reject it.
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("namespace");
        }
        None
    };
    let key = ObjectKey {
        group: resolved.resource.group.clone(),
        kind: resolved.resource.kind.clone(),
        namespace,
        name: d.manifest.name.clone(),
    };
    Prepared {
        bundle: d.bundle,
        object,
        origin: d.manifest.origin,
        key,
        resolved,
        body,
    }
}
