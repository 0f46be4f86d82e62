//! Kind resolution through API discovery: `apiVersion` + `kind` → the REST resource and its scope.
//!
//! One discovery request per group-version, cached for the life of the resolver. A kind that is missing is
//! looked up again after [`Resolver::forget`] (called once a CRD of that group is Established), so objects
//! of a CRD applied in the same commit resolve in a later stage.

use std::collections::HashMap;

use kube::Client;
use kube::api::{Api, DynamicObject};
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

/// Caches discovery per group-version.
#[derive(Clone)]
pub struct Resolver {
    /// The one shared client.
    client: Client,
    /// `apiVersion` → the resources it serves (empty when the group-version is not served).
    cache: HashMap<String, Vec<(ApiResource, ApiCapabilities)>>,
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
        if !self.cache.contains_key(api_version) {
            let resources = self.discover(api_version).await?;
            self.cache.insert(api_version.to_owned(), resources);
        }
        self.cache[api_version]
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
        self.cache
            .retain(|api_version, _| api_version.split_once('/').map(|(g, _)| g) != Some(group));
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
