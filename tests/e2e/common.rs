//! Helpers shared by the integration tests.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};

/// Poll `check` every 100 ms until it returns `Some`, or fail after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Names of the ConfigMaps in `ns` that carry an ApplySet part-of label, sorted.
pub async fn managed_config_maps(client: &kube::Client, ns: &str) -> Result<Vec<String>> {
    labelled_config_maps(client, ns, "applyset.kubernetes.io/part-of").await
}

/// Names of the ConfigMaps in `ns` selected by `selector`, sorted.
pub async fn labelled_config_maps(client: &kube::Client, ns: &str, selector: &str) -> Result<Vec<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut names: Vec<String> = api
        .list(&ListParams::default().labels(selector))
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Bundle names of the inventory parents in the agent namespace, sorted.
pub async fn inventory_bundles(client: &kube::Client, agent_ns: &str) -> Result<Vec<String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), agent_ns);
    let mut names: Vec<String> = api
        .list(&ListParams::default().labels("outpost.dev/inventory=v1"))
        .await?
        .items
        .into_iter()
        .filter_map(|s| {
            s.metadata
                .annotations
                .and_then(|a| a.get("outpost.dev/bundle").cloned())
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The value of `key` in ConfigMap `ns/name`, if it exists.
pub async fn config_value(client: &kube::Client, ns: &str, name: &str) -> Result<Option<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|c| c.data)
        .and_then(|d| d.get("key").cloned()))
}
