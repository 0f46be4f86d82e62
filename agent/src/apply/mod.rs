//! Apply stage (DESIGN §3.4): staged, bounded-concurrency server-side apply of desired objects.
//!
//! Objects enter as [`DesiredObject`]s (from the plan), are applied stage by stage (custom resources whose CRD
//! came in the same commit are resolved once it is Established), and leave as a [`Report`] of what was applied
//! (with the generation and resourceVersion the server returned, for drift detection) and what failed. One
//! object's failure never stops the others; transient API errors are retried. An object another deployment
//! tool created is adopted on its first apply ([`adopt`]): same object, its fields owned by us from then on.

pub mod adopt;
mod fieldset;
pub mod wait;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use futures::StreamExt;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::{Api, Client};
use serde_json::Value;

pub use crate::desired::{Failure, ObjectError as Error, Stage};

/// Field manager of every server-side apply we send (objects, inventories, the agent's state ConfigMap).
pub const FIELD_MANAGER: &str = "outpost";

use crate::desired::DesiredObject;
use crate::identity::{Acting, Identities};
pub use crate::object::ObjectKey;
use crate::resolve::Resolver;

/// An object the API server accepted.
#[derive(Clone, Debug)]
pub struct Applied {
    /// Its bundle.
    pub bundle: String,
    /// Its identity.
    pub key: ObjectKey,
    /// apiVersion sent.
    pub api_version: String,
    /// Digest of the body sent.
    pub digest: String,
    /// `metadata.generation` the server returned.
    pub generation: Option<i64>,
    /// `metadata.resourceVersion` the server returned.
    pub resource_version: Option<String>,
    /// It was deleted and created again (`outpost.dev/force`).
    pub recreated: bool,
    /// The object the server returned (kept only for dry runs, to diff against the live object).
    pub returned: Option<DynamicObject>,
    /// Field managers whose fields this apply took over (in a dry run: would take over), sorted.
    pub adopted: Vec<String>,
}

/// What one apply run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Accepted objects.
    pub applied: Vec<Applied>,
    /// Rejected objects.
    pub failed: Vec<Failure>,
}

/// Server-side apply settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Field manager name (`outpost`).
    pub field_manager: String,
    /// Take ownership of fields other managers set (`--force-conflicts`).
    pub force_conflicts: bool,
    /// Concurrent requests within one stage (`--apply-concurrency`).
    pub concurrency: usize,
    /// Server-side dry run: validate and diff, change nothing.
    pub dry_run: bool,
    /// Field managers whose fields are taken over when one of our applies finds them
    /// (`--adopt-field-managers`, by default [`adopt::DEFAULT_MANAGERS`]); empty: none.
    pub adopt_from: Vec<String>,
}

/// What is kept of the server's answer to one apply.
struct Response {
    /// `metadata.generation` after the apply, for drift detection.
    generation: Option<i64>,
    /// `metadata.resourceVersion` after the apply, for drift detection of kinds without generation.
    resource_version: Option<String>,
    /// `status.phase` (Namespaces: Active or Terminating).
    phase: Option<String>,
    /// The object was deleted and created again (`outpost.dev/force` on an immutable-field error).
    recreated: bool,
    /// The whole object, for dry runs only.
    returned: Option<DynamicObject>,
    /// Field managers whose fields were (in a dry run: would be) taken over.
    adopted: Vec<String>,
}

/// Attempts for a request that failed transiently (connection refused, 429, 5xx): an API server restart
/// takes a few seconds, and the next reconcile retries anyway.
const TRANSIENT_ATTEMPTS: usize = 4;
/// How long a forced recreate waits for the old object to disappear (finalizers may hold it).
const RECREATE_WAIT: Duration = Duration::from_secs(30);

/// Applies desired objects to one cluster.
#[derive(Clone)]
pub struct Applier {
    /// The shared client.
    client: Client,
    /// How to apply.
    options: Options,
    /// The ServiceAccount each bundle's writes act as ([`crate::identity`]); none: the agent's own identity.
    identities: Option<Identities>,
}

impl Applier {
    /// An applier for `client`.
    pub fn new(client: Client, options: Options) -> Self {
        Applier {
            client,
            options,
            identities: None,
        }
    }

    /// Write each bundle's objects as the ServiceAccount `identities` name for it.
    pub fn acting_as(mut self, identities: Identities) -> Self {
        self.identities = Some(identities);
        self
    }

    /// Who each bundle acts as, when set.
    pub fn identities(&self) -> Option<&Identities> {
        self.identities.as_ref()
    }

    /// The settings.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Apply everything in stage order. CRDs applied in the Foundation stage are waited for, and their groups
    /// re-discovered, before later stages resolve their kinds.
    pub async fn apply(&self, resolver: &mut Resolver, objects: Vec<Arc<DesiredObject>>) -> Report {
        let mut by_stage: BTreeMap<Stage, Vec<Arc<DesiredObject>>> = BTreeMap::new();
        for o in objects {
            by_stage.entry(o.stage).or_default().push(o);
        }
        let mut report = Report::default();
        for stage in Stage::ALL {
            let Some(objects) = by_stage.remove(&stage) else {
                continue;
            };
            let mut ready = Vec::with_capacity(objects.len());
            for mut o in objects {
                if o.resolved.is_none() {
                    match resolver.resolve(&o.api_version, &o.key.kind).await {
                        Ok(r) => Arc::make_mut(&mut o).resolved = Some(r),
                        Err(e) => {
                            report.failed.push(failure(&o, e.into()));
                            continue;
                        }
                    }
                }
                ready.push(o);
            }
            // Each response is reduced to what we keep right away: ten thousand full objects would otherwise
            // sit in memory until the stage ends.
            let results: Vec<(Arc<DesiredObject>, Result<Response, Error>)> = futures::stream::iter(ready)
                .map(|o| async move {
                    let result = self.apply_one(&o).await;
                    (o, result)
                })
                .buffer_unordered(self.options.concurrency.max(1))
                .collect()
                .await;
            for (o, result) in results {
                let result = match result {
                    Ok(response) => self.settle(&o, &response, resolver).await.map(|()| response),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(response) => report.applied.push(Applied {
                        bundle: o.bundle.clone(),
                        key: o.key.clone(),
                        api_version: o.api_version.clone(),
                        digest: o.digest.clone(),
                        generation: response.generation,
                        resource_version: response.resource_version,
                        recreated: response.recreated,
                        returned: response.returned,
                        adopted: response.adopted,
                    }),
                    Err(error) => report.failed.push(failure(&o, error)),
                }
            }
        }
        report
    }

    /// Apply one object as its bundle's identity; a 403 names the ServiceAccount it acted as.
    async fn apply_one(&self, o: &DesiredObject) -> Result<Response, Error> {
        let acting = match &self.identities {
            Some(identities) => identities
                .acting(&o.bundle)
                .map_err(|e| Error::Client(e.to_string()))?,
            None => Acting {
                client: self.client.clone(),
                account: None,
            },
        };
        self.apply_as(&acting.client, o)
            .await
            .map_err(|e| match (e, &acting.account) {
                (Error::Forbidden(reason), Some(account)) => Error::ForbiddenAs(account.forbidden(&reason)),
                (e, _) => e,
            })
    }

    /// Apply one object through `client`; with `outpost.dev/force` an immutable-field rejection deletes and
    /// recreates it.
    async fn apply_as(&self, client: &Client, o: &DesiredObject) -> Result<Response, Error> {
        let Some(api) = o
            .resolved
            .as_ref()
            .map(|r| r.api(client, o.key.namespace.as_deref()))
        else {
            return Err(Error::Client("kind not resolved".into()));
        };
        let mut params = PatchParams::apply(&self.options.field_manager);
        if self.options.force_conflicts {
            params = params.force();
        }
        if self.options.dry_run {
            params = params.dry_run();
        }
        if self.options.dry_run {
            let mut live = patch(&api, &o.key.name, &params, &o.body).await?;
            let mut adopted = Vec::new();
            if let Some((simulated, from)) = adopt::simulate(&api, &live, self.adoption(), &o.body).await? {
                live = simulated;
                adopted = from;
            }
            return Ok(Response {
                generation: live.metadata.generation,
                resource_version: live.metadata.resource_version.clone(),
                phase: live
                    .data
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                recreated: false,
                returned: Some(live),
                adopted,
            });
        }
        let (slim, recreated) = match patch_slim(client, &api, &o.key.name, &params, &o.body).await {
            Err(Error::Invalid(message)) if o.force_recreate && is_immutable(&message) => {
                recreate(&api, &o.key.name).await?;
                (
                    patch_slim(client, &api, &o.key.name, &params, &o.body).await?,
                    true,
                )
            }
            other => (other?, false),
        };
        let meta = &slim.metadata;
        let stale = meta.annotations.contains_key(adopt::LAST_APPLIED);
        let mut adopted = Vec::new();
        let slim = if self.adoption().needed(&meta.managed_fields, stale, &o.body) {
            adopted = adopt::take_over(client, &api, &o.key.name, self.adoption(), &o.body).await?;
            tracing::info!(object = %o.key, from = ?adopted, "Adopted");
            // Applied again now that the adopted fields are ours: what Git does not declare goes.
            patch_slim(client, &api, &o.key.name, &params, &o.body).await?
        } else {
            slim
        };
        Ok(Response {
            generation: slim.metadata.generation,
            resource_version: slim.metadata.resource_version,
            phase: slim.status.and_then(|s| s.phase),
            recreated,
            returned: None,
            adopted,
        })
    }

    /// Whose fields our applies take over.
    fn adoption(&self) -> adopt::Policy<'_> {
        adopt::Policy {
            ours: &self.options.field_manager,
            from: &self.options.adopt_from,
        }
    }

    /// After a Foundation object is accepted: a Namespace must be Active, a CRD Established (and its group
    /// re-discovered so its kinds resolve in later stages).
    async fn settle(
        &self,
        o: &DesiredObject,
        response: &Response,
        resolver: &mut Resolver,
    ) -> Result<(), Error> {
        if self.options.dry_run {
            return Ok(());
        }
        match (o.key.group.as_str(), o.key.kind.as_str()) {
            ("", "Namespace") => {
                if response.phase.as_deref() == Some("Terminating") {
                    return Err(Error::Terminating);
                }
                Ok(())
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                wait::crd_established(&self.client, &o.key.name)
                    .await
                    .map_err(Error::NotEstablished)?;
                if let Some(group) = &o.crd_group {
                    resolver.forget(group);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn failure(o: &DesiredObject, error: Error) -> Failure {
    Failure {
        bundle: o.bundle.clone(),
        object: o.key.to_string(),
        origin: o.origin.clone(),
        error,
    }
}

/// Whether a 422 message is about an immutable field.
fn is_immutable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("immutable") || m.contains("may not change") || m.contains("cannot change")
}

/// True for errors worth retrying at once: no answer, throttling, server trouble.
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Retry policy for transient API errors.
pub fn transient_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(3))
        .with_max_times(TRANSIENT_ATTEMPTS)
        .with_jitter()
}

/// One server-side apply request, retried on transient errors.
async fn patch(
    api: &Api<DynamicObject>,
    name: &str,
    params: &PatchParams,
    body: &serde_json::value::RawValue,
) -> Result<DynamicObject, Error> {
    (|| async { api.patch(name, params, &Patch::Apply(body)).await })
        .retry(transient_backoff())
        .when(is_transient)
        .await
        .map_err(Error::from_kube)
}

/// The part of an apply response we keep; serde skips everything else without building it in memory.
#[derive(serde::Deserialize)]
struct Slim {
    /// generation and resourceVersion.
    metadata: SlimMeta,
    /// phase, when the kind has one.
    status: Option<SlimStatus>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    /// `metadata.generation`.
    generation: Option<i64>,
    /// `metadata.resourceVersion`.
    resource_version: Option<String>,
    /// Who owns fields, without the fields: whether another deployment tool still does ([`adopt`]).
    #[serde(default)]
    managed_fields: Vec<adopt::Manager>,
    /// Annotation keys only: whether kubectl's last-applied copy is there.
    #[serde(default)]
    annotations: BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct SlimStatus {
    /// `status.phase`.
    phase: Option<String>,
}

/// One server-side apply request whose answer is read as [`Slim`], retried on transient errors.
async fn patch_slim(
    client: &Client,
    api: &Api<DynamicObject>,
    name: &str,
    params: &PatchParams,
    body: &serde_json::value::RawValue,
) -> Result<Slim, Error> {
    let request = kube::core::Request::new(api.resource_url())
        .patch(name, params, &Patch::Apply(body))
        .map_err(|e| Error::Client(e.to_string()))?;
    (|| async { client.request::<Slim>(request.clone()).await })
        .retry(transient_backoff())
        .when(is_transient)
        .await
        .map_err(Error::from_kube)
}

/// Delete an object and wait until it is gone.
async fn recreate(api: &Api<DynamicObject>, name: &str) -> Result<(), Error> {
    // Background: the object itself goes at once and its dependents are collected later. Foreground would
    // hold it until the garbage collector has removed every dependent.
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(Error::from_kube(e)),
    }
    let deadline = tokio::time::Instant::now() + RECREATE_WAIT;
    while tokio::time::Instant::now() < deadline {
        match api.get_opt(name).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => return Err(Error::from_kube(e)),
        }
    }
    Err(Error::Api {
        code: 409,
        message: format!(
            "{name} was deleted for recreation but still exists after {}s",
            RECREATE_WAIT.as_secs()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_field_messages_are_recognised() {
        assert!(is_immutable(
            "Job.batch \"x\" is invalid: spec.selector: Invalid value: ...: field is immutable"
        ));
        assert!(is_immutable(
            "spec.clusterIP: Invalid value: \"\": may not change once set"
        ));
        assert!(!is_immutable(
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        ));
    }
}
