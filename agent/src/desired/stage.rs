//! Apply order (DESIGN §3.4): what must exist before what.
//!
//! CRDs and Namespaces first (and wait for them), then cluster-wide and configuration kinds that workloads
//! reference, then everything else, and admission webhooks last so a webhook whose backend is in this same
//! commit cannot block the objects that start that backend.

/// Stages in apply order; prune runs them in reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// CustomResourceDefinitions and Namespaces.
    Foundation,
    /// RBAC, ServiceAccounts, ConfigMaps, Secrets, Services, storage and policy kinds.
    Config,
    /// Workloads, custom resources and anything not listed elsewhere.
    Workloads,
    /// Admission webhooks and aggregated API registrations.
    Webhooks,
}

impl Stage {
    /// All stages in apply order.
    pub const ALL: [Stage; 4] = [
        Stage::Foundation,
        Stage::Config,
        Stage::Workloads,
        Stage::Webhooks,
    ];

    /// The stage of a kind, from its group and kind alone (no discovery needed).
    pub fn of(group: &str, kind: &str) -> Stage {
        match (group, kind) {
            ("apiextensions.k8s.io", "CustomResourceDefinition") | ("", "Namespace") => Stage::Foundation,
            (
                "admissionregistration.k8s.io",
                "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
            )
            | ("apiregistration.k8s.io", "APIService") => Stage::Webhooks,
            (
                "",
                "ServiceAccount"
                | "ConfigMap"
                | "Secret"
                | "Service"
                | "LimitRange"
                | "ResourceQuota"
                | "PersistentVolume"
                | "PersistentVolumeClaim",
            )
            | ("rbac.authorization.k8s.io", _)
            | ("scheduling.k8s.io", "PriorityClass")
            | ("storage.k8s.io", _)
            | ("networking.k8s.io", "NetworkPolicy" | "IngressClass")
            | ("policy", _)
            | ("node.k8s.io", "RuntimeClass") => Stage::Config,
            _ => Stage::Workloads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_and_namespaces_come_first_and_webhooks_last() {
        assert_eq!(
            Stage::of("apiextensions.k8s.io", "CustomResourceDefinition"),
            Stage::Foundation
        );
        assert_eq!(Stage::of("", "Namespace"), Stage::Foundation);
        assert_eq!(
            Stage::of("rbac.authorization.k8s.io", "ClusterRole"),
            Stage::Config
        );
        assert_eq!(Stage::of("", "ConfigMap"), Stage::Config);
        assert_eq!(Stage::of("apps", "Deployment"), Stage::Workloads);
        assert_eq!(Stage::of("example.com", "Widget"), Stage::Workloads);
        assert_eq!(
            Stage::of("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
            Stage::Webhooks
        );
        let mut order = Stage::ALL.to_vec();
        order.sort();
        assert_eq!(order, Stage::ALL);
    }
}
