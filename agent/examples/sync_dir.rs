//! The Outpost engine as a library, without the daemon: make the cluster of `KUBECONFIG` equal to a directory
//! of manifests. Prints the plan, then applies it and prunes what left the directory since the last run
//! (inventories in the namespace given second, `outpost-system` by default, which must exist). The directory is laid out like a cluster path:
//! each subdirectory is a bundle, files at the top form `_root`.
//!
//! ```text
//! cargo run -p outpost-agent --example sync_dir -- ./manifests [namespace]
//! ```
//!
//! The directory is a source of its own: an [`Upstream`] whose revision is the digest of its files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use outpost_agent::apply::{FIELD_MANAGER, Options};
use outpost_agent::plan::Safety;
use outpost_agent::reconcile::{Reconciler, Settings};
use outpost_agent::secret::Scrubber;
use outpost_agent::source::{self, Revision, SourceFile, Update, Upstream};
use sha2::{Digest, Sha256};

/// A directory read whole at every poll; whatever path reconcile asks for, it answers with this directory.
struct Directory(PathBuf);

impl Upstream for Directory {
    fn location(&self) -> String {
        self.0.display().to_string()
    }

    fn update(&self, _interrupt: &AtomicBool) -> source::Result<Update> {
        let mut digest = Sha256::new();
        for file in self.files()? {
            digest.update(file.path.as_bytes());
            digest.update(file.blob.to_string().as_bytes());
        }
        let hex: String = digest.finalize()[..20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let revision = Revision::parse(&hex).expect("40 hex digits");
        Ok(Update {
            revision,
            fetched: false,
        })
    }

    fn read_dir(&self, _revision: Revision, _dir: &str) -> source::Result<Option<Vec<SourceFile>>> {
        self.files().map(Some)
    }
}

impl Directory {
    /// Every file below the directory, with `/`-separated relative paths, sorted.
    fn files(&self) -> source::Result<Vec<SourceFile>> {
        let mut files = Vec::new();
        let mut dirs = vec![self.0.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| self.error(&dir, e))? {
                let path = entry.map_err(|e| self.error(&dir, e))?.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let data = std::fs::read(&path).map_err(|e| self.error(&path, e))?;
                let relative = path.strip_prefix(&self.0).unwrap_or(&path);
                let relative = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>();
                files.push(SourceFile::new(relative.join("/"), data));
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    fn error(&self, path: &Path, e: std::io::Error) -> source::Error {
        source::Error::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: sync_dir <directory> [namespace]"))?;
    let namespace = args.next().unwrap_or_else(|| "outpost-system".into());
    let client = outpost_agent::kube_client::client(None).await?;
    let settings = Settings {
        cluster: "example".into(),
        namespace,
        apply: Options {
            field_manager: FIELD_MANAGER.into(),
            force_conflicts: false,
            concurrency: 8,
            dry_run: false,
            adopt_from: Vec::new(),
        },
        safety: Safety {
            allow_empty: false,
            max_prune_ratio: None,
            allow_cascading_prune: false,
        },
        allow_own_namespace: false,
    };
    let mut reconciler = Reconciler::new(Directory(dir.into()), client, settings, Scrubber::default());
    let interrupt = Arc::new(AtomicBool::new(false));

    let preview = reconciler.preview(interrupt.clone()).await?;
    for (bundle, plan) in &preview.plan.bundles {
        println!(
            "{bundle}: {} to apply, {} to prune",
            plan.apply.len(),
            plan.prune.len()
        );
    }
    let outcome = reconciler.reconcile(interrupt).await?;
    println!("{outcome:?}");
    Ok(())
}
