//! Where the agent's drift watches and the status writer's watches may look, and how they report what they
//! cannot see.
//!
//! With cluster-wide RBAC (the default, [`WatchScope::Cluster`]) one watch per kind covers the cluster. With RBAC
//! limited to some namespaces (`--watch-namespaces`, which the chart sets in `rbac.mode=namespaced`), a
//! cluster-wide watch is forbidden, so [`WatchScope::plan`] gives each namespaced kind one watch per listed
//! namespace that holds its members; cluster-scoped kinds and members outside the list cannot be watched.
//! [`WatchHealth`] reports those, and every watch the API server refuses (403), instead of retrying in silence:
//! a log line when a watch becomes unavailable or recovers, the `watches_unavailable{reason}` gauge, and a
//! summary of the forbidden ones that the binaries show on `/readyz`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::{info, warn};

/// What a process may watch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WatchScope {
    /// The whole cluster: one watch per kind.
    #[default]
    Cluster,
    /// Only these namespaces (RBAC grants nothing cluster-wide): one watch per kind and namespace.
    Namespaces(BTreeSet<String>),
}

impl WatchScope {
    /// The scope `--watch-namespaces` describes: empty means the whole cluster.
    pub fn from_list(namespaces: &[String]) -> Self {
        let set: BTreeSet<String> = namespaces
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if set.is_empty() {
            WatchScope::Cluster
        } else {
            WatchScope::Namespaces(set)
        }
    }

    /// The watches one kind needs, given the namespaces its members live in (`None`: cluster-scoped members),
    /// and what cannot be watched in this scope, with the reason.
    pub fn plan(
        &self,
        group: &str,
        kind: &str,
        member_namespaces: &BTreeSet<Option<String>>,
    ) -> (Vec<WatchTarget>, Vec<(WatchTarget, Unavailable)>) {
        let target = |namespace: Option<&String>| WatchTarget {
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.cloned(),
        };
        let WatchScope::Namespaces(allowed) = self else {
            return (vec![target(None)], Vec::new());
        };
        let (mut watch, mut unavailable) = (Vec::new(), Vec::new());
        for namespace in member_namespaces {
            match namespace {
                None => unavailable.push((target(None), Unavailable::ClusterScoped)),
                Some(ns) if allowed.contains(ns) => watch.push(target(Some(ns))),
                Some(ns) => unavailable.push((target(Some(ns)), Unavailable::OutsideNamespaces)),
            }
        }
        (watch, unavailable)
    }

    /// The namespaces to watch a kind in that every listed namespace may hold (pods): all of the cluster
    /// (`[None]`) or each listed namespace.
    pub fn every_namespace(&self) -> Vec<Option<String>> {
        match self {
            WatchScope::Cluster => vec![None],
            WatchScope::Namespaces(set) => set.iter().cloned().map(Some).collect(),
        }
    }
}

/// One watch: a kind, in one namespace or (`None`) the whole cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchTarget {
    /// API group ("" for the core group).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// The namespace watched; `None` for a cluster-wide watch.
    pub namespace: Option<String>,
}

impl fmt::Display for WatchTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::object::group_kind(&self.group, &self.kind))?;
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => f.write_str(" (cluster-wide)"),
        }
    }
}

/// Why a watch is not running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unavailable {
    /// The API server refused it (403): RBAC does not grant list and watch there.
    Forbidden,
    /// A cluster-scoped kind while `--watch-namespaces` limits watches to namespaces.
    ClusterScoped,
    /// Members in a namespace that `--watch-namespaces` does not list.
    OutsideNamespaces,
}

impl Unavailable {
    /// The `reason` label.
    pub fn metric_label(self) -> &'static str {
        match self {
            Unavailable::Forbidden => "forbidden",
            Unavailable::ClusterScoped => "cluster_scoped",
            Unavailable::OutsideNamespaces => "outside_namespaces",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Unavailable::Forbidden => {
                "forbidden by RBAC (grant list and watch there, or set --watch-namespaces to the namespaces RBAC allows)"
            }
            Unavailable::ClusterScoped => {
                "a cluster-scoped kind, and --watch-namespaces limits watches to namespaces"
            }
            Unavailable::OutsideNamespaces => "outside the namespaces --watch-namespaces lists",
        }
    }
}

/// Labels of `watches_unavailable`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    /// [`Unavailable::metric_label`].
    reason: &'static str,
}

/// The watches of one process that are not running, shared by its watch tasks.
#[derive(Clone)]
pub struct WatchHealth {
    /// Unavailable watches and why.
    unavailable: Arc<Mutex<BTreeMap<WatchTarget, Unavailable>>>,
    /// `watches_unavailable{reason}`: how many watches are not running, by reason.
    gauge: Family<ReasonLabels, Gauge>,
    /// What the watches are for, in log lines ("Drift", "Status").
    purpose: &'static str,
    /// What is lost while a watch is not running, in log lines.
    consequence: &'static str,
    /// Woken on every change, so the process can update `/readyz` between its rounds.
    notify: Arc<tokio::sync::Notify>,
}

impl WatchHealth {
    /// No watch unavailable yet. `purpose` and `consequence` go into the log lines.
    pub fn new(purpose: &'static str, consequence: &'static str) -> Self {
        WatchHealth {
            unavailable: Arc::default(),
            gauge: Family::default(),
            purpose,
            consequence,
            notify: Arc::default(),
        }
    }

    /// Serve `watches_unavailable{reason}` from `registry` (a subsystem's sub-registry).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "watches_unavailable",
            "Watches not running, by reason (forbidden, cluster_scoped, outside_namespaces)",
            self.gauge.clone(),
        );
    }

    /// Record whether `target` is unavailable now (`None`: it runs); logs each change.
    pub fn set(&self, target: &WatchTarget, state: Option<Unavailable>) {
        let mut map = self.lock();
        let before = map.get(target).copied();
        if before == state {
            return;
        }
        match state {
            Some(why) => {
                map.insert(target.clone(), why);
                warn!(watch = %target, reason = why.metric_label(),
                    "{} watch of {target} not running: {}; {}", self.purpose, why.explain(), self.consequence);
            }
            None => {
                map.remove(target);
                info!(watch = %target, "{} watch of {target} running again", self.purpose);
            }
        }
        self.count(&map);
        self.notify.notify_one();
    }

    /// Resolves after the next change (at once if one happened since the last call); one waiter at a time.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// Forget every target `keep` refuses (their kinds are no longer managed).
    pub fn retain(&self, keep: impl Fn(&WatchTarget) -> bool) {
        let mut map = self.lock();
        map.retain(|t, _| keep(t));
        self.count(&map);
    }

    /// The targets unavailable now, with the reason.
    pub fn unavailable(&self) -> BTreeMap<WatchTarget, Unavailable> {
        self.lock().clone()
    }

    /// A `/readyz` reason while any watch is forbidden by RBAC, naming the first.
    pub fn forbidden(&self) -> Option<String> {
        let map = self.lock();
        let mut forbidden = map.iter().filter(|(_, why)| **why == Unavailable::Forbidden);
        let (first, _) = forbidden.next()?;
        let more = forbidden.count();
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        Some(format!(
            "{} watch of {first}{more} forbidden by RBAC",
            self.purpose
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<WatchTarget, Unavailable>> {
        self.unavailable.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, map: &BTreeMap<WatchTarget, Unavailable>) {
        for why in [
            Unavailable::Forbidden,
            Unavailable::ClusterScoped,
            Unavailable::OutsideNamespaces,
        ] {
            let n = map.values().filter(|w| **w == why).count();
            self.gauge
                .get_or_create(&ReasonLabels {
                    reason: why.metric_label(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

/// Whether a watch error is the API server refusing access (403).
pub fn is_forbidden(error: &kube::runtime::watcher::Error) -> bool {
    use kube::runtime::watcher::Error as E;
    match error {
        E::InitialListFailed(kube::Error::Api(s))
        | E::WatchStartFailed(kube::Error::Api(s))
        | E::WatchFailed(kube::Error::Api(s)) => s.code == 403,
        E::WatchError(s) => s.code == 403,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespaces(list: &[Option<&str>]) -> BTreeSet<Option<String>> {
        list.iter().map(|n| n.map(str::to_owned)).collect()
    }

    #[test]
    fn cluster_scope_watches_each_kind_once_cluster_wide() {
        let (watch, unavailable) =
            WatchScope::from_list(&[]).plan("apps", "Deployment", &namespaces(&[Some("a"), Some("b")]));
        assert_eq!(watch.len(), 1);
        assert_eq!(watch[0].namespace, None);
        assert!(unavailable.is_empty());
    }

    #[test]
    fn namespace_scope_watches_each_listed_member_namespace_and_reports_the_rest() {
        let scope = WatchScope::from_list(&["a".into(), " c ".into(), String::new()]);
        assert_eq!(
            scope.every_namespace(),
            [Some("a".to_owned()), Some("c".to_owned())]
        );
        let (watch, unavailable) = scope.plan("", "ConfigMap", &namespaces(&[Some("a"), Some("b")]));
        let watched: Vec<_> = watch.iter().map(|t| t.namespace.as_deref()).collect();
        assert_eq!(watched, [Some("a")]);
        assert_eq!(unavailable.len(), 1);
        assert_eq!(unavailable[0].0.namespace.as_deref(), Some("b"));
        assert_eq!(unavailable[0].1, Unavailable::OutsideNamespaces);
        let (watch, unavailable) =
            scope.plan("rbac.authorization.k8s.io", "ClusterRole", &namespaces(&[None]));
        assert!(watch.is_empty());
        assert_eq!(unavailable[0].1, Unavailable::ClusterScoped);
        assert_eq!(
            unavailable[0].0.to_string(),
            "ClusterRole.rbac.authorization.k8s.io (cluster-wide)"
        );
    }

    #[test]
    fn health_counts_by_reason_and_names_the_forbidden_watches() {
        let health = WatchHealth::new("Drift", "drift is not corrected");
        let target = |ns: &str| WatchTarget {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some(ns.into()),
        };
        assert_eq!(health.forbidden(), None);
        health.set(&target("a"), Some(Unavailable::Forbidden));
        health.set(&target("b"), Some(Unavailable::Forbidden));
        health.set(&target("c"), Some(Unavailable::OutsideNamespaces));
        assert_eq!(
            health.forbidden().as_deref(),
            Some("Drift watch of Deployment.apps in namespace a and 1 more forbidden by RBAC")
        );
        health.set(&target("a"), None);
        health.retain(|t| t.namespace.as_deref() != Some("b"));
        assert_eq!(health.forbidden(), None);
        assert_eq!(health.unavailable().len(), 1);
    }
}
