//! `outpost-agent status`: what is synced, per bundle, from the inventories — revision, state, last sync,
//! errors, and the health of every member (one GET each) — as a table (one line per bundle), or as JSON or
//! YAML with every object's health, for scripts and for the kstatus oracle of the e2e tests.

use std::io::Write;

use kube::Client;
use serde::Serialize;

use crate::control::Controls;
use crate::health::{Health, bundle};
use crate::inventory::source_state::{Phase, SourceStateStore};
use crate::inventory::store::{Store, StoreError};
use crate::inventory::{Error as InventoryError, Inventory};
use crate::resolve::Resolver;

/// Longest error shown in the table; the full text is in the inventory's `outpost.dev/sync` annotation.
const MAX_ERROR: usize = 80;
/// State of a bundle whose inventory is unreadable.
const CORRUPT: &str = "Corrupt";
/// State of a bundle whose inventory a newer Outpost wrote.
const NEWER_FORMAT: &str = "NewerFormat";

/// `--output`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per bundle, for people.
    #[default]
    Table,
    /// Every bundle and object with its health, as JSON.
    Json,
    /// The same as YAML.
    Yaml,
}

/// Everything `status` knows: the document `-o json` and `-o yaml` print.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Set while the whole agent is suspended: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
    /// Control annotations the agent cannot read (and ignores), naming them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_controls: Vec<String>,
    /// Set when sync windows are: open or closed now, and when they next open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_windows: Option<crate::control::windows::report::WindowStatus>,
    /// Set while the agent waits for its cluster path to hold something to apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// Bundles by name, unreadable inventories (corrupt, or of a newer format) included.
    pub bundles: Vec<BundleStatus>,
}

/// The agent's waiting state (the table's `Waiting:` line).
#[derive(Debug, Serialize)]
pub struct Waiting {
    /// What a person should read (`clusters/x does not exist at commit …`).
    pub message: String,
    /// The commit it was found at.
    pub revision: String,
    /// Since when (RFC 3339).
    pub since: String,
}

/// One bundle.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleStatus {
    /// Bundle name.
    pub name: String,
    /// Commit last applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Outcome of the last sync: Synced, Failed, Waiting, Pending; or, when the inventory is unreadable,
    /// Corrupt, or NewerFormat (written by a newer Outpost: the bundle is refused until the agent is upgraded).
    pub state: String,
    /// When it was synced (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<String>,
    /// The last sync's errors (scrubbed of secrets), or why the inventory is unreadable.
    pub errors: Vec<String>,
    /// Set while the bundle is suspended (nothing applied, pruned or reverted): by whom.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
    /// Set when an operator's resume overrides `suspend: true` in Git.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden: Option<String>,
    /// `revert` or `report`.
    pub drift_mode: &'static str,
    /// `delete` or `orphan`.
    pub prune_policy: &'static str,
    /// All objects' health folded into one.
    pub health: Health,
    /// Members of the inventory, in inventory order.
    pub objects: Vec<ObjectStatus>,
}

/// One member object and its health.
#[derive(Debug, Serialize)]
pub struct ObjectStatus {
    /// API group, empty for the core group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, absent for cluster-scoped kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Its health now.
    pub health: Health,
}

/// Print the status to `out` in `format`; returns the number of bundles.
pub async fn run(
    client: Client,
    (store, source_state, controls): (&Store, &SourceStateStore, &Controls),
    format: Format,
    out: &mut (impl Write + Send),
) -> Result<usize, StoreError> {
    let report = collect(client, store, source_state, controls).await?;
    // Write errors (a closed pipe) are ignored: there is no one left to tell.
    let _ = match format {
        Format::Table => write_table(&report, out),
        // Plain structs of strings and numbers: serialising them cannot fail.
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).expect("the status report serialises")
        ),
        Format::Yaml => write!(
            out,
            "{}",
            serde_saphyr::to_string(&report).expect("the status report serialises")
        ),
    };
    Ok(report.bundles.len())
}

/// Read the inventories, the waiting state and every member's live object.
pub async fn collect(
    client: Client,
    store: &Store,
    source_state: &SourceStateStore,
    controls: &Controls,
) -> Result<Report, StoreError> {
    let loaded = store.load().await?;
    controls.set_git(
        loaded
            .inventories
            .iter()
            .map(|(b, inv)| (b.clone(), inv.info.settings()))
            .collect(),
    );
    let waiting = source_state
        .load()
        .await?
        .filter(|state| state.phase == Phase::Waiting)
        .map(|state| Waiting {
            message: state.message,
            revision: state.revision,
            since: state.time,
        });
    let mut resolver = Resolver::new(client.clone());
    let mut bundles = Vec::new();
    for (bundle, inv) in &loaded.inventories {
        let objects = member_health(&client, &mut resolver, inv).await;
        let health = bundle::summarize(objects.iter().map(|(n, o)| (n.as_str(), &o.health)));
        let policy = controls.policy(bundle);
        let suspended = policy.suspended.map(|by| by.describe().to_owned());
        bundles.push(BundleStatus {
            name: bundle.clone(),
            revision: inv.sync.revision.clone(),
            state: match &suspended {
                Some(_) => "Suspended".to_owned(),
                None => format!("{:?}", inv.sync.state),
            },
            last_sync: inv.sync.time.clone(),
            errors: inv.sync.errors.clone(),
            suspended,
            overridden: policy.overridden,
            drift_mode: policy.drift.as_str(),
            prune_policy: policy.prune.as_str(),
            health,
            objects: objects.into_iter().map(|(_, o)| o).collect(),
        });
    }
    for (bundle, e) in &loaded.corrupt {
        let (state, why) = match e {
            InventoryError::Corrupt { .. } => (CORRUPT, "inventory unreadable"),
            InventoryError::NewerFormat { .. } => (NEWER_FORMAT, "inventory of a newer Outpost"),
        };
        bundles.push(BundleStatus {
            name: bundle.clone(),
            revision: None,
            state: state.into(),
            last_sync: None,
            errors: vec![e.to_string()],
            suspended: None,
            overridden: None,
            drift_mode: "",
            prune_policy: "",
            health: bundle::unknown(why),
            objects: Vec::new(),
        });
    }
    Ok(Report {
        suspended: controls.agent_suspended().map(|by| by.describe().to_owned()),
        ignored_controls: controls.invalid(),
        sync_windows: crate::control::windows::report::WindowStatus::of(controls.windows()),
        waiting,
        bundles,
    })
}

/// The table: the `Waiting:` line when the agent waits, then one row per bundle.
fn write_table(report: &Report, out: &mut impl Write) -> std::io::Result<()> {
    if let Some(why) = &report.suspended {
        writeln!(out, "Suspended: {why}")?;
    }
    for ignored in &report.ignored_controls {
        writeln!(out, "Ignored control: {ignored}")?;
    }
    if let Some(windows) = &report.sync_windows {
        writeln!(out, "{}", windows.line())?;
    }
    if let Some(w) = &report.waiting {
        writeln!(out, "Waiting: {} (since {})", w.message, w.since)?;
    }
    let mut rows = vec![[
        "BUNDLE".to_owned(),
        "REVISION".into(),
        "OBJECTS".into(),
        "HEALTH".into(),
        "STATE".into(),
        "LAST SYNC".into(),
        "CONTROLS".into(),
        "LAST ERROR".into(),
    ]];
    for b in &report.bundles {
        let revision: String = b
            .revision
            .as_deref()
            .unwrap_or_default()
            .chars()
            .take(12)
            .collect();
        // The agent's own suspension is the first line; a bundle's is its message.
        let suspended = b.suspended.clone().filter(|_| report.suspended.is_none());
        let mut error = suspended
            .or_else(|| b.errors.first().cloned())
            .unwrap_or_default();
        if error.len() > MAX_ERROR {
            let mut cut = MAX_ERROR;
            while !error.is_char_boundary(cut) {
                cut -= 1;
            }
            error.truncate(cut);
            error.push('…');
        }
        let unreadable = b.state == CORRUPT || b.state == NEWER_FORMAT;
        rows.push([
            b.name.clone(),
            revision,
            if unreadable {
                String::new()
            } else {
                b.objects.len().to_string()
            },
            b.health.status.to_string(),
            b.state.clone(),
            b.last_sync.clone().unwrap_or_default(),
            controls_cell(b),
            error,
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

/// The table's CONTROLS cell: what differs from the defaults.
fn controls_cell(b: &BundleStatus) -> String {
    let mut cell = Vec::new();
    if b.drift_mode == "report" {
        cell.push("drift=report");
    }
    if b.prune_policy == "orphan" {
        cell.push("prune=orphan");
    }
    if b.overridden.is_some() {
        cell.push("resumed-over-git");
    }
    cell.join(",")
}

/// Health of each of an inventory's members (one GET each), with the member's display name.
async fn member_health(
    client: &Client,
    resolver: &mut Resolver,
    inv: &Inventory,
) -> Vec<(String, ObjectStatus)> {
    let mut objects = Vec::with_capacity(inv.members.len());
    for (key, member) in &inv.members {
        let health = match resolver.resolve(&member.api_version, &key.kind).await {
            Ok(r) => {
                let api = r.api(client, key.namespace.as_deref());
                // As deps::bundle_health judges the same objects before a wave.
                bundle::member(api.get_opt(&key.name).await)
            }
            Err(e) => bundle::unknown(e.to_string()),
        };
        let version = member.api_version.rsplit('/').next().unwrap_or_default();
        objects.push((
            key.to_string(),
            ObjectStatus {
                group: key.group.clone(),
                version: version.to_owned(),
                kind: key.kind.clone(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                health,
            },
        ));
    }
    objects
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health;

    fn report() -> Report {
        let ok = Health {
            status: health::Status::Current,
            message: "1/1 replicas ready".into(),
        };
        Report {
            suspended: None,
            ignored_controls: Vec::new(),
            sync_windows: None,
            waiting: None,
            bundles: vec![
                BundleStatus {
                    name: "app".into(),
                    revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
                    state: "Synced".into(),
                    last_sync: Some("2024-01-01T00:00:00Z".into()),
                    errors: Vec::new(),
                    suspended: None,
                    overridden: None,
                    drift_mode: "revert",
                    prune_policy: "delete",
                    health: ok.clone(),
                    objects: vec![ObjectStatus {
                        group: "apps".into(),
                        version: "v1".into(),
                        kind: "Deployment".into(),
                        namespace: Some("web".into()),
                        name: "web".into(),
                        health: ok,
                    }],
                },
                BundleStatus {
                    name: "broken".into(),
                    revision: None,
                    state: "Corrupt".into(),
                    last_sync: None,
                    errors: vec!["x".repeat(100)],
                    suspended: None,
                    overridden: None,
                    drift_mode: "",
                    prune_policy: "",
                    health: bundle::unknown("inventory unreadable"),
                    objects: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn table_has_one_row_per_bundle_and_cuts_long_errors() {
        let mut out = Vec::new();
        write_table(&report(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("BUNDLE  REVISION"), "{text}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "app",
                "0123456789ab",
                "1",
                "Current",
                "Synced",
                "2024-01-01T00:00:00Z"
            ]
        );
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(&cells[..3], ["broken", "Unknown", "Corrupt"]);
        assert_eq!(cells[3], format!("{}…", "x".repeat(MAX_ERROR)));
    }

    #[test]
    fn json_and_yaml_carry_every_object_with_its_health() {
        let json = serde_json::to_value(report()).unwrap();
        assert_eq!(json.get("waiting"), None);
        let app = &json["bundles"][0];
        assert_eq!(app["lastSync"], "2024-01-01T00:00:00Z");
        assert_eq!(
            app["objects"][0],
            serde_json::json!({"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "web",
                "name": "web", "health": {"status": "Current", "message": "1/1 replicas ready"}})
        );
        assert_eq!(json["bundles"][1]["health"]["status"], "Unknown");
        assert_eq!(json["bundles"][1].get("revision"), None);
        // Strings YAML would read as other types stay strings (a commit id can be all digits).
        let mut tricky = report();
        tricky.bundles[0].revision = Some("1234567890".repeat(4));
        tricky.bundles[0].name = "true".into();
        tricky.bundles[0].objects[0].namespace = Some("null".into());
        let yaml = serde_saphyr::to_string(&tricky).unwrap();
        let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, serde_json::to_value(&tricky).unwrap(), "{yaml}");
    }
}
