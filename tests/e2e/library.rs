//! The engine as a library: `agent/examples/sync_dir.rs` keeps a cluster equal to a plain directory without the
//! daemon, through the public API only.

use std::process::Command;

use anyhow::{Result, bail};
use outpost_tests::agent::{create_namespace, output_text};
use outpost_tests::{kube_env, scratch_dir, tools};

use crate::common::managed_config_maps;
use crate::fixtures;

#[tokio::test]
async fn the_sync_dir_example_applies_a_directory_and_prunes_what_left_it() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let inventories = create_namespace(&client, "library").await?;
    let ns = create_namespace(&client, "libobjects").await?;
    let dir = scratch_dir("sync-dir")?;
    std::fs::create_dir_all(dir.join("app"))?;
    std::fs::write(dir.join("app/a.yaml"), fixtures::config_map(&ns, "a", "1"))?;
    std::fs::write(dir.join("app/b.yaml"), fixtures::config_map(&ns, "b", "1"))?;
    let example = tools::target_dir().join("debug/examples/sync_dir");
    if !example.is_file() {
        bail!(
            "{} missing: run `cargo build --workspace --examples` (make test does)",
            example.display()
        );
    }
    let run = || {
        Command::new(&example)
            .arg(&dir)
            .arg(&inventories)
            .env("KUBECONFIG", &env.kubeconfig)
            .output()
    };

    let out = run()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("app: 2 to apply, 0 to prune"), "{text}");
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a", "b"]);

    std::fs::remove_file(dir.join("app/b.yaml"))?;
    let out = run()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("app: 0 to apply, 1 to prune"), "{text}");
    assert!(text.contains("pruned: 1"), "{text}");
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a"]);
    Ok(())
}
