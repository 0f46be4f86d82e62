//! Pushes against the real Git servers of `outpost-tests`: nginx + git-http-backend over TLS with basic auth,
//! sshd, and the local `git` for `file://`. Our side fetches the tip with the agent's source, as the status
//! writer does, and builds the commit with gix; the git CLI only makes fixtures and checks results.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use gix::objs::tree::EntryKind;
use outpost_agent::secret::{Scrubber, Secret};
use outpost_agent::source::{self, Auth, GitRef, RepoUrl, Source};
use outpost_tests::process::run;
use outpost_tests::{GitServers, TestRepo, git_servers, unique};

use super::*;

/// How the test reaches the repository.
#[derive(Clone, Copy, Debug)]
enum Via {
    Https,
    Ssh,
    File,
}

/// A repository on the servers with one commit on `main`, and our side's scratch space.
struct Fixture {
    /// The repository on the servers.
    repo: TestRepo,
    /// Credentials for the servers (token, CA bundle, SSH key and known_hosts).
    auth: Auth,
    /// Removes the token from error messages, as in the writer.
    scrubber: Scrubber,
    /// Our side's scratch space (fetch cache, SSH key copy).
    cache: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let servers: &GitServers = git_servers();
        let repo = servers.create_repo(&unique(name)).unwrap();
        repo.write("README.md", "control repository\n").unwrap();
        repo.commit("initial").unwrap();
        let auth = Auth {
            username: servers.http_user.clone(),
            token_file: Some(servers.token_file.clone()),
            token: None,
            ca_file: Some(servers.ca_file.clone()),
            ca_only: false,
            ssh_key_file: Some(servers.ssh_key.clone()),
            known_hosts_file: Some(servers.known_hosts.clone()),
            timeout: None,
        };
        let cache = outpost_tests::scratch_dir(name).unwrap();
        Fixture {
            repo,
            auth,
            scrubber: Scrubber::default(),
            cache,
        }
    }

    /// The URL to push to.
    fn url(&self, via: Via) -> RepoUrl {
        match via {
            Via::Https => RepoUrl::parse(&self.repo.https_url()).unwrap(),
            Via::Ssh => RepoUrl::parse(&self.repo.ssh_url()).unwrap(),
            Via::File => RepoUrl::Local(self.repo.bare.clone()),
        }
    }

    /// Fetch `main` into our cache with the agent's source (a local path through file://, like the writer).
    fn fetch(&self, via: Via) -> (gix::Repository, ObjectId) {
        self.fetch_ref(via, GitRef::Branch("main".into()))
    }

    fn fetch_ref(&self, via: Via, reference: GitRef) -> (gix::Repository, ObjectId) {
        let url = match via {
            Via::File => RepoUrl::Remote {
                url: gix::url::parse(self.repo.file_url().as_str()).unwrap(),
                embedded: None,
            },
            other => self.url(other),
        };
        let config = source::Config {
            url,
            reference,
            auth: self.auth.clone(),
            cache_dir: self.cache.clone(),
            limits: source::Limits::default(),
            throttle: Default::default(),
        };
        let source = Source::new(config, self.scrubber.clone());
        let update = source.update(&AtomicBool::new(false)).unwrap();
        (source.cache_repo().unwrap(), update.revision.object_id())
    }

    /// Push `built` (from [`commit_file`]) to `branch`, expecting the branch at `old`.
    fn push(
        &self,
        via: Via,
        repo: &gix::Repository,
        branch: &str,
        old: Option<ObjectId>,
        built: &Built,
    ) -> Result<PushOutcome> {
        self.push_as(via, &self.auth, repo, branch, old, built)
    }

    fn push_as(
        &self,
        via: Via,
        auth: &Auth,
        repo: &gix::Repository,
        branch: &str,
        old: Option<ObjectId>,
        built: &Built,
    ) -> Result<PushOutcome> {
        let url = self.url(via);
        let request = PushRequest {
            url: &url,
            auth,
            scrubber: &self.scrubber,
            branch,
            old,
            new: built.commit,
            repo,
            objects: &built.objects,
            cache_dir: &self.cache,
        };
        push(&request, &AtomicBool::new(false))
    }

    /// `git <args>` in the served bare repository.
    fn git(&self, args: &[&str]) -> String {
        let mut all = vec!["-C", self.repo.bare.to_str().unwrap()];
        all.extend_from_slice(args);
        run("git", &all, None).unwrap().trim().to_owned()
    }

    /// Whether the served repository has object `id`.
    fn has_object(&self, id: ObjectId) -> bool {
        let bare = self.repo.bare.to_str().unwrap();
        run("git", &["-C", bare, "cat-file", "-e", &id.to_string()], None).is_ok()
    }

    /// `new` is the branch tip, `path` reads `content` there, and the repository is consistent.
    fn assert_pushed(&self, branch: &str, built: &Built, path: &str, content: &str) {
        assert_eq!(
            self.git(&["rev-parse", &format!("refs/heads/{branch}")]),
            built.commit.to_string()
        );
        assert_eq!(
            self.git(&["show", &format!("{}:{path}", built.commit)]),
            content.trim_end()
        );
        self.git(&["fsck", "--strict", "--no-dangling"]);
    }
}

/// A commit and the objects the remote lacks for it.
struct Built {
    /// The new commit.
    commit: ObjectId,
    /// What to pack: the commit, the root tree and the blob.
    objects: Vec<ObjectId>,
}

/// A commit on `parent` that adds the top-level file `path`: the new objects are the commit, the root tree and
/// the blob (`content` must be new to the repository).
fn commit_file(repo: &gix::Repository, parent: ObjectId, path: &str, content: &str) -> Built {
    let parent_tree = repo.find_commit(parent).unwrap().tree_id().unwrap().detach();
    let blob = repo.write_blob(content.as_bytes()).unwrap().detach();
    let mut editor = repo.edit_tree(parent_tree).unwrap();
    editor.upsert(path, EntryKind::Blob, blob).unwrap();
    let tree = editor.write().unwrap().detach();
    let sig = gix::actor::SignatureRef {
        name: "Outpost Status".into(),
        email: "status@outpost.invalid".into(),
        time: "1700000000 +0000",
    };
    let commit = repo
        .new_commit_as(sig, sig, "outpost status: test", tree, Some(parent))
        .unwrap()
        .id;
    Built {
        commit,
        objects: vec![commit, tree, blob],
    }
}

fn fast_forward_lands(via: Via, name: &str) {
    let f = Fixture::new(name);
    let (repo, tip) = f.fetch(via);
    let content = format!("ready: true\nvia: {via:?}\n");
    let built = commit_file(&repo, tip, "status.yaml", &content);
    let outcome = f.push(via, &repo, "main", Some(tip), &built).unwrap();
    assert_eq!(outcome, PushOutcome::Updated);
    f.assert_pushed("main", &built, "status.yaml", &content);
}

#[test]
fn pushes_a_fast_forward_over_https_with_a_token_file_and_a_custom_ca() {
    fast_forward_lands(Via::Https, "push-https");
}

#[test]
fn pushes_a_fast_forward_over_ssh_with_a_pinned_host_key() {
    fast_forward_lands(Via::Ssh, "push-ssh");
}

#[test]
fn pushes_a_fast_forward_to_a_local_path_through_file_url() {
    fast_forward_lands(Via::File, "push-file");
}

#[test]
fn creates_a_branch_that_does_not_exist_yet_and_never_overwrites_one_that_does() {
    let f = Fixture::new("push-create");
    // As the status writer does for a branch that does not exist yet: start from the default branch.
    let (repo, tip) = f.fetch_ref(Via::Https, GitRef::Head);
    assert_eq!(tip.to_string(), f.repo.head().unwrap());
    let built = commit_file(&repo, tip, "cluster-a.yaml", "cluster: a\n");
    let outcome = f
        .push(Via::Https, &repo, "status/cluster-a", None, &built)
        .unwrap();
    assert_eq!(outcome, PushOutcome::Updated);
    f.assert_pushed("status/cluster-a", &built, "cluster-a.yaml", "cluster: a\n");
    assert_eq!(
        f.git(&["rev-parse", "refs/heads/main"]),
        tip.to_string(),
        "main is untouched"
    );

    // Creating it again, as if it did not exist, must not replace it.
    let again = commit_file(&repo, tip, "cluster-a.yaml", "cluster: a, again\n");
    match f
        .push(Via::Https, &repo, "status/cluster-a", None, &again)
        .unwrap()
    {
        PushOutcome::Rejected { remote_tip, .. } => assert_eq!(remote_tip, Some(built.commit)),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        f.git(&["rev-parse", "refs/heads/status/cluster-a"]),
        built.commit.to_string()
    );
}

#[test]
fn a_stale_old_tip_is_rejected_with_the_real_tip_and_nothing_is_sent() {
    let f = Fixture::new("push-stale");
    let (repo, tip) = f.fetch(Via::Https);
    let built = commit_file(&repo, tip, "status.yaml", "stale: true\n");
    // Another writer pushes in between.
    f.repo.write("other-cluster.yaml", "theirs\n").unwrap();
    let theirs = f.repo.commit("another writer").unwrap();

    match f.push(Via::Https, &repo, "main", Some(tip), &built).unwrap() {
        PushOutcome::Rejected { remote_tip, reason } => {
            assert_eq!(
                remote_tip.map(|t| t.to_string()),
                Some(theirs.clone()),
                "{reason}"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(f.repo.head().unwrap(), theirs, "the remote is unchanged");
    assert!(!f.has_object(built.commit), "no pack may be sent for a stale tip");
}

#[test]
fn a_push_that_loses_the_race_after_the_advertisement_is_rejected_with_the_winners_tip() {
    let f = Fixture::new("push-race");
    let (repo, tip) = f.fetch(Via::File);
    let built = commit_file(&repo, tip, "status.yaml", "race: lost\n");
    // The hook holds our push after the objects arrived and before the ref moves, until another writer wins.
    let held = f.cache.join("held");
    let release = f.cache.join("release");
    let hook = f.repo.bare.join("hooks/pre-receive");
    let script = format!(
        "#!/bin/sh\ncat >/dev/null\nif mkdir '{}' 2>/dev/null; then\n  while [ ! -e '{}' ]; do sleep 0.05; done\nfi\n",
        held.display(),
        release.display()
    );
    std::fs::write(&hook, script).unwrap();
    run("chmod", &["+x", hook.to_str().unwrap()], None).unwrap();

    let outcome = std::thread::scope(|scope| {
        let winner = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !held.exists() {
                assert!(Instant::now() < deadline, "our push never reached the hook");
                std::thread::sleep(Duration::from_millis(20));
            }
            f.repo.write("other-cluster.yaml", "theirs\n").unwrap();
            let theirs = f.repo.commit("the winner").unwrap();
            std::fs::write(&release, "").unwrap();
            theirs
        });
        let outcome = f.push(Via::File, &repo, "main", Some(tip), &built);
        (outcome, winner.join().unwrap())
    });
    let (outcome, theirs) = outcome;
    match outcome.unwrap() {
        PushOutcome::Rejected { remote_tip, reason } => {
            assert_eq!(
                remote_tip.map(|t| t.to_string()),
                Some(theirs.clone()),
                "{reason}"
            );
            assert!(
                reason.contains("refused to update refs/heads/main"),
                "the server must have refused: {reason}"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(f.repo.head().unwrap(), theirs, "the winner's commit stays");
}

#[test]
fn a_wrong_token_is_unauthorized_and_the_token_never_appears() {
    let f = Fixture::new("push-401");
    let (repo, tip) = f.fetch(Via::Https);
    let built = commit_file(&repo, tip, "status.yaml", "unauthorized: true\n");
    let wrong = format!("wrong-{}", outpost_tests::random_token());
    let auth = Auth {
        token_file: None,
        token: Some(Secret::new(wrong.clone())),
        ..f.auth.clone()
    };
    let err = f
        .push_as(Via::Https, &auth, &repo, "main", Some(tip), &built)
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let (shown, debug) = (err.to_string(), format!("{err:?}"));
    assert!(shown.contains(&f.repo.https_url()), "{shown}");
    assert!(
        !shown.contains(&wrong) && !debug.contains(&wrong),
        "{shown} / {debug}"
    );
    assert_eq!(f.repo.head().unwrap(), tip.to_string());
}

#[test]
fn a_repository_that_refuses_http_pushes_is_read_only() {
    let f = Fixture::new("push-403");
    f.git(&["config", "http.receivepack", "false"]);
    let (repo, tip) = f.fetch(Via::Https);
    let built = commit_file(&repo, tip, "status.yaml", "read-only: true\n");
    let err = f.push(Via::Https, &repo, "main", Some(tip), &built).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    let servers = git_servers();
    assert!(!err.to_string().contains(&servers.http_password), "{err}");
    assert_eq!(f.repo.head().unwrap(), tip.to_string());
}

#[test]
fn without_atomic_pushes_removals_follow_a_branch_update_that_landed_and_only_then() {
    for via in [Via::Https, Via::Ssh, Via::File] {
        removals_follow_the_branch(via);
    }
}

fn removals_follow_the_branch(via: Via) {
    let f = Fixture::new("push-non-atomic");
    f.git(&["config", "receive.advertiseAtomic", "false"]);
    let (repo, tip) = f.fetch(via);
    let status_ref = "refs/outpost/main.status/carried";
    f.git(&["update-ref", status_ref, &tip.to_string()]);
    let removal = [RefCommand {
        refname: status_ref.into(),
        old: Some(tip),
        new: None,
    }];
    let url = f.url(via);
    let push = |old: ObjectId, built: &Built| {
        let request = PushRequest {
            url: &url,
            auth: &f.auth,
            scrubber: &f.scrubber,
            branch: "main",
            old: Some(old),
            new: built.commit,
            repo: &repo,
            objects: &built.objects,
            cache_dir: &f.cache,
        };
        push_with(&request, &removal, &AtomicBool::new(false)).unwrap()
    };
    // Another writer moved the branch: our commit is rejected and the ref we settled stays.
    f.repo.write("other-cluster.yaml", "theirs\n").unwrap();
    f.repo.commit("another writer").unwrap();
    let (outcome, applied) = push(tip, &commit_file(&repo, tip, "status.yaml", "a: 1\n"));
    assert!(matches!(outcome, PushOutcome::Rejected { .. }) && !applied);
    assert_eq!(f.git(&["rev-parse", status_ref]), tip.to_string());
    // Rebuilt on the new tip it lands, and the removal follows it.
    let (_, theirs) = f.fetch(via);
    let (outcome, applied) = push(theirs, &commit_file(&repo, theirs, "status.yaml", "a: 2\n"));
    assert_eq!((outcome, applied), (PushOutcome::Updated, true));
    assert_eq!(f.git(&["for-each-ref", "refs/outpost/"]), "");
}
