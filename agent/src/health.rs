//! Health of live objects, kstatus-style (DESIGN §5): is the cluster done acting on what we applied?
//!
//! Data enters as the full live object (`serde_json::Value`, as the API server returns it, `status`
//! included) and leaves as a [`Health`]: a [`Status`] plus a short human message. [`of_object`] judges one
//! object, dispatching on API group and kind; [`aggregate`] folds many into one for a bundle. Everything
//! here is pure: no API calls, no clock, so callers decide when to re-read and how long to wait.
//!
//! The rules are kstatus's (`sigs.k8s.io/cli-utils/pkg/kstatus/status`), which judges the same live objects
//! in the e2e tests (tests/oracles/kstatus); where we are deliberately stricter, README's Health section
//! says so and why, and the oracle lists the case. The rule that shapes every branch: Unknown, or a
//! controller that has not yet observed the latest `generation`, is never ready.

mod workloads;

use std::fmt;

use serde_json::Value;

use self::workloads::{daemon_set, deployment, job, observed, replica_set, stateful_set};

/// Where an object stands, in kstatus terms. `Ord` is declaration order (for sorting and map keys), not
/// severity: [`aggregate`] ranks Failed > InProgress > Unknown > Current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// The object has reached its desired state.
    Current,
    /// A controller is still working towards the desired state.
    InProgress,
    /// The object cannot reach its desired state without intervention.
    Failed,
    /// The status says nothing we can judge (e.g. a condition with status `Unknown`).
    Unknown,
}

impl Status {
    /// How bad a status is when folding a set: Failed outranks InProgress outranks Unknown outranks Current.
    fn severity(self) -> u8 {
        match self {
            Status::Current => 0,
            Status::Unknown => 1,
            Status::InProgress => 2,
            Status::Failed => 3,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Current => "Current",
            Status::InProgress => "InProgress",
            Status::Failed => "Failed",
            Status::Unknown => "Unknown",
        })
    }
}

/// The health of one object or of a set of objects.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// The verdict.
    pub status: Status,
    /// Why, in a few words ("2/3 replicas ready"), for logs and the status file.
    pub message: String,
}

impl Health {
    /// Only Current counts as ready: Unknown is a reason to keep waiting, not to proceed.
    pub fn is_ready(&self) -> bool {
        self.status == Status::Current
    }
}

fn health(status: Status, message: impl Into<String>) -> Health {
    Health {
        status,
        message: message.into(),
    }
}
fn current(message: impl Into<String>) -> Health {
    health(Status::Current, message)
}
fn progressing(message: impl Into<String>) -> Health {
    health(Status::InProgress, message)
}
fn failed(message: impl Into<String>) -> Health {
    health(Status::Failed, message)
}

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

/// Health of a set: Failed if any Failed, else InProgress if any InProgress, else Unknown if any Unknown,
/// else Current (an empty set is Current). The message names the first object of the worst status and
/// counts the other objects that are not current; `items` pairs a display name with each object's health.
pub fn aggregate<'a>(items: impl IntoIterator<Item = (&'a str, &'a Health)>) -> Health {
    let mut total = 0usize;
    let mut not_current = 0usize;
    let mut worst: Option<(&str, &Health)> = None;
    for (name, h) in items {
        total += 1;
        if h.status == Status::Current {
            continue;
        }
        not_current += 1;
        if worst.is_none_or(|(_, w)| h.status.severity() > w.status.severity()) {
            worst = Some((name, h));
        }
    }
    match worst {
        None if total == 0 => current("no objects"),
        None => current(format!("{total} objects current")),
        Some((name, h)) if not_current == 1 => health(h.status, format!("{name}: {}", h.message)),
        Some((name, h)) => {
            let others = not_current - 1;
            health(
                h.status,
                format!("{name}: {} (and {others} more not current)", h.message),
            )
        }
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

/// The fields of a status condition we judge by; missing strings read as empty.
struct Condition<'a> {
    status: &'a str,
    reason: &'a str,
    message: &'a str,
    observed_generation: Option<i64>,
}

impl Condition<'_> {
    /// The condition's own words if it has any, else `fallback`.
    fn describe(&self, fallback: &str) -> String {
        match (self.reason, self.message) {
            ("", "") => fallback.to_owned(),
            (reason, "") => reason.to_owned(),
            ("", message) => message.to_owned(),
            (reason, message) => format!("{reason}: {message}"),
        }
    }
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<Condition<'a>> {
    let list = obj.pointer("/status/conditions")?.as_array()?;
    let c = list.iter().find(|c| text(c, "/type") == Some(kind))?;
    Some(Condition {
        status: text(c, "/status").unwrap_or_default(),
        reason: text(c, "/reason").unwrap_or_default(),
        message: text(c, "/message").unwrap_or_default(),
        observed_generation: int(c, "/observedGeneration"),
    })
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// Status counters are omitted by the API server when zero.
fn count(v: &Value, pointer: &str) -> i64 {
    int(v, pointer).unwrap_or(0)
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
