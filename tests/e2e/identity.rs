//! Issue 14 item 4: per-bundle identity and lockdown on the real API server with RBAC. A bundle naming
//! `serviceAccountName` in its `outpost.yaml` (or every bundle, with `--default-service-account`) applies,
//! prunes and reverts drift as that ServiceAccount: what its Role does not allow is refused per object by the
//! API server, nothing of the bundle is applied, and other bundles sync. `--no-cluster-scoped` refuses
//! cluster-scoped kinds that are not listed. The agent itself runs as the admin (it may impersonate); the
//! ServiceAccounts have only the Roles each test gives them.

use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{TestRepo, git_servers, kube_env, unique};

use crate::common::{Seen, config_value, config_value_is, eventually};
use crate::fixtures;

/// Long enough for a daemon's first sync or a drift event on a shared, slow machine.
const SOON: Duration = Duration::from_secs(60);

/// Create ServiceAccount `name` in `agent_ns`, with a Role in `ns` allowing `verbs` on ConfigMaps, bound to it.
async fn account_with_role(
    admin: &kube::Client,
    agent_ns: &str,
    name: &str,
    ns: &str,
    verbs: &[&str],
) -> Result<()> {
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    Api::<ServiceAccount>::namespaced(admin.clone(), agent_ns)
        .create(&Default::default(), &sa)
        .await?;
    set_role(admin, ns, name, verbs).await?;
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": agent_ns}],
    }))?;
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&Default::default(), &binding)
        .await?;
    Ok(())
}

/// Role `name` in `ns`: `verbs` on ConfigMaps (created or replaced).
async fn set_role(admin: &kube::Client, ns: &str, name: &str, verbs: &[&str]) -> Result<()> {
    let role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}],
    });
    Api::<Role>::namespaced(admin.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("identity-test").force(),
            &Patch::Apply(&role),
        )
        .await?;
    Ok(())
}

/// Wait until the API server's authorizer grants `account` (in `agent_ns`) on ConfigMaps in `ns` exactly the
/// verbs of [`APPLIER`] that `verbs` holds: a Role change reaches the authorizer through an informer, so an
/// action taken right after `set_role` may still be judged by the old rules.
async fn rights_settled(
    admin: &kube::Client,
    agent_ns: &str,
    account: &str,
    ns: &str,
    verbs: &[&str],
) -> Result<()> {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    let reviews: Api<SubjectAccessReview> = Api::all(admin.clone());
    let user = format!("system:serviceaccount:{agent_ns}:{account}");
    eventually(SOON, "the authorizer to apply the new Role", || async {
        let mut wrong = Vec::new();
        for verb in APPLIER {
            let review: SubjectAccessReview = serde_json::from_value(serde_json::json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user,
                    "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{agent_ns}")],
                    "resourceAttributes": {"namespace": ns, "verb": verb, "resource": "configmaps"},
                },
            }))?;
            let answer = reviews.create(&Default::default(), &review).await?;
            let allowed = answer.status.is_some_and(|s| s.allowed);
            if allowed != verbs.contains(verb) {
                wrong.push(format!("{verb}: allowed={allowed}"));
            }
        }
        Ok(Seen::done_if(wrong.is_empty(), wrong.join(", ")))
    })
    .await
}

/// What a ConfigMap Role for an applier needs (server-side apply creates with `create` and updates with `patch`;
/// prune reads and deletes).
const APPLIER: &[&str] = &["get", "list", "watch", "create", "patch", "update", "delete"];

/// A Secret manifest.
fn secret(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\nstringData:\n  k: v\n"
    )
}

/// Run the agent once; its output and whether it succeeded.
fn once(agent: &AgentCommand) -> Result<(bool, String)> {
    let out = agent.once()?;
    Ok((out.status.success(), output_text(&out)))
}

/// A new repository for `cluster`.
fn repo() -> Result<TestRepo> {
    git_servers().create_repo(&unique("identity"))
}

#[tokio::test]
async fn a_bundle_applies_only_what_its_service_account_may_and_other_bundles_still_sync() -> Result<()> {
    let env = kube_env();
    let admin = env.client().await?;
    let agent_ns = create_namespace(&admin, "agent").await?;
    let a = create_namespace(&admin, "ida").await?;
    let b = create_namespace(&admin, "idb").await?;
    account_with_role(&admin, &agent_ns, "web-deployer", &a, APPLIER).await?;
    let cluster = unique("edge");
    let repo = repo()?;
    let base = format!("clusters/{cluster}");
    repo.write(
        &format!("{base}/web/outpost.yaml"),
        "serviceAccountName: web-deployer\n",
    )?
    .write(
        &format!("{base}/web/cm.yaml"),
        &fixtures::config_map(&a, "web-a", "1"),
    )?
    .write(
        &format!("{base}/other/cm.yaml"),
        &fixtures::config_map(&b, "other-b", "1"),
    )?;
    repo.commit("web acts as web-deployer")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let (ok, text) = once(&agent)?;
    ensure!(ok, "first sync: {text}");
    ensure!(
        config_value(&admin, &a, "web-a").await?.as_deref() == Some("1"),
        "{text}"
    );

    // web now also wants a Secret in A and a ConfigMap in B, which its Role does not allow, and changes web-a;
    // other changes too.
    repo.write(
        &format!("{base}/web/cm.yaml"),
        &fixtures::config_map(&a, "web-a", "2"),
    )?
    .write(&format!("{base}/web/secret.yaml"), &secret(&a, "web-secret"))?
    .write(
        &format!("{base}/web/cm-b.yaml"),
        &fixtures::config_map(&b, "web-b", "1"),
    )?
    .write(
        &format!("{base}/other/cm.yaml"),
        &fixtures::config_map(&b, "other-b", "2"),
    )?;
    repo.commit("web reaches too far")?;
    let (ok, text) = once(&agent)?;
    ensure!(!ok, "a forbidden object must fail the sync: {text}");
    let account =
        format!("forbidden for ServiceAccount {agent_ns}/web-deployer (the bundle's serviceAccountName)");
    for (object, file) in [
        (
            format!("Secret/{a}/web-secret"),
            format!("{base}/web/secret.yaml"),
        ),
        (format!("ConfigMap/{b}/web-b"), format!("{base}/web/cm-b.yaml")),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(&object) && l.contains(&account))
            .unwrap_or_default();
        ensure!(
            line.contains(&file),
            "no error naming {object} in {file} and the account: {text}"
        );
    }
    ensure!(text.contains("nothing of this bundle was applied"), "{text}");
    // Nothing of web was applied, not even the change it may make; other synced.
    ensure!(
        config_value(&admin, &a, "web-a").await?.as_deref() == Some("1"),
        "web-a changed: {text}"
    );
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &a);
    ensure!(
        secrets.get_opt("web-secret").await?.is_none(),
        "the Secret exists"
    );
    ensure!(config_value(&admin, &b, "web-b").await?.is_none(), "web-b exists");
    ensure!(
        config_value(&admin, &b, "other-b").await?.as_deref() == Some("2"),
        "other did not sync: {text}"
    );
    Ok(())
}

#[tokio::test]
async fn the_default_service_account_acts_for_bundles_without_outpost_yaml() -> Result<()> {
    let env = kube_env();
    let admin = env.client().await?;
    let agent_ns = create_namespace(&admin, "agent").await?;
    let a = create_namespace(&admin, "ida").await?;
    let b = create_namespace(&admin, "idb").await?;
    account_with_role(&admin, &agent_ns, "fallback", &a, APPLIER).await?;
    let cluster = unique("edge");
    let repo = repo()?;
    let base = format!("clusters/{cluster}");
    repo.write(
        &format!("{base}/app/a.yaml"),
        &fixtures::config_map(&a, "in-a", "1"),
    )?
    .write(
        &format!("{base}/app/b.yaml"),
        &fixtures::config_map(&b, "in-b", "1"),
    )?;
    repo.commit("app")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    agent.env("OUTPOST_DEFAULT_SERVICE_ACCOUNT", "fallback");
    // The admin agent could write both; the denial proves it acted as the default account.
    let (ok, text) = once(&agent)?;
    ensure!(!ok, "{text}");
    ensure!(
        text.contains(&format!(
            "ConfigMap/{b}/in-b from {base}/app/b.yaml (document 1, line 1): forbidden for ServiceAccount {agent_ns}/fallback (--default-service-account)"
        )),
        "{text}"
    );
    ensure!(
        config_value(&admin, &a, "in-a").await?.is_none(),
        "half the bundle was applied: {text}"
    );

    repo.remove(&format!("{base}/app/b.yaml"))?;
    repo.commit("only what fallback may")?;
    let (ok, text) = once(&agent)?;
    ensure!(ok, "{text}");
    ensure!(
        config_value(&admin, &a, "in-a").await?.as_deref() == Some("1"),
        "{text}"
    );
    let cm = Api::<ConfigMap>::namespaced(admin.clone(), &a)
        .get("in-a")
        .await?;
    let managers: Vec<String> = cm
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    ensure!(managers == ["outpost"], "field managers: {managers:?}");
    Ok(())
}

#[tokio::test]
async fn drift_reverts_and_prunes_act_as_the_service_account() -> Result<()> {
    let env = kube_env();
    let admin = env.client().await?;
    let agent_ns = create_namespace(&admin, "agent").await?;
    let a = create_namespace(&admin, "ida").await?;
    account_with_role(&admin, &agent_ns, "deployer", &a, APPLIER).await?;
    let cluster = unique("edge");
    let repo = repo()?;
    let base = format!("clusters/{cluster}");
    repo.write(
        &format!("{base}/web/outpost.yaml"),
        "serviceAccountName: deployer\n",
    )?
    .write(
        &format!("{base}/web/one.yaml"),
        &fixtures::config_map(&a, "one", "ours"),
    )?
    .write(
        &format!("{base}/web/two.yaml"),
        &fixtures::config_map(&a, "two", "ours"),
    )?;
    repo.commit("web")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let daemon = agent.spawn("1h")?;
    daemon
        .wait_ready(SOON)
        .await
        .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", daemon.logs()))?;

    // The account may no longer change ConfigMaps: a hand edit stays, and the log says whose rights lacked.
    set_role(&admin, &a, "deployer", &["get", "list", "watch"]).await?;
    rights_settled(&admin, &agent_ns, "deployer", &a, &["get", "list", "watch"]).await?;
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), &a);
    let edit = serde_json::json!({"data": {"key": "theirs"}});
    cms.patch("one", &PatchParams::default(), &Patch::Merge(&edit))
        .await?;
    let wanted = format!("forbidden for ServiceAccount {agent_ns}/deployer");
    eventually(SOON, "a drift revert refused for the account", || async {
        let logs = daemon.logs();
        let refused = logs
            .lines()
            .any(|l| l.contains("Drift revert failed") && l.contains(&wanted));
        Ok(Seen::done_if(refused, crate::common::log_tail(&logs, 5)))
    })
    .await?;
    ensure!(
        config_value(&admin, &a, "one").await?.as_deref() == Some("theirs"),
        "reverted as the agent"
    );
    // An operator sees it without the log: a Warning Event on the bundle's inventory names the object and the
    // account.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &agent_ns);
    let parent = outpost_agent::inventory::applyset::parent_name(&cluster, "web");
    eventually(SOON, "a DriftRevertFailed event", || async {
        let items = events.list(&Default::default()).await?.items;
        let found = items.iter().any(|e| {
            e.reason.as_deref() == Some("DriftRevertFailed")
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(parent.as_str())
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("one") && n.contains(&wanted))
        });
        let reasons: Vec<_> = items.iter().map(|e| (e.reason.clone(), e.note.clone())).collect();
        Ok(Seen::done_if(found, format!("{reasons:?}")))
    })
    .await?;
    drop(daemon);

    // It may apply again but not delete: the member that leaves Git stays, and the sync says why.
    let may_apply = ["get", "list", "watch", "create", "patch", "update"];
    set_role(&admin, &a, "deployer", &may_apply).await?;
    rights_settled(&admin, &agent_ns, "deployer", &a, &may_apply).await?;
    repo.remove(&format!("{base}/web/two.yaml"))?;
    repo.commit("two leaves")?;
    let (ok, text) = once(&agent)?;
    ensure!(!ok, "{text}");
    ensure!(
        text.contains(&format!(
            "prune ConfigMap/{a}/two: {wanted} (the bundle's serviceAccountName)"
        )),
        "{text}"
    );
    ensure!(
        config_value(&admin, &a, "two").await?.is_some(),
        "two was deleted: {text}"
    );
    // The full sync reverted the hand edit as the account, which may patch again.
    eventually(SOON, "one reverted", || {
        config_value_is(&admin, &a, "one", "ours")
    })
    .await?;

    // With delete granted, the prune goes through.
    set_role(&admin, &a, "deployer", APPLIER).await?;
    rights_settled(&admin, &agent_ns, "deployer", &a, APPLIER).await?;
    let (ok, text) = once(&agent)?;
    ensure!(ok, "{text}");
    ensure!(
        config_value(&admin, &a, "two").await?.is_none(),
        "two was not pruned: {text}"
    );
    Ok(())
}

#[tokio::test]
async fn no_cluster_scoped_refuses_a_cluster_role_but_allows_a_listed_namespace() -> Result<()> {
    let env = kube_env();
    let admin = env.client().await?;
    let agent_ns = create_namespace(&admin, "agent").await?;
    let cluster = unique("edge");
    let ns = unique("locked");
    let role = unique("locked-role");
    let repo = repo()?;
    let base = format!("clusters/{cluster}");
    repo.write(&format!("{base}/infra/ns.yaml"), &fixtures::namespace(&ns))?
        .write(
            &format!("{base}/infra/cm.yaml"),
            &fixtures::config_map(&ns, "c", "1"),
        )?
        .write(
            &format!("{base}/infra/role.yaml"),
            &fixtures::cluster_role_with_namespace(&role, &ns),
        )?;
    repo.commit("infra")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    agent
        .arg("--no-cluster-scoped")
        .arg("--allowed-cluster-scoped-kinds")
        .arg("Namespace,scheduling.k8s.io/PriorityClass");
    let (ok, text) = once(&agent)?;
    ensure!(!ok, "{text}");
    ensure!(
        text.contains(&format!(
            "ClusterRole.rbac.authorization.k8s.io/{role} from {base}/infra/role.yaml (document 1, line 1): refused: cluster-scoped kind rbac.authorization.k8s.io/ClusterRole is refused by --no-cluster-scoped"
        )),
        "{text}"
    );
    // Nothing of the bundle was applied, not even its allowed Namespace.
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    ensure!(
        namespaces.get_opt(&ns).await?.is_none(),
        "the Namespace was created: {text}"
    );
    ensure!(
        Api::<ClusterRole>::all(admin.clone())
            .get_opt(&role)
            .await?
            .is_none(),
        "{text}"
    );

    repo.remove(&format!("{base}/infra/role.yaml"))?;
    repo.commit("no ClusterRole")?;
    let (ok, text) = once(&agent)?;
    ensure!(ok, "{text}");
    ensure!(namespaces.get_opt(&ns).await?.is_some(), "{text}");
    ensure!(
        config_value(&admin, &ns, "c").await?.as_deref() == Some("1"),
        "{text}"
    );
    Ok(())
}

/// The chart's `identity` values: the agent's env, and a Role that lets the agent impersonate exactly the
/// listed ServiceAccounts — run for real with the agent's chart token in `rbac.mode=namespaced`.
#[tokio::test]
async fn the_chart_lets_the_agent_impersonate_only_the_listed_service_accounts() -> Result<()> {
    use crate::chart::{base, env_var, render, values_file};
    use crate::chart_rbac::{install_rbac, kubeconfig_of, workload_of};
    let env = kube_env();
    let admin = env.client().await?;
    let release_ns = create_namespace(&admin, "outpost").await?;
    let allowed = create_namespace(&admin, "allowed").await?;
    let file = values_file(&base(&format!(
        "rbac:\n  mode: namespaced\n  namespaces: [{allowed}]\nidentity:\n  defaultServiceAccount: fallback\n  serviceAccounts: [web-deployer, fallback]\n  noClusterScoped: true\n  allowedClusterScopedKinds: [Namespace, scheduling.k8s.io/PriorityClass]\n"
    )))?;
    let docs = render(&unique("identity"), &release_ns, &file)?;
    let (workload, c) = workload_of(&docs, "agent")?;
    for (name, want) in [
        ("OUTPOST_DEFAULT_SERVICE_ACCOUNT", "fallback"),
        ("OUTPOST_NO_CLUSTER_SCOPED", "true"),
        (
            "OUTPOST_ALLOWED_CLUSTER_SCOPED_KINDS",
            "Namespace,scheduling.k8s.io/PriorityClass",
        ),
    ] {
        ensure!(
            env_var(c, name).as_deref() == Some(want),
            "{name}: {:?}",
            env_var(c, name)
        );
    }
    let impersonation: Vec<&serde_json::Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        .flat_map(|d| d["rules"].as_array().into_iter().flatten())
        .filter(|r| {
            r["verbs"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v == "impersonate"))
        })
        .collect();
    ensure!(
        impersonation.len() == 1
            && impersonation[0]["resources"] == serde_json::json!(["serviceaccounts"])
            && impersonation[0]["resourceNames"] == serde_json::json!(["fallback", "web-deployer"]),
        "impersonation rules: {impersonation:?}"
    );
    install_rbac(&admin, &docs, &release_ns).await?;
    account_with_role(&admin, &release_ns, "fallback", &allowed, APPLIER).await?;
    account_with_role(&admin, &release_ns, "stranger", &allowed, APPLIER).await?;

    let cluster = unique("edge");
    let repo = repo()?;
    let base = format!("clusters/{cluster}");
    repo.write(
        &format!("{base}/app/cm.yaml"),
        &fixtures::config_map(&allowed, "app", "1"),
    )?;
    repo.commit("app")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &release_ns, Transport::Https)?;
    let sa = workload["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or_default();
    agent.env("KUBECONFIG", kubeconfig_of(env, &admin, &release_ns, sa).await?);
    for name in [
        "OUTPOST_DEFAULT_SERVICE_ACCOUNT",
        "OUTPOST_NO_CLUSTER_SCOPED",
        "OUTPOST_ALLOWED_CLUSTER_SCOPED_KINDS",
    ] {
        agent.env(name, env_var(c, name).unwrap_or_default());
    }
    let (ok, text) = once(&agent)?;
    ensure!(ok, "the chart's agent acting as fallback: {text}");
    ensure!(
        config_value(&admin, &allowed, "app").await?.as_deref() == Some("1"),
        "{text}"
    );

    // A ServiceAccount the chart does not list cannot be impersonated, even with a Role of its own.
    repo.write(
        &format!("{base}/other/outpost.yaml"),
        "serviceAccountName: stranger\n",
    )?
    .write(
        &format!("{base}/other/cm.yaml"),
        &fixtures::config_map(&allowed, "other", "1"),
    )?;
    repo.commit("other names an unlisted account")?;
    let (ok, text) = once(&agent)?;
    ensure!(!ok, "{text}");
    ensure!(
        text.contains(&format!(
            "forbidden for ServiceAccount {release_ns}/stranger (the bundle's serviceAccountName)"
        )) && text.contains("impersonate"),
        "{text}"
    );
    ensure!(config_value(&admin, &allowed, "other").await?.is_none(), "{text}");
    Ok(())
}
