//! The rules, kind by kind: [`of_object`] dispatches on API group and kind, after the checks every kind shares
//! (deletion, a controller behind the latest generation, kstatus's `Stalled` and `Reconciling`). Workload
//! controllers' rules are in [`super::workloads`].

use serde_json::Value;

use super::fields::{condition, int, text};
use super::verdict::{Health, Status, current, failed, health, progressing};
use super::workloads::{daemon_set, deployment, job, observed, replica_set, stateful_set};

/// Container waiting reasons that will not clear on their own: the Pod needs a new spec or a fixed registry.
const FATAL_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

/// Health of one live object, dispatching on apiVersion group + kind.
pub fn of_object(obj: &Value) -> Health {
    if let Some(h) = generic(obj) {
        return h;
    }
    let api_version = text(obj, "/apiVersion").unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    match (group, text(obj, "/kind").unwrap_or_default()) {
        ("apps", "Deployment") => observed(obj).unwrap_or_else(|| deployment(obj)),
        ("apps", "StatefulSet") => observed(obj).unwrap_or_else(|| stateful_set(obj)),
        ("apps", "DaemonSet") => observed(obj).unwrap_or_else(|| daemon_set(obj)),
        ("apps", "ReplicaSet") => observed(obj).unwrap_or_else(|| replica_set(obj)),
        ("batch", "Job") => job(obj),
        ("", "Pod") => pod(obj),
        ("", "PersistentVolumeClaim") => match text(obj, "/status/phase") {
            Some("Bound") => current("bound"),
            // The volume is gone; nothing brings it back (kstatus: InProgress).
            Some("Lost") => failed("claim lost its volume"),
            phase => progressing(format!("phase {}", phase.unwrap_or("not reported"))),
        },
        ("", "Service") => service(obj),
        ("", "Namespace") => match text(obj, "/status/phase") {
            Some("Active") => current("active"),
            Some("Terminating") => progressing("terminating"),
            phase => progressing(format!("phase {}", phase.unwrap_or("not reported"))),
        },
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj),
        ("apiregistration.k8s.io", "APIService") => match condition(obj, "Available") {
            Some(c) if c.status == "True" => current("available"),
            Some(c) if c.status == "False" => progressing(c.describe("not available")),
            _ => health(Status::Unknown, "availability not reported"),
        },
        _ => by_ready_condition(obj),
    }
}

/// Checks every kind shares, before any kind's own rules (as kstatus orders them): deletion in progress, a
/// controller that has not observed the latest generation, and the kstatus conditions `Stalled` and
/// `Reconciling`.
fn generic(obj: &Value) -> Option<Health> {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Some(progressing("being deleted"));
    }
    if let (Some(generation), Some(seen)) = (
        int(obj, "/metadata/generation"),
        int(obj, "/status/observedGeneration"),
    ) && seen != generation
    {
        return Some(lagging(generation, seen));
    }
    // Stalled outranks Reconciling whatever their order: conditions are a map keyed by type, and their order
    // in the list means nothing (kstatus takes whichever comes first).
    if let Some(c) = condition(obj, "Stalled").filter(|c| c.status == "True") {
        return Some(failed(c.describe("stalled")));
    }
    if let Some(c) = condition(obj, "Reconciling").filter(|c| c.status == "True") {
        return Some(progressing(c.describe("reconciling")));
    }
    None
}

fn lagging(generation: i64, seen: i64) -> Health {
    progressing(format!(
        "waiting for controller to observe generation {generation} (observed {seen})"
    ))
}

fn pod(obj: &Value) -> Health {
    let phase = text(obj, "/status/phase");
    let ready = condition(obj, "Ready").is_some_and(|c| c.status == "True");
    match phase {
        Some("Succeeded") => return current("succeeded"),
        // A Pod we applied is the workload itself: its failure is the news (kstatus: Current, "completed").
        Some("Failed") => return failed(text(obj, "/status/message").unwrap_or("pod failed")),
        Some("Running") if ready => return current("running and ready"),
        // The node stopped reporting: nothing here to judge (kstatus cannot compute it either).
        Some("Unknown") => return health(Status::Unknown, "phase Unknown: node not reporting"),
        _ => {}
    }
    for list in ["/status/initContainerStatuses", "/status/containerStatuses"] {
        for c in obj.pointer(list).and_then(Value::as_array).into_iter().flatten() {
            if let Some(reason) = text(c, "/state/waiting/reason")
                && FATAL_WAITING_REASONS.contains(&reason)
            {
                let name = text(c, "/name").unwrap_or("?");
                return failed(format!("container {name}: {reason}"));
            }
        }
    }
    if phase == Some("Pending")
        && let Some(c) = condition(obj, "PodScheduled")
        && c.status == "False"
        && c.reason == "Unschedulable"
    {
        // The scheduler tried every node and says why none fits. kstatus waits 15 s from creation before
        // calling it Failed; health reads no clock, so it says so at once.
        return failed(c.describe("unschedulable"));
    }
    progressing(match phase {
        Some("Running") => "running, not ready".to_owned(),
        other => format!("phase {}", other.unwrap_or("not reported")),
    })
}

fn service(obj: &Value) -> Health {
    if text(obj, "/spec/type") != Some("LoadBalancer") {
        return current("service");
    }
    // kstatus is content with a cluster IP; a LoadBalancer is there to be reached from outside.
    let ingress = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array);
    match ingress {
        Some(list) if !list.is_empty() => current("load balancer ready"),
        _ => progressing("waiting for load balancer ingress"),
    }
}

fn crd(obj: &Value) -> Health {
    // A name conflict blocks establishment for good, so it outranks a stale Established=True.
    if let Some(c) = condition(obj, "NamesAccepted").filter(|c| c.status == "False") {
        return failed(c.describe("names not accepted"));
    }
    match condition(obj, "Established") {
        Some(c) if c.status == "True" => current("established"),
        // "Installing" is the API server's normal way there; any other reason is a refusal.
        Some(c) if c.status == "False" && c.reason != "Installing" => failed(c.describe("not established")),
        _ => progressing("waiting for the CRD to be established"),
    }
}

/// Any other kind: its `Ready` condition if it has one; no status at all (ConfigMap, Secret, RBAC, …) means
/// there is nothing to wait for. (`Stalled` and `Reconciling` were judged for every kind in [`generic`].)
fn by_ready_condition(obj: &Value) -> Health {
    let Some(ready) = condition(obj, "Ready") else {
        return current("no readiness to wait for");
    };
    match ready.status {
        // A Ready=True the controller wrote for an older generation says nothing about this one (kstatus
        // does not look at a condition's observedGeneration).
        "True" => match (int(obj, "/metadata/generation"), ready.observed_generation) {
            (Some(generation), Some(seen)) if seen < generation => lagging(generation, seen),
            _ => current(ready.describe("ready")),
        },
        "False" => progressing(ready.describe("not ready")),
        "Unknown" => progressing(ready.describe("readiness unknown")),
        // Not a condition status at all: nothing we can judge (kstatus ignores the condition: Current).
        other => health(Status::Unknown, format!("Ready condition has status {other:?}")),
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
