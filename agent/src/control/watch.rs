//! Keeping [`Controls`] current: a metadata watch on the control ConfigMap and one on this cluster's
//! inventory parents. A change reaches the controls (and wakes the daemon) within a second; an idle agent
//! sends nothing but the two open watches.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{debug, warn};

use super::{Controls, Marks, configmap_name};
use crate::inventory::applyset::{INVENTORY_LABEL, PART_OF_LABEL};
use crate::inventory::store::{BUNDLE_ANNOTATION, CLUSTER_ANNOTATION};

/// The running watches; dropping it stops them.
pub struct ControlWatch {
    /// The two watch tasks.
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for ControlWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Start watching `cluster`'s control ConfigMap and parents in `namespace`, feeding `controls`.
pub fn start(client: Client, namespace: &str, cluster: &str, controls: Controls) -> ControlWatch {
    let configmaps: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), namespace);
    let name = configmap_name(cluster);
    let agent = {
        let controls = controls.clone();
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        tokio::spawn(async move {
            let mut events = watcher(configmaps, config).default_backoff().boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                        controls.set_agent(read(&cm, "control ConfigMap"));
                    }
                    Ok(watcher::Event::Delete(_)) => controls.set_agent(Marks::default()),
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                    Err(e) => warn!(error = %e, configmap = %name, "Control watch failed; retrying"),
                }
            }
        })
    };
    let secrets: Api<PartialObjectMeta<Secret>> = Api::namespaced(client, namespace);
    let cluster = cluster.to_owned();
    let parents = tokio::spawn(async move {
        let config = watcher::Config::default().labels(INVENTORY_LABEL);
        let mut events = watcher(secrets, config).default_backoff().boxed();
        let mut listing: Option<BTreeMap<String, Marks>> = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => listing = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(parent)) => {
                    if let (Some(list), Some(bundle)) = (listing.as_mut(), bundle_of(&parent, &cluster)) {
                        list.insert(bundle, read(&parent, "inventory"));
                    }
                }
                Ok(watcher::Event::InitDone) => controls.set_bundles(listing.take().unwrap_or_default()),
                Ok(watcher::Event::Apply(parent)) => {
                    if let Some(bundle) = bundle_of(&parent, &cluster) {
                        controls.set_bundle(&bundle, Some(read(&parent, "inventory")));
                    }
                }
                Ok(watcher::Event::Delete(parent)) => {
                    if let Some(bundle) = bundle_of(&parent, &cluster) {
                        controls.set_bundle(&bundle, None);
                    }
                }
                Err(e) => warn!(error = %e, "Inventory control watch failed; retrying"),
            }
        }
    });
    ControlWatch {
        tasks: vec![agent.abort_handle(), parents.abort_handle()],
    }
}

/// Read the controls once (`--once`, `plan`): the control ConfigMap and the parents as they are now.
pub async fn read_once(
    client: Client,
    namespace: &str,
    cluster: &str,
    controls: &Controls,
) -> Result<(), kube::Error> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let agent = configmaps.get_metadata_opt(&configmap_name(cluster)).await?;
    controls.set_agent(agent.map(|cm| read(&cm, "control ConfigMap")).unwrap_or_default());
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let parents = secrets
        .list_metadata(&kube::api::ListParams::default().labels(INVENTORY_LABEL))
        .await?;
    let bundles = parents
        .items
        .iter()
        .filter_map(|p| bundle_of(p, cluster).map(|b| (b, read(p, "inventory"))))
        .collect();
    controls.set_bundles(bundles);
    Ok(())
}

/// The bundle a parent belongs to, when it is one of `cluster`'s.
fn bundle_of<K>(parent: &PartialObjectMeta<K>, cluster: &str) -> Option<String> {
    // A Secret applied from Git carries a part-of label; ours never do (and the fence refuses them anyway).
    if parent
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(PART_OF_LABEL))
    {
        return None;
    }
    let annotations = parent.metadata.annotations.as_ref()?;
    if annotations.get(CLUSTER_ANNOTATION).map(String::as_str) != Some(cluster) {
        return None;
    }
    annotations.get(BUNDLE_ANNOTATION).cloned()
}

/// The marks of `object`, logging the values that cannot be read.
fn read<K>(object: &PartialObjectMeta<K>, what: &str) -> Marks {
    let marks = Marks::from_annotations(&object.metadata.annotations.clone().unwrap_or_default());
    for problem in &marks.invalid {
        warn!(
            object = object.metadata.name.as_deref().unwrap_or_default(),
            what, "Control ignored: {problem}"
        );
    }
    debug!(
        object = object.metadata.name.as_deref().unwrap_or_default(),
        ?marks,
        "Controls read"
    );
    marks
}
