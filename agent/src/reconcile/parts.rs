//! The tools a sync works with, handed to each stage explicitly: the client, the applier, the discovery
//! cache, the inventory store, the settings, and where results are reported (metrics, events, the scrubber
//! for error text).

use kube::Client;

use super::outcome::Settings;
use crate::apply::Applier;
use crate::events::Events;
use crate::inventory::store::Store;
use crate::metrics::Metrics;
use crate::resolve::Resolver;
use crate::secret::Scrubber;

/// The tools of the sync stages.
pub(crate) struct Parts {
    /// The shared client.
    pub(crate) client: Client,
    /// Applies objects.
    pub(crate) applier: Applier,
    /// Discovery cache, kept across reconciles.
    pub(crate) resolver: Resolver,
    /// Inventory parents.
    pub(crate) store: Store,
    /// From the command line.
    pub(crate) settings: Settings,
    /// Removes secrets from error text.
    pub(crate) scrubber: Scrubber,
    /// Counters and gauges, when served.
    pub(crate) metrics: Option<Metrics>,
    /// Kubernetes Events on inventories, in the daemon.
    pub(crate) events: Option<Events>,
    /// What operators and Git's `outpost.yaml` allow each bundle.
    pub(crate) controls: crate::control::Controls,
}

impl Parts {
    /// Writes at once to the API server (inventories, deletes): the apply concurrency.
    pub(crate) fn concurrency(&self) -> usize {
        self.settings.apply.concurrency.max(1)
    }

    /// The desired objects of `bundles` (taking their manifests), with what Git may not write refused.
    pub(crate) async fn desired(
        &mut self,
        bundles: &mut [crate::manifest::Bundle],
    ) -> crate::desired::DesiredSet {
        let store = self.store.clone();
        let fence = self.settings.fence();
        crate::desired::build(bundles, &mut self.resolver, &fence, |b| store.applyset_id(b)).await
    }
}
