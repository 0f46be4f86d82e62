//! Health rules, kind by kind, on objects as the API server returns them.

use serde_json::json;

use super::Status::{Current, Failed, InProgress, Unknown};
use super::*;

fn status_of(obj: Value) -> Status {
    of_object(&obj).status
}

/// An apps/v1 workload at generation 2 with the given spec and status.
fn workload(kind: &str, spec: Value, status: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w", "generation": 2},
           "spec": spec, "status": status})
}

fn deployment_status(replicas: i64, updated: i64, ready: i64, available: i64) -> Value {
    json!({"observedGeneration": 2, "replicas": replicas, "updatedReplicas": updated,
           "readyReplicas": ready, "availableReplicas": available})
}

fn with_conditions(api_version: &str, kind: &str, conditions: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "generation": 1},
           "status": {"conditions": conditions}})
}

#[test]
fn deployment_with_all_replicas_ready_is_current() {
    let obj = workload(
        "Deployment",
        json!({"replicas": 3}),
        deployment_status(3, 3, 3, 3),
    );
    let h = of_object(&obj);
    assert_eq!(
        h,
        Health {
            status: Current,
            message: "3/3 replicas ready".into()
        }
    );
    assert!(h.is_ready());
}

#[test]
fn deployment_without_replicas_defaults_to_one() {
    assert_eq!(
        status_of(workload("Deployment", json!({}), deployment_status(1, 1, 1, 1))),
        Current
    );
    assert_eq!(
        status_of(workload("Deployment", json!({}), deployment_status(0, 0, 0, 0))),
        InProgress
    );
}

#[test]
fn deployment_mid_rollout_is_in_progress() {
    let spec = json!({"replicas": 3});
    let h = of_object(&workload(
        "Deployment",
        spec.clone(),
        deployment_status(4, 2, 3, 3),
    ));
    assert_eq!(
        (h.status, h.message.as_str()),
        (InProgress, "2/3 replicas updated")
    );
    let old_left = of_object(&workload(
        "Deployment",
        spec.clone(),
        deployment_status(4, 3, 3, 3),
    ));
    assert_eq!(old_left.message, "1 old replicas pending termination");
    let not_ready = of_object(&workload("Deployment", spec, deployment_status(3, 3, 2, 2)));
    assert_eq!(not_ready.message, "2/3 replicas ready");
}

#[test]
fn deployment_with_available_false_is_in_progress() {
    let mut status = deployment_status(1, 1, 1, 1);
    status["conditions"] =
        json!([{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]);
    let h = of_object(&workload("Deployment", json!({"replicas": 1}), status));
    assert_eq!(
        (h.status, h.message.as_str()),
        (InProgress, "MinimumReplicasUnavailable")
    );
}

#[test]
fn deployment_past_its_progress_deadline_is_failed() {
    let mut status = deployment_status(2, 1, 1, 1);
    status["conditions"] = json!([{"type": "Progressing", "status": "False",
        "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out"}]);
    let h = of_object(&workload("Deployment", json!({"replicas": 2}), status));
    assert_eq!(h.status, Failed);
    assert!(
        h.message.starts_with("ProgressDeadlineExceeded: "),
        "{}",
        h.message
    );
}

#[test]
fn deployment_with_stale_observed_generation_is_not_current() {
    let mut status = deployment_status(1, 1, 1, 1);
    status["observedGeneration"] = json!(1);
    let h = of_object(&workload("Deployment", json!({"replicas": 1}), status));
    assert_eq!(h.status, InProgress);
    assert_eq!(
        h.message,
        "waiting for controller to observe generation 2 (observed 1)"
    );
    assert!(!h.is_ready());
}

#[test]
fn deployment_without_status_or_observed_generation_is_in_progress() {
    let mut no_status = workload("Deployment", json!({"replicas": 0}), json!(null));
    assert_eq!(status_of(no_status.clone()), InProgress);
    no_status["metadata"] = json!({"name": "no-generation-yet"});
    assert_eq!(
        of_object(&no_status),
        progressing("waiting for controller to observe")
    );
    no_status["metadata"]["generation"] = json!(2);
    no_status["status"] = json!({"replicas": 0});
    assert_eq!(
        of_object(&no_status).message,
        "waiting for controller to observe generation 2"
    );
}

#[test]
fn object_being_deleted_is_in_progress() {
    let mut obj = workload(
        "Deployment",
        json!({"replicas": 1}),
        deployment_status(1, 1, 1, 1),
    );
    obj["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    assert_eq!(of_object(&obj), progressing("being deleted"));
}

#[test]
fn stateful_set_is_current_only_when_rolled_out() {
    // currentRevision is r1 throughout; `update_revision` r2 means a rollout has begun.
    let status = |ready, current, updated, update_revision| {
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": ready, "currentReplicas": current,
               "updatedReplicas": updated, "currentRevision": "r1", "updateRevision": update_revision})
    };
    let sts = |s| of_object(&workload("StatefulSet", json!({"replicas": 3}), s));
    assert_eq!(sts(status(3, 3, 3, "r1")), current("3/3 replicas ready"));
    assert_eq!(sts(status(2, 3, 3, "r1")).message, "2/3 replicas ready");
    assert_eq!(
        sts(status(3, 3, 0, "r2")).message,
        "0/3 replicas updated to the new revision"
    );
    assert_eq!(
        sts(status(3, 2, 3, "r1")).message,
        "2/3 replicas at the current revision"
    );
}

#[test]
fn stateful_set_with_partition_only_waits_for_ordinals_above_it() {
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
    let spec = json!({"replicas": 3, "updateStrategy": strategy});
    let status = |updated| {
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3 - updated,
               "updatedReplicas": updated, "currentRevision": "r1", "updateRevision": "r2"})
    };
    assert_eq!(
        status_of(workload("StatefulSet", spec.clone(), status(1))),
        Current
    );
    assert_eq!(status_of(workload("StatefulSet", spec, status(0))), InProgress);
}

#[test]
fn daemon_set_is_current_when_every_node_runs_the_new_pod() {
    let status = |desired, updated, available| {
        json!({"observedGeneration": 2, "desiredNumberScheduled": desired,
               "updatedNumberScheduled": updated, "numberAvailable": available, "numberReady": available})
    };
    assert_eq!(
        status_of(workload("DaemonSet", json!({}), status(3, 3, 3))),
        Current
    );
    assert_eq!(
        status_of(workload("DaemonSet", json!({}), status(3, 2, 3))),
        InProgress
    );
    assert_eq!(
        status_of(workload("DaemonSet", json!({}), status(3, 3, 1))),
        InProgress
    );
    let no_nodes = workload("DaemonSet", json!({}), status(0, 0, 0));
    assert_eq!(of_object(&no_nodes), current("no nodes to schedule on"));
}

#[test]
fn replica_set_counts_ready_replicas_and_fails_on_replica_failure() {
    let spec = json!({"replicas": 2});
    let status = |ready| {
        json!({"observedGeneration": 2, "replicas": 2,
               "readyReplicas": ready, "availableReplicas": ready})
    };
    assert_eq!(
        status_of(workload("ReplicaSet", spec.clone(), status(2))),
        Current
    );
    assert_eq!(
        status_of(workload("ReplicaSet", spec.clone(), status(1))),
        InProgress
    );
    let mut failing = status(0);
    failing["conditions"] = json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}]);
    assert_eq!(status_of(workload("ReplicaSet", spec, failing)), Failed);
}

#[test]
fn job_follows_its_complete_and_failed_conditions() {
    let complete = with_conditions("batch/v1", "Job", json!([{"type": "Complete", "status": "True"}]));
    assert_eq!(status_of(complete), Current);
    let failed = with_conditions(
        "batch/v1",
        "Job",
        json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
    );
    assert_eq!(
        of_object(&failed),
        Health {
            status: Failed,
            message: "BackoffLimitExceeded".into()
        }
    );
    let mut running = with_conditions("batch/v1", "Job", json!([]));
    running["status"]["active"] = json!(1);
    assert_eq!(of_object(&running).message, "running: 1 active, 0 succeeded");
    running["spec"] = json!({"suspend": true});
    assert_eq!(status_of(running), Current);
}

#[test]
fn pod_health_follows_phase_readiness_and_container_state() {
    let pod = |status: Value| json!({"apiVersion": "v1", "kind": "Pod", "status": status});
    let ready = json!([{"type": "Ready", "status": "True"}]);
    assert_eq!(
        status_of(pod(json!({"phase": "Running", "conditions": ready}))),
        Current
    );
    assert_eq!(status_of(pod(json!({"phase": "Running"}))), InProgress);
    assert_eq!(status_of(pod(json!({"phase": "Succeeded"}))), Current);
    assert_eq!(status_of(pod(json!({"phase": "Failed"}))), Failed);
    assert_eq!(status_of(pod(json!({"phase": "Pending"}))), InProgress);
    let crashing = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}));
    assert_eq!(of_object(&crashing), failed("container app: CrashLoopBackOff"));
}

#[test]
fn persistent_volume_claim_follows_its_phase() {
    let pvc =
        |phase| json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": phase}});
    assert_eq!(status_of(pvc("Bound")), Current);
    assert_eq!(status_of(pvc("Pending")), InProgress);
    assert_eq!(status_of(pvc("Lost")), Failed);
}

#[test]
fn load_balancer_service_waits_for_ingress() {
    let mut svc = json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"},
                         "status": {"loadBalancer": {}}});
    assert_eq!(of_object(&svc), progressing("waiting for load balancer ingress"));
    svc["status"]["loadBalancer"]["ingress"] = json!([]);
    assert_eq!(status_of(svc.clone()), InProgress);
    svc["status"]["loadBalancer"]["ingress"] = json!([{"ip": "10.0.0.1"}]);
    assert_eq!(status_of(svc.clone()), Current);
    svc["spec"]["type"] = json!("ClusterIP");
    svc["status"] = json!({});
    assert_eq!(status_of(svc), Current);
}

#[test]
fn crd_is_current_once_established_and_failed_on_name_conflict() {
    let crd = |c: Value| with_conditions("apiextensions.k8s.io/v1", "CustomResourceDefinition", c);
    assert_eq!(
        status_of(crd(json!([{"type": "Established", "status": "True"}]))),
        Current
    );
    assert_eq!(
        status_of(crd(json!([{"type": "Established", "status": "False"}]))),
        InProgress
    );
    assert_eq!(
        status_of(crd(json!([{"type": "NamesAccepted", "status": "False"}]))),
        Failed
    );
}

#[test]
fn namespace_is_current_when_active() {
    let ns = |status: Value| json!({"apiVersion": "v1", "kind": "Namespace", "status": status});
    assert_eq!(status_of(ns(json!({"phase": "Active"}))), Current);
    assert_eq!(status_of(ns(json!({"phase": "Terminating"}))), InProgress);
    assert_eq!(
        status_of(json!({"apiVersion": "v1", "kind": "Namespace"})),
        InProgress
    );
}

#[test]
fn api_service_follows_its_available_condition() {
    let api = |c: Value| with_conditions("apiregistration.k8s.io/v1", "APIService", c);
    assert_eq!(
        status_of(api(json!([{"type": "Available", "status": "True"}]))),
        Current
    );
    let down = api(json!([{"type": "Available", "status": "False", "message": "endpoints missing"}]));
    assert_eq!(of_object(&down), progressing("endpoints missing"));
    assert_eq!(status_of(api(json!([]))), Unknown);
}

#[test]
fn custom_resource_follows_its_ready_condition() {
    let cr = |c: Value| with_conditions("example.com/v1", "Widget", c);
    assert_eq!(
        status_of(cr(json!([{"type": "Ready", "status": "True"}]))),
        Current
    );
    assert_eq!(
        status_of(cr(json!([{"type": "Ready", "status": "False"}]))),
        InProgress
    );
    assert_eq!(
        status_of(cr(json!([{"type": "Ready", "status": "Unknown"}]))),
        Unknown
    );
    let reconciling = json!([{"type": "Ready", "status": "True"}, {"type": "Reconciling", "status": "True"}]);
    assert_eq!(status_of(cr(reconciling)), InProgress);
}

#[test]
fn custom_resource_ready_with_stale_observed_generation_is_in_progress() {
    let mut cr = with_conditions(
        "example.com/v1",
        "Widget",
        json!([{"type": "Ready", "status": "True"}]),
    );
    cr["metadata"]["generation"] = json!(4);
    cr["status"]["observedGeneration"] = json!(3);
    assert_eq!(status_of(cr.clone()), InProgress);
    cr["status"]["observedGeneration"] = json!(4);
    cr["status"]["conditions"][0]["observedGeneration"] = json!(3);
    assert_eq!(
        of_object(&cr).message,
        "waiting for controller to observe generation 4 (observed 3)"
    );
}

#[test]
fn stalled_custom_resource_is_failed() {
    let stalled = json!([{"type": "Ready", "status": "False"},
                         {"type": "Stalled", "status": "True", "message": "bad spec"}]);
    let h = of_object(&with_conditions("example.com/v1", "Widget", stalled));
    assert_eq!(h, failed("bad spec"));
}

#[test]
fn objects_without_status_are_current() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    assert_eq!(status_of(cm), Current);
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "rules": []});
    assert_eq!(status_of(role), Current);
}

#[test]
fn aggregate_reports_the_worst_status_and_names_the_object() {
    let (ok, unknown) = (current("ok"), health(Unknown, "?"));
    let (slow, broken) = (progressing("1/2 replicas ready"), failed("CrashLoopBackOff"));
    assert_eq!(aggregate([]), current("no objects"));
    assert_eq!(aggregate([("a", &ok), ("b", &ok)]), current("2 objects current"));
    assert_eq!(aggregate([("a", &ok), ("u", &unknown)]).status, Unknown);
    assert_eq!(
        aggregate([("u", &unknown), ("s", &slow)]),
        progressing("s: 1/2 replicas ready (and 1 more not current)")
    );
    let all = aggregate([("s", &slow), ("f", &broken), ("u", &unknown), ("a", &ok)]);
    assert_eq!(all, failed("f: CrashLoopBackOff (and 2 more not current)"));
}

#[test]
fn status_displays_its_kstatus_name() {
    let names: Vec<String> = [Current, InProgress, Failed, Unknown]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(names, ["Current", "InProgress", "Failed", "Unknown"]);
}
