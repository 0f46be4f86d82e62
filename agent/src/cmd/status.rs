//! `outpost-agent status`: one line per bundle from the inventories — revision, objects, health, last sync,
//! last error.

use std::io::Write;

use kube::Client;
use kube::api::{Api, DynamicObject};

use crate::health::{self, Health};
use crate::inventory::Inventory;
use crate::inventory::source_state::{Phase, SourceStateStore};
use crate::inventory::store::{Store, StoreError};
use crate::resolve::Resolver;

/// Longest error shown in the table; the full text is in the inventory's `outpost.dev/sync` annotation.
const MAX_ERROR: usize = 80;

/// Print the table to `out`, after the agent's waiting state when it waits for content; returns the number of
/// bundles.
pub async fn run(
    client: Client,
    store: &Store,
    source_state: &SourceStateStore,
    out: &mut (impl Write + Send),
) -> Result<usize, StoreError> {
    let loaded = store.load().await?;
    if let Some(state) = source_state.load().await?
        && state.phase == Phase::Waiting
    {
        let _ = writeln!(out, "Waiting: {} (since {})", state.message, state.time);
    }
    let mut resolver = Resolver::new(client.clone());
    let mut rows = vec![[
        "BUNDLE".to_owned(),
        "REVISION".into(),
        "OBJECTS".into(),
        "HEALTH".into(),
        "STATE".into(),
        "LAST SYNC".into(),
        "LAST ERROR".into(),
    ]];
    for (bundle, inv) in &loaded.inventories {
        let health = bundle_health(&client, &mut resolver, inv).await;
        let revision: String = inv
            .sync
            .revision
            .clone()
            .unwrap_or_default()
            .chars()
            .take(12)
            .collect();
        let mut error = inv.sync.errors.first().cloned().unwrap_or_default();
        if error.len() > MAX_ERROR {
            let mut cut = MAX_ERROR;
            while !error.is_char_boundary(cut) {
                cut -= 1;
            }
            error.truncate(cut);
            error.push('…');
        }
        rows.push([
            bundle.clone(),
            revision,
            inv.members.len().to_string(),
            health.status.to_string(),
            format!("{:?}", inv.sync.state),
            inv.sync.time.clone().unwrap_or_default(),
            error,
        ]);
    }
    for (bundle, e) in &loaded.corrupt {
        rows.push([
            bundle.clone(),
            String::new(),
            String::new(),
            "Unknown".into(),
            "Corrupt".into(),
            String::new(),
            e.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    Ok(rows.len() - 1)
}

/// Health of an inventory's members (one GET each).
async fn bundle_health(client: &Client, resolver: &mut Resolver, inv: &Inventory) -> Health {
    let mut healths = Vec::new();
    for (key, member) in &inv.members {
        let h = match resolver.resolve(&member.api_version, &key.kind).await {
            Ok(r) => {
                let api: Api<DynamicObject> = match &key.namespace {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &r.resource),
                    None => Api::all_with(client.clone(), &r.resource),
                };
                match api.get_opt(&key.name).await {
                    Ok(Some(live)) => health::of_object(&serde_json::to_value(&live).unwrap_or_default()),
                    Ok(None) => Health {
                        status: health::Status::InProgress,
                        message: "missing".into(),
                    },
                    Err(e) => Health {
                        status: health::Status::Unknown,
                        message: e.to_string(),
                    },
                }
            }
            Err(e) => Health {
                status: health::Status::Unknown,
                message: e.to_string(),
            },
        };
        healths.push((key.to_string(), h));
    }
    health::aggregate(healths.iter().map(|(n, h)| (n.as_str(), h)))
}
