//! The command-line flags of per-bundle identity, flattened into the agent's arguments.

/// Which ServiceAccount bundles act as, and which cluster-scoped kinds they may write.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct IdentityArgs {
    /// ServiceAccount (in --namespace) that every bundle without `serviceAccountName` in its outpost.yaml
    /// acts as: impersonation becomes mandatory.
    #[arg(long, env = "OUTPOST_DEFAULT_SERVICE_ACCOUNT")]
    pub default_service_account: Option<String>,

    /// Refuse cluster-scoped objects except the kinds of --allowed-cluster-scoped-kinds; a refused object
    /// fails its bundle before anything of it is applied.
    #[arg(long, env = "OUTPOST_NO_CLUSTER_SCOPED")]
    pub no_cluster_scoped: bool,

    /// Cluster-scoped kinds allowed under --no-cluster-scoped, comma-separated: `Kind` for the core group,
    /// `group/Kind` otherwise (Namespace,rbac.authorization.k8s.io/ClusterRole).
    #[arg(long, env = "OUTPOST_ALLOWED_CLUSTER_SCOPED_KINDS", value_delimiter = ',')]
    pub allowed_cluster_scoped_kinds: Vec<String>,
}

impl IdentityArgs {
    /// The cluster-scoped policy these flags describe.
    pub fn cluster_scoped(&self) -> Result<super::lockdown::ClusterScoped, super::lockdown::BadKind> {
        super::lockdown::ClusterScoped::new(self.no_cluster_scoped, &self.allowed_cluster_scoped_kinds)
    }
}

/// Why the identity flags are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// An entry of `--allowed-cluster-scoped-kinds`.
    #[error("--allowed-cluster-scoped-kinds: {0}")]
    Kind(#[from] super::lockdown::BadKind),
    /// `--default-service-account` is not a ServiceAccount name.
    #[error(
        "--default-service-account {0:?} is not a ServiceAccount name (lowercase letters, digits, '-' and '.')"
    )]
    Account(String),
}
