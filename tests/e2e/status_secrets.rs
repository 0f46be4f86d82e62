//! Status files carry no secrets (issue 12 item 12): no Secret data, no container env values, and no pods
//! from namespaces outside the bundle, however broad the tracker's selector — checked on the file the status
//! writer commits to the real Git server, `res` entries decoded.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};
use serde_json::{Value, json};

use crate::common::{Seen, eventually};
use crate::status::file_on_branch;

/// Long enough for debounce, push retries and polls on a busy machine.
const LANDS: Duration = Duration::from_secs(60);

/// Values that must never appear in a status file, in any encoding.
const SECRET_DATA: &str = "data-value-do-not-leak";
const SECRET_STRING_DATA: &str = "string-data-value-do-not-leak";
const DEPLOYMENT_ENV: &str = "deployment-env-do-not-leak";
const REPLICA_SET_ENV: &str = "replicaset-env-do-not-leak";
const POD_ENV: &str = "pod-env-do-not-leak";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A pod template spec whose container has an env value and an env reference to the Secret.
fn pod_spec(env_value: &str) -> Value {
    json!({"containers": [{"name": "main", "image": "nginx:1.27", "env": [
        {"name": "API_TOKEN", "value": env_value},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]}]})
}

fn workload(kind: &str, ns: &str, name: &str, app: &str, env_value: &str) -> String {
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app, "part": name}},
            "template": {"metadata": {"labels": {"app": app, "part": name}}, "spec": pod_spec(env_value)}}})
    .to_string()
}

fn pod(ns: &str, name: &str, app: &str) -> Result<Pod> {
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": ns,
        "labels": {"app": app}}, "spec": pod_spec(POD_ENV)}),
    )?)
}

/// The document and the decoded JSON of every `resourceStatuses[].res`, as one text to search.
fn searchable(doc: &Value) -> Result<String> {
    let mut text = doc.to_string();
    for entry in doc["status"]["resourceStatuses"].as_array().into_iter().flatten() {
        let res = entry["res"].as_str().context("res")?;
        text.push_str(&String::from_utf8(
            base64::engine::general_purpose::STANDARD.decode(res)?,
        )?);
    }
    Ok(text)
}

#[tokio::test]
async fn status_holds_no_secret_data_no_env_values_and_no_pods_of_other_namespaces() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "web").await?;
    let foreign = create_namespace(&client, "foreign").await?;
    let app_label = unique("app");
    let cluster = format!("{}+{}", unique("provider"), unique("edge"));
    let repo = servers.create_repo(&unique("control"))?;
    let file = |f: &str| format!("clusters/{cluster}/context/100/app/web/{f}");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
        "data": {"password": b64(SECRET_DATA)}, "stringData": {"token": SECRET_STRING_DATA}});
    // A tracker whose selector is broader than the bundle: every pod labelled `app`, in any namespace.
    let tracker = json!({"apiVersion": "k8splugin.io/v1alpha1", "kind": "ResourceBundleState",
        "metadata": {"name": "web-status", "namespace": ns, "labels": {"emco/deployment-id": "100-web"}},
        "spec": {"selector": {"matchLabels": {"app": app_label}}}});
    repo.write(&file("creds+Secret.yaml"), &secret.to_string())?
        .write(
            &file("web+Deployment.yaml"),
            &workload("Deployment", &ns, "web", &app_label, DEPLOYMENT_ENV),
        )?
        .write(
            &file("cache+ReplicaSet.yaml"),
            &workload("ReplicaSet", &ns, "cache", &app_label, REPLICA_SET_ENV),
        )?
        .write(&file("web-status+ResourceBundleState.yaml"), &tracker.to_string())?;
    repo.commit("an app with a Secret and env values")?;
    let out =
        AgentCommand::with_servers(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?.once()?;
    anyhow::ensure!(out.status.success(), "{}", output_text(&out));

    // Pods the selector matches outside the bundle (another tenant, kube-system), then the bundle's own one:
    // one pod watch delivers them in this order, so once the own pod is in the status the others were seen.
    let foreign_pods: Vec<(String, String)> = vec![
        (foreign.clone(), unique("foreign-pod")),
        ("kube-system".into(), unique("system-pod")),
    ];
    for (pod_ns, name) in &foreign_pods {
        Api::<Pod>::namespaced(client.clone(), pod_ns)
            .create(&PostParams::default(), &pod(pod_ns, name, &app_label)?)
            .await?;
    }
    let own = unique("web-pod");
    Api::<Pod>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &pod(&ns, &own, &app_label)?)
        .await?;

    let writer = AgentCommand::status_writer(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?
        .spawn_with(&["--debounce", "500ms"])?;
    let path = format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml");
    let result = eventually(LANDS, "the bundle's own pod in the status file", || async {
        let Some(text) = file_on_branch(&repo, "main", &path) else {
            return Ok(Seen::Not("no status file yet".into()));
        };
        let doc: Value = serde_saphyr::from_str(&text)?;
        let pods: Vec<String> = doc["status"]["podStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{}/{}", p["metadata"]["namespace"], p["metadata"]["name"]))
            .collect();
        Ok(if pods.iter().any(|p| p.contains(&own)) {
            Seen::Done((text, doc))
        } else {
            Seen::Not(format!("podStatuses {pods:?}"))
        })
    })
    .await;
    for (pod_ns, name) in &foreign_pods {
        let _ = Api::<Pod>::namespaced(client.clone(), pod_ns)
            .delete(name, &DeleteParams::default())
            .await;
    }
    let (text, doc) = result.map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))?;

    let all = searchable(&doc)?;
    let mut leaks = Vec::new();
    for value in [
        SECRET_DATA,
        SECRET_STRING_DATA,
        DEPLOYMENT_ENV,
        REPLICA_SET_ENV,
        POD_ENV,
    ] {
        for (form, encoded) in [("plain", value.to_owned()), ("base64", b64(value))] {
            if all.contains(&encoded) || text.contains(&encoded) {
                leaks.push(format!("{value} ({form})"));
            }
        }
    }
    for (pod_ns, name) in &foreign_pods {
        if all.contains(name.as_str()) {
            leaks.push(format!("pod {pod_ns}/{name}"));
        }
    }
    assert!(leaks.is_empty(), "the status file leaks {leaks:?}:\n{text}");

    // Only values went: env names and references stay, the Secret is reported by its metadata.
    let env = &doc["status"]["deploymentStatuses"][0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env,
        &json!([{"name": "API_TOKEN"},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]),
        "{text}"
    );
    let pods = doc["status"]["podStatuses"].as_array().context("podStatuses")?;
    assert_eq!(pods.len(), 1, "{text}");
    assert_eq!(
        pods[0]["spec"]["containers"][0]["env"][0],
        json!({"name": "API_TOKEN"})
    );
    let secret = doc["status"]["resourceStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == "Secret")
        .context("the Secret's entry")?;
    let res: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD.decode(secret["res"].as_str().context("res")?)?,
    )?;
    assert_eq!(res["metadata"]["name"], "creds", "{res}");
    assert!(
        res.get("data").is_none() && res.get("stringData").is_none(),
        "{res}"
    );
    Ok(())
}
