//! kstatus as the oracle of our health (issue 10, DESIGN §9): fixtures covering the cases kstatus's code and
//! documentation distinguish for the kinds we claim are synced through the real agent, given the status a
//! controller would write (through the status subresource: no controllers run here), and judged by
//! `outpost-agent status -o json`. Each live object and our verdict on it are recorded for the Go oracle
//! (tests/oracles/kstatus), which runs kstatus on the same object and fails on any disagreement it does not
//! list as deliberate. This test checks that every object got a verdict, and the verdicts we mean.
//!
//! The fixtures are our own, written from kstatus's rules (sigs.k8s.io/cli-utils/pkg/kstatus/status), and valid
//! on kube-apiserver 1.20 and current releases alike: counts that validation accepts (available ≤ ready ≤
//! replicas), Job conditions with the companions newer servers require, no fields 1.20 lacks.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, oracle, unique};
use serde_json::{Value, json};

/// The bundle every fixture lives in.
const BUNDLE: &str = "oracle";

/// One fixture.
struct Case {
    /// Case name: the key of the oracle's expected differences, and the object's name where it can be.
    name: &'static str,
    /// The object as committed first.
    manifest: Value,
    /// The object as committed second (a spec change: generation 2), for cases about a lagging controller.
    changed: Option<Value>,
    /// What a controller would write through the status subresource, if anything.
    status: Option<Value>,
    /// Our verdict (health status), where it does not depend on the server's version.
    expect: Option<&'static str>,
}

fn case(name: &'static str, manifest: Value, status: Option<Value>, expect: &'static str) -> Case {
    Case {
        name,
        manifest,
        changed: None,
        status,
        expect: Some(expect),
    }
}

/// A status condition.
fn cond(kind: &str, status: &str, reason: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": format!("{kind} is {status}"),
           "lastTransitionTime": "2024-01-01T00:00:00Z"})
}

/// Pod template labelled for `name`, with one container.
fn template(name: &str, restart: &str) -> Value {
    json!({"metadata": {"labels": {"app": name}},
           "spec": {"restartPolicy": restart, "containers": [{"name": "main", "image": "nginx:1.27"}]}})
}

fn apps(kind: &str, ns: &str, name: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": name}});
    spec["template"] = template(name, "Always");
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

/// The same object with a new image: generation 2 once applied.
fn new_image(obj: &Value) -> Value {
    let mut obj = obj.clone();
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    obj
}

/// Conditions of a Deployment whose rollout finished.
fn rolled_out() -> Value {
    json!([
        cond("Available", "True", "MinimumReplicasAvailable"),
        cond("Progressing", "True", "NewReplicaSetAvailable")
    ])
}

fn deployment_status(og: i64, counts: [i64; 4], conditions: Value) -> Value {
    let [replicas, updated, ready, available] = counts;
    json!({"observedGeneration": og, "replicas": replicas, "updatedReplicas": updated, "readyReplicas": ready,
           "availableReplicas": available, "conditions": conditions})
}

fn deployments(ns: &str) -> Vec<Case> {
    let d = |name, replicas: i64| apps("Deployment", ns, name, json!({"replicas": replicas}));
    let mut paused = d("deployment-paused", 1);
    paused["spec"]["paused"] = json!(true);
    let mut no_deadline = d("deployment-no-progress-deadline", 1);
    no_deadline["spec"]["progressDeadlineSeconds"] = json!(2147483647);
    let stale = d("deployment-stale-observed-generation", 1);
    vec![
        case(
            "deployment-no-status",
            d("deployment-no-status", 1),
            None,
            "InProgress",
        ),
        case(
            "deployment-available",
            d("deployment-available", 2),
            Some(deployment_status(1, [2, 2, 2, 2], rolled_out())),
            "Current",
        ),
        // The unsafe case issue 10 found: counts done, Available=True, but the controller says the rollout
        // is not progressing (and not for its deadline).
        case(
            "deployment-progressing-false-other-reason",
            d("deployment-progressing-false-other-reason", 1),
            Some(deployment_status(
                1,
                [1, 1, 1, 1],
                json!([
                    cond("Available", "True", "MinimumReplicasAvailable"),
                    cond("Progressing", "False", "ReplicaSetCreateError")
                ]),
            )),
            "InProgress",
        ),
        case(
            "deployment-progress-deadline-exceeded",
            d("deployment-progress-deadline-exceeded", 2),
            Some(deployment_status(
                1,
                [2, 1, 1, 1],
                json!([
                    cond("Available", "True", "MinimumReplicasAvailable"),
                    cond("Progressing", "False", "ProgressDeadlineExceeded")
                ]),
            )),
            "Failed",
        ),
        case(
            "deployment-rollout-in-progress",
            d("deployment-rollout-in-progress", 2),
            Some(deployment_status(
                1,
                [3, 1, 2, 2],
                json!([
                    cond("Available", "True", "MinimumReplicasAvailable"),
                    cond("Progressing", "True", "ReplicaSetUpdated")
                ]),
            )),
            "InProgress",
        ),
        case(
            "deployment-too-few-replicas",
            d("deployment-too-few-replicas", 3),
            Some(deployment_status(1, [2, 2, 2, 2], rolled_out())),
            "InProgress",
        ),
        case(
            "deployment-old-replicas-pending-termination",
            d("deployment-old-replicas-pending-termination", 2),
            Some(deployment_status(1, [3, 2, 3, 3], rolled_out())),
            "InProgress",
        ),
        case(
            "deployment-updated-not-available",
            d("deployment-updated-not-available", 2),
            Some(deployment_status(1, [2, 2, 2, 1], rolled_out())),
            "InProgress",
        ),
        case(
            "deployment-available-false",
            d("deployment-available-false", 1),
            Some(deployment_status(
                1,
                [1, 1, 1, 1],
                json!([
                    cond("Available", "False", "MinimumReplicasUnavailable"),
                    cond("Progressing", "True", "NewReplicaSetAvailable")
                ]),
            )),
            "InProgress",
        ),
        case(
            "deployment-no-conditions",
            d("deployment-no-conditions", 1),
            Some(deployment_status(1, [1, 1, 1, 1], json!([]))),
            "InProgress",
        ),
        case(
            "deployment-no-progress-deadline",
            no_deadline,
            Some(deployment_status(
                1,
                [1, 1, 1, 1],
                json!([cond("Available", "True", "MinimumReplicasAvailable")]),
            )),
            "Current",
        ),
        case(
            "deployment-scaled-to-zero",
            d("deployment-scaled-to-zero", 0),
            Some(deployment_status(1, [0, 0, 0, 0], rolled_out())),
            "Current",
        ),
        case(
            "deployment-paused",
            paused,
            Some(deployment_status(
                1,
                [1, 1, 1, 1],
                json!([
                    cond("Available", "True", "MinimumReplicasAvailable"),
                    cond("Progressing", "Unknown", "DeploymentPaused")
                ]),
            )),
            "InProgress",
        ),
        Case {
            name: "deployment-stale-observed-generation",
            changed: Some(new_image(&stale)),
            manifest: stale,
            status: Some(deployment_status(1, [1, 1, 1, 1], rolled_out())),
            expect: Some("InProgress"),
        },
    ]
}

fn sts_status(og: i64, replicas: i64, ready: i64, current: i64, updated: i64, revisions: [&str; 2]) -> Value {
    json!({"observedGeneration": og, "replicas": replicas, "readyReplicas": ready,
           "currentReplicas": current, "updatedReplicas": updated,
           "currentRevision": revisions[0], "updateRevision": revisions[1]})
}

fn stateful_sets(ns: &str) -> Vec<Case> {
    let s = |name: &str, replicas: i64, strategy: Option<Value>| {
        let mut spec = json!({"replicas": replicas, "serviceName": name});
        if let Some(strategy) = strategy {
            spec["updateStrategy"] = strategy;
        }
        apps("StatefulSet", ns, name, spec)
    };
    let on_delete = || Some(json!({"type": "OnDelete"}));
    let partition = |p: i64| Some(json!({"type": "RollingUpdate", "rollingUpdate": {"partition": p}}));
    let stale = s("statefulset-stale-observed-generation", 1, None);
    vec![
        case(
            "statefulset-no-status",
            s("statefulset-no-status", 1, None),
            None,
            "InProgress",
        ),
        case(
            "statefulset-rolled-out",
            s("statefulset-rolled-out", 2, None),
            Some(sts_status(1, 2, 2, 2, 2, ["r1", "r1"])),
            "Current",
        ),
        case(
            "statefulset-too-few-replicas",
            s("statefulset-too-few-replicas", 3, None),
            Some(sts_status(1, 2, 2, 2, 2, ["r1", "r1"])),
            "InProgress",
        ),
        case(
            "statefulset-not-ready",
            s("statefulset-not-ready", 2, None),
            Some(sts_status(1, 2, 1, 2, 2, ["r1", "r1"])),
            "InProgress",
        ),
        case(
            "statefulset-extra-replicas",
            s("statefulset-extra-replicas", 2, None),
            Some(sts_status(1, 3, 3, 3, 3, ["r1", "r1"])),
            "InProgress",
        ),
        case(
            "statefulset-rollout-in-progress",
            s("statefulset-rollout-in-progress", 2, None),
            Some(sts_status(1, 2, 2, 1, 1, ["r1", "r2"])),
            "InProgress",
        ),
        // Every Pod updated and ready; the controller has not yet recorded r2 as current.
        case(
            "statefulset-updated-before-revision-recorded",
            s("statefulset-updated-before-revision-recorded", 2, partition(0)),
            Some(sts_status(1, 2, 2, 0, 2, ["r1", "r2"])),
            "Current",
        ),
        case(
            "statefulset-partition-rollout-done",
            s("statefulset-partition-rollout-done", 3, partition(2)),
            Some(sts_status(1, 3, 3, 2, 1, ["r1", "r2"])),
            "Current",
        ),
        case(
            "statefulset-partition-rollout-waiting",
            s("statefulset-partition-rollout-waiting", 3, partition(1)),
            Some(sts_status(1, 3, 3, 2, 1, ["r1", "r2"])),
            "InProgress",
        ),
        // RollingUpdate without rollingUpdate: whether the server defaults a partition decides which of
        // kstatus's paths applies (revisions or updated counts), so only the oracle judges it.
        Case {
            name: "statefulset-rolling-update-revision-mismatch",
            manifest: s(
                "statefulset-rolling-update-revision-mismatch",
                2,
                Some(json!({"type": "RollingUpdate"})),
            ),
            changed: None,
            status: Some(sts_status(1, 2, 2, 2, 2, ["r1", "r2"])),
            expect: None,
        },
        case(
            "statefulset-on-delete-ready",
            s("statefulset-on-delete-ready", 2, on_delete()),
            Some(sts_status(1, 2, 2, 2, 0, ["r1", "r2"])),
            "Current",
        ),
        case(
            "statefulset-on-delete-not-ready",
            s("statefulset-on-delete-not-ready", 2, on_delete()),
            Some(sts_status(1, 2, 0, 2, 0, ["r1", "r1"])),
            "InProgress",
        ),
        case(
            "statefulset-scaled-to-zero-unobserved",
            s("statefulset-scaled-to-zero-unobserved", 0, None),
            None,
            "InProgress",
        ),
        Case {
            name: "statefulset-stale-observed-generation",
            changed: Some(new_image(&stale)),
            manifest: stale,
            status: Some(sts_status(1, 1, 1, 1, 1, ["r1", "r1"])),
            expect: Some("InProgress"),
        },
    ]
}

fn ds_status(og: i64, desired: i64, counts: [i64; 4]) -> Value {
    let [scheduled, updated, available, ready] = counts;
    json!({"observedGeneration": og, "desiredNumberScheduled": desired, "currentNumberScheduled": scheduled,
           "updatedNumberScheduled": updated, "numberAvailable": available, "numberReady": ready,
           "numberMisscheduled": 0})
}

fn daemon_sets(ns: &str) -> Vec<Case> {
    let d = |name| apps("DaemonSet", ns, name, json!({}));
    let stale = d("daemonset-stale-observed-generation");
    vec![
        case(
            "daemonset-no-status",
            d("daemonset-no-status"),
            None,
            "InProgress",
        ),
        case(
            "daemonset-rolled-out",
            d("daemonset-rolled-out"),
            Some(ds_status(1, 2, [2, 2, 2, 2])),
            "Current",
        ),
        case(
            "daemonset-no-nodes",
            d("daemonset-no-nodes"),
            Some(ds_status(1, 0, [0, 0, 0, 0])),
            "Current",
        ),
        case(
            "daemonset-not-scheduled",
            d("daemonset-not-scheduled"),
            Some(ds_status(1, 2, [1, 1, 1, 1])),
            "InProgress",
        ),
        case(
            "daemonset-updating",
            d("daemonset-updating"),
            Some(ds_status(1, 2, [2, 1, 2, 2])),
            "InProgress",
        ),
        case(
            "daemonset-not-available",
            d("daemonset-not-available"),
            Some(ds_status(1, 2, [2, 2, 1, 2])),
            "InProgress",
        ),
        case(
            "daemonset-not-ready",
            d("daemonset-not-ready"),
            Some(ds_status(1, 2, [2, 2, 2, 1])),
            "InProgress",
        ),
        Case {
            name: "daemonset-stale-observed-generation",
            changed: Some(new_image(&stale)),
            manifest: stale,
            status: Some(ds_status(1, 2, [2, 2, 2, 2])),
            expect: Some("InProgress"),
        },
    ]
}

fn rs_status(replicas: i64, labelled: i64, ready: i64, available: i64, conditions: Value) -> Value {
    json!({"observedGeneration": 1, "replicas": replicas, "fullyLabeledReplicas": labelled,
           "readyReplicas": ready, "availableReplicas": available, "conditions": conditions})
}

fn replica_sets(ns: &str) -> Vec<Case> {
    let r = |name, replicas: i64| apps("ReplicaSet", ns, name, json!({"replicas": replicas}));
    vec![
        case(
            "replicaset-no-status",
            r("replicaset-no-status", 1),
            None,
            "InProgress",
        ),
        case(
            "replicaset-ready",
            r("replicaset-ready", 2),
            Some(rs_status(2, 2, 2, 2, json!([]))),
            "Current",
        ),
        case(
            "replicaset-not-labelled",
            r("replicaset-not-labelled", 2),
            Some(rs_status(2, 1, 2, 2, json!([]))),
            "InProgress",
        ),
        case(
            "replicaset-not-available",
            r("replicaset-not-available", 2),
            Some(rs_status(2, 2, 2, 1, json!([]))),
            "InProgress",
        ),
        case(
            "replicaset-extra-replicas",
            r("replicaset-extra-replicas", 2),
            Some(rs_status(3, 3, 3, 3, json!([]))),
            "InProgress",
        ),
        case(
            "replicaset-replica-failure",
            r("replicaset-replica-failure", 1),
            Some(rs_status(
                0,
                0,
                0,
                0,
                json!([cond("ReplicaFailure", "True", "FailedCreate")]),
            )),
            "InProgress",
        ),
        case(
            "replicaset-scaled-to-zero-unobserved",
            r("replicaset-scaled-to-zero-unobserved", 0),
            None,
            "InProgress",
        ),
    ]
}

fn jobs(ns: &str) -> Vec<Case> {
    let j = |name: &str| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
               "spec": {"backoffLimit": 0, "template": template(name, "Never")}})
    };
    let start = "2024-01-01T00:00:00Z";
    vec![
        case("job-not-started", j("job-not-started"), None, "InProgress"),
        case(
            "job-running",
            j("job-running"),
            Some(json!({"startTime": start, "active": 1})),
            "InProgress",
        ),
        // Newer servers accept a finished Job only with the conditions the Job controller sets before it.
        case(
            "job-complete",
            j("job-complete"),
            Some(
                json!({"startTime": start, "completionTime": "2024-01-01T00:01:00Z", "succeeded": 1,
                "conditions": [cond("SuccessCriteriaMet", "True", "CompletionsReached"),
                               cond("Complete", "True", "CompletionsReached")]}),
            ),
            "Current",
        ),
        case(
            "job-failed",
            j("job-failed"),
            Some(json!({"startTime": start, "failed": 1,
                "conditions": [cond("FailureTarget", "True", "BackoffLimitExceeded"),
                               cond("Failed", "True", "BackoffLimitExceeded")]})),
            "Failed",
        ),
    ]
}

fn pods(ns: &str) -> Vec<Case> {
    let p = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
               "spec": template(name, "Never")["spec"]})
    };
    let container = |ready: bool, state: Value| {
        json!([{"name": "main", "image": "nginx:1.27", "imageID": "", "ready": ready, "restartCount": 0,
                "state": state}])
    };
    let waiting = |reason: &str| json!({"waiting": {"reason": reason, "message": reason}});
    let running = json!({"running": {"startedAt": "2024-01-01T00:00:00Z"}});
    let not_ready = json!([
        cond("PodScheduled", "True", ""),
        cond("Ready", "False", "ContainersNotReady")
    ]);
    vec![
        case("pod-pending", p("pod-pending"), None, "InProgress"),
        case(
            "pod-running-ready",
            p("pod-running-ready"),
            Some(
                json!({"phase": "Running", "containerStatuses": container(true, running.clone()),
                "conditions": [cond("PodScheduled", "True", ""), cond("Ready", "True", "")]}),
            ),
            "Current",
        ),
        case(
            "pod-running-not-ready",
            p("pod-running-not-ready"),
            Some(
                json!({"phase": "Running", "containerStatuses": container(false, running),
                "conditions": not_ready}),
            ),
            "InProgress",
        ),
        case(
            "pod-crash-looping",
            p("pod-crash-looping"),
            Some(json!({"phase": "Running",
                "containerStatuses": container(false, waiting("CrashLoopBackOff")),
                "conditions": not_ready})),
            "Failed",
        ),
        case(
            "pod-image-pull-backoff",
            p("pod-image-pull-backoff"),
            Some(json!({"phase": "Pending",
                "containerStatuses": container(false, waiting("ImagePullBackOff")),
                "conditions": not_ready})),
            "Failed",
        ),
        case(
            "pod-unschedulable",
            p("pod-unschedulable"),
            Some(json!({"phase": "Pending",
                "conditions": [cond("PodScheduled", "False", "Unschedulable")]})),
            "Failed",
        ),
        case(
            "pod-scheduling-other-reason",
            p("pod-scheduling-other-reason"),
            Some(json!({"phase": "Pending",
                "conditions": [cond("PodScheduled", "False", "SchedulerError")]})),
            "InProgress",
        ),
        case(
            "pod-succeeded",
            p("pod-succeeded"),
            Some(json!({"phase": "Succeeded"})),
            "Current",
        ),
        case(
            "pod-failed",
            p("pod-failed"),
            Some(json!({"phase": "Failed", "message": "exit code 1"})),
            "Failed",
        ),
        case(
            "pod-phase-unknown",
            p("pod-phase-unknown"),
            Some(json!({"phase": "Unknown"})),
            "Unknown",
        ),
    ]
}

fn claims_and_services(ns: &str) -> Vec<Case> {
    let pvc = |name: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    };
    let phase =
        |p: &str| json!({"phase": p, "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}});
    let svc = |name: &str, kind: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
               "spec": {"type": kind, "selector": {"app": name},
                        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
    };
    vec![
        case("pvc-pending", pvc("pvc-pending"), None, "InProgress"),
        case("pvc-bound", pvc("pvc-bound"), Some(phase("Bound")), "Current"),
        case("pvc-lost", pvc("pvc-lost"), Some(phase("Lost")), "Failed"),
        case(
            "service-cluster-ip",
            svc("service-cluster-ip", "ClusterIP"),
            None,
            "Current",
        ),
        case(
            "service-load-balancer-pending",
            svc("service-load-balancer-pending", "LoadBalancer"),
            None,
            "InProgress",
        ),
        case(
            "service-load-balancer-ready",
            svc("service-load-balancer-ready", "LoadBalancer"),
            Some(json!({"loadBalancer": {"ingress": [{"hostname": "lb.outpost.test"}]}})),
            "Current",
        ),
        case(
            "configmap",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "configmap", "namespace": ns}, "data": {"k": "v"}}),
            None,
            "Current",
        ),
    ]
}

/// A CRD for kind `kind` of `group` whose objects carry any spec and status.
fn crd(group: &str, plural: &str, kind: &str) -> Value {
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": format!("{plural}.{group}")},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind,
                              "listKind": format!("{kind}List")},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                                  "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                      "properties": {"spec": open, "status": open}}}}]}})
}

/// CRDs, Namespaces and custom resources with kstatus's generic conditions.
fn cluster_kinds(ns: &str, group: &str, names: &Names) -> Vec<Case> {
    let gadgets = crd(&names.crd_group, "gadgets", "Gadget");
    // A new short name that the other CRD of the group already serves as its plural (kind and singular are
    // immutable; short names are not).
    let mut conflicting = gadgets.clone();
    conflicting["spec"]["names"]["shortNames"] = json!(["gizmos"]);
    let namespace = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": {"outpost.test/fixture": "true"}}})
    };
    let widget = |name: &str| {
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
               "metadata": {"name": name, "namespace": ns}, "spec": {"size": 1}})
    };
    let conditions = |c: Value| Some(json!({"conditions": c}));
    let stale = widget("widget-stale-observed-generation");
    let mut stale_changed = stale.clone();
    stale_changed["spec"]["size"] = json!(2);
    let older = widget("widget-ready-for-older-generation");
    let mut older_changed = older.clone();
    older_changed["spec"]["size"] = json!(2);
    let mut ready_for_gen_1 = cond("Ready", "True", "Succeeded");
    ready_for_gen_1["observedGeneration"] = json!(1);
    vec![
        case(
            "crd-established",
            crd(group, "widgets", "Widget"),
            None,
            "Current",
        ),
        case(
            "crd-other-established",
            crd(&names.crd_group, "gizmos", "Gizmo"),
            None,
            "Current",
        ),
        Case {
            name: "crd-names-not-accepted",
            manifest: gadgets,
            changed: Some(conflicting),
            status: None,
            expect: Some("Failed"),
        },
        case(
            "namespace-active",
            namespace(&names.active_namespace),
            None,
            "Current",
        ),
        case(
            "namespace-terminating",
            namespace(&names.terminating_namespace),
            None,
            "InProgress",
        ),
        case("widget-no-status", widget("widget-no-status"), None, "Current"),
        case(
            "widget-ready",
            widget("widget-ready"),
            conditions(json!([cond("Ready", "True", "Succeeded")])),
            "Current",
        ),
        case(
            "widget-not-ready",
            widget("widget-not-ready"),
            conditions(json!([cond("Ready", "False", "Provisioning")])),
            "InProgress",
        ),
        case(
            "widget-ready-unknown",
            widget("widget-ready-unknown"),
            conditions(json!([cond("Ready", "Unknown", "Checking")])),
            "InProgress",
        ),
        case(
            "widget-ready-invalid-status",
            widget("widget-ready-invalid-status"),
            conditions(json!([cond("Ready", "Maybe", "Guessing")])),
            "Unknown",
        ),
        case(
            "widget-reconciling",
            widget("widget-reconciling"),
            conditions(json!([
                cond("Ready", "True", "Succeeded"),
                cond("Reconciling", "True", "Progressing")
            ])),
            "InProgress",
        ),
        case(
            "widget-stalled",
            widget("widget-stalled"),
            conditions(json!([
                cond("Ready", "False", "Failing"),
                cond("Stalled", "True", "InvalidSpec")
            ])),
            "Failed",
        ),
        case(
            "widget-reconciling-listed-before-stalled",
            widget("widget-reconciling-listed-before-stalled"),
            conditions(json!([
                cond("Reconciling", "True", "Retrying"),
                cond("Stalled", "True", "InvalidSpec")
            ])),
            "Failed",
        ),
        case(
            "widget-conditions-false",
            widget("widget-conditions-false"),
            conditions(json!([
                cond("Reconciling", "False", "Done"),
                cond("Stalled", "False", "Done"),
                cond("Ready", "True", "Succeeded")
            ])),
            "Current",
        ),
        case(
            "widget-observed-generation-current",
            widget("widget-observed-generation-current"),
            Some(json!({"observedGeneration": 1, "conditions": [cond("Ready", "True", "Succeeded")]})),
            "Current",
        ),
        Case {
            name: "widget-stale-observed-generation",
            manifest: stale,
            changed: Some(stale_changed),
            status: Some(
                json!({"observedGeneration": 1, "conditions": [cond("Ready", "True", "Succeeded")]}),
            ),
            expect: Some("InProgress"),
        },
        Case {
            name: "widget-ready-for-older-generation",
            manifest: older,
            changed: Some(older_changed),
            status: Some(json!({"conditions": [ready_for_gen_1]})),
            expect: Some("InProgress"),
        },
    ]
}

/// Names of cluster-scoped fixtures, unique per run.
struct Names {
    /// Group of the two CRDs whose names come to conflict.
    crd_group: String,
    /// A Namespace that stays.
    active_namespace: String,
    /// A Namespace deleted after the sync (no controller finalizes it, so it stays Terminating).
    terminating_namespace: String,
}

/// The API resource of a fixture's kind and whether it is namespaced.
fn resource(obj: &Value) -> Result<(ApiResource, bool)> {
    let api_version = obj["apiVersion"].as_str().context("apiVersion")?;
    let kind = obj["kind"].as_str().context("kind")?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (plural, namespaced) = match kind {
        "Deployment" => ("deployments", true),
        "StatefulSet" => ("statefulsets", true),
        "DaemonSet" => ("daemonsets", true),
        "ReplicaSet" => ("replicasets", true),
        "Job" => ("jobs", true),
        "Pod" => ("pods", true),
        "PersistentVolumeClaim" => ("persistentvolumeclaims", true),
        "Service" => ("services", true),
        "ConfigMap" => ("configmaps", true),
        "Widget" => ("widgets", true),
        "Namespace" => ("namespaces", false),
        "CustomResourceDefinition" => ("customresourcedefinitions", false),
        other => anyhow::bail!("no plural known for {other}"),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), namespaced))
}

fn api_for(client: &kube::Client, obj: &Value) -> Result<Api<DynamicObject>> {
    let (ar, namespaced) = resource(obj)?;
    Ok(match (namespaced, obj["metadata"]["namespace"].as_str()) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    })
}

fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// Commit every case's manifest (`changed` ones in their second form when `second`).
fn write_cases(repo: &outpost_tests::TestRepo, dir: &str, cases: &[Case], second: bool) -> Result<()> {
    for c in cases {
        let obj = match (&c.changed, second) {
            (Some(changed), true) => changed,
            _ => &c.manifest,
        };
        repo.write(&format!("{dir}/{}.yaml", c.name), &serde_json::to_string(obj)?)?;
    }
    Ok(())
}

#[tokio::test]
async fn health_verdicts_are_recorded_for_kstatus_on_every_case_it_distinguishes() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let server = client.apiserver_version().await?.git_version;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "health").await?;
    let group = format!("{}.outpost.test", unique("widgets"));
    let names = Names {
        crd_group: format!("{}.outpost.test", unique("gadgets")),
        active_namespace: unique("health-active"),
        terminating_namespace: unique("health-terminating"),
    };
    let cases: Vec<Case> = [
        deployments(&ns),
        stateful_sets(&ns),
        daemon_sets(&ns),
        replica_sets(&ns),
        jobs(&ns),
        pods(&ns),
        claims_and_services(&ns),
        cluster_kinds(&ns, &group, &names),
    ]
    .into_iter()
    .flatten()
    .collect();
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("health"))?;
    let dir = format!("clusters/{cluster}/{BUNDLE}");
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::File)?;

    // First commit, then a second that changes some specs (generation 2) and gives a CRD a conflicting short
    // name; statuses are written after both, as controllers would.
    write_cases(&repo, &dir, &cases, false)?;
    repo.commit("health fixtures")?;
    let out = agent.once()?;
    anyhow::ensure!(out.status.success(), "first sync: {}", output_text(&out));
    write_cases(&repo, &dir, &cases, true)?;
    repo.commit("new generations and a conflicting CRD short name")?;
    let out = agent.once()?;
    anyhow::ensure!(out.status.success(), "second sync: {}", output_text(&out));
    for c in &cases {
        let api = api_for(&client, &c.manifest)?;
        if c.changed.is_some() {
            // The cases about a lagging controller need the spec change to have made a generation 2.
            let live = api.get(name_of(&c.manifest)).await?;
            anyhow::ensure!(
                live.metadata.generation == Some(2),
                "{}: generation {:?} after the second sync",
                c.name,
                live.metadata.generation
            );
        }
        if let Some(status) = &c.status {
            api.patch_status(
                name_of(&c.manifest),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
            .with_context(|| format!("{}: set status", c.name))?;
        }
    }
    let namespaces: Api<DynamicObject> = api_for(&client, &json!({"apiVersion": "v1", "kind": "Namespace"}))?;
    namespaces
        .delete(&names.terminating_namespace, &DeleteParams::default())
        .await?;

    // The output format through its environment variable (the flag is `-o json`).
    agent.env("OUTPOST_OUTPUT", "json");
    let out = agent.subcommand("status")?;
    anyhow::ensure!(out.status.success(), "status -o json: {}", output_text(&out));
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("status -o json is not JSON: {}", output_text(&out)))?;
    let bundle = report["bundles"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == BUNDLE))
        .with_context(|| format!("no bundle {BUNDLE}: {report:#}"))?;
    let verdicts = bundle["objects"].as_array().context("objects")?;
    assert_eq!(verdicts.len(), cases.len(), "one verdict per object: {bundle:#}");

    let mut wrong = BTreeMap::new();
    for c in &cases {
        let (ar, _) = resource(&c.manifest)?;
        let namespace = c.manifest["metadata"]["namespace"].as_str();
        let matches: Vec<&Value> = verdicts
            .iter()
            .filter(|v| {
                v["kind"] == ar.kind.as_str()
                    && v["group"] == ar.group.as_str()
                    && v["version"] == ar.version.as_str()
                    && v["name"] == name_of(&c.manifest)
                    && v["namespace"].as_str() == namespace
            })
            .collect();
        let [verdict] = matches[..] else {
            panic!("{}: {} verdicts in {bundle:#}", c.name, matches.len());
        };
        let status = verdict["health"]["status"].as_str().unwrap_or_default();
        assert!(
            ["Current", "InProgress", "Failed", "Unknown"].contains(&status)
                && verdict["health"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
            "{}: no verdict in {verdict}",
            c.name
        );
        let live = api_for(&client, &c.manifest)?.get(name_of(&c.manifest)).await?;
        oracle::record_health(c.name, &server, &serde_json::to_value(&live)?, verdict);
        if let Some(expect) = c.expect
            && expect != status
        {
            wrong.insert(
                c.name,
                format!("{status} ({}), meant {expect}", verdict["health"]["message"]),
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "verdicts we did not mean on {server}: {wrong:#?}"
    );
    Ok(())
}
