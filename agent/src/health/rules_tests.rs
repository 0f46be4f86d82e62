//! Health rules, kind by kind, on objects as the API server returns them. The e2e oracle
//! (tests/e2e/health_oracle.rs, tests/oracles/kstatus) checks the same rules against kstatus on live objects;
//! these tests pin the messages and the cases a live API server cannot produce.

use serde_json::json;

use super::Status::{Current, Failed, InProgress, Unknown};
use super::*;
use crate::health::aggregate;

fn status_of(obj: Value) -> Status {
    of_object(&obj).status
}

/// An apps/v1 workload at generation 2 with the given spec and status.
fn workload(kind: &str, spec: Value, status: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w", "generation": 2},
           "spec": spec, "status": status})
}

/// The conditions the Deployment controller keeps on a finished rollout.
fn rolled_out() -> Value {
    json!([{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
           {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}])
}

fn deployment_status(replicas: i64, updated: i64, ready: i64, available: i64) -> Value {
    json!({"observedGeneration": 2, "replicas": replicas, "updatedReplicas": updated,
           "readyReplicas": ready, "availableReplicas": available, "conditions": rolled_out()})
}

/// A Deployment as the API server defaults it (progressDeadlineSeconds 600).
fn deployment(replicas: i64, status: Value) -> Value {
    workload(
        "Deployment",
        json!({"replicas": replicas, "progressDeadlineSeconds": 600}),
        status,
    )
}

fn with_conditions(api_version: &str, kind: &str, conditions: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "generation": 1},
           "status": {"conditions": conditions}})
}

#[test]
fn deployment_with_all_replicas_ready_is_current() {
    let h = of_object(&deployment(3, deployment_status(3, 3, 3, 3)));
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
    let spec = json!({"progressDeadlineSeconds": 600});
    assert_eq!(
        status_of(workload(
            "Deployment",
            spec.clone(),
            deployment_status(1, 1, 1, 1)
        )),
        Current
    );
    assert_eq!(
        status_of(workload("Deployment", spec, deployment_status(0, 0, 0, 0))),
        InProgress
    );
}

#[test]
fn deployment_mid_rollout_is_in_progress() {
    let message = |s| of_object(&deployment(3, s)).message;
    assert_eq!(message(deployment_status(2, 2, 2, 2)), "2/3 replicas created");
    assert_eq!(message(deployment_status(4, 2, 3, 3)), "2/3 replicas updated");
    assert_eq!(
        message(deployment_status(4, 3, 3, 3)),
        "1 old replicas pending termination"
    );
    assert_eq!(
        message(deployment_status(3, 3, 3, 2)),
        "2/3 updated replicas available"
    );
    let h = of_object(&deployment(3, deployment_status(3, 3, 2, 2)));
    assert_eq!(
        (h.status, h.message.as_str()),
        (InProgress, "2/3 updated replicas available")
    );
}

#[test]
fn deployment_with_available_false_is_in_progress() {
    let mut status = deployment_status(1, 1, 1, 1);
    status["conditions"][0] =
        json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"});
    let h = of_object(&deployment(1, status));
    assert_eq!(
        (h.status, h.message.as_str()),
        (InProgress, "MinimumReplicasUnavailable")
    );
}

#[test]
fn deployment_is_current_only_once_the_controller_says_the_new_replica_set_is_available() {
    // Progressing=False for a reason other than the deadline: counts look done, the controller says not.
    let mut status = deployment_status(1, 1, 1, 1);
    status["conditions"][1] = json!({"type": "Progressing", "status": "False",
        "reason": "ReplicaSetCreateError", "message": "quota exceeded"});
    let h = of_object(&deployment(1, status.clone()));
    assert_eq!(
        (h.status, h.message.as_str()),
        (InProgress, "ReplicaSetCreateError: quota exceeded")
    );
    // Still rolling out.
    status["conditions"][1] = json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"});
    assert_eq!(status_of(deployment(1, status.clone())), InProgress);
    // No conditions yet.
    status["conditions"] = json!([]);
    assert_eq!(
        of_object(&deployment(1, status.clone())),
        progressing("rollout progress not reported")
    );
    // Without a progress deadline the controller keeps no Progressing condition: Available decides.
    let no_deadline = |status: Value| {
        workload(
            "Deployment",
            json!({"replicas": 1, "progressDeadlineSeconds": 2147483647}),
            status,
        )
    };
    assert_eq!(
        of_object(&no_deadline(status.clone())),
        progressing("availability not reported")
    );
    status["conditions"] = json!([{"type": "Available", "status": "True"}]);
    assert_eq!(status_of(no_deadline(status)), Current);
}

#[test]
fn deployment_past_its_progress_deadline_is_failed() {
    let mut status = deployment_status(2, 1, 1, 1);
    status["conditions"][1] = json!({"type": "Progressing", "status": "False",
        "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out"});
    let h = of_object(&deployment(2, status));
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
    let h = of_object(&deployment(1, status));
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
    let mut obj = deployment(1, deployment_status(1, 1, 1, 1));
    obj["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    assert_eq!(of_object(&obj), progressing("being deleted"));
}

#[test]
fn stalled_and_reconciling_conditions_apply_to_every_kind() {
    let mut obj = deployment(1, deployment_status(1, 1, 1, 1));
    obj["status"]["conditions"] = json!([{"type": "Stalled", "status": "True", "message": "stuck"}]);
    assert_eq!(of_object(&obj), failed("stuck"));
    obj["status"]["conditions"] = json!([{"type": "Reconciling", "status": "True", "reason": "Busy"}]);
    assert_eq!(of_object(&obj), progressing("Busy"));
}

#[test]
fn stateful_set_is_current_only_when_rolled_out() {
    // No partition (an explicit RollingUpdate without rollingUpdate, as 1.20 leaves it): revisions decide.
    // currentRevision is r1 throughout; `update_revision` r2 means a rollout has begun.
    let status = |ready, current, updated, update_revision| {
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": ready, "currentReplicas": current,
               "updatedReplicas": updated, "currentRevision": "r1", "updateRevision": update_revision})
    };
    let spec = json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}});
    let sts = |s| of_object(&workload("StatefulSet", spec.clone(), s));
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
    let mut fewer = status(3, 3, 3, "r1");
    fewer["replicas"] = json!(2);
    assert_eq!(sts(fewer).message, "2/3 replicas created");
    let mut more = status(3, 3, 3, "r1");
    more["replicas"] = json!(4);
    assert_eq!(sts(more).message, "1 replicas pending termination");
}

#[test]
fn stateful_set_with_partition_only_waits_for_ordinals_above_it() {
    let spec = |partition| {
        json!({"replicas": 3,
               "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}})
    };
    let status = |updated| {
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3 - updated,
               "updatedReplicas": updated, "currentRevision": "r1", "updateRevision": "r2"})
    };
    assert_eq!(status_of(workload("StatefulSet", spec(2), status(1))), Current);
    assert_eq!(status_of(workload("StatefulSet", spec(2), status(0))), InProgress);
    // Partition 0 (the API server's default): every Pod updated and ready is done, even before the
    // controller records the new revision as current.
    assert_eq!(status_of(workload("StatefulSet", spec(0), status(3))), Current);
    assert_eq!(
        of_object(&workload("StatefulSet", spec(0), status(2))).message,
        "2/3 replicas updated (partition 0)"
    );
}

#[test]
fn stateful_set_on_delete_still_waits_for_its_pods() {
    let spec = json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}});
    let status = |ready| {
        json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": ready,
               "currentRevision": "r1", "updateRevision": "r2"})
    };
    assert_eq!(
        of_object(&workload("StatefulSet", spec.clone(), status(0))).message,
        "0/2 replicas ready"
    );
    assert_eq!(status_of(workload("StatefulSet", spec, status(2))), Current);
}

#[test]
fn daemon_set_is_current_when_every_node_runs_the_new_pod() {
    let status = |desired, updated, available| {
        json!({"observedGeneration": 2, "desiredNumberScheduled": desired, "currentNumberScheduled": desired,
               "updatedNumberScheduled": updated, "numberAvailable": available, "numberReady": available})
    };
    let ds = |s| of_object(&workload("DaemonSet", json!({}), s));
    assert_eq!(ds(status(3, 3, 3)).status, Current);
    assert_eq!(ds(status(3, 2, 3)).message, "2/3 pods updated");
    assert_eq!(ds(status(3, 3, 1)).message, "1/3 pods available");
    let mut unscheduled = status(3, 3, 3);
    unscheduled["currentNumberScheduled"] = json!(2);
    assert_eq!(ds(unscheduled).message, "2/3 pods scheduled");
    assert_eq!(ds(status(0, 0, 0)), current("no nodes to schedule on"));
    assert_eq!(
        ds(json!({"observedGeneration": 2})),
        progressing("desired number of pods not reported")
    );
}

#[test]
fn replica_set_counts_labelled_available_and_ready_replicas() {
    let spec = json!({"replicas": 2});
    let status = |ready| {
        json!({"observedGeneration": 2, "replicas": 2, "fullyLabeledReplicas": 2,
               "readyReplicas": ready, "availableReplicas": ready})
    };
    let rs = |s| of_object(&workload("ReplicaSet", spec.clone(), s));
    assert_eq!(rs(status(2)), current("2/2 replicas ready"));
    assert_eq!(rs(status(1)).message, "1/2 replicas available");
    let mut unlabelled = status(2);
    unlabelled["fullyLabeledReplicas"] = json!(1);
    assert_eq!(rs(unlabelled).message, "1/2 replicas labelled");
    // Pod creation failed (quota, admission): the controller retries, so it is not final.
    let mut failing = status(0);
    failing["conditions"] = json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}]);
    assert_eq!(rs(failing), progressing("FailedCreate"));
}

#[test]
fn job_is_current_only_when_complete() {
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
    let mut job = with_conditions("batch/v1", "Job", json!([]));
    assert_eq!(of_object(&job), progressing("not started"));
    job["status"]["startTime"] = json!("2024-01-01T00:00:00Z");
    job["status"]["active"] = json!(1);
    assert_eq!(of_object(&job), progressing("running: 1 active, 0 succeeded"));
    let mut suspended = with_conditions("batch/v1", "Job", json!([]));
    suspended["spec"] = json!({"suspend": true});
    assert_eq!(of_object(&suspended), progressing("suspended"));
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
    assert_eq!(status_of(pod(json!({"phase": "Unknown"}))), Unknown);
    assert_eq!(status_of(pod(json!({}))), InProgress);
    let crashing = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}));
    assert_eq!(of_object(&crashing), failed("container app: CrashLoopBackOff"));
    let no_image = pod(json!({"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}));
    assert_eq!(of_object(&no_image), failed("container init: ImagePullBackOff"));
}

#[test]
fn unschedulable_pod_is_failed_and_other_scheduling_waits_are_in_progress() {
    let pending = |reason: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": reason, "message": "0/3 nodes fit"}]}})
    };
    assert_eq!(
        of_object(&pending("Unschedulable")),
        failed("Unschedulable: 0/3 nodes fit")
    );
    assert_eq!(status_of(pending("SchedulerError")), InProgress);
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
fn crd_is_current_once_established_and_failed_when_refused() {
    let crd = |c: Value| with_conditions("apiextensions.k8s.io/v1", "CustomResourceDefinition", c);
    assert_eq!(
        status_of(crd(json!([{"type": "Established", "status": "True"}]))),
        Current
    );
    assert_eq!(
        status_of(crd(
            json!([{"type": "Established", "status": "False", "reason": "Installing"}])
        )),
        InProgress
    );
    assert_eq!(status_of(crd(json!([]))), InProgress);
    assert_eq!(
        status_of(crd(
            json!([{"type": "Established", "status": "False", "reason": "NotAccepted"}])
        )),
        Failed
    );
    // A rename that conflicts leaves the old Established=True in place.
    let conflict = json!([{"type": "Established", "status": "True"},
                          {"type": "NamesAccepted", "status": "False", "reason": "KindConflict"}]);
    assert_eq!(of_object(&crd(conflict)), failed("KindConflict"));
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
        of_object(&cr(json!([{"type": "Ready", "status": "Unknown"}]))),
        progressing("readiness unknown")
    );
    assert_eq!(
        of_object(&cr(json!([{"type": "Ready", "status": "Maybe"}]))),
        health(Unknown, "Ready condition has status \"Maybe\"")
    );
    let reconciling = json!([{"type": "Ready", "status": "True"}, {"type": "Reconciling", "status": "True"}]);
    assert_eq!(status_of(cr(reconciling)), InProgress);
    assert_eq!(status_of(cr(json!([]))), Current);
}

#[test]
fn custom_resource_with_stale_observed_generation_is_in_progress() {
    let mut cr = with_conditions(
        "example.com/v1",
        "Widget",
        json!([{"type": "Ready", "status": "True"}]),
    );
    cr["metadata"]["generation"] = json!(4);
    cr["status"]["observedGeneration"] = json!(3);
    assert_eq!(status_of(cr.clone()), InProgress);
    // An observedGeneration ahead of the generation is no better (kstatus: any mismatch).
    cr["status"]["observedGeneration"] = json!(5);
    assert_eq!(status_of(cr.clone()), InProgress);
    // Ready=True written for an older generation says nothing about this one.
    cr["status"]["observedGeneration"] = json!(4);
    cr["status"]["conditions"][0]["observedGeneration"] = json!(3);
    assert_eq!(
        of_object(&cr).message,
        "waiting for controller to observe generation 4 (observed 3)"
    );
}

#[test]
fn stalled_custom_resource_is_failed_whatever_the_condition_order() {
    let stalled = json!([{"type": "Ready", "status": "False"},
                         {"type": "Stalled", "status": "True", "message": "bad spec"}]);
    let h = of_object(&with_conditions("example.com/v1", "Widget", stalled));
    assert_eq!(h, failed("bad spec"));
    let both = json!([{"type": "Reconciling", "status": "True"},
                      {"type": "Stalled", "status": "True", "reason": "Broken"}]);
    assert_eq!(
        of_object(&with_conditions("example.com/v1", "Widget", both)),
        failed("Broken")
    );
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
