//! Issue 12 items 4 and 15, the chart's half: bounded scratch volumes, the read caps and Git timeout as values
//! that reach the binary, an optional egress NetworkPolicy, and trusting only the private CA.

use anyhow::{Context, Result};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};
use serde_json::{Value, json};

use crate::chart::{base, containers, dry_run, env_var, lint, render, values_file};
use crate::chart_rbac::workload_of;
use crate::common::config_value;
use crate::fixtures;

/// The emptyDir volumes of the workload running `container`, by name, with their sizeLimit.
fn scratch_volumes(docs: &[Value], container: &str) -> Result<Vec<(String, Option<String>)>> {
    let (workload, _) = workload_of(docs, container)?;
    let volumes = workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .context("volumes")?;
    Ok(volumes
        .iter()
        .filter(|v| v.get("emptyDir").is_some())
        .map(|v| {
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            (name, v["emptyDir"]["sizeLimit"].as_str().map(str::to_owned))
        })
        .collect())
}

#[tokio::test]
async fn scratch_volumes_are_bounded_and_the_read_caps_reach_the_agent() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let file = values_file(&base(
        "limits:\n  maxFiles: 3\n  maxBlobBytes: 1MiB\ngitTimeout: 45s\nstorage:\n  agentCache: 2Gi\ndriftMode: report\nprunePolicy: orphan\n",
    ))?;
    lint(&file)?;
    let release_ns = create_namespace(&client, "release").await?;
    let docs = render(&unique("caps"), &release_ns, &file)?;
    assert_eq!(
        scratch_volumes(&docs, "agent")?,
        [
            ("agent-cache".into(), Some("2Gi".into())),
            ("tmp".into(), Some("64Mi".into()))
        ]
    );
    assert_eq!(
        scratch_volumes(&docs, "status-writer")?,
        [
            ("status-cache".into(), Some("512Mi".into())),
            ("tmp".into(), Some("64Mi".into()))
        ]
    );
    for c in containers(&docs) {
        assert_eq!(env_var(c, "OUTPOST_GIT_TIMEOUT").as_deref(), Some("45s"), "{c}");
    }
    // The API server takes the quantities.
    dry_run(&client, &docs, &release_ns).await?;

    // The agent as the chart configures it: four files break the cap of three, naming the flag and the value.
    let (_, agent) = workload_of(&docs, "agent")?;
    let ns = create_namespace(&client, "caps").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("caps"))?;
    for i in 0..4 {
        repo.write(
            &format!("clusters/{cluster}/app/cm{i}.yaml"),
            &fixtures::config_map(&ns, &format!("cm{i}"), "1"),
        )?;
    }
    repo.commit("four files")?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let mut cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let mut passed = Vec::new();
    for var in agent["env"].as_array().context("env")? {
        let name = var["name"].as_str().context("name")?;
        let parsed = [
            "OUTPOST_GIT_TIMEOUT",
            "OUTPOST_DRIFT_MODE",
            "OUTPOST_PRUNE_POLICY",
        ];
        if name.starts_with("OUTPOST_MAX_") || parsed.contains(&name) {
            cmd.env(name, var["value"].as_str().context("value")?);
            passed.push(name);
        }
    }
    assert_eq!(
        passed.len(),
        9,
        "five caps, the history depth, the timeout and two policies: {passed:?}"
    );
    let out = cmd.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "four files passed a cap of three:\n{text}");
    assert!(text.contains("--max-files (3)"), "{text}");
    assert_eq!(config_value(&client, &ns, "cm0").await?, None, "{text}");
    Ok(())
}

/// Does `selector` (matchLabels) select a pod carrying `labels`?
fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[tokio::test]
async fn the_network_policy_lets_each_pod_reach_the_api_server_git_and_dns_only() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let policy = "networkPolicy:\n  enabled: true\n  apiServer:\n    cidrs: [10.0.0.1/32, 172.18.0.2/32]\n    ports: [6443]\n  git:\n    cidrs: [192.0.2.0/24]\n";
    let file = values_file(&base(policy))?;
    lint(&file)?;
    let release_ns = create_namespace(&client, "release").await?;
    let docs = render(&unique("np"), &release_ns, &file)?;
    let policies: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "NetworkPolicy").collect();
    assert_eq!(policies.len(), 2, "one per pod");
    let api = json!({"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}, {"ipBlock": {"cidr": "172.18.0.2/32"}}],
                     "ports": [{"protocol": "TCP", "port": 6443}]});
    let git = json!({"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}],
                     "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 22}]});
    let dns = json!({"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                             "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                     "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]});
    for container in ["agent", "status-writer"] {
        let (workload, _) = workload_of(&docs, container)?;
        let labels = &workload["spec"]["template"]["metadata"]["labels"];
        let mine: Vec<&&Value> = policies
            .iter()
            .filter(|p| selects(&p["spec"]["podSelector"], labels))
            .collect();
        assert_eq!(mine.len(), 1, "{container}: exactly one policy selects its pods");
        let spec = &mine[0]["spec"];
        assert_eq!(spec["policyTypes"], json!(["Egress"]), "{container}");
        assert_eq!(spec["egress"], json!([api, git, dns]), "{container}: egress");
    }
    dry_run(&client, &docs, &release_ns).await?;

    // A mounted mirror and no status writer: the agent needs no Git egress, and no Git addresses are asked for.
    let local = values_file(&format!(
        "git:\n  clustername: c1\n  enabled: false\n  localPath:\n    enabled: true\n    path: /srv/git/r.git\n    volume: {{hostPath: {{path: /m}}}}\n{}",
        policy.replace("  git:\n    cidrs: [192.0.2.0/24]\n", "")
    ))?;
    let docs = render("local", "ns", &local)?;
    let policies: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "NetworkPolicy").collect();
    assert_eq!(policies.len(), 1, "the agent's only");
    assert_eq!(policies[0]["spec"]["egress"], json!([api, dns]));

    // Enabled without addresses: refused, naming the value to set.
    for (missing, values) in [
        (
            "networkPolicy.apiServer.cidrs",
            "networkPolicy:\n  enabled: true\n  git:\n    cidrs: [192.0.2.0/24]\n",
        ),
        (
            "networkPolicy.git.cidrs",
            "networkPolicy:\n  enabled: true\n  apiServer:\n    cidrs: [10.0.0.1/32]\n",
        ),
    ] {
        let err = render("np", "ns", &values_file(&base(values))?).expect_err(missing);
        assert!(format!("{err:#}").contains(missing), "{missing}: {err:#}");
    }
    // Off by default.
    let docs = render("np", "ns", &values_file(&base(""))?)?;
    assert!(!docs.iter().any(|d| d["kind"] == "NetworkPolicy"));
    Ok(())
}

#[test]
fn trusting_only_the_private_ca_is_one_value_for_both_containers() -> Result<()> {
    // base() ends inside `git:`, so these lines are git.caBundle and git.caOnly.
    let file = values_file(&base("  caBundle: PEM\n  caOnly: true\n"))?;
    let docs = render("ca", "ns", &file)?;
    for c in containers(&docs) {
        assert_eq!(env_var(c, "OUTPOST_GIT_CA_ONLY").as_deref(), Some("true"), "{c}");
        assert!(env_var(c, "OUTPOST_GIT_CA_FILE").is_some(), "{c}");
    }
    let docs = render("ca", "ns", &values_file(&base("  caBundle: PEM\n"))?)?;
    for c in containers(&docs) {
        assert_eq!(env_var(c, "OUTPOST_GIT_CA_ONLY"), None, "off unless asked: {c}");
    }
    let err = render("ca", "ns", &values_file(&base("  caOnly: true\n"))?).expect_err("no bundle");
    assert!(
        format!("{err:#}").contains("git.caOnly needs a CA bundle"),
        "{err:#}"
    );
    Ok(())
}
