//! Helpers shared by the integration tests.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};

/// One look at the state a test waits for, as the check closure of [`eventually`] reports it.
#[derive(Debug)]
pub enum Seen<T> {
    /// The wait is over: [`eventually`] returns this value.
    Done(T),
    /// Not yet: what the check actually observed (the values it compared, not what it wants), kept so a
    /// timeout can say where the state was stuck.
    Not(String),
}

impl Seen<()> {
    /// `Done(())` if `done`, otherwise `Not(observed)`.
    pub fn done_if(done: bool, observed: impl Into<String>) -> Self {
        if done {
            Seen::Done(())
        } else {
            Seen::Not(observed.into())
        }
    }
}

/// Poll `check` every 100 ms until it returns [`Seen::Done`], or fail after `timeout` naming `what` and the
/// last [`Seen::Not`] observation: "timed out after 60s waiting for X; last seen: <observed>". An error from
/// `check` ends the wait at once.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Seen<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let observed = match check().await? {
            Seen::Done(v) => return Ok(v),
            Seen::Not(observed) => observed,
        };
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last seen: {observed}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last `n` lines of a process log and how long it is, on one line: what a check that searches a log saw.
pub fn log_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    format!("{} log lines, ending {tail:?}", lines.len())
}

/// `Done` once ConfigMap `ns/name` has `key: want`; otherwise what it holds instead.
pub async fn config_value_is(client: &kube::Client, ns: &str, name: &str, want: &str) -> Result<Seen<()>> {
    config_key_seen(client, ns, name, Some(want)).await
}

/// `Done` once ConfigMap `ns/name` exists with a `key`; otherwise what is there instead.
pub async fn config_value_exists(client: &kube::Client, ns: &str, name: &str) -> Result<Seen<()>> {
    config_key_seen(client, ns, name, None).await
}

/// `key` of ConfigMap `ns/name` against `want` (`None`: any value). Not done: the ConfigMap's `data`, or,
/// when it does not exist, the names of the ConfigMaps that do.
async fn config_key_seen(
    client: &kube::Client,
    ns: &str,
    name: &str,
    want: Option<&str>,
) -> Result<Seen<()>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let Some(cm) = api.get_opt(name).await? else {
        let mut names: Vec<String> = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        names.sort();
        return Ok(Seen::Not(format!(
            "no ConfigMap {ns}/{name}; ConfigMaps there: {names:?}"
        )));
    };
    let data = cm.data.unwrap_or_default();
    let done = match (data.get("key"), want) {
        (Some(have), Some(want)) => have == want,
        (Some(_), None) => true,
        (None, _) => false,
    };
    Ok(Seen::done_if(
        done,
        format!("ConfigMap {ns}/{name} data={data:?}"),
    ))
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

/// The value of a counter or gauge line in the agent's /metrics, summed over label sets that contain `labels`.
pub async fn metric(agent: &outpost_tests::agent::RunningAgent, name: &str, labels: &str) -> Result<f64> {
    let (_, body) = agent.get("/metrics").await?;
    Ok(body
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
