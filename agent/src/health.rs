//! Health of live objects, kstatus-style (DESIGN §5): is the cluster done acting on what we applied?
//!
//! Data enters as the full live object (`serde_json::Value`, as the API server returns it, `status`
//! included) and leaves as a [`Health`]: a [`Status`] plus a short human message. [`of_object`] judges one
//! object, dispatching on API group and kind; [`aggregate`] folds many into one for a bundle. Everything
//! here is pure: no API calls, no clock, so callers decide when to re-read and how long to wait.
//!
//! The rule that shapes every branch: Unknown, or a controller that has not yet observed the latest
//! `generation`, is never ready.

use std::fmt;

use serde_json::Value;

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
        _ => by_conditions(obj),
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

/// Checks every kind shares: deletion in progress, and a controller lagging the latest generation.
fn generic(obj: &Value) -> Option<Health> {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Some(progressing("being deleted"));
    }
    let generation = int(obj, "/metadata/generation")?;
    match int(obj, "/status/observedGeneration") {
        Some(seen) if seen < generation => Some(lagging(generation, seen)),
        _ => None,
    }
}

fn lagging(generation: i64, seen: i64) -> Health {
    progressing(format!(
        "waiting for controller to observe generation {generation} (observed {seen})"
    ))
}

/// Workload controllers always report `observedGeneration`; until they do, their counts describe nothing.
fn observed(obj: &Value) -> Option<Health> {
    let status_missing = obj.pointer("/status").is_none_or(Value::is_null);
    let generation = int(obj, "/metadata/generation");
    if status_missing || (generation.is_some() && int(obj, "/status/observedGeneration").is_none()) {
        let target = generation.map_or_else(String::new, |g| format!(" generation {g}"));
        return Some(progressing(format!("waiting for controller to observe{target}")));
    }
    None
}

fn deployment(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Progressing")
        && c.status == "False"
        && c.reason == "ProgressDeadlineExceeded"
    {
        return failed(c.describe("progress deadline exceeded"));
    }
    let want = int(obj, "/spec/replicas").unwrap_or(1);
    let replicas = count(obj, "/status/replicas");
    let updated = count(obj, "/status/updatedReplicas");
    let ready = count(obj, "/status/readyReplicas");
    let available = count(obj, "/status/availableReplicas");
    if let Some(h) = replica_counts(want, replicas, Some(updated), ready, available) {
        return h;
    }
    if let Some(c) = condition(obj, "Available")
        && c.status == "False"
    {
        return progressing(c.describe("not available"));
    }
    current(format!("{ready}/{want} replicas ready"))
}

/// The replica arithmetic Deployments and ReplicaSets share; `None` means all counts reached `want`.
fn replica_counts(want: i64, replicas: i64, updated: Option<i64>, ready: i64, avail: i64) -> Option<Health> {
    Some(progressing(match updated {
        Some(updated) if updated < want => format!("{updated}/{want} replicas updated"),
        _ if replicas > want => format!("{} old replicas pending termination", replicas - want),
        _ if ready < want => format!("{ready}/{want} replicas ready"),
        _ if avail < want => format!("{avail}/{want} replicas available"),
        _ => return None,
    }))
}

fn stateful_set(obj: &Value) -> Health {
    let want = int(obj, "/spec/replicas").unwrap_or(1);
    let replicas = count(obj, "/status/replicas");
    let ready = count(obj, "/status/readyReplicas");
    if replicas > want {
        return progressing(format!("{} replicas pending termination", replicas - want));
    }
    if ready < want {
        return progressing(format!("{ready}/{want} replicas ready"));
    }
    let done = current(format!("{ready}/{want} replicas ready"));
    // OnDelete: Pods change only when someone deletes them, so there is no rollout to wait for.
    if text(obj, "/spec/updateStrategy/type").is_some_and(|t| t != "RollingUpdate") {
        return done;
    }
    let updated = count(obj, "/status/updatedReplicas");
    let partition = int(obj, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    if partition > 0 {
        // Ordinals below the partition keep the old revision on purpose; only the rest must update.
        let expected = (want - partition).max(0);
        return if updated < expected {
            progressing(format!(
                "{updated}/{expected} replicas updated (partition {partition})"
            ))
        } else {
            done
        };
    }
    let update_revision = text(obj, "/status/updateRevision");
    if update_revision.is_some() && update_revision != text(obj, "/status/currentRevision") {
        return progressing(format!("{updated}/{want} replicas updated to the new revision"));
    }
    let current_replicas = count(obj, "/status/currentReplicas");
    if current_replicas < want {
        return progressing(format!(
            "{current_replicas}/{want} replicas at the current revision"
        ));
    }
    done
}

fn daemon_set(obj: &Value) -> Health {
    let desired = count(obj, "/status/desiredNumberScheduled");
    if desired == 0 {
        return current("no nodes to schedule on");
    }
    let updated = count(obj, "/status/updatedNumberScheduled");
    let available = count(obj, "/status/numberAvailable");
    let ready = count(obj, "/status/numberReady");
    if updated < desired {
        progressing(format!("{updated}/{desired} pods updated"))
    } else if ready < desired {
        progressing(format!("{ready}/{desired} pods ready"))
    } else if available < desired {
        progressing(format!("{available}/{desired} pods available"))
    } else {
        current(format!("{ready}/{desired} pods ready"))
    }
}

fn replica_set(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "ReplicaFailure")
        && c.status == "True"
    {
        return failed(c.describe("replica failure"));
    }
    let want = int(obj, "/spec/replicas").unwrap_or(1);
    let ready = count(obj, "/status/readyReplicas");
    let (replicas, available) = (
        count(obj, "/status/replicas"),
        count(obj, "/status/availableReplicas"),
    );
    replica_counts(want, replicas, None, ready, available)
        .unwrap_or_else(|| current(format!("{ready}/{want} replicas ready")))
}

fn job(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Failed").filter(|c| c.status == "True") {
        return failed(c.describe("job failed"));
    }
    if condition(obj, "Complete").is_some_and(|c| c.status == "True") {
        return current("complete");
    }
    if obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return current("suspended");
    }
    let (active, succeeded) = (count(obj, "/status/active"), count(obj, "/status/succeeded"));
    progressing(format!("running: {active} active, {succeeded} succeeded"))
}

fn pod(obj: &Value) -> Health {
    let phase = text(obj, "/status/phase");
    match phase {
        Some("Succeeded") => return current("succeeded"),
        Some("Failed") => return failed(text(obj, "/status/message").unwrap_or("pod failed")),
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
    if phase == Some("Running") && condition(obj, "Ready").is_some_and(|c| c.status == "True") {
        return current("running and ready");
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
        _ => progressing("waiting for the CRD to be established"),
    }
}

/// Any other kind: the kstatus condition conventions (Stalled, Reconciling, Ready); no status at all
/// (ConfigMap, Secret, RBAC, …) means there is nothing to wait for.
fn by_conditions(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Stalled").filter(|c| c.status == "True") {
        return failed(c.describe("stalled"));
    }
    if let Some(c) = condition(obj, "Reconciling").filter(|c| c.status == "True") {
        return progressing(c.describe("reconciling"));
    }
    let Some(ready) = condition(obj, "Ready") else {
        return current("no readiness to wait for");
    };
    match ready.status {
        "True" => match (int(obj, "/metadata/generation"), ready.observed_generation) {
            (Some(generation), Some(seen)) if seen < generation => lagging(generation, seen),
            _ => current(ready.describe("ready")),
        },
        "False" => progressing(ready.describe("not ready")),
        _ => health(Status::Unknown, ready.describe("readiness unknown")),
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
