//! Why a desired object did not reach the cluster: resolution (no such kind), or the API server's answer to
//! the apply. Defined with the desired objects because the desired stage already fails objects whose kind is
//! unknown; apply and prune add the API answers.

use crate::manifest::Origin;
use crate::resolve;

/// Why one object was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
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
    /// Another bundle defines the same object once namespaces are settled (`namespace: default` and none, or a
    /// namespace on a cluster-scoped kind) and keeps it.
    #[error(
        "bundle {owner} defines the same object ({first}) and keeps it (a namespaced object without a namespace is in `default`; cluster-scoped objects have none): remove one of them"
    )]
    Duplicate {
        /// The bundle that keeps the object.
        owner: String,
        /// Where that bundle defines it.
        first: Origin,
    },
    /// A Namespace we applied is being deleted.
    #[error("namespace is Terminating; it cannot hold new objects until deletion finishes")]
    Terminating,
    /// Git may not write it (the agent's own namespace, a forged inventory): refused before sending.
    #[error("refused: {0}")]
    Fenced(#[from] super::fence::Refusal),
    /// The ServiceAccount its bundle acts as may not write it (per-bundle identity; the text names the account).
    #[error("{0}")]
    ForbiddenAs(String),
    /// `--no-cluster-scoped` refuses its kind: refused before sending.
    #[error("refused: {0}")]
    ClusterScoped(String),
}

impl ObjectError {
    /// The kind of failure, as a bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ObjectError::Resolve(_) => "unknown_kind",
            ObjectError::Forbidden(_) => "forbidden",
            ObjectError::Invalid(_) => "invalid",
            ObjectError::Conflict(_) => "conflict",
            ObjectError::NotFound(_) => "not_found",
            ObjectError::Api { .. } => "api",
            ObjectError::Client(_) => "client",
            ObjectError::NotEstablished(_) => "crd_not_established",
            ObjectError::Terminating => "namespace_terminating",
            ObjectError::Fenced(super::fence::Refusal::OwnNamespace { .. }) => "own_namespace",
            ObjectError::Fenced(super::fence::Refusal::ForgedInventory { .. }) => "forged_inventory",
            ObjectError::Duplicate { .. } => "duplicate",
            ObjectError::ForbiddenAs(_) => "forbidden_as_service_account",
            ObjectError::ClusterScoped(_) => "cluster_scoped_refused",
        }
    }

    /// Classify a client error by HTTP status (STYLE: 403 RBAC, 409 conflict, 422 invalid, 404 missing).
    pub fn from_kube(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => match status.code {
                403 => ObjectError::Forbidden(status.message.clone()),
                404 => ObjectError::NotFound(status.message.clone()),
                409 => ObjectError::Conflict(status.message.clone()),
                422 => ObjectError::Invalid(status.message.clone()),
                code => ObjectError::Api {
                    code,
                    message: status.message.clone(),
                },
            },
            other => ObjectError::Client(other.to_string()),
        }
    }
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
    pub error: ObjectError,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} from {}: {}", self.object, self.origin, self.error)
    }
}
