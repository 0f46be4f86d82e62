//! Workload controllers' rules (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job): counts and conditions
//! their controllers publish, read the way kstatus reads them except where README's Health section says we
//! are stricter.

use serde_json::Value;

use super::fields::{condition, count, int, text};
use super::verdict::{Health, current, failed, progressing};

/// Workload controllers always report `observedGeneration`; until they do, their counts describe nothing
/// (kstatus asks this of DaemonSets only).
pub(super) fn observed(obj: &Value) -> Option<Health> {
    let status_missing = obj.pointer("/status").is_none_or(Value::is_null);
    let generation = int(obj, "/metadata/generation");
    if status_missing || (generation.is_some() && int(obj, "/status/observedGeneration").is_none()) {
        let target = generation.map_or_else(String::new, |g| format!(" generation {g}"));
        return Some(progressing(format!("waiting for controller to observe{target}")));
    }
    None
}

/// Deployments publish a rollout's end twice: counts, and `Progressing=True` with reason
/// `NewReplicaSetAvailable` plus `Available=True`. Both must say done.
pub(super) fn deployment(obj: &Value) -> Health {
    let progress = condition(obj, "Progressing");
    if let Some(c) = &progress
        && c.reason == "ProgressDeadlineExceeded"
    {
        return failed(c.describe("progress deadline exceeded"));
    }
    let want = int(obj, "/spec/replicas").unwrap_or(1);
    let replicas = count(obj, "/status/replicas");
    let updated = count(obj, "/status/updatedReplicas");
    let ready = count(obj, "/status/readyReplicas");
    let available = count(obj, "/status/availableReplicas");
    if replicas < want {
        return progressing(format!("{replicas}/{want} replicas created"));
    }
    if updated < want {
        return progressing(format!("{updated}/{want} replicas updated"));
    }
    if replicas > want {
        return progressing(format!("{} old replicas pending termination", replicas - want));
    }
    if available < updated {
        return progressing(format!("{available}/{updated} updated replicas available"));
    }
    if ready < want {
        return progressing(format!("{ready}/{want} replicas ready"));
    }
    // Without a progress deadline (unset, or the API's "never" value) the controller keeps no Progressing
    // condition, so there is nothing to wait for.
    let deadline = int(obj, "/spec/progressDeadlineSeconds").filter(|s| *s != i64::from(i32::MAX));
    let rolled_out = progress
        .as_ref()
        .is_some_and(|c| c.status == "True" && c.reason == "NewReplicaSetAvailable");
    if deadline.is_some() && !rolled_out {
        return progressing(match &progress {
            Some(c) => c.describe("new ReplicaSet not available"),
            None => "rollout progress not reported".to_owned(),
        });
    }
    match condition(obj, "Available") {
        Some(c) if c.status == "True" => current(format!("{ready}/{want} replicas ready")),
        Some(c) => progressing(c.describe("not available")),
        None => progressing("availability not reported"),
    }
}

pub(super) fn stateful_set(obj: &Value) -> Health {
    let want = int(obj, "/spec/replicas").unwrap_or(1);
    let replicas = count(obj, "/status/replicas");
    let ready = count(obj, "/status/readyReplicas");
    if replicas < want {
        return progressing(format!("{replicas}/{want} replicas created"));
    }
    if ready < want {
        return progressing(format!("{ready}/{want} replicas ready"));
    }
    if replicas > want {
        return progressing(format!("{} replicas pending termination", replicas - want));
    }
    let done = current(format!("{ready}/{want} replicas ready"));
    // OnDelete: Pods change only when someone deletes them, so there is no rollout to wait for — but the
    // Pods must still exist and be ready (kstatus calls any OnDelete StatefulSet Current).
    if text(obj, "/spec/updateStrategy/type") == Some("OnDelete") {
        return done;
    }
    let updated = count(obj, "/status/updatedReplicas");
    if let Some(partition) = int(obj, "/spec/updateStrategy/rollingUpdate/partition") {
        // Ordinals below the partition keep the old revision on purpose; only the rest must update. With a
        // partition (the API server defaults it to 0) updated counts are the whole story: the controller
        // flips currentRevision only after that.
        let expected = (want - partition).max(0);
        return if updated < expected {
            progressing(format!(
                "{updated}/{expected} replicas updated (partition {partition})"
            ))
        } else {
            done
        };
    }
    let current_replicas = count(obj, "/status/currentReplicas");
    if current_replicas < want {
        return progressing(format!(
            "{current_replicas}/{want} replicas at the current revision"
        ));
    }
    if text(obj, "/status/updateRevision").unwrap_or_default()
        != text(obj, "/status/currentRevision").unwrap_or_default()
    {
        return progressing(format!("{updated}/{want} replicas updated to the new revision"));
    }
    done
}

pub(super) fn daemon_set(obj: &Value) -> Health {
    let Some(desired) = int(obj, "/status/desiredNumberScheduled") else {
        return progressing("desired number of pods not reported");
    };
    let scheduled = count(obj, "/status/currentNumberScheduled");
    let updated = count(obj, "/status/updatedNumberScheduled");
    let available = count(obj, "/status/numberAvailable");
    let ready = count(obj, "/status/numberReady");
    if scheduled < desired {
        progressing(format!("{scheduled}/{desired} pods scheduled"))
    } else if updated < desired {
        progressing(format!("{updated}/{desired} pods updated"))
    } else if available < desired {
        progressing(format!("{available}/{desired} pods available"))
    } else if ready < desired {
        progressing(format!("{ready}/{desired} pods ready"))
    } else if desired == 0 {
        current("no nodes to schedule on")
    } else {
        current(format!("{ready}/{desired} pods ready"))
    }
}

pub(super) fn replica_set(obj: &Value) -> Health {
    // Pod creation failed (quota, admission): the controller keeps retrying, so this is not final.
    if let Some(c) = condition(obj, "ReplicaFailure").filter(|c| c.status == "True") {
        return progressing(c.describe("replica failure"));
    }
    let want = int(obj, "/spec/replicas").unwrap_or(1);
    let labelled = count(obj, "/status/fullyLabeledReplicas");
    let available = count(obj, "/status/availableReplicas");
    let ready = count(obj, "/status/readyReplicas");
    let replicas = count(obj, "/status/replicas");
    if labelled < want {
        progressing(format!("{labelled}/{want} replicas labelled"))
    } else if available < want {
        progressing(format!("{available}/{want} replicas available"))
    } else if ready < want {
        progressing(format!("{ready}/{want} replicas ready"))
    } else if replicas > want {
        progressing(format!("{} replicas pending termination", replicas - want))
    } else {
        current(format!("{ready}/{want} replicas ready"))
    }
}

/// A Job is done when it completed: one that still runs is in progress (kstatus calls a started Job Current),
/// so a bundle that depends on a migration Job waits for it to finish.
pub(super) fn job(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Failed").filter(|c| c.status == "True") {
        return failed(c.describe("job failed"));
    }
    if condition(obj, "Complete").is_some_and(|c| c.status == "True") {
        return current("complete");
    }
    if text(obj, "/status/startTime").is_none() {
        let suspended = obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
        return progressing(if suspended { "suspended" } else { "not started" });
    }
    let (active, succeeded) = (count(obj, "/status/active"), count(obj, "/status/succeeded"));
    progressing(format!("running: {active} active, {succeeded} succeeded"))
}
