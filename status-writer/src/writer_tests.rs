//! The writer against a real bare repository (through file://, as for a local control repo): carrying other
//! clusters' published statuses, and leaving stale ones alone; status spread over per-bundle branches. The git
//! CLI only makes fixtures and checks.

use std::path::Path;
use std::process::Command;

use outpost_agent::source::{Auth, RepoUrl};
use outpost_tests::process::run;
use outpost_tests::{TestRepo, git_servers, unique};

use super::*;
use crate::carry;
use crate::commit::{self, Author};
use crate::metrics::StatusMetrics;
use crate::render::Files;

fn writer(repo: &TestRepo, cluster: &str) -> Writer {
    writer_to(repo, cluster, "main")
}

fn writer_to(repo: &TestRepo, cluster: &str, template: &str) -> Writer {
    let target = target_at(RepoUrl::Local(repo.bare.clone()), cluster, template);
    Writer::new(target, Scrubber::default(), None, Arc::default())
}

fn target_at(url: RepoUrl, cluster: &str, template: &str) -> Target {
    Target {
        url,
        auth: Auth::default(),
        branch: BranchTemplate::parse(template, cluster).unwrap(),
        cluster: cluster.into(),
        namespace: "outpost".into(),
        author: Author {
            name: "Outpost".into(),
            email: "outpost@example.invalid".into(),
            signer: None,
        },
        cache_dir: outpost_tests::scratch_dir(&format!("writer-{cluster}")).unwrap(),
    }
}

fn status(tick: &str) -> Files {
    BTreeMap::from([(
        "b/b-status.yaml".to_owned(),
        ("b".to_owned(), format!("tick: {tick}\n").into_bytes()),
    )])
}

/// Write `status(tick)` to main and say what happened there.
async fn write_main(writer: &Writer, tick: &str) -> Written {
    let mut report = writer
        .write(Branches::from([("main".to_owned(), status(tick))]))
        .await
        .unwrap();
    report.remove("main").expect("main is always visited")
}

fn git(bare: &Path, args: &[&str]) -> String {
    let bare = bare.to_str().unwrap();
    let mut all = vec!["-C", bare];
    all.extend_from_slice(args);
    run("git", &all, None).unwrap().trim().to_owned()
}

fn on_main(bare: &Path, path: &str) -> Option<String> {
    on_branch(bare, "main", path)
}

fn on_branch(bare: &Path, branch: &str, path: &str) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(bare)
        .args(["show", &format!("refs/heads/{branch}:{path}")])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Publish `content` as `cluster`'s pending status on its status ref, as a writer that lost a race does;
/// `date` overrides the commit time.
fn publish(bare: &Path, cluster: &str, content: &str, date: Option<&str>) -> String {
    let repo = gix::open(bare).unwrap();
    let files = BTreeMap::from([("b/b-status.yaml".to_owned(), content.as_bytes().to_vec())]);
    let tree = commit::write_tree(&repo, &files).unwrap().unwrap();
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(bare)
        .args(["commit-tree", &tree.to_string(), "-m", cluster]);
    if let Some(date) = date {
        cmd.env("GIT_COMMITTER_DATE", date).env("GIT_AUTHOR_DATE", date);
    }
    let out = cmd.output().unwrap();
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let refname = carry::own_ref("main", cluster).unwrap();
    git(bare, &["update-ref", &refname, &commit]);
    refname
}

fn has_ref(bare: &Path, refname: &str) -> bool {
    !git(bare, &["for-each-ref", refname]).is_empty()
}

#[tokio::test]
async fn a_failed_write_is_counted_by_its_kind() {
    let mut registry = outpost_agent::metrics::new_registry();
    let metrics = StatusMetrics::register(&mut registry);
    // A directory that is there but holds no repository (an absent one is unplugged media, not a failure).
    let not_a_repo = outpost_tests::scratch_dir("writer-not-a-repo").unwrap();
    std::fs::write(not_a_repo.join("README"), "not a repository\n").unwrap();
    let target = target_at(RepoUrl::Local(not_a_repo), "a", "main");
    let w = Writer::new(target, Scrubber::default(), Some(metrics), Arc::default());
    let error = w
        .write(Branches::from([("main".to_owned(), status("1"))]))
        .await
        .unwrap_err();
    assert_eq!(error.metric_label(), "fetch", "{error}");
    let text = outpost_agent::metrics::encode(&registry);
    assert!(
        text.lines()
            .any(|l| l == r#"outpost_status_write_failures_total{kind="fetch"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn status_for_unplugged_media_is_not_a_failure_and_lands_on_whatever_copy_returns() {
    let mut registry = outpost_agent::metrics::new_registry();
    let metrics = StatusMetrics::register(&mut registry);
    let media = outpost_tests::scratch_dir("writer-media").unwrap();
    let (bare, hub) = (media.join("status.git"), media.join("hub-copy.git"));
    // The hub makes the status repository with one commit, and keeps a copy of it as it is now.
    let (b, h) = (bare.to_str().unwrap(), hub.to_str().unwrap());
    let work = media.join("work");
    let w = work.to_str().unwrap();
    let identity = ["-c", "user.name=Hub", "-c", "user.email=hub@example.invalid"];
    run("git", &["init", "-q", "--bare", "-b", "main", b], None).unwrap();
    run("git", &["init", "-q", "-b", "main", w], None).unwrap();
    let commit: [&[&str]; 3] = [
        &["-C", w],
        &identity,
        &["commit", "-q", "--allow-empty", "-m", "status repository"],
    ];
    run("git", &commit.concat(), None).unwrap();
    run("git", &["-C", w, "push", "-q", b, "HEAD:refs/heads/main"], None).unwrap();
    run("git", &["clone", "-q", "--bare", b, h], None).unwrap();
    let target = target_at(RepoUrl::Local(bare.clone()), "a", "main");
    let writer = Writer::new(target, Scrubber::default(), Some(metrics), Arc::default());
    assert!(matches!(write_main(&writer, "1").await, Written::Pushed { .. }));

    // Unplugged: the write says so, and it is no failure.
    std::fs::rename(&bare, media.join("away.git")).unwrap();
    let error = writer
        .write(Branches::from([("main".to_owned(), status("1"))]))
        .await
        .unwrap_err();
    assert_eq!(error.metric_label(), "unavailable", "{error}");
    assert!(error.to_string().contains("status.git"), "{error}");
    let text = outpost_agent::metrics::encode(&registry);
    assert!(!text.contains("outpost_status_write_failures_total{"), "{text}");

    // Another copy comes back (the hub's, from before the write): the same status lands on it.
    std::fs::rename(&hub, &bare).unwrap();
    assert_eq!(on_main(&bare, "clusters/a/status/b/b-status.yaml"), None);
    assert!(matches!(write_main(&writer, "1").await, Written::Pushed { .. }));
    assert_eq!(
        on_main(&bare, "clusters/a/status/b/b-status.yaml").as_deref(),
        Some("tick: 1\n")
    );
}

#[tokio::test]
async fn a_winner_carries_recently_published_statuses_and_never_stale_ones() {
    let repo = git_servers().create_repo(&unique("carry")).unwrap();
    repo.write("README.md", "control\n").unwrap();
    let initial = repo.commit("initial").unwrap();
    let bare = repo.bare.clone();
    let (a, b) = (writer(&repo, "a"), writer(&repo, "b"));
    let b_path = "clusters/b/status/b/b-status.yaml";
    let a_path = "clusters/a/status/b/b-status.yaml";

    // b lost a race and published its status; a's next commit carries it and removes b's status ref.
    let b_ref = publish(&bare, "b", "tick: 1\n", None);
    assert!(matches!(write_main(&a, "1").await, Written::Pushed { .. }));
    assert_eq!(on_main(&bare, b_path).as_deref(), Some("tick: 1\n"));
    assert_eq!(on_main(&bare, a_path).as_deref(), Some("tick: 1\n"));
    let message = git(&bare, &["log", "-1", "--format=%s", "refs/heads/main"]);
    assert!(message.contains("carried: b"), "{message}");
    assert!(!has_ref(&bare, &b_ref), "the carried status ref is still there");
    // One commit on top, fast-forward: the history was not rewritten.
    assert_eq!(git(&bare, &["rev-parse", "refs/heads/main~1"]), initial);

    // b then finds its status on the branch: nothing to push.
    assert_eq!(write_main(&b, "1").await, Written::Unchanged);

    // A status published long ago (a cluster that is gone) is not carried.
    let b_ref = publish(&bare, "b", "tick: old\n", Some("2001-01-01T00:00:00Z"));
    assert!(matches!(write_main(&a, "2").await, Written::Pushed { .. }));
    assert_eq!(
        on_main(&bare, b_path).as_deref(),
        Some("tick: 1\n"),
        "a stale status was carried"
    );
    assert_eq!(on_main(&bare, a_path).as_deref(), Some("tick: 2\n"));
    assert!(
        has_ref(&bare, &b_ref),
        "a status ref that was not carried was removed"
    );
}

#[tokio::test]
async fn a_contended_writer_publishes_waits_for_the_first_in_line_then_lands_everyone() {
    let repo = git_servers().create_repo(&unique("contended")).unwrap();
    repo.write("README.md", "control\n").unwrap();
    repo.commit("initial").unwrap();
    let bare = repo.bare.clone();
    let a = writer(&repo, "a");
    assert!(matches!(write_main(&a, "1").await, Written::Pushed { .. }));
    // a lost a race last time; "0first" (first in line by name) published and went quiet.
    a.memory
        .branch("main")
        .contended
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let first = publish(&bare, "0first", "tick: 0\n", None);
    let started = std::time::Instant::now();
    assert!(matches!(write_main(&a, "2").await, Written::Pushed { .. }));
    // a waited for "0first" to land everyone, then did it itself, carrying it.
    assert!(
        started.elapsed() >= crate::land::FALLBACK,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        on_main(&bare, "clusters/a/status/b/b-status.yaml").as_deref(),
        Some("tick: 2\n")
    );
    assert_eq!(
        on_main(&bare, "clusters/0first/status/b/b-status.yaml").as_deref(),
        Some("tick: 0\n")
    );
    let message = git(&bare, &["log", "-1", "--format=%s", "refs/heads/main"]);
    assert!(message.contains("carried: 0first"), "{message}");
    assert!(!has_ref(&bare, &first), "the carried status ref is still there");
    assert!(
        !has_ref(&bare, &carry::own_ref("main", "a").unwrap()),
        "our own status ref is still there"
    );
    // Next write: alone in line, it lands without waiting, and the branch counts as quiet again.
    assert!(
        a.memory
            .branch("main")
            .contended
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    let started = std::time::Instant::now();
    assert!(matches!(write_main(&a, "3").await, Written::Pushed { .. }));
    assert!(
        started.elapsed() < crate::land::FALLBACK,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        on_main(&bare, "clusters/a/status/b/b-status.yaml").as_deref(),
        Some("tick: 3\n")
    );
    assert!(
        !a.memory
            .branch("main")
            .contended
            .load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// A snapshot of bundles with no members: `(bundle, Some((cid, app)))` for EMCO bundles, `None` for plain ones.
fn snapshot(bundles: &[(&str, Option<(&str, &str)>)]) -> Snapshot {
    let inventories = bundles
        .iter()
        .map(|(bundle, emco)| {
            let info = outpost_agent::inventory::BundleInfo {
                bundle: (*bundle).to_owned(),
                cluster: "p+c".into(),
                context: emco.map(|(cid, _)| cid.to_owned()),
                app: emco.map(|(_, app)| app.to_owned()),
                ..Default::default()
            };
            (
                (*bundle).to_owned(),
                outpost_agent::inventory::Inventory::new(info),
            )
        })
        .collect();
    Snapshot {
        inventories,
        complete: true,
        ..Default::default()
    }
}

const WEB: (&str, Option<(&str, &str)>) = ("100-web", Some(("100", "web")));
const DB: (&str, Option<(&str, &str)>) = ("200-db", Some(("200", "db")));
const WEB_PATH: &str = "clusters/p+c/status/100/app/web/100-web-status.yaml";
const DB_PATH: &str = "clusters/p+c/status/200/app/db/200-db-status.yaml";

/// `snapshot` of WEB, its inventory recording a sync of `revision` at `time`.
fn synced(revision: &str, time: &str) -> Snapshot {
    let mut snap = snapshot(&[WEB]);
    for inv in snap.inventories.values_mut() {
        inv.sync.revision = Some(revision.into());
        inv.sync.time = Some(time.into());
        inv.sync.state = outpost_agent::inventory::SyncState::Synced;
    }
    snap
}

#[test]
fn resyncs_render_the_same_bytes_until_status_changes_or_the_heartbeat_is_due() {
    let dir = outpost_tests::scratch_dir("stamps").unwrap();
    let target = target_at(RepoUrl::Local(dir), "p+c", "main");
    let hour = std::time::Duration::from_secs(3600);
    let renderer = Writer::new(target, Scrubber::default(), None, Arc::default())
        .with_heartbeat(Some(6 * hour))
        .renderer();
    let file = |snap: &Snapshot| {
        renderer.render_all(snap)["main"][WEB_PATH.trim_start_matches("clusters/p+c/status/")]
            .1
            .clone()
    };
    let first = file(&synced("a", "2026-01-01T00:00:00Z"));
    for h in 1..6 {
        let resync = synced("a", &format!("2026-01-01T{h:02}:00:00Z"));
        assert_eq!(file(&resync), first, "resync {h}");
    }
    let beat = file(&synced("a", "2026-01-01T06:00:00Z"));
    assert_ne!(beat, first, "heartbeat");
    assert!(String::from_utf8_lossy(&beat).contains("2026-01-01T06:00:00Z"));
    assert_eq!(file(&synced("a", "2026-01-01T07:00:00Z")), beat);
    let new_commit = file(&synced("b", "2026-01-01T07:30:00Z"));
    assert!(String::from_utf8_lossy(&new_commit).contains("2026-01-01T07:30:00Z"));
}

#[test]
fn rendered_status_is_grouped_by_the_branch_the_template_names() {
    let renderer = |template: &str| Renderer {
        namespace: "outpost".into(),
        branch: BranchTemplate::parse(template, "p+c").unwrap(),
        metrics: None,
        stamps: Arc::default(),
    };
    let all = snapshot(&[WEB, DB, ("monitoring", None), ("x.lock", None)]);
    let layout = |branches: Branches| -> Vec<(String, Vec<String>)> {
        branches
            .into_iter()
            .map(|(branch, files)| (branch, files.into_keys().collect()))
            .collect()
    };
    let owned = |rows: &[(&str, &[&str])]| -> Vec<(String, Vec<String>)> {
        rows.iter()
            .map(|(b, paths)| (b.to_string(), paths.iter().map(|p| p.to_string()).collect()))
            .collect()
    };
    // EMCO's github mode: one branch per app; a plain bundle stands in for the app; a bundle whose branch name
    // would be invalid is left out.
    assert_eq!(
        layout(renderer("{cluster}-{cid}-{app}").render_all(&all)),
        owned(&[
            ("p+c-100-web", &["100/app/web/100-web-status.yaml"]),
            ("p+c-200-db", &["200/app/db/200-db-status.yaml"]),
            ("p+c-monitoring", &["monitoring/monitoring-status.yaml"]),
        ])
    );
    // EMCO's git2go mode, and a plain name: every bundle on one branch.
    let every = [
        "100/app/web/100-web-status.yaml",
        "200/app/db/200-db-status.yaml",
        "monitoring/monitoring-status.yaml",
        "x.lock/x.lock-status.yaml",
    ];
    assert_eq!(
        layout(renderer("{cluster}").render_all(&all)),
        owned(&[("p+c", &every)])
    );
    assert_eq!(
        layout(renderer("main").render_all(&all)),
        owned(&[("main", &every)])
    );
}

#[tokio::test]
async fn each_branch_gets_its_bundles_status_and_loses_it_when_the_bundle_leaves() {
    let repo = git_servers().create_repo(&unique("branches")).unwrap();
    repo.write("README.md", "control\n").unwrap();
    repo.commit("initial").unwrap();
    let bare = repo.bare.clone();
    let template = "{cluster}-{cid}-{app}";
    let (web_branch, db_branch) = ("p+c-100-web", "p+c-200-db");
    let w = writer_to(&repo, "p+c", template);
    let both = snapshot(&[WEB, DB]);
    let report = w.write(w.render_all(&both)).await.unwrap();
    assert_eq!(report.keys().collect::<Vec<_>>(), [web_branch, db_branch]);
    assert!(
        report.values().all(|w| matches!(w, Written::Pushed { .. })),
        "{report:?}"
    );
    assert!(on_branch(&bare, web_branch, WEB_PATH).is_some());
    assert!(
        on_branch(&bare, web_branch, DB_PATH).is_none(),
        "db's status on web's branch"
    );
    assert!(on_branch(&bare, db_branch, DB_PATH).is_some());
    assert!(on_main(&bare, WEB_PATH).is_none(), "main was written to");
    // Created from the default branch.
    assert_eq!(
        on_branch(&bare, web_branch, "README.md").as_deref(),
        Some("control\n")
    );

    // Unchanged status: no branch is even fetched.
    assert_eq!(w.write(w.render_all(&both)).await.unwrap(), Report::new());

    // db leaves: its file is removed from its branch; web's branch is left alone.
    let web_tip = git(&bare, &["rev-parse", web_branch]);
    let report = w.write(w.render_all(&snapshot(&[WEB]))).await.unwrap();
    assert_eq!(report.keys().collect::<Vec<_>>(), [db_branch]);
    assert!(
        on_branch(&bare, db_branch, DB_PATH).is_none(),
        "db's status stayed"
    );
    assert_eq!(
        on_branch(&bare, db_branch, "README.md").as_deref(),
        Some("control\n")
    );
    assert_eq!(git(&bare, &["rev-parse", web_branch]), web_tip);

    // A writer that starts afresh removes status of a bundle that left while no writer ran.
    w.write(w.render_all(&both)).await.unwrap();
    assert!(on_branch(&bare, db_branch, DB_PATH).is_some());
    let fresh = writer_to(&repo, "p+c", template);
    let report = fresh.write(fresh.render_all(&snapshot(&[WEB]))).await.unwrap();
    assert!(
        matches!(report.get(db_branch), Some(Written::Pushed { .. })),
        "{report:?}"
    );
    assert_eq!(report.get(web_branch), Some(&Written::Unchanged));
    assert!(
        on_branch(&bare, db_branch, DB_PATH).is_none(),
        "db's status stayed"
    );

    // A branch that is gone (EMCO deletes an app's branch) is not created again just to remove nothing.
    fresh.write(fresh.render_all(&both)).await.unwrap();
    assert!(on_branch(&bare, db_branch, DB_PATH).is_some());
    git(&bare, &["update-ref", "-d", &format!("refs/heads/{db_branch}")]);
    let report = fresh.write(fresh.render_all(&snapshot(&[WEB]))).await.unwrap();
    assert_eq!(report.get(db_branch), Some(&Written::Unchanged));
    assert!(git(&bare, &["for-each-ref", &format!("refs/heads/{db_branch}")]).is_empty());
}
