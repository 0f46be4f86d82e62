//! The first vertical slice: the test environment itself, and `outpost-agent --once` syncing a plain-layout
//! repository over HTTPS with a token.

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};

use crate::fixtures;

/// True when server-side apply by field manager `outpost` owns fields of the object.
fn applied_by_outpost(meta: &ObjectMeta) -> bool {
    meta.managed_fields
        .iter()
        .flatten()
        .any(|f| f.manager.as_deref() == Some("outpost") && f.operation.as_deref() == Some("Apply"))
}

fn widget_api(client: &kube::Client, group: &str, ns: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", "Widget"), "widgets");
    Api::namespaced_with(client.clone(), ns, &ar)
}

#[tokio::test]
async fn api_server_stores_custom_resources() -> Result<()> {
    // Guards the reflect2 swap in tests/env/kube-1.20.sh: without it the first custom-resource write
    // crashes kube-apiserver 1.20 built with Go >= 1.18.
    let env = kube_env();
    let client = env.client().await?;
    let group = format!("{}.outpost.test", unique("crd"));
    let ns = unique("crd-ns");
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        from_yaml(&fixtures::widget_crd(&group))?;
    let crds = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd).await?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        kube::runtime::wait::await_condition(
            crds,
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        ),
    )
    .await??;
    let widgets = widget_api(&client, &group, &ns);
    let obj: DynamicObject = from_yaml(&fixtures::widget(&group, &ns, "w1", 3))?;
    widgets.create(&PostParams::default(), &obj).await?;
    let back = widgets.get("w1").await?;
    assert_eq!(back.data["spec"]["size"], 3);
    assert!(env.etcd_running());
    Ok(())
}

/// Parse a fixture with the agent's own manifest parser.
fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    let docs = outpost_agent::manifest::parse::parse_file("fixture.yaml", text.as_bytes())?;
    Ok(serde_json::from_value(
        docs.into_iter().next().expect("one document").value(),
    )?)
}

#[tokio::test]
async fn agent_once_applies_a_plain_layout_over_https_with_a_token() -> Result<()> {
    let env = kube_env();
    let servers = git_servers();
    let client = env.client().await?;
    let cluster = unique("edge");
    let agent_ns = create_namespace(&env.client().await?, "agent").await?;
    let ns = unique("app");
    let group = format!("{}.outpost.test", unique("w"));
    let role = unique("reader");
    let repo = servers.create_repo(&unique("plain"))?;
    let base = format!("clusters/{cluster}");
    // Files are named so that alphabetical order is the wrong apply order: objects come before the
    // Namespace and CRD they need.
    repo.write(
        &format!("{base}/app/a-objects.yaml"),
        &format!(
            "---\n{}---\n{}\n---\n",
            fixtures::config_map(&ns, "settings", "v1"),
            fixtures::widget(&group, &ns, "gizmo", 5)
        ),
    )?
    .write(
        &format!("{base}/app/b-role.json"),
        &fixtures::cluster_role_with_namespace(&role, &ns),
    )?
    .write(&format!("{base}/app/z-namespace.yaml"), &fixtures::namespace(&ns))?
    .write(&format!("{base}/app/z-crd.yaml"), &fixtures::widget_crd(&group))?
    .write(
        &format!("{base}/app/service.yaml"),
        &fixtures::service(&ns, "web"),
    )?
    .write(&format!("{base}/README.md"), "not a manifest")?
    .write(
        "clusters/other-cluster/app/cm.yaml",
        &fixtures::config_map(&ns, "not-ours", "x"),
    )?;
    repo.commit("first")?;

    let out = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = cms.get("settings").await?;
    assert_eq!(cm.data.unwrap_or_default()["key"], "v1");
    assert!(
        applied_by_outpost(&cm.metadata),
        "ConfigMap not applied by field manager outpost"
    );
    assert!(
        cms.get_opt("not-ours").await?.is_none(),
        "applied another cluster's path"
    );
    let widget = widget_api(&client, &group, &ns).get("gizmo").await?;
    assert_eq!(widget.data["spec"]["size"], 5);
    assert!(applied_by_outpost(&widget.metadata));
    let cr = Api::<ClusterRole>::all(client.clone()).get(&role).await?;
    assert!(cr.metadata.namespace.is_none());
    assert!(applied_by_outpost(&cr.metadata));
    let svc = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), &ns)
        .get("web")
        .await?;
    assert_eq!(svc.spec.and_then(|s| s.ports).unwrap_or_default()[0].port, 80);
    let nsobj = Api::<Namespace>::all(client.clone()).get(&ns).await?;
    assert!(applied_by_outpost(&nsobj.metadata));
    Ok(())
}

#[tokio::test]
async fn a_new_commit_updates_the_applied_objects() -> Result<()> {
    let env = kube_env();
    let servers = git_servers();
    let client = env.client().await?;
    let cluster = unique("edge");
    let agent_ns = create_namespace(&env.client().await?, "agent").await?;
    let ns = unique("upd");
    let repo = servers.create_repo(&unique("update"))?;
    let base = format!("clusters/{cluster}/web");
    repo.write(&format!("{base}/ns.yaml"), &fixtures::namespace(&ns))?
        .write(
            &format!("{base}/cm.yaml"),
            &fixtures::config_map(&ns, "web", "one"),
        )?;
    repo.commit("one")?;
    let agent = || AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https);
    let out = agent()?.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert_eq!(cms.get("web").await?.data.unwrap_or_default()["key"], "one");

    repo.write(
        &format!("{base}/cm.yaml"),
        &fixtures::config_map(&ns, "web", "two"),
    )?
    .write(
        &format!("{base}/more.yaml"),
        &fixtures::config_map(&ns, "extra", "new"),
    )?;
    repo.commit("two")?;
    let out = agent()?.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(cms.get("web").await?.data.unwrap_or_default()["key"], "two");
    assert_eq!(cms.get("extra").await?.data.unwrap_or_default()["key"], "new");
    Ok(())
}

#[tokio::test]
async fn a_wrong_token_fails_clearly_without_showing_the_token() -> Result<()> {
    let env = kube_env();
    let servers = git_servers();
    let cluster = unique("edge");
    let agent_ns = create_namespace(&env.client().await?, "agent").await?;
    let repo = servers.create_repo(&unique("auth"))?;
    repo.write(
        &format!("clusters/{cluster}/a/cm.yaml"),
        &fixtures::config_map("default", &unique("cm"), "x"),
    )?;
    repo.commit("one")?;
    let wrong = format!("wrong-{}", outpost_tests::random_token());
    let out = AgentCommand::new(
        env,
        &repo,
        &cluster,
        &agent_ns,
        Transport::HttpsWithToken(wrong.clone()),
    )?
    .once()?;
    let text = output_text(&out);
    println!("{text}");
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("authentication"),
        "no clear authentication error: {text}"
    );
    assert!(
        text.contains(&repo.https_url()),
        "error does not name the repository: {text}"
    );
    assert!(!text.contains(&wrong), "the token leaked: {text}");
    assert!(
        !text.contains(&servers.http_password),
        "the real password leaked: {text}"
    );
    Ok(())
}

#[tokio::test]
async fn malformed_yaml_names_file_and_line_and_changes_nothing() -> Result<()> {
    let env = kube_env();
    let servers = git_servers();
    let client = env.client().await?;
    let cluster = unique("edge");
    let agent_ns = create_namespace(&env.client().await?, "agent").await?;
    let ns = unique("bad");
    let repo = servers.create_repo(&unique("broken"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(&format!("{base}/ns.yaml"), &fixtures::namespace(&ns))?
        .write(
            &format!("{base}/cm.yaml"),
            &fixtures::config_map(&ns, "kept", "good"),
        )?;
    repo.commit("good")?;
    let agent = || AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https);
    let out = agent()?.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    // One broken file next to a valid change: neither may reach the cluster.
    repo.write(
        &format!("{base}/cm.yaml"),
        &fixtures::config_map(&ns, "kept", "changed"),
    )?
    .write(
        &format!("{base}/new.yaml"),
        &fixtures::config_map(&ns, "new", "x"),
    )?
    .write(
        &format!("{base}/zz-broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n   oops: [\n",
    )?;
    repo.commit("broken")?;
    let out = agent()?.once()?;
    let text = output_text(&out);
    println!("{text}");
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{base}/zz-broken.yaml")),
        "file not named: {text}"
    );
    assert!(text.contains("line "), "line not given: {text}");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert_eq!(cms.get("kept").await?.data.unwrap_or_default()["key"], "good");
    assert!(
        cms.get_opt("new").await?.is_none(),
        "an object from the broken commit was applied"
    );
    Ok(())
}

#[tokio::test]
async fn ssh_file_and_url_credentials_reach_the_same_repository() -> Result<()> {
    let env = kube_env();
    let servers = git_servers();
    let client = env.client().await?;
    let cluster = unique("edge");
    let agent_ns = create_namespace(&env.client().await?, "agent").await?;
    let ns = unique("transport");
    let repo = servers.create_repo(&unique("transports"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(&format!("{base}/ns.yaml"), &fixtures::namespace(&ns))?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for (i, transport) in [
        Transport::Ssh,
        Transport::File,
        Transport::HttpsWithCredentialsInUrl,
        Transport::HttpsWithTokenVariable,
    ]
    .into_iter()
    .enumerate()
    {
        let value = format!("commit-{i}");
        repo.write(
            &format!("{base}/cm.yaml"),
            &fixtures::config_map(&ns, "via", &value),
        )?;
        repo.commit(&value)?;
        let out = AgentCommand::new(env, &repo, &cluster, &agent_ns, transport)?.once()?;
        let text = output_text(&out);
        assert!(out.status.success(), "transport {i}: {text}");
        assert!(
            !text.contains(&servers.http_password),
            "password from the URL leaked: {text}"
        );
        assert_eq!(
            cms.get("via").await?.data.unwrap_or_default()["key"],
            value,
            "transport {i}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_token_on_the_command_line_is_refused_without_echoing_it() -> Result<()> {
    let env = kube_env();
    let agent_ns = create_namespace(&env.client().await?, "agent").await?;
    let repo = git_servers().create_repo(&unique("argv"))?;
    repo.write("clusters/c/app/.keep", "")?;
    repo.commit("empty")?;
    // argv is readable by every user of the node through /proc: the token comes from a file or the
    // environment only.
    let mut agent = AgentCommand::new(env, &repo, "c", &agent_ns, Transport::File)?;
    agent.arg("--git-token").arg("argv-token-value");
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "--git-token was accepted: {text}");
    assert!(text.contains("--git-token"), "{text}");
    assert!(!text.contains("argv-token-value"), "the token was echoed: {text}");
    Ok(())
}

#[tokio::test]
async fn credentials_over_plain_http_are_refused_unless_allowed() -> Result<()> {
    let env = kube_env();
    let agent_ns = create_namespace(&env.client().await?, "agent").await?;
    let servers = git_servers();
    // Nothing listens there: the refusal must come before any connection.
    let url = "http://127.0.0.1:9/nowhere.git";
    for binary in ["outpost-agent", "outpost-status-writer"] {
        let run = |extra: &[&str]| -> Result<(bool, String)> {
            let out = std::process::Command::new(outpost_tests::tools::outpost_bin(binary)?)
                .args([
                    "--cluster",
                    "c",
                    "--namespace",
                    &agent_ns,
                    "--git-url",
                    url,
                    "--once",
                ])
                .arg("--git-token-file")
                .arg(&servers.token_file)
                .arg("--cache-dir")
                .arg(outpost_tests::scratch_dir("insecure")?)
                .args(extra)
                .env_clear()
                .env("KUBECONFIG", &env.kubeconfig)
                .output()?;
            Ok((out.status.success(), output_text(&out)))
        };
        let (ok, text) = run(&[])?;
        assert!(!ok, "{binary}: {text}");
        assert!(
            text.contains("plain http://") && text.contains("--git-allow-insecure-http"),
            "{binary}: {text}"
        );
        // Allowed explicitly, it gets as far as the (absent) server.
        let (ok, text) = run(&["--git-allow-insecure-http"])?;
        assert!(!ok, "{binary}: {text}");
        assert!(!text.contains("plain http://"), "{binary}: {text}");
    }
    Ok(())
}
