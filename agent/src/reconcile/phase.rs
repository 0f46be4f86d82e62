//! The agent's phase (following its path, or waiting for content), recorded where `outpost-agent status` and
//! the status writer read it, and written only when it changes.

use crate::inventory::source_state::{Phase, SourceState, SourceStateStore};
use crate::secret::Scrubber;

/// Records the phase, remembering the last one written.
pub(crate) struct PhaseRecorder {
    /// Where the phase is kept.
    store: SourceStateStore,
    /// The phase written last, so an unchanged phase costs no request.
    last: Option<Phase>,
}

impl PhaseRecorder {
    /// A recorder writing to `store`.
    pub(crate) fn new(store: SourceStateStore) -> Self {
        PhaseRecorder { store, last: None }
    }

    /// Record `phase` at `revision` with `message`, when it changed. A failed write is logged and retried on
    /// the next change.
    pub(crate) async fn record(
        &mut self,
        phase: Phase,
        revision: &str,
        message: String,
        scrubber: &Scrubber,
    ) {
        if self.last == Some(phase) {
            return;
        }
        let state = SourceState {
            phase,
            revision: revision.to_owned(),
            message,
            time: jiff::Timestamp::now().to_string(),
        };
        match self.store.save(&state).await {
            Ok(()) => self.last = Some(phase),
            Err(e) => {
                tracing::warn!(error = %scrubber.scrub(&e.to_string()), "Cannot record the agent's state")
            }
        }
    }
}

/// How long each phase of a sync took, in one debug line (`load_ms=.. desired_ms=..`).
pub(super) fn log_phases(phases: &[(&'static str, std::time::Duration)]) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let mut previous = std::time::Duration::ZERO;
    let text: Vec<String> = phases
        .iter()
        .map(|(name, at)| {
            let ms = at.saturating_sub(previous).as_millis();
            previous = *at;
            format!("{name}_ms={ms}")
        })
        .collect();
    tracing::debug!(phases = %text.join(" "), "Sync phases");
}
