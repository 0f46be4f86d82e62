//! Status churn (issue 15): status commits a cluster makes with nothing changed in Git. One agent daemon resyncs
//! every [`RESYNC`] (its shortest; the default is 1 h) beside one status writer, for [`RESYNCS`] resyncs; the
//! commits per resync are the commits per cluster per hour at the default resync interval. Measured twice in
//! the same run: with `--status-heartbeat 1s`, where every recorded sync time is written (what every resync cost
//! before issue 15), and with the default heartbeat (24 h, longer than the run).

use super::*;

/// The agent's resync interval in this scenario.
const RESYNC: &str = "10s";
/// Resyncs watched per variant.
const RESYNCS: usize = 6;
/// Bundles of the simulated cluster.
const CHURN_BUNDLES: usize = 3;

impl Bench {
    pub(crate) async fn churn(&mut self) -> Result<()> {
        println!(
            "Status churn: {CHURN_BUNDLES} bundles, nothing changes in Git, the agent resyncs every {RESYNC}"
        );
        let mut figures = Vec::new();
        for (variant, heartbeat) in [("every sync time written", "1s"), ("default heartbeat", "24h")] {
            let (commits, resyncs) = self.churn_variant(variant, heartbeat).await?;
            println!("  {variant}: {commits} status commits over {resyncs} resyncs");
            figures.push(format!(
                "{variant} (--status-heartbeat {heartbeat}): {:.1}",
                commits as f64 / resyncs.max(1) as f64
            ));
        }
        self.row(
            "status commits per cluster per hour, no change in Git (1 h resync)",
            figures.join("; "),
            String::new(),
            String::new(),
            "0 (at most 1 per heartbeat)",
        );
        Ok(())
    }

    /// One cluster with `heartbeat`: (status commits, resyncs) after [`RESYNCS`] resyncs past its first status.
    async fn churn_variant(&mut self, variant: &str, heartbeat: &str) -> Result<(u64, usize)> {
        let tag = if heartbeat == "1s" {
            "churn-every"
        } else {
            "churn-default"
        };
        let repo = self.git.create_repo(&format!("bench-{tag}"))?;
        let agent_ns = format!("outpost-{tag}");
        for ns in [agent_ns.clone(), format!("{tag}-apps")] {
            let nsobj: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?;
            Api::<Namespace>::all(self.client.clone())
                .create(&PostParams::default(), &nsobj)
                .await?;
        }
        for b in 0..CHURN_BUNDLES {
            for i in 0..5 {
                repo.write(
                    &format!("clusters/{tag}/c{b}/cm-{i}.yaml"),
                    &config_map(&format!("{tag}-apps"), &format!("c{b}-{i}"), "1"),
                )?;
            }
        }
        repo.commit("apps")?;
        let control = self.git.create_repo(&format!("bench-{tag}-control"))?;
        control.write("README.md", "control repository\n")?;
        control.commit("init")?;
        let mut agent =
            AgentCommand::with_servers(&self.git, &self.kube, &repo, tag, &agent_ns, Transport::Https)?;
        agent.set_cache_dir(&self.work.join(format!("cache-{tag}")));
        agent_once(&agent)?;
        let agent = agent.spawn_with(&["--interval", "5s", "--resync-interval", RESYNC])?;
        let mut writer =
            AgentCommand::status_writer(&self.git, &self.kube, &control, tag, &agent_ns, Transport::Https)?;
        writer.env("RUST_LOG", "warn");
        let writer = writer.spawn_with(&["--debounce", "1s", "--status-heartbeat", heartbeat])?;
        let status_commits = |repo: &TestRepo| -> Result<u64> {
            let out = Command::new("git")
                .arg("-C")
                .arg(&repo.bare)
                .args(["rev-list", "--count", "refs/heads/main", "--", "clusters"])
                .output()?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0))
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while status_commits(&control)? == 0 {
            if Instant::now() > deadline {
                bail!("{variant}: no status after 120 s; log:\n{}", writer.logs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // Count resyncs by the sync time the agent exports for one bundle.
        let synced = || {
            metric(
                &agent,
                "outpost_last_successful_sync_timestamp_seconds",
                "bundle=\"c0\"",
            )
        };
        let mut last = synced().await?;
        let before = status_commits(&control)?;
        let mut resyncs = 0;
        let deadline = Instant::now() + Duration::from_secs(60 * RESYNCS as u64);
        while resyncs < RESYNCS {
            if Instant::now() > deadline {
                bail!("{variant}: only {resyncs} resyncs; log:\n{}", agent.logs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = synced().await?;
            if now != last {
                last = now;
                resyncs += 1;
            }
        }
        // Let the last resync's status (if any) land.
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok((status_commits(&control)? - before, resyncs))
    }
}
