//! Prune stage (DESIGN §3.5): delete members that left Git, in reverse stage order, each only after
//! re-reading it and finding it still ours.
//!
//! A member is deleted only when the live object still carries its bundle's `part-of` label and does not ask
//! to be kept (`outpost.dev/prune: disabled`), judged on metadata listed moments before (or read again when
//! none was listed). Deletes carry the uid seen as a precondition, so an object recreated in between by
//! someone else is never removed.
//!
//! Some deletes take more with them than the object: a Namespace everything in it, a CustomResourceDefinition
//! every custom resource of its kind, a PersistentVolume (or the claim bound to it) the data. Those
//! [`cascades`] are refused unless consented to ([`Consent`]): `outpost.dev/prune: allow-cascade` on the live
//! object, `--allow-cascading-prune`, or a termination EMCO declared for the bundle. A refused member stays in
//! the inventory, so it is reported and tried again, never orphaned.
//!
//! A bundle whose prune policy is `orphan` ([`crate::policy::PrunePolicy`]) loses members without deletes: the
//! same ownership checks, then our `part-of` label is removed and the object left running.

use std::collections::{BTreeMap, BTreeSet};

use backon::Retryable;
use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy};
use tracing::info;

use crate::apply::{Error, Stage, is_transient, transient_backoff};
use crate::identity::{Acting, Identities};
use crate::inventory::Member;
use crate::inventory::applyset::PART_OF_LABEL;
use crate::live::{LiveIndex, LiveMeta, Lookup};
use crate::object::ObjectKey;
use crate::plan::Plan;
use crate::resolve::{Error as ResolveError, Resolved, Resolver};

/// Whether deleting an object of this kind deletes more than itself (everything in a Namespace, every object
/// of a CRD, the data of a volume).
pub fn cascades(key: &ObjectKey) -> bool {
    matches!(
        (key.group.as_str(), key.kind.as_str()),
        ("", "Namespace" | "PersistentVolume" | "PersistentVolumeClaim")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
    )
}

/// Who agreed to cascading deletes besides the objects themselves (their `allow-cascade` annotation).
#[derive(Clone, Debug, Default)]
pub struct Consent {
    /// `--allow-cascading-prune`: every bundle.
    pub all: bool,
    /// Bundles whose termination EMCO declared (a commit left only their status trackers): EMCO cannot
    /// annotate objects, and deleting the app is what it asked for.
    pub bundles: BTreeSet<String>,
}

impl Consent {
    /// Whether cascading deletes in `bundle` are agreed to without an annotation.
    pub fn given(&self, bundle: &str) -> bool {
        self.all || self.bundles.contains(bundle)
    }
}

/// One member to delete.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Its bundle.
    pub bundle: String,
    /// The bundle's ApplySet id, which the live object must still carry.
    pub applyset_id: String,
    /// Identity.
    pub key: ObjectKey,
    /// What we recorded (apiVersion).
    pub member: Member,
    /// The bundle's prune policy is `orphan`: leave it running, without our label, instead of deleting it.
    pub orphan: bool,
}

/// What happened to one candidate.
#[derive(Debug)]
pub enum Outcome {
    /// Deleted now.
    Deleted,
    /// Already gone.
    Gone,
    /// No longer ours (label changed or removed): left alone, dropped from the inventory.
    NotOurs,
    /// Annotated `outpost.dev/prune: disabled`: left in place, dropped from the inventory.
    Kept,
    /// Its bundle orphans what leaves Git: left running without our `part-of` label, dropped from the
    /// inventory.
    Orphaned,
    /// Its delete would cascade ([`cascades`]) and nobody consented: left in place, kept in the inventory.
    Refused,
    /// Deleting failed; it stays in the inventory and is tried again next time.
    Failed(Error),
}

impl Outcome {
    /// Whether the member can leave the inventory.
    pub fn settled(&self) -> bool {
        !matches!(self, Outcome::Failed(_) | Outcome::Refused)
    }
}

/// The members to delete: what left each bundle of `plan`, in bundles where `clean` says the apply went
/// cleanly (a bundle with failures keeps everything until it applies cleanly, so a half-applied commit never
/// deletes).
pub fn candidates(
    plan: &Plan,
    clean: impl Fn(&str) -> bool,
    applyset_id: impl Fn(&str) -> String,
    orphan: impl Fn(&str) -> bool,
) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    for (bundle, bp) in &plan.bundles {
        if bp.prune.is_empty() {
            continue;
        }
        if !clean(bundle) {
            info!(bundle = %bundle, objects = bp.prune.len(), "Prune postponed until the bundle applies cleanly");
            continue;
        }
        for (key, member) in &bp.prune {
            candidates.push(Candidate {
                bundle: bundle.clone(),
                applyset_id: applyset_id(bundle),
                key: key.clone(),
                member: member.clone(),
                orphan: orphan(bundle),
            });
        }
    }
    candidates
}

/// Delete candidates: reverse stage order, bounded concurrency within a stage. With `identities`, each
/// bundle's deletes (and the reads that judge them) act as its ServiceAccount.
pub async fn prune(
    client: &Client,
    resolver: &mut Resolver,
    candidates: Vec<Candidate>,
    live: &LiveIndex,
    consent: &Consent,
    concurrency: usize,
    identities: Option<&Identities>,
) -> Vec<(Candidate, Outcome)> {
    let mut by_stage: BTreeMap<Stage, Vec<Candidate>> = BTreeMap::new();
    for c in candidates {
        by_stage
            .entry(Stage::of(&c.key.group, &c.key.kind))
            .or_default()
            .push(c);
    }
    // Discovery afresh for every group pruned from: a version served when the member was applied may not be
    // any more, and a delete through it would answer 404 as if the object were gone.
    let groups: BTreeSet<String> = by_stage.values().flatten().map(|c| c.key.group.clone()).collect();
    for group in &groups {
        resolver.forget(group);
    }
    let mut results = Vec::new();
    for stage in Stage::ALL.iter().rev() {
        let Some(candidates) = by_stage.remove(stage) else {
            continue;
        };
        let mut ready = Vec::new();
        for c in candidates {
            let acting = match identities.map(|i| i.acting(&c.bundle)).transpose() {
                Ok(acting) => acting,
                Err(e) => {
                    results.push((c, Outcome::Failed(Error::Client(e.to_string()))));
                    continue;
                }
            };
            let (writer, account) = match acting {
                Some(Acting { client, account }) => (client, account),
                None => (client.clone(), None),
            };
            match resolve(resolver, &c).await {
                Ok(resolved) => {
                    let api = resolved.api(&writer, c.key.namespace.as_deref());
                    ready.push((c, api, account));
                }
                Err(outcome) => results.push((c, outcome)),
            }
        }
        let done: Vec<(Candidate, Outcome)> = futures::stream::iter(ready)
            .map(|(c, api, account)| async move {
                let listed = match live.get(&c.key) {
                    Lookup::Present(meta) if meta.uid.is_some() => Some(meta.clone()),
                    _ => None,
                };
                let outcome = match (
                    delete_one(&api, &c, listed, consent.given(&c.bundle)).await,
                    &account,
                ) {
                    (Outcome::Failed(Error::Forbidden(reason)), Some(account)) => {
                        Outcome::Failed(Error::ForbiddenAs(account.forbidden(&reason)))
                    }
                    (outcome, _) => outcome,
                };
                (c, outcome)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        results.extend(done);
    }
    results
}

/// The kind of a member as the API server serves it now (at its recorded version, or another served one), or
/// what became of the member when no version serves it.
async fn resolve(resolver: &mut Resolver, c: &Candidate) -> Result<Resolved, Outcome> {
    let (group, kind) = (&c.key.group, &c.key.kind);
    match resolver
        .resolve_recorded(&c.member.api_version, group, kind)
        .await
    {
        Ok(resolved) => Ok(resolved),
        Err(ResolveError::UnknownKind { .. }) => match resolver.vanished(group, kind).await {
            // Its CRD was deleted, which deleted its objects (or an upgrade removed the API: nothing can reach
            // them): nothing left to delete.
            Ok(()) => {
                info!(object = %c.key, "Its kind is served no more and no CRD defines it: its objects went with it");
                Err(Outcome::Gone)
            }
            Err(e) => Err(Outcome::Failed(e.into())),
        },
        Err(e) => Err(Outcome::Failed(e.into())),
    }
}

/// Check ownership (on metadata listed moments ago, or read now) and consent to a cascade, delete with a uid
/// precondition.
async fn delete_one(
    api: &Api<DynamicObject>,
    c: &Candidate,
    listed: Option<LiveMeta>,
    consented: bool,
) -> Outcome {
    let meta = match listed {
        Some(meta) => meta,
        None => match (|| async { api.get_opt(&c.key.name).await })
            .retry(transient_backoff())
            .when(is_transient)
            .await
        {
            Ok(Some(live)) => LiveMeta::of(&live.metadata),
            Ok(None) => return Outcome::Gone,
            Err(e) => return Outcome::Failed(Error::from_kube(e)),
        },
    };
    if meta.part_of.as_ref() != Some(&c.applyset_id) {
        return Outcome::NotOurs;
    }
    // Orphaning deletes nothing: it lets go of kept objects too.
    if c.orphan {
        return orphan_one(api, c, &meta).await;
    }
    if meta.keep {
        return Outcome::Kept;
    }
    if cascades(&c.key) && !consented && !meta.allow_cascade {
        return Outcome::Refused;
    }
    // The uid precondition makes the delete fail if the object was replaced since it was read.
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: meta.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match (|| async { api.delete(&c.key.name, &params).await })
        .retry(transient_backoff())
        .when(is_transient)
        .await
    {
        Ok(_) => Outcome::Deleted,
        Err(kube::Error::Api(s)) if s.code == 404 => Outcome::Gone,
        // The uid changed: someone recreated it; it is not the object we own.
        Err(kube::Error::Api(s)) if s.code == 409 => Outcome::NotOurs,
        Err(e) => Outcome::Failed(Error::from_kube(e)),
    }
}

/// Remove our `part-of` label from the object (with a uid precondition), so that no ApplySet prune — ours or
/// kubectl's — ever deletes it, and leave it running.
async fn orphan_one(api: &Api<DynamicObject>, c: &Candidate, meta: &LiveMeta) -> Outcome {
    let patch = serde_json::json!({"metadata": {"uid": meta.uid, "labels": {PART_OF_LABEL: null}}});
    match (|| async {
        api.patch(&c.key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    })
    .retry(transient_backoff())
    .when(is_transient)
    .await
    {
        Ok(_) => Outcome::Orphaned,
        Err(kube::Error::Api(s)) if s.code == 404 => Outcome::Gone,
        Err(kube::Error::Api(s)) if s.code == 409 => Outcome::NotOurs,
        Err(e) => Outcome::Failed(Error::from_kube(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, kind: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: None,
            name: "x".into(),
        }
    }

    #[test]
    fn namespaces_crds_and_volumes_cascade_and_the_rest_does_not() {
        for (group, kind) in [
            ("", "Namespace"),
            ("", "PersistentVolume"),
            ("", "PersistentVolumeClaim"),
            ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ] {
            assert!(cascades(&key(group, kind)), "{group}/{kind}");
        }
        for (group, kind) in [
            ("", "ConfigMap"),
            ("apps", "Deployment"),
            ("example.com", "Namespace"),
        ] {
            assert!(!cascades(&key(group, kind)), "{group}/{kind}");
        }
    }

    #[test]
    fn consent_comes_from_the_flag_or_a_declared_bundle() {
        let declared = Consent {
            all: false,
            bundles: ["1-web".to_owned()].into(),
        };
        assert!(declared.given("1-web"));
        assert!(!declared.given("2-db"));
        assert!(
            Consent {
                all: true,
                ..Default::default()
            }
            .given("2-db")
        );
        assert!(!Consent::default().given("1-web"));
        assert!(
            !Outcome::Refused.settled(),
            "a refused member must stay in the inventory"
        );
    }
}
