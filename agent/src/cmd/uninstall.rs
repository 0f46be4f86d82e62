//! `outpost-agent uninstall [--prune]`: take Outpost off a cluster.
//!
//! First the whole agent is suspended (a running agent stops applying within a second). Then every member of
//! every readable inventory of the cluster is either left running without our `part-of` label (default: the
//! workloads stay, Outpost lets go) or, with `--prune`, deleted — in reverse stage order, behind the same
//! guards as a normal prune: still ours (label and uid), not `outpost.dev/prune: disabled`, cascading deletes
//! only with consent. An inventory goes once all its members are settled; the source-state ConfigMap goes
//! last, once every inventory is gone. The control ConfigMap stays, suspending any agent still running (one
//! that resumed with no inventories would create everything again). Whatever could not be settled keeps its
//! inventory and is listed, and the command fails, so it can be run again.

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams};

use crate::cli::Mode;
use crate::inventory::source_state::SourceStateStore;
use crate::inventory::store::{Store, StoreError};
use crate::live::LiveIndex;
use crate::prune::{self, Candidate, Consent, Outcome};
use crate::resolve::Resolver;

/// Why an uninstall did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The inventories could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The agent could not be suspended first.
    #[error(transparent)]
    Control(#[from] super::control::Error),
    /// Some members or inventories are left; run it again once fixed.
    #[error("uninstall incomplete: {0}")]
    Incomplete(String),
    /// A control ConfigMap could not be removed.
    #[error("removing ConfigMap {name}: {source}")]
    Cleanup {
        /// Its name.
        name: String,
        /// The error.
        source: kube::Error,
    },
}

/// What the uninstall does with members.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Delete them (`--prune`) instead of letting them go.
    pub prune: bool,
    /// `--allow-cascading-prune`: Namespaces, CRDs and volumes may be deleted without their annotation.
    pub allow_cascading_prune: bool,
    /// Deletes at once.
    pub concurrency: usize,
}

/// Uninstall `store`'s cluster, printing what happens to `out`.
pub async fn run(client: Client, store: &Store, options: Options, out: &mut impl Write) -> Result<(), Error> {
    let (namespace, cluster) = (store.namespace().to_owned(), store.cluster().to_owned());
    let mut sink = Vec::new();
    super::control::run(
        client.clone(),
        Mode::Suspend,
        &namespace,
        &cluster,
        None,
        &mut sink,
    )
    .await?;
    let loaded = store.load().await?;
    let mut problems: Vec<String> = loaded
        .corrupt
        .iter()
        .map(|(bundle, e)| format!("bundle {bundle}: {e}"))
        .collect();
    let candidates: Vec<Candidate> = loaded
        .inventories
        .iter()
        .flat_map(|(bundle, inv)| {
            inv.members.iter().map(|(key, member)| Candidate {
                bundle: bundle.clone(),
                applyset_id: store.applyset_id(bundle),
                key: key.clone(),
                member: member.clone(),
                orphan: !options.prune,
            })
        })
        .collect();
    let consent = Consent {
        all: options.allow_cascading_prune,
        ..Default::default()
    };
    let mut resolver = Resolver::new(client.clone());
    let live = LiveIndex::default();
    let outcomes = prune::prune(
        &client,
        &mut resolver,
        candidates,
        &live,
        &consent,
        options.concurrency,
        None,
    )
    .await;
    let mut inventories = loaded.inventories;
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (c, outcome) in outcomes {
        let word = match &outcome {
            Outcome::Deleted => "deleted",
            Outcome::Orphaned => "left running",
            Outcome::Gone => "already gone",
            Outcome::NotOurs => "no longer ours, left alone",
            Outcome::Kept => "kept (outpost.dev/prune: disabled)",
            Outcome::Refused => {
                problems.push(format!(
                    "{} refused: deleting it deletes everything it holds (annotate it outpost.dev/prune=allow-cascade or pass --allow-cascading-prune)",
                    c.key
                ));
                "refused"
            }
            Outcome::Failed(e) => {
                problems.push(format!("{}: {e}", c.key));
                "failed"
            }
        };
        let _ = writeln!(out, "{}: {word}", c.key);
        *counts.entry(word).or_default() += 1;
        if outcome.settled()
            && let Some(inv) = inventories.get_mut(&c.bundle)
        {
            inv.members.remove(&c.key);
        }
    }
    for (bundle, inv) in &inventories {
        if inv.members.is_empty() {
            store.delete(bundle).await?;
        } else {
            store.save(inv).await?;
            problems.push(format!(
                "bundle {bundle} keeps {} member(s) and its inventory",
                inv.members.len()
            ));
        }
    }
    let summary: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    let _ = writeln!(
        out,
        "{}",
        if summary.is_empty() {
            "nothing managed".to_owned()
        } else {
            summary.join(", ")
        }
    );
    if !problems.is_empty() {
        return Err(Error::Incomplete(problems.join("; ")));
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let name = SourceStateStore::new(client, &namespace, &cluster).name();
    match configmaps.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(source) => return Err(Error::Cleanup { name, source }),
    }
    let _ = writeln!(
        out,
        "Outpost no longer manages anything of cluster {cluster}; ConfigMap {namespace}/{} keeps any agent still running suspended (delete it before installing again)",
        crate::control::configmap_name(&cluster)
    );
    Ok(())
}
