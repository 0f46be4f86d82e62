//! Status files that YAML 1.1 could misread (DESIGN §6): objects whose names, labels, annotations, selectors
//! and ConfigMap data are scalars like `on`, `no`, `y`, `0777`, `1e3`, `null` or `~` are synced by the real
//! agent and reported by the real status writer. The committed file must read as strings in YAML 1.2 (asserted
//! here) and in YAML 1.1, as EMCO's rsync reads it with Go's `sigs.k8s.io/yaml`: the file and our YAML 1.2
//! reading of it go into the oracle corpus, and the Go oracle (`tests/oracles`, run by `make test` after the
//! Rust tests) fails on any scalar Go reads differently.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::process::run;
use outpost_tests::{git_servers, kube_env, oracle, unique};
use serde_json::{Value, json};

/// Scalars YAML 1.1 reads as booleans, numbers or null, all valid as label keys and values: booleans of
/// every spelling, octal, hex, binary, exponents, underscores, nulls, a date.
const LABEL_SCALARS: &[&str] = &[
    "on",
    "off",
    "On",
    "OFF",
    "yes",
    "no",
    "Yes",
    "NO",
    "y",
    "n",
    "Y",
    "N",
    "True",
    "true",
    "FALSE",
    "null",
    "Null",
    "0777",
    "012",
    "08",
    "0o17",
    "1e3",
    "1E3",
    "1e-3",
    "0x1F",
    "0b101",
    "1_000",
    "10",
    "1.5",
    "2001-12-14",
];

/// Values only an annotation (or ConfigMap data) can hold: more nulls, sexagesimals, infinities, the merge key
/// and the characters that start or break a plain scalar.
const OTHER_SCALARS: &[&str] = &[
    "~",
    "",
    "12:30",
    "1:20",
    ".inf",
    "-.inf",
    ".NaN",
    "+1",
    "-1",
    "<<",
    "=",
    "*",
    "&anchor",
    "!tag",
    "- item",
    "? key",
    "#comment",
    "a: b",
    "x #y",
    "@at",
    "`tick",
    "%percent",
    "|",
    ">",
    "'",
    "\"",
    " leading",
    "trailing ",
    "two\nlines",
    "tab\there",
    "[1]",
    "{a: 1}",
    "-",
    "2001-12-14T21:59:43.10-05:00",
];

/// Labels with a hostile key and value each, an empty value, and EMCO's deployment id.
fn labels() -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = LABEL_SCALARS
        .iter()
        .map(|s| (s.to_string(), s.to_string()))
        .collect();
    labels.insert("empty".into(), String::new());
    labels.insert("emco/deployment-id".into(), "100-web".into());
    labels
}

/// Annotations: every label scalar as key and value, and every other scalar as a value.
fn annotations() -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = LABEL_SCALARS
        .iter()
        .map(|s| (s.to_string(), s.to_string()))
        .collect();
    for (i, s) in OTHER_SCALARS.iter().enumerate() {
        annotations.insert(format!("value-{i}"), s.to_string());
    }
    annotations
}

/// Metadata with the hostile labels and annotations.
fn metadata(ns: &str, name: &str) -> Value {
    json!({"name": name, "namespace": ns, "labels": labels(), "annotations": annotations()})
}

/// The bundle's manifests, as (file name, single-line JSON as EMCO's rsync writes them).
fn manifests(ns: &str) -> Vec<(&'static str, Value)> {
    let mut template_labels = labels();
    template_labels.insert("app".into(), "web".into());
    vec![
        (
            "web+Deployment.yaml",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(ns, "web"),
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": template_labels, "annotations": annotations()},
                        "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}}),
        ),
        // Object names YAML 1.1 misreads, in the typed arrays and in resourceStatuses.
        (
            "yes+Service.yaml",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata(ns, "yes"),
                "spec": {"selector": labels(), "ports": [{"port": 80, "targetPort": 8080}]}}),
        ),
        (
            "0777+ConfigMap.yaml",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(ns, "0777"),
                "data": annotations()}),
        ),
        (
            "null+ConfigMap.yaml",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "null", "namespace": ns},
                "data": {"on": "off"}}),
        ),
        (
            "on+ResourceQuota.yaml",
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": metadata(ns, "on"),
                "spec": {"hard": {"pods": "10"}}}),
        ),
        (
            "1e3+Secret.yaml",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": metadata(ns, "1e3"),
                "stringData": {"password": "hunter2-do-not-leak", "on": "yes"}}),
        ),
        // The tracker: its name, labels and selector are the document's own fields.
        (
            "100-web.yaml",
            json!({"apiVersion": "k8splugin.io/v1alpha1", "kind": "ResourceBundleState",
                "metadata": {"name": "no", "namespace": ns, "labels": labels()},
                "spec": {"selector": {"matchLabels": {"emco/deployment-id": "100-web"},
                    "matchExpressions": [{"key": "on", "operator": "In", "values": LABEL_SCALARS},
                        {"key": "0777", "operator": "Exists"}]}}}),
        ),
    ]
}

/// Mismatches between `object` (a YAML 1.2 reading) and the strings we wrote, one line each.
fn not_strings(object: &Value, want: &BTreeMap<String, String>, what: &str) -> Vec<String> {
    want.iter()
        .filter(|(k, v)| object.get(k.as_str()) != Some(&Value::String(v.to_string())))
        .map(|(k, v)| format!("{what}[{k:?}]: {:?}, want {v:?}", object.get(k.as_str())))
        .collect()
}

/// The entry of `array` in the status named `name`.
fn named<'a>(doc: &'a Value, array: &str, name: &str) -> Result<&'a Value> {
    doc["status"][array]
        .as_array()
        .with_context(|| format!("status.{array} missing"))?
        .iter()
        .find(|o| o["metadata"]["name"] == name || o["name"] == name)
        .with_context(|| format!("no {name:?} in status.{array}"))
}

#[tokio::test]
async fn labels_names_and_selectors_that_yaml_1_1_misreads_stay_strings_in_the_status_file() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "yaml11").await?;
    let cluster = format!("{}+{}", unique("provider"), unique("edge"));
    let repo = servers.create_repo(&unique("control"))?;
    for (file, manifest) in manifests(&ns) {
        repo.write(
            &format!("clusters/{cluster}/context/100/app/web/{file}"),
            &serde_json::to_string(&manifest)?,
        )?;
    }
    repo.commit("EMCO app with YAML 1.1 scalars")?;
    let out =
        AgentCommand::with_servers(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?.once()?;
    anyhow::ensure!(out.status.success(), "agent: {}", output_text(&out));
    // No controllers run: play one, a Pod the tracker selects lands in podStatuses.
    let mut pod_labels = labels();
    pod_labels.insert("app".into(), "web".into());
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web-0", "labels": pod_labels,
        "annotations": annotations()}, "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}))?;
    Api::<Pod>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &pod)
        .await?;
    let out =
        AgentCommand::status_writer(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?.once()?;
    anyhow::ensure!(out.status.success(), "status writer: {}", output_text(&out));

    let path = format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml");
    let bare = repo.bare.to_str().context("path")?;
    let text = run(
        "git",
        &["-C", bare, "show", &format!("refs/heads/main:{path}")],
        None,
    )?;
    // Our meaning of the file is its YAML 1.2 reading; the Go oracle compares rsync's YAML 1.1 reading with it.
    let doc: Value =
        serde_saphyr::from_str(&text).with_context(|| format!("the status file is not YAML 1.2:\n{text}"))?;
    oracle::record_intended(&path, &text, &doc);

    assert!(!text.contains("hunter2"), "Secret data in the status file");
    let labels = labels();
    let annotations = annotations();
    let mut wrong = Vec::new();
    wrong.extend(not_strings(
        &doc["metadata"]["labels"],
        &labels,
        "metadata.labels",
    ));
    if doc["metadata"]["name"] != "no" {
        wrong.push(format!("metadata.name: {}", doc["metadata"]["name"]));
    }
    let values: Vec<Value> = LABEL_SCALARS.iter().map(|s| json!(s)).collect();
    if doc["spec"]["selector"]["matchExpressions"][0]["values"] != Value::Array(values) {
        wrong.push(format!("spec.selector: {}", doc["spec"]["selector"]));
    }
    let deploy = named(&doc, "deploymentStatuses", "web")?;
    wrong.extend(not_strings(
        &deploy["metadata"]["labels"],
        &labels,
        "deployment labels",
    ));
    wrong.extend(not_strings(
        &deploy["metadata"]["annotations"],
        &annotations,
        "deployment annotations",
    ));
    let template = &deploy["spec"]["template"]["metadata"];
    wrong.extend(not_strings(&template["labels"], &labels, "pod template labels"));
    wrong.extend(not_strings(
        &template["annotations"],
        &annotations,
        "pod template annotations",
    ));
    let service = named(&doc, "serviceStatuses", "yes")?;
    wrong.extend(not_strings(
        &service["metadata"]["labels"],
        &labels,
        "service labels",
    ));
    wrong.extend(not_strings(
        &service["spec"]["selector"],
        &labels,
        "service selector",
    ));
    let config = named(&doc, "configMapStatuses", "0777")?;
    wrong.extend(not_strings(
        &config["metadata"]["annotations"],
        &annotations,
        "configmap annotations",
    ));
    named(&doc, "configMapStatuses", "null")?;
    let pod = named(&doc, "podStatuses", "web-0")?;
    wrong.extend(not_strings(&pod["metadata"]["labels"], &labels, "pod labels"));
    wrong.extend(not_strings(
        &pod["metadata"]["annotations"],
        &annotations,
        "pod annotations",
    ));
    for (kind, name) in [("ResourceQuota", "on"), ("Secret", "1e3")] {
        let entry = named(&doc, "resourceStatuses", name)?;
        if entry["kind"] != kind {
            wrong.push(format!("resourceStatuses {name}: {entry}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "values that did not survive as strings:\n{}\n\nstatus file:\n{text}",
        wrong.join("\n")
    );
    Ok(())
}
