//! Per-bundle identity (issue 14 item 4): which ServiceAccount a bundle's writes run as, and the lockdown of
//! cluster-scoped kinds.
//!
//! A bundle's `outpost.yaml` may name `serviceAccountName`, a ServiceAccount in the agent's own namespace;
//! `--default-service-account` names one for every bundle that does not (EMCO bundles have no `outpost.yaml`),
//! which makes impersonation mandatory, as Flux's lockdown does. The bundle's applies, prunes and drift
//! reverts then go through a [`kube::Client`] that impersonates `system:serviceaccount:<ns>:<name>` (one client
//! per ServiceAccount, built once and cached), so the API server's RBAC decides what Git may do there. What
//! the agent reads for itself (inventories, discovery, live listings, its own namespace) keeps its own
//! identity. [`Identities`] is shared by the reconciler and drift correction: each sync tells it which
//! account each bundle uses ([`Identities::assign`]), the appliers and prune ask it for the client to act
//! with ([`Identities::acting`]).

mod flags;
pub mod lockdown;
mod preflight;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use kube::Client;

pub use flags::{ArgsError, IdentityArgs};
pub use lockdown::ClusterScoped;
pub use preflight::forbidden_in;

/// Why a client acting as a ServiceAccount could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// kube refused the configuration (an impersonation header it cannot send).
    #[error("cannot act as ServiceAccount {account}: {reason}")]
    Client {
        /// `namespace/name`.
        account: String,
        /// kube's answer.
        reason: String,
    },
}

/// Where a bundle's ServiceAccount was named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// `serviceAccountName` in the bundle's `outpost.yaml` (or recorded from it when the bundle left Git).
    Bundle,
    /// `--default-service-account`.
    Default,
}

/// The ServiceAccount a bundle acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The agent's namespace, where the ServiceAccount lives.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Who named it, for messages.
    pub named: Named,
}

impl Account {
    /// The user name the API server knows it by.
    pub fn user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    /// Why a request as this account was forbidden, in words an operator can act on.
    pub fn forbidden(&self, reason: &str) -> String {
        let by = match self.named {
            Named::Bundle => "the bundle's serviceAccountName",
            Named::Default => "--default-service-account",
        };
        format!(
            "forbidden for ServiceAccount {}/{} ({by}): {reason}; grant it this in a Role or ClusterRole bound to it, or change the manifest",
            self.namespace, self.name
        )
    }
}

/// A client to write with, and the account it acts as (`None`: the agent's own identity).
#[derive(Clone)]
pub struct Acting {
    /// The client.
    pub client: Client,
    /// The impersonated account.
    pub account: Option<Account>,
}

/// How clients that impersonate are made: the agent's configuration and the request counter.
#[derive(Clone)]
pub struct Factory {
    /// The agent's own configuration (in-cluster or KUBECONFIG).
    pub config: kube::Config,
    /// Counts requests of impersonating clients too.
    pub counter: Option<crate::kube_client::RequestCounter>,
}

/// The accounts of bundles and the clients that act as them; cheap to clone, shared.
#[derive(Clone)]
pub struct Identities {
    /// The shared state.
    inner: Arc<Inner>,
}

/// What [`Identities`] shares.
struct Inner {
    /// The agent's own client.
    agent: Client,
    /// Builds impersonating clients; `None` when no bundle may use one (no configuration given).
    factory: Option<Factory>,
    /// `--namespace`, where the ServiceAccounts live.
    namespace: String,
    /// `--default-service-account`.
    default_account: Option<String>,
    /// `--no-cluster-scoped` and its allowed kinds.
    cluster_scoped: ClusterScoped,
    /// `serviceAccountName` of each bundle in the last sync (Git, or the inventory for bundles that left it).
    assigned: RwLock<BTreeMap<String, String>>,
    /// One client per ServiceAccount, built on first use.
    clients: Mutex<BTreeMap<String, Client>>,
}

impl Identities {
    /// Identities acting as ServiceAccounts of `namespace` through clients `factory` makes.
    pub fn new(
        agent: Client,
        factory: Option<Factory>,
        namespace: &str,
        default_account: Option<String>,
        cluster_scoped: ClusterScoped,
    ) -> Self {
        Identities {
            inner: Arc::new(Inner {
                agent,
                factory,
                namespace: namespace.to_owned(),
                default_account: default_account.filter(|a| !a.trim().is_empty()),
                cluster_scoped,
                assigned: RwLock::default(),
                clients: Mutex::default(),
            }),
        }
    }

    /// Which kinds of cluster-scoped objects bundles may write.
    pub fn cluster_scoped(&self) -> &ClusterScoped {
        &self.inner.cluster_scoped
    }

    /// Take the `serviceAccountName` of every bundle of this sync (bundles without one are left out).
    pub fn assign(&self, accounts: BTreeMap<String, String>) {
        *self.inner.assigned.write().unwrap_or_else(|e| e.into_inner()) = accounts;
    }

    /// The account `bundle` acts as, if any.
    pub fn account(&self, bundle: &str) -> Option<Account> {
        let assigned = self.inner.assigned.read().unwrap_or_else(|e| e.into_inner());
        let (name, named) = match assigned.get(bundle) {
            Some(name) => (name.clone(), Named::Bundle),
            None => (self.inner.default_account.clone()?, Named::Default),
        };
        Some(Account {
            namespace: self.inner.namespace.clone(),
            name,
            named,
        })
    }

    /// The client `bundle`'s writes go through.
    pub fn acting(&self, bundle: &str) -> Result<Acting, Error> {
        let Some(account) = self.account(bundle) else {
            return Ok(Acting {
                client: self.inner.agent.clone(),
                account: None,
            });
        };
        let client = self.client_as(&account)?;
        Ok(Acting {
            client,
            account: Some(account),
        })
    }

    /// The cached client impersonating `account`, built on first use.
    fn client_as(&self, account: &Account) -> Result<Client, Error> {
        let mut clients = self.inner.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&account.name) {
            return Ok(client.clone());
        }
        let failed = |reason: String| Error::Client {
            account: format!("{}/{}", account.namespace, account.name),
            reason,
        };
        let Some(factory) = &self.inner.factory else {
            return Err(failed("impersonation is not configured in this process".into()));
        };
        let mut config = factory.config.clone();
        config.auth_info.impersonate = Some(account.user());
        // The API server adds the account's groups (system:serviceaccounts, system:serviceaccounts:<ns>)
        // itself when none are asked for.
        config.auth_info.impersonate_groups = None;
        let client = crate::kube_client::from_config(config, factory.counter.clone())
            .map_err(|e| failed(e.to_string()))?;
        clients.insert(account.name.clone(), client.clone());
        Ok(client)
    }
}

/// The identities these flags describe, for bundles in `namespace`, impersonating through clients made from
/// `config` (the agent's own); `agent` is the agent's own client.
pub fn from_args(
    args: &IdentityArgs,
    namespace: &str,
    agent: &kube::Client,
    config: kube::Config,
    counter: Option<crate::kube_client::RequestCounter>,
) -> Result<Identities, ArgsError> {
    let default = args
        .default_service_account
        .clone()
        .filter(|a| !a.trim().is_empty());
    if let Some(name) = &default
        && !valid_account_name(name)
    {
        return Err(ArgsError::Account(name.clone()));
    }
    let factory = Factory { config, counter };
    Ok(Identities::new(
        agent.clone(),
        Some(factory),
        namespace,
        default,
        args.cluster_scoped()?,
    ))
}

/// Whether `name` may name a ServiceAccount (a DNS subdomain: lowercase letters, digits, `-` and `.`).
pub fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_are_dns_subdomains() {
        for ok in ["web", "web-deployer", "a.b", "x1"] {
            assert!(valid_account_name(ok), "{ok}");
        }
        for bad in ["", "Web", "-a", "a-", "a b", "a:b", "a/b", &"a".repeat(254)] {
            assert!(!valid_account_name(bad), "{bad}");
        }
    }

    #[test]
    fn forbidden_messages_name_the_account_and_who_named_it() {
        let account = Account {
            namespace: "outpost".into(),
            name: "web".into(),
            named: Named::Bundle,
        };
        assert_eq!(account.user(), "system:serviceaccount:outpost:web");
        let text = account.forbidden("configmaps is forbidden");
        assert!(
            text.starts_with(
                "forbidden for ServiceAccount outpost/web (the bundle's serviceAccountName): configmaps is forbidden"
            ),
            "{text}"
        );
        let default = Account {
            named: Named::Default,
            ..account
        };
        assert!(default.forbidden("x").contains("(--default-service-account)"));
    }
}
