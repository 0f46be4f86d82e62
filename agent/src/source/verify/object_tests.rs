//! Verification of real signed commits: keys from `ssh-keygen` and GnuPG, commits signed by `git commit -S`.
//! Also prints what one verification costs (the per-poll price of `--verify` when the ref moved).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::source::test_git::git;
use crate::source::verify::{Mode, Reason};

/// A scratch directory, removed when dropped (its GnuPG agent stopped).
struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", self.0.join("gnupg"))
            .output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `program args` with GNUPGHOME in `dir`; its trimmed stdout.
fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        // The scratch directory's GnuPG home, also for commands run in the repository below it.
        .env(
            "GNUPGHOME",
            dir.ancestors()
                .map(|d| d.join("gnupg"))
                .find(|d| d.exists())
                .unwrap(),
        )
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository with one SSH-signed and one GnuPG-signed commit, and a keyring trusting both keys:
/// (dir, repo path, ssh commit, gpg commit, keyring).
fn signed_repo() -> (Dir, PathBuf, Revision, Revision, Keyring) {
    let dir = std::env::temp_dir().join(format!(
        "outpost-verify-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(dir.join("gnupg")).unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::set_permissions(
        dir.join("gnupg"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let d = Dir(dir.clone());
    run(&dir, "ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", "id"]);
    let public = std::fs::read_to_string(dir.join("id.pub")).unwrap();
    std::fs::write(dir.join("keys/allowed_signers"), format!("t@t {public}")).unwrap();
    run(
        &dir,
        "gpg",
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "T <t@t>",
            "ed25519",
            "sign",
            "never",
        ],
    );
    let listed = run(&dir, "gpg", &["--with-colons", "--list-keys", "t@t"]);
    let fpr = listed
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .unwrap()
        .trim_matches(':')
        .to_owned();
    std::fs::write(
        dir.join("keys/t.asc"),
        run(&dir, "gpg", &["--armor", "--export", &fpr]),
    )
    .unwrap();
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let key = format!("user.signingkey={}", dir.join("id").display());
    run(
        &repo,
        "git",
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &key,
            "commit",
            "-q",
            "--allow-empty",
            "-S",
            "-m",
            "ssh",
        ],
    );
    let ssh = Revision::parse(&git(&repo, &["rev-parse", "HEAD"])).unwrap();
    let key = format!("user.signingkey={fpr}");
    run(
        &repo,
        "git",
        &[
            "-c",
            "gpg.program=gpg",
            "-c",
            &key,
            "commit",
            "-q",
            "--allow-empty",
            "-S",
            "-m",
            "gpg",
        ],
    );
    let gpg = Revision::parse(&git(&repo, &["rev-parse", "HEAD"])).unwrap();
    let ring = Keyring::load(&dir.join("keys")).unwrap();
    (d, repo, ssh, gpg, ring)
}

#[test]
fn real_ssh_and_gpg_signatures_verify_and_the_cost_is_printed() {
    let (_dir, path, ssh, gpg, ring) = signed_repo();
    let repo = gix::open(&path).unwrap();
    for (what, commit) in [("SSH ed25519", ssh), ("OpenPGP ed25519", gpg)] {
        let verified = verify(&repo, &ring, Mode::Commit, (commit.object_id(), commit), "main")
            .unwrap()
            .unwrap();
        assert_eq!(verified.commit, commit);
        let rounds = 50;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            verify(&repo, &ring, Mode::Commit, (commit.object_id(), commit), "main").unwrap();
        }
        let per = started.elapsed() / rounds;
        // Reading and parsing the keys is part of a poll whose key files changed.
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            Keyring::load(&path.parent().unwrap().join("keys")).unwrap();
        }
        let keys = started.elapsed() / rounds;
        println!("verification cost, {what}: {per:?} per commit; reading and parsing the keys: {keys:?}");
    }
}

#[test]
fn a_changed_byte_breaks_the_signature_and_tag_mode_wants_a_tag() {
    let (_dir, path, ssh, _gpg, ring) = signed_repo();
    let raw = git(&path, &["cat-file", "commit", &ssh.to_string()]) + "\n";
    let tampered = raw.replacen("\n\nssh", "\n\nsSh", 1);
    std::fs::write(path.join("tampered"), tampered).unwrap();
    let id = git(&path, &["hash-object", "-t", "commit", "-w", "tampered"]);
    let id = Revision::parse(&id).unwrap();
    let repo = gix::open(&path).unwrap();
    let err = verify(&repo, &ring, Mode::Commit, (id.object_id(), id), "main").unwrap_err();
    assert_eq!(err.reason(), Reason::BadSignature, "{err}");
    let err = verify(&repo, &ring, Mode::Tag, (ssh.object_id(), ssh), "refs/tags/v1").unwrap_err();
    assert_eq!(err.reason(), Reason::Unsigned, "{err}");
    assert!(err.to_string().contains("lightweight tag"), "{err}");
}
