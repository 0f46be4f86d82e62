//! The container image without a container engine: `tests/env/image-rootfs.sh` rebuilds its root filesystem
//! from the Dockerfile's runtime stage (debootstrap, then its RUN lines), and the agent runs in it under
//! bubblewrap as the image's USER with a read-only root, the chart's mounts, and the host's network, syncing
//! over SSH with the image's own OpenSSH client.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use outpost_tests::agent::{create_namespace, output_text};
use outpost_tests::process::run;
use outpost_tests::{TestRepo, git_servers, kube_env, tools, unique};

use crate::fixtures;

/// A container of the chart's pod: its binary, and where its Git credentials and its cache are mounted
/// (charts/outpost/templates/workload.yaml).
struct Container {
    binary: &'static str,
    credentials: &'static str,
    cache: &'static str,
}

const AGENT: Container = Container {
    binary: "outpost-agent",
    credentials: "/etc/outpost/git",
    cache: "/var/cache/outpost",
};

const STATUS_WRITER: Container = Container {
    binary: "outpost-status-writer",
    credentials: "/etc/outpost/status-git",
    cache: "/var/cache/outpost-status",
};
/// The multi-call binary (multicall/), which the image holds once: `outpost-agent` is the file the Dockerfile's
/// COPY puts, `outpost-status-writer` a link to it.
const MULTI_CALL: &str = "outpost";
/// Where the Dockerfile's COPY puts it.
const IMAGE_BINARY: &str = "/usr/local/bin/outpost-agent";
/// The PATH a container runtime gives an image that sets none.
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The runtime stage's USER (`uid:gid`) and ENV settings.
struct RuntimeStage {
    uid: u32,
    gid: u32,
    env: Vec<(String, String)>,
}

fn runtime_stage(dockerfile: &str) -> Result<RuntimeStage> {
    let stage = dockerfile
        .rsplit_once("\nFROM ")
        .context("the Dockerfile has no runtime stage")?
        .1;
    let mut user = None;
    let mut env = Vec::new();
    for line in stage.lines() {
        if let Some(u) = line.strip_prefix("USER ") {
            user = Some(u.trim().to_owned());
        }
        if let Some(kv) = line.strip_prefix("ENV ") {
            let (k, v) = kv.trim().split_once('=').context("ENV without =")?;
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    let user = user.context("the runtime stage sets no USER")?;
    let (uid, gid) = user.split_once(':').unwrap_or((&user, &user));
    Ok(RuntimeStage {
        uid: uid
            .parse()
            .with_context(|| format!("USER {user} is not numeric"))?,
        gid: gid
            .parse()
            .with_context(|| format!("USER {user} is not numeric"))?,
        env,
    })
}

/// Build (or find in the cache) the image's root filesystem.
fn image_rootfs() -> Result<PathBuf> {
    let started = std::time::Instant::now();
    let script = workspace().join("tests/env/image-rootfs.sh");
    let out = Command::new("bash").arg(&script).output()?;
    ensure!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        output_text(&out)
    );
    eprintln!(
        "image root filesystem ready after {:.1?} (a cold build debootstraps):\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    Ok(PathBuf::from(
        stdout.lines().last().context("no rootfs path printed")?,
    ))
}

/// The home directory of `uid` in the image's /etc/passwd; `/` when there is none, as container runtimes do.
fn home_of(rootfs: &Path, uid: u32) -> Result<String> {
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd"))?;
    Ok(passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[2] == uid.to_string())
        .map_or("/".to_owned(), |f| f[5].to_owned()))
}

/// A file readable by everyone in `dir`, as a Secret volume with the pod's fsGroup makes it readable.
fn install_readable(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, data)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    Ok(())
}

/// The files a container is given, on the host.
struct Mounts {
    /// SSH key, known_hosts and a kubeconfig.
    credentials: PathBuf,
    /// Owned by the image's USER, as the pod's fsGroup owns an emptyDir.
    cache: PathBuf,
}

/// `bwrap` running `argv` of `container` in `rootfs` as the image's USER: root read-only, /proc, /dev, a tmpfs
/// /tmp, our binary bound where the COPY puts it, the credentials read-only and the cache writable where the
/// chart mounts them, the host's network. Unprivileged, bwrap maps our UID to the image's in a user namespace
/// of its own; as root, the sandbox starts as root and the image's own setpriv (util-linux) drops to the USER
/// with no capabilities and no new privileges (`allowPrivilegeEscalation: false`): the process is that UID
/// outside the sandbox too, so the cache must really be its own.
fn sandbox(
    rootfs: &Path,
    stage: &RuntimeStage,
    container: &Container,
    mounts: &Mounts,
    argv: &[&str],
) -> Result<Command> {
    let mut cmd = Command::new(tools::system("bwrap")?);
    cmd.env_clear();
    let root = is_root()?;
    if !root {
        cmd.args(["--unshare-user", "--uid", &stage.uid.to_string()])
            .args(["--gid", &stage.gid.to_string()]);
    }
    cmd.args(["--unshare-pid", "--unshare-ipc", "--unshare-uts"])
        .args(["--die-with-parent", "--new-session"])
        .arg("--ro-bind")
        .arg(rootfs)
        .arg("/")
        .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
        .arg("--ro-bind")
        .arg(tools::outpost_bin(MULTI_CALL)?)
        .arg(IMAGE_BINARY)
        .arg("--ro-bind")
        .arg(&mounts.credentials)
        .arg(container.credentials)
        .arg("--bind")
        .arg(&mounts.cache)
        .arg(container.cache)
        .arg("--clearenv")
        .args(["--setenv", "PATH", IMAGE_PATH])
        .args(["--setenv", "HOME", &home_of(rootfs, stage.uid)?])
        .args(["--setenv", "RUST_LOG", "info"])
        .arg("--setenv")
        .arg("KUBECONFIG")
        .arg(format!("{}/kubeconfig", container.credentials));
    for (k, v) in &stage.env {
        cmd.args(["--setenv", k, v]);
    }
    if root {
        cmd.arg("/usr/bin/setpriv")
            .arg(format!("--reuid={}", stage.uid))
            .arg(format!("--regid={}", stage.gid))
            .args(["--clear-groups", "--no-new-privs", "--"]);
    }
    cmd.args(argv);
    Ok(cmd)
}

/// Run `container`'s binary once in the image, syncing `repo` over SSH for `cluster` with inventories in
/// `namespace`.
fn run_once(
    rootfs: &Path,
    stage: &RuntimeStage,
    container: &Container,
    mounts: &Mounts,
    repo: &TestRepo,
    cluster: &str,
    namespace: &str,
) -> Result<std::process::Output> {
    let binary = format!("/usr/local/bin/{}", container.binary);
    let (url, key, known_hosts) = (
        repo.ssh_url(),
        format!("{}/ssh-privatekey", container.credentials),
        format!("{}/known_hosts", container.credentials),
    );
    let argv = [
        binary.as_str(),
        "--cluster",
        cluster,
        "--namespace",
        namespace,
        "--git-url",
        &url,
        "--git-ssh-key-file",
        &key,
        "--git-known-hosts-file",
        &known_hosts,
        "--cache-dir",
        container.cache,
        "--once",
    ];
    Ok(sandbox(rootfs, stage, container, mounts, &argv)?.output()?)
}

/// The credentials of `container` as the chart's Secret provides them, and a kubeconfig standing in for the
/// service account the pod would use, pointing at the API server's CA inside the sandbox; and its cache.
fn mounts(stage: &RuntimeStage, container: &Container) -> Result<Mounts> {
    let (env, servers) = (kube_env(), git_servers());
    let credentials = outpost_tests::scratch_dir("image-credentials")?;
    install_readable(&credentials, "ssh-privatekey", &std::fs::read(&servers.ssh_key)?)?;
    install_readable(&credentials, "known_hosts", &std::fs::read(&servers.known_hosts)?)?;
    install_readable(&credentials, "kube-ca.crt", &std::fs::read(env.ca_file())?)?;
    let kubeconfig = credentials.join("kubeconfig.tmp");
    env.write_kubeconfig(&kubeconfig, &env.admin_token, "default")?;
    let text = std::fs::read_to_string(&kubeconfig)?.replace(
        &env.ca_file().display().to_string(),
        &format!("{}/kube-ca.crt", container.credentials),
    );
    std::fs::remove_file(&kubeconfig)?;
    install_readable(&credentials, "kubeconfig", text.as_bytes())?;
    let cache = outpost_tests::scratch_dir("image-cache")?;
    std::os::unix::fs::chown(&cache, Some(stage.uid), Some(stage.gid)).or_else(|e| {
        // Not root: bwrap maps our own UID to the image's, so the directory is already its own.
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok(Mounts { credentials, cache })
}

fn is_root() -> Result<bool> {
    Ok(Command::new("id").arg("-u").output()?.stdout == b"0\n")
}

#[tokio::test]
async fn the_image_syncs_over_ssh_as_its_non_root_user_with_a_read_only_root() -> Result<()> {
    let dockerfile = std::fs::read_to_string(workspace().join("Dockerfile"))?;
    let stage = runtime_stage(&dockerfile)?;
    ensure!(stage.uid != 0, "the image runs as root");
    let rootfs = image_rootfs()?;
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "image").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("image"))?;
    repo.write(
        &format!("clusters/{cluster}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "1"),
    )?;
    repo.commit("one")?;

    let agent = mounts(&stage, &AGENT)?;

    // The sandbox is what the test claims: the image's UID, a read-only root. And OpenSSH accepts that UID
    // (`ssh -G` is also how gix tells OpenSSH from other ssh programs; where it fails, gix falls back to a
    // variant that cannot set a port).
    let script = "id -u; ssh -G 127.0.0.1 >/dev/null && echo ssh-ok; touch /probe";
    let out = sandbox(&rootfs, &stage, &AGENT, &agent, &["/bin/sh", "-c", script])?.output()?;
    let (stdout, text) = (String::from_utf8_lossy(&out.stdout), output_text(&out));
    ensure!(
        stdout.starts_with(&format!("{}\n", stage.uid)),
        "not running as {}: {text}",
        stage.uid
    );
    ensure!(
        stdout.contains("ssh-ok"),
        "OpenSSH refuses the image's user: {text}"
    );
    ensure!(
        text.contains("Read-only file system"),
        "the root is writable: {text}"
    );

    let out = run_once(&rootfs, &stage, &AGENT, &agent, &repo, &cluster, &agent_ns)?;
    let text = output_text(&out);
    if !out.status.success() {
        bail!("the agent failed in the image ({}): {text}", rootfs.display());
    }
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("a")
        .await
        .with_context(|| format!("the ConfigMap was not applied: {text}"))?;
    assert_eq!(
        cm.data.unwrap_or_default().get("key").map(String::as_str),
        Some("1")
    );

    // The status writer pushes what it saw over SSH from the same image.
    let writer = mounts(&stage, &STATUS_WRITER)?;
    let out = run_once(
        &rootfs,
        &stage,
        &STATUS_WRITER,
        &writer,
        &repo,
        &cluster,
        &agent_ns,
    )?;
    let text = output_text(&out);
    if !out.status.success() {
        bail!(
            "the status writer failed in the image ({}): {text}",
            rootfs.display()
        );
    }
    let bare = repo.bare.display().to_string();
    let files = run(
        "git",
        &["-C", &bare, "ls-tree", "-r", "--name-only", "main"],
        None,
    )?;
    ensure!(
        files
            .lines()
            .any(|f| f.starts_with(&format!("clusters/{cluster}/status/"))),
        "no status file pushed: {files}\n{text}"
    );
    Ok(())
}
