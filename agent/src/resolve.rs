//! Kind resolution through API discovery: `apiVersion` + `kind` → the REST resource and its scope.
//!
//! One discovery request per group-version, cached for the life of the resolver. A kind that is missing is
//! looked up again after [`Resolver::forget`] (called once a CRD of that group is Established), so objects
//! of a CRD applied in the same commit resolve in a later stage, and after [`NEGATIVE_TTL`], so objects
//! committed before a CRD someone else installs resolve once it appears, without a restart.
//!
//! Members already applied are resolved with [`Resolver::resolve_recorded`]: an apiVersion that is no longer
//! served (an API removed by an upgrade, a CRD version switched to `served: false`) falls back to another
//! served version of the same group and kind, so a prune never mistakes an unserved version for a deleted
//! object.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersion};
use kube::discovery::{ApiCapabilities, Scope};

/// A kind that cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server does not serve this apiVersion/kind.
    #[error("the API server has no kind {kind} in {api_version}: is its CustomResourceDefinition installed?")]
    UnknownKind {
        /// As written in the manifest.
        api_version: String,
        /// As written in the manifest.
        kind: String,
    },
    /// A CustomResourceDefinition still defines the kind but serves no version of it: its objects exist and
    /// cannot be read or deleted.
    #[error(
        "the CustomResourceDefinition of {kind}.{group} serves no version: its objects still exist but cannot be read or deleted until a version is served again"
    )]
    Unserved {
        /// The kind's group.
        group: String,
        /// The kind.
        kind: String,
    },
    /// Discovery itself failed.
    #[error("API discovery for {api_version} failed: {source}")]
    Discovery {
        /// The group-version queried.
        api_version: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The kind of failure, as a bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::UnknownKind { .. } => "unknown_kind",
            Error::Unserved { .. } => "unserved",
            Error::Discovery { .. } => "discovery",
        }
    }
}

/// A resolved kind.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Namespaced or cluster-scoped.
    pub scope: Scope,
}

impl Resolved {
    /// True for namespaced kinds.
    pub fn namespaced(&self) -> bool {
        matches!(self.scope, Scope::Namespaced)
    }

    /// The dynamic API for objects of this kind in `namespace`, or cluster-wide (cluster-scoped kinds, and
    /// lists across all namespaces) when `None`.
    pub fn api(&self, client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
        api_for(client, &self.resource, namespace)
    }
}

/// The dynamic API for `resource` in `namespace`, or cluster-wide when `None`: the one place that chooses
/// between `Api::namespaced_with` and `Api::all_with`.
pub fn api_for<K>(client: &Client, resource: &ApiResource, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = ApiResource, Scope = kube::core::DynamicResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// How long "this group-version is not served" is believed: long enough that one sync asks at most once per
/// missing group-version, short enough that a CRD installed by someone else is found by the next sync.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// Caches discovery per group-version.
#[derive(Clone)]
pub struct Resolver {
    /// The one shared client.
    client: Client,
    /// `apiVersion` → the resources it serves (empty when the group-version is not served), and when asked.
    cache: HashMap<String, (Vec<(ApiResource, ApiCapabilities)>, Instant)>,
}

impl Resolver {
    /// A resolver with an empty cache.
    pub fn new(client: Client) -> Self {
        Resolver {
            client,
            cache: HashMap::new(),
        }
    }

    /// Resolve `kind` in `api_version`, asking the API server at most once per group-version.
    pub async fn resolve(&mut self, api_version: &str, kind: &str) -> Result<Resolved, Error> {
        let stale = match self.cache.get(api_version) {
            None => true,
            Some((resources, at)) => resources.is_empty() && at.elapsed() >= NEGATIVE_TTL,
        };
        if stale {
            let resources = self.discover(api_version).await?;
            self.cache
                .insert(api_version.to_owned(), (resources, Instant::now()));
        }
        self.cache[api_version]
            .0
            .iter()
            .find(|(ar, _)| ar.kind == kind)
            .map(|(ar, caps)| Resolved {
                resource: ar.clone(),
                scope: caps.scope.clone(),
            })
            .ok_or_else(|| Error::UnknownKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })
    }

    /// Forget what we know of `group`, so new kinds (from a CRD just established) are found.
    pub fn forget(&mut self, group: &str) {
        self.cache.retain(|api_version, _| group_of(api_version) != group);
    }

    /// Resolve a member recorded at `api_version` afresh (for a prune): at that version while it still serves
    /// `kind`, otherwise at the group's preferred version, or any other served one. `UnknownKind` only when no
    /// served version of `group` has the kind any more.
    pub async fn resolve_recorded(
        &mut self,
        api_version: &str,
        group: &str,
        kind: &str,
    ) -> Result<Resolved, Error> {
        match self.resolve(api_version, kind).await {
            Err(Error::UnknownKind { .. }) => {}
            other => return other,
        }
        let unknown = || Error::UnknownKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        };
        let found = match kube::discovery::group(&self.client, group).await {
            Ok(found) => found,
            Err(kube::Error::Discovery(_)) => return Err(unknown()),
            Err(kube::Error::Api(status)) if status.code == 404 => return Err(unknown()),
            Err(source) => {
                return Err(Error::Discovery {
                    api_version: api_version.to_owned(),
                    source,
                });
            }
        };
        let preferred = found.preferred_version_or_latest().to_owned();
        let versions = std::iter::once(preferred.clone())
            .chain(found.versions().filter(|v| *v != preferred).map(str::to_owned));
        for version in versions {
            if let Some((resource, caps)) = found
                .versioned_resources(&version)
                .into_iter()
                .find(|(ar, _)| ar.kind == kind)
            {
                return Ok(Resolved {
                    resource,
                    scope: caps.scope,
                });
            }
        }
        Err(unknown())
    }

    /// When no version serves `kind` of `group` any more ([`Resolver::resolve_recorded`] found nothing): a
    /// kind whose objects are gone with it (its CRD was deleted, which deletes every object of it; or an
    /// upgrade removed a built-in API, whose objects nothing can reach) — `Ok`, or `Unserved` when a
    /// CustomResourceDefinition still defines it (all its versions switched to `served: false`: its objects
    /// still exist).
    pub async fn vanished(&self, group: &str, kind: &str) -> Result<(), Error> {
        if !group.contains('.') {
            return Ok(()); // a built-in group: CRD groups always contain a dot
        }
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let list = crds
            .list(&ListParams::default())
            .await
            .map_err(|source| Error::Discovery {
                api_version: format!("apiextensions.k8s.io/v1 (looking for the CRD of {kind}.{group})"),
                source,
            })?;
        match list
            .items
            .iter()
            .any(|crd| crd.spec.group == group && crd.spec.names.kind == kind)
        {
            true => Err(Error::Unserved {
                group: group.to_owned(),
                kind: kind.to_owned(),
            }),
            false => Ok(()),
        }
    }

    /// One discovery request.
    async fn discover(&self, api_version: &str) -> Result<Vec<(ApiResource, ApiCapabilities)>, Error> {
        let gv: GroupVersion = api_version.parse().map_err(|_| Error::UnknownKind {
            api_version: api_version.to_owned(),
            kind: String::new(),
        })?;
        match kube::discovery::pinned_group(&self.client, &gv).await {
            Ok(group) => Ok(group.versioned_resources(&gv.version)),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
            Err(source) => Err(Error::Discovery {
                api_version: api_version.to_owned(),
                source,
            }),
        }
    }
}

/// The group of an `apiVersion` (`""` for the core `v1`).
fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_group_is_empty() {
        assert_eq!(group_of("v1"), "");
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("example.com/v1beta1"), "example.com");
    }
}
