//! The writer against a real bare repository (through file://, as for a local control repo): carrying other
//! clusters' published statuses, and leaving stale ones alone. The git CLI only makes fixtures and checks.

use std::path::Path;
use std::process::Command;

use outpost_tests::process::run;
use outpost_tests::{TestRepo, git_servers, unique};

use super::*;

fn writer(repo: &TestRepo, cluster: &str) -> Writer {
    let target = Target {
        url: RepoUrl::Local(repo.bare.clone()),
        auth: Auth::default(),
        branch: "main".into(),
        cluster: cluster.into(),
        namespace: "outpost".into(),
        author: Author {
            name: "Outpost".into(),
            email: "outpost@example.invalid".into(),
        },
        cache_dir: outpost_tests::scratch_dir(&format!("writer-{cluster}")).unwrap(),
    };
    Writer::new(target, Scrubber::default(), None, Arc::default())
}

fn status(tick: &str) -> BTreeMap<String, (String, Vec<u8>)> {
    BTreeMap::from([(
        "b/b-status.yaml".to_owned(),
        ("b".to_owned(), format!("tick: {tick}\n").into_bytes()),
    )])
}

fn git(bare: &Path, args: &[&str]) -> String {
    let bare = bare.to_str().unwrap();
    let mut all = vec!["-C", bare];
    all.extend_from_slice(args);
    run("git", &all, None).unwrap().trim().to_owned()
}

fn on_main(bare: &Path, path: &str) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(bare)
        .args(["show", &format!("refs/heads/main:{path}")])
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
    assert!(matches!(
        a.write(status("1")).await.unwrap(),
        Written::Pushed { .. }
    ));
    assert_eq!(on_main(&bare, b_path).as_deref(), Some("tick: 1\n"));
    assert_eq!(on_main(&bare, a_path).as_deref(), Some("tick: 1\n"));
    let message = git(&bare, &["log", "-1", "--format=%s", "refs/heads/main"]);
    assert!(message.contains("carried: b"), "{message}");
    assert!(!has_ref(&bare, &b_ref), "the carried status ref is still there");
    // One commit on top, fast-forward: the history was not rewritten.
    assert_eq!(git(&bare, &["rev-parse", "refs/heads/main~1"]), initial);

    // b then finds its status on the branch: nothing to push.
    assert_eq!(b.write(status("1")).await.unwrap(), Written::Unchanged);

    // A status published long ago (a cluster that is gone) is not carried.
    let b_ref = publish(&bare, "b", "tick: old\n", Some("2001-01-01T00:00:00Z"));
    assert!(matches!(
        a.write(status("2")).await.unwrap(),
        Written::Pushed { .. }
    ));
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
    assert!(matches!(
        a.write(status("1")).await.unwrap(),
        Written::Pushed { .. }
    ));
    // a lost a race last time; "0first" (first in line by name) published and went quiet.
    a.memory
        .contended
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let first = publish(&bare, "0first", "tick: 0\n", None);
    let started = std::time::Instant::now();
    assert!(matches!(
        a.write(status("2")).await.unwrap(),
        Written::Pushed { .. }
    ));
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
    assert!(a.memory.contended.load(std::sync::atomic::Ordering::Relaxed));
    let started = std::time::Instant::now();
    assert!(matches!(
        a.write(status("3")).await.unwrap(),
        Written::Pushed { .. }
    ));
    assert!(
        started.elapsed() < crate::land::FALLBACK,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        on_main(&bare, "clusters/a/status/b/b-status.yaml").as_deref(),
        Some("tick: 3\n")
    );
    assert!(!a.memory.contended.load(std::sync::atomic::Ordering::Relaxed));
}
