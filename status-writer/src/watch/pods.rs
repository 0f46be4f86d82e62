//! The pod watches of the status writer's [`Index`]: all pods, or those of each namespace `--watch-namespaces`
//! lists. A bundle's status lists the pods its tracker or workloads select (see `select`).

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use outpost_agent::watch_scope::{Unavailable, WatchTarget, is_forbidden};
use serde_json::Value;
use tracing::debug;

use super::Index;

impl Index {
    /// Pods in `namespace` (`None`: all of them).
    pub(super) async fn watch_pods(self, api: Api<Pod>, namespace: Option<String>) {
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let key_of = |p: &Pod| (p.namespace().unwrap_or_default(), p.name_any());
        let target = WatchTarget {
            group: String::new(),
            kind: "Pod".into(),
            namespace: namespace.clone(),
        };
        let mut relist: Option<BTreeMap<(String, String), Value>> = None;
        let mut forbidden = false;
        while let Some(event) = stream.next().await {
            if event.is_ok() && std::mem::take(&mut forbidden) {
                self.health.set(&target, None);
            }
            match event {
                Ok(watcher::Event::Apply(p)) => {
                    let v = pod_value(&p);
                    self.lock().snapshot.pods.insert(key_of(&p), v);
                }
                Ok(watcher::Event::Delete(p)) => {
                    self.lock().snapshot.pods.remove(&key_of(&p));
                }
                Ok(watcher::Event::Init) => relist = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(p)) => {
                    if let Some(r) = relist.as_mut() {
                        r.insert(key_of(&p), pod_value(&p));
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let mut state = self.lock();
                    let fresh = relist.take().unwrap_or_default();
                    if let Some(ns) = &namespace {
                        state.snapshot.pods.retain(|(n, _), _| n != ns);
                        state.snapshot.pods.extend(fresh);
                    } else {
                        state.snapshot.pods = fresh;
                    }
                    state.pods_listed.insert(namespace.clone());
                }
                Err(e) if is_forbidden(&e) => {
                    if !std::mem::replace(&mut forbidden, true) {
                        self.health.set(&target, Some(Unavailable::Forbidden));
                        self.changed.notify_one();
                    }
                    continue;
                }
                Err(e) => {
                    debug!(error = %e, "Pod watch failed (retrying)");
                    continue;
                }
            }
            self.changed.notify_one();
        }
    }
}

fn pod_value(p: &Pod) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("apiVersion".into(), Value::String("v1".into()));
        map.insert("kind".into(), Value::String("Pod".into()));
    }
    v
}
