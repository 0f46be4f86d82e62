//! The source end of a reconcile: check the ref (fetching when it moved), read the cluster path at the commit,
//! and turn its files into bundles (layout, then parse), rejecting real duplicates. Blocking Git work runs in
//! `spawn_blocking`, stopped by the interrupt flag; hashing and parsing the files (CPU work bounded only by the
//! source's limits) run there too, so a large commit never stalls the runtime's drift watches and probes.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::error::{Error, Result};
use crate::manifest::render::Render;
use crate::manifest::{Bundle, contest, layout};
use crate::metrics::{GitOperation, Metrics};
use crate::source::{Revision, SourceFile, Upstream, deadline};

/// Check the ref, fetching when it moved; the Git request is timed into `metrics`.
pub(crate) async fn update(
    source: &Arc<dyn Upstream>,
    metrics: Option<&Metrics>,
    interrupt: Arc<AtomicBool>,
) -> Result<Revision> {
    let (limit, url) = (source.deadline(), source.location());
    let source = source.clone();
    let started = std::time::Instant::now();
    let update = match deadline::run(limit, interrupt, move |dog| source.update(dog.interrupt())).await {
        Ok(update) => update.map_err(Error::from),
        Err(e) => Err(stalled(e, url)),
    };
    // Absent media made no Git request: nothing to count.
    let unplugged = matches!(
        &update,
        Err(Error::Source(crate::source::Error::Unavailable { .. }))
    );
    if let Some(m) = metrics.filter(|_| !unplugged) {
        let op = match &update {
            Ok(u) if u.fetched => GitOperation::Fetch,
            _ => GitOperation::RefCheck,
        };
        m.git_request(op, update.is_ok(), started.elapsed().as_secs_f64());
    }
    Ok(update?.revision)
}

/// A deadline's verdict as an error of ours.
pub(crate) fn stalled(err: deadline::Error, url: String) -> Error {
    match err {
        deadline::Error::Stalled(s) => crate::source::Error::Stalled { url, after: s.after }.into(),
        deadline::Error::Task(e) => Error::Task(e),
    }
}

/// The files under `path` at `commit` (`None` when the path does not exist there), with their
/// [`content_digest`].
pub(crate) async fn read(
    source: &Arc<dyn Upstream>,
    commit: Revision,
    path: &str,
) -> Result<(Option<Vec<SourceFile>>, String)> {
    let source = source.clone();
    let dir = path.to_owned();
    let read = tokio::task::spawn_blocking(move || {
        source.read_dir(commit, &dir).map(|files| {
            let digest = content_digest(files.as_deref().unwrap_or_default());
            (files, digest)
        })
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    Ok(read)
}

/// [`bundles`] on the blocking pool: the files of `commit` become its bundles, or the error that rejects it.
pub(crate) async fn parse(
    path: String,
    files: Vec<SourceFile>,
    renderer: Arc<dyn Render>,
    commit: Revision,
) -> Result<Vec<Bundle>> {
    tokio::task::spawn_blocking(move || bundles(&path, &files, renderer.as_ref()))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(|source| Error::Manifests {
            commit: commit.to_string(),
            source,
        })
}

/// The bundles of the cluster path's `files`, each bundle's files passed through `renderer` before parsing. Any
/// file that does not parse or validate, and any object that two unrelated bundles define, rejects the commit
/// (one app's update in flight is settled later, with the inventories).
pub(crate) fn bundles(
    path: &str,
    files: &[SourceFile],
    renderer: &dyn Render,
) -> std::result::Result<Vec<Bundle>, layout::Error> {
    let bundles = layout::bundles_rendered(path, files, renderer)?;
    contest::find(&bundles)?;
    Ok(bundles)
}

/// Digest of the files the agent applies (everything below the cluster path except `status/`), so a commit
/// that only changes status files costs the API server nothing.
pub(crate) fn content_digest(files: &[SourceFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for f in files.iter().filter(|f| !f.path.starts_with("status/")) {
        hasher.update(f.path.as_bytes());
        hasher.update([0]);
        hasher.update(Sha256::digest(&f.data));
    }
    crate::manifest::digest::hex(&hasher.finalize())
}
