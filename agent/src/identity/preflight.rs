//! Before a bundle that acts as a ServiceAccount applies anything: a server-side dry run of each object it is
//! about to send, as that account. Authorization comes before every other check of a request, so a 403 here
//! is exactly what the real apply would meet; finding it first lets the bundle fail whole, with nothing of it
//! applied, instead of half-applied. Any other answer (a namespace the bundle creates first, a webhook) is
//! left for the real apply to report. Objects whose kind is not resolved yet (a CRD of the same commit) cannot
//! be tried: they meet RBAC at their own apply.

use std::sync::Arc;

use futures::StreamExt;
use kube::Client;
use kube::api::{Patch, PatchParams};

use crate::desired::DesiredObject;

/// The objects of `objects` that `client` may not apply, each with the API server's reason.
pub async fn forbidden_in(
    client: &Client,
    objects: &[Arc<DesiredObject>],
    field_manager: &str,
    concurrency: usize,
) -> Vec<(Arc<DesiredObject>, String)> {
    let params = PatchParams::apply(field_manager).force().dry_run();
    let tried = futures::stream::iter(objects.iter().filter(|o| o.resolved.is_some()))
        .map(|o| {
            let params = &params;
            async move { (o.clone(), try_one(client, o, params).await) }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut forbidden: Vec<_> = tried
        .into_iter()
        .filter_map(|(o, reason)| Some((o, reason?)))
        .collect();
    forbidden.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    forbidden
}

/// The reason `client` may not apply `o`, if it may not.
async fn try_one(client: &Client, o: &DesiredObject, params: &PatchParams) -> Option<String> {
    let resolved = o.resolved.as_ref()?;
    let api: kube::Api<kube::api::DynamicObject> = resolved.api(client, o.key.namespace.as_deref());
    let request = kube::core::Request::new(api.resource_url())
        .patch(&o.key.name, params, &Patch::Apply(&*o.body))
        .ok()?;
    match client.request::<serde::de::IgnoredAny>(request).await {
        Err(kube::Error::Api(status)) if status.code == 403 => Some(status.message.clone()),
        _ => None,
    }
}
