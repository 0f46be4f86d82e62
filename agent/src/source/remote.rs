//! Network repositories: ref advertisement, shallow fetch into a bare cache repository.
//!
//! [`Remote`] is the network half of the Git source. One [`Upstream::update`] opens (or creates) the cache,
//! connects, lists only the configured ref, and fetches with depth 1 only when that commit is not cached yet.
//! HTTP options (CA bundle, user agent), the credentials callback and the ssh command come from
//! [`super::transport`], which the status writer's push shares.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use gix::protocol::transport::client::blocking_io::{Transport, http};
use gix::remote::Direction;
use sha2::{Digest, Sha256};

use super::config::{Config, GitRef};
use super::error::{Error, Result, describe, names_status};
use super::file::SourceFile;
use super::revision::Revision;
use super::upstream::{Update, Upstream};
use super::url::RepoUrl;
use super::{history, lineage, polite_http, transport, tree};
use crate::secret::Scrubber;

/// Local ref the fetched commit is stored under, so the objects stay reachable in the cache.
pub const TRACKING_REF: &str = "refs/outpost/target";

/// Pack files in the cache beyond which it is rebuilt: every shallow fetch adds a pack and gix has no gc, so
/// the cache would otherwise grow with every commit.
const MAX_PACKS: usize = 16;

/// A Git repository reached over the network (HTTP(S) or SSH), fetched shallow into a bare cache repository.
pub struct Remote {
    /// Settings from the command line.
    config: Config,
    /// Learns credentials and removes them from error text.
    scrubber: Scrubber,
}

/// A ref the remote listed for one of [`Remote::fetch_refs`]'s refspecs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    /// Full name on the remote (`refs/heads/main`).
    pub name: String,
    /// Where it points.
    pub id: Revision,
    /// Which refspec (index into the list given) matched it.
    pub spec: usize,
}

impl Remote {
    /// The repository `config` names, which must be a network URL ([`super::Source::new`] chooses).
    pub(super) fn new(config: Config, scrubber: Scrubber) -> Self {
        Remote { config, scrubber }
    }

    /// The cache repository the objects are fetched into, created on first use.
    pub fn cache_repo(&self) -> Result<gix::Repository> {
        open_cache(&self.config)
    }

    /// Fetch several refs at once (depth 1) into the cache: `refspecs` are full `+<remote>:<local>` specs,
    /// wildcards allowed. One ref listing; a pack only when some listed commit is not cached yet. Returns every
    /// ref listed, in the server's order (a spec that matches nothing is not an error here). Blocking.
    pub fn fetch_refs(&self, refspecs: &[String], interrupt: &AtomicBool) -> Result<Vec<RemoteRef>> {
        fetch(
            &self.config,
            &self.scrubber,
            interrupt,
            refspecs,
            |repo, found| found.iter().all(|r| repo.has_object(r.id.object_id())),
        )
        .map(|(found, _)| found)
    }
}

impl Remote {
    /// The object the followed ref pointed at in the last [`Upstream::update`] (an annotated tag's own object,
    /// not the commit it names); `revision` for a pinned commit.
    pub(super) fn ref_target(&self, revision: Revision) -> Result<gix::ObjectId> {
        if let GitRef::Commit(id) = &self.config.reference {
            return Ok(id.object_id());
        }
        let repo = self.cache_repo()?;
        Ok(repo
            .find_reference(TRACKING_REF)
            .ok()
            .and_then(|r| r.target().try_id().map(|id| id.to_owned()))
            .unwrap_or_else(|| revision.object_id()))
    }
}

impl Upstream for Remote {
    fn location(&self) -> String {
        self.config.url.to_string()
    }

    fn deadline(&self) -> Option<std::time::Duration> {
        self.config.auth.timeout
    }

    /// One ref advertisement; a pack only when the commit is not in the cache yet.
    fn update(&self, interrupt: &AtomicBool) -> Result<Update> {
        update(&self.config, &self.scrubber, interrupt)
    }

    fn read_dir(&self, revision: Revision, dir: &str) -> Result<Option<Vec<SourceFile>>> {
        tree::read_dir(self.cache_repo()?, revision, dir, &self.config.limits)
    }

    /// The cache is deepened to `max` commits first when its shallow history does not reach `base`.
    fn history(
        &self,
        tip: Revision,
        base: Revision,
        max: usize,
        interrupt: &AtomicBool,
    ) -> Result<Option<Vec<Revision>>> {
        let found = history::walk(&self.cache_repo()?, tip, base, max);
        if found.is_some() {
            return Ok(found);
        }
        deepen(&self.config, &self.scrubber, interrupt, max as u32)?;
        Ok(history::walk(&self.cache_repo()?, tip, base, max))
    }

    /// Walks the cache; while the walk runs into the shallow boundary, deepens it by steps (8, 64, 512 commits,
    /// at most `max` + 1) and walks again.
    fn lineage(
        &self,
        tip: Revision,
        base: Revision,
        max: usize,
        interrupt: &AtomicBool,
    ) -> Result<lineage::Lineage> {
        let mut depth = 1;
        loop {
            let repo = self.cache_repo()?;
            let reached = lineage::reach(&repo, tip, base, max);
            let next = lineage::next_depth(depth, max);
            match (reached, next) {
                (lineage::Reach::Truncated, Some(next)) => {
                    tracing::debug!(tip = %tip, base = %base, depth = next, "Deepening the cache to find the last applied commit");
                    deepen(&self.config, &self.scrubber, interrupt, next)?;
                    depth = next;
                }
                _ => return Ok(lineage::lineage(&repo, reached, tip, base)),
            }
        }
    }
}

/// The cache directory for this URL: one bare repository per URL, named by a hash so URLs never collide.
fn cache_path(config: &Config) -> PathBuf {
    let digest = Sha256::digest(config.url.to_string().as_bytes());
    let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    config.cache_dir.join(format!("repo-{short}.git"))
}

/// Open the cache repository, creating it on first use.
fn open_cache(config: &Config) -> Result<gix::Repository> {
    let path = cache_path(config);
    let open_err = |e: &dyn std::error::Error| Error::Open {
        path: path.clone(),
        reason: e.to_string(),
    };
    if path.join("HEAD").exists() {
        return gix::open_opts(&path, gix::open::Options::isolated()).map_err(|e| open_err(&e));
    }
    std::fs::create_dir_all(&config.cache_dir).map_err(|e| open_err(&e))?;
    gix::init_bare(&path).map_err(|e| open_err(&e))?;
    gix::open_opts(&path, gix::open::Options::isolated()).map_err(|e| open_err(&e))
}

/// Ask the remote where the ref points and fetch that commit if we do not have it.
fn update(config: &Config, scrubber: &Scrubber, interrupt: &AtomicBool) -> Result<Update> {
    // A pinned commit that is already cached needs no network at all.
    if let GitRef::Commit(id) = &config.reference
        && open_cache(config)?.has_object(id.object_id())
    {
        return Ok(Update {
            revision: *id,
            fetched: false,
        });
    }
    let refspec = format!("+{}:{TRACKING_REF}", config.reference.remote_name());
    let (found, fetched) = fetch(config, scrubber, interrupt, &[refspec], |repo, found| {
        found
            .first()
            .is_some_and(|r| repo.has_object(r.id.object_id()) && tracking_ref_is(repo, r.id))
    })?;
    let target = found.first().map(|r| r.id).ok_or_else(|| Error::RefNotFound {
        url: config.url.to_string(),
        reference: config.reference.to_string(),
    })?;
    // An annotated tag is advertised (and tracked) as its tag object; what is applied is the commit it names.
    let revision = peel_to_commit(&open_cache(config)?, target, config)?;
    Ok(Update { revision, fetched })
}

/// The commit `id` is or (through annotated tags) names.
fn peel_to_commit(repo: &gix::Repository, id: Revision, config: &Config) -> Result<Revision> {
    let err = |reason: String| Error::Read {
        commit: id.to_string(),
        path: config.reference.to_string(),
        reason,
    };
    let object = repo.find_object(id.object_id()).map_err(|e| err(e.to_string()))?;
    let commit = object
        .peel_to_kind(gix::object::Kind::Commit)
        .map_err(|e| err(format!("does not lead to a commit: {e}")))?;
    Ok(commit.id.into())
}

/// Fetch with `refspecs` (depth 1): one ref listing, then a pack unless `have(repo, refs found)` says every
/// object is here already. Returns the refs the specs matched, in listing order, and whether a pack came.
fn fetch(
    config: &Config,
    scrubber: &Scrubber,
    interrupt: &AtomicBool,
    refspecs: &[String],
    have: impl FnOnce(&gix::Repository, &[RemoteRef]) -> bool,
) -> Result<(Vec<RemoteRef>, bool)> {
    fetch_at_depth(config, scrubber, interrupt, refspecs, 1, have)
}

/// Fetch the configured reference with `depth` commits of history (to read commits an agent skipped).
fn deepen(config: &Config, scrubber: &Scrubber, interrupt: &AtomicBool, depth: u32) -> Result<()> {
    let refspec = format!("+{}:{TRACKING_REF}", config.reference.remote_name());
    fetch_at_depth(config, scrubber, interrupt, &[refspec], depth, |_, _| false).map(|_| ())
}

/// [`fetch`] with a chosen depth.
fn fetch_at_depth(
    config: &Config,
    scrubber: &Scrubber,
    interrupt: &AtomicBool,
    refspecs: &[String],
    depth: u32,
    have: impl FnOnce(&gix::Repository, &[RemoteRef]) -> bool,
) -> Result<(Vec<RemoteRef>, bool)> {
    let RepoUrl::Remote { url, embedded } = &config.url else {
        unreachable!("remote::fetch called for a local repository");
    };
    let shown = config.url.to_string();
    let _cache =
        super::cache_lock::CacheLock::acquire(&cache_path(config), interrupt).ok_or(Error::Interrupted)?;
    let mut repo = open_cache(config)?;
    {
        let configure_err = |what: &str, e: &dyn std::error::Error| Error::Connect {
            url: shown.clone(),
            reason: format!("cannot configure {what}: {e}"),
        };
        let mut snapshot = repo.config_snapshot_mut();
        if config.url.is_ssh() {
            let command = super::ssh::command(&config.auth, &cache_path(config))?;
            snapshot
                .set_value(&gix::config::tree::Core::SSH_COMMAND, command.as_str())
                .map_err(|e| configure_err("ssh", &e))?;
        }
        // Indexing holds an object's pack entry and the object inflated at once: with neither above half the
        // cap, a fetch holds at most the cap.
        snapshot
            .set_value(
                &gix::config::tree::gitoxide::Objects::ALLOC_LIMIT,
                config.limits.max_inflated_object().to_string().as_str(),
            )
            .map_err(|e| configure_err("the allocation limit", &e))?;
        snapshot
            .commit()
            .map_err(|e| configure_err("the repository", &e))?;
    }

    let connect_err = |e: &dyn std::error::Error| classify(e, &shown, scrubber);
    let remote = repo
        .remote_at(url.clone())
        .map_err(|e| connect_err(&e))?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .with_refspecs(refspecs.iter().map(String::as_str), Direction::Fetch)
        .map_err(|e| connect_err(&e))?;

    // Read once before connecting so an unreadable token file fails here, as a credentials error; the callback
    // reads it again whenever the server asks.
    config.auth.http_credentials(embedded.as_ref(), scrubber)?;
    // Nothing goes out while the server asked us to wait or the request cap is reached.
    if let Err(held) = config.throttle.check() {
        return Err(Error::Throttled {
            url: shown.clone(),
            reason: held.to_string(),
        });
    }
    let mut connection = if config.url.is_http() {
        let (url, version) = remote
            .sanitized_url_and_version(Direction::Fetch)
            .map_err(|e| connect_err(&e))?;
        let http = polite_http::Polite::new(polite_http::Reqwest::default(), config.throttle.clone());
        let transport = http::Transport::new_http(http, url, version, false);
        remote.to_connection_with_transport(Box::new(transport) as Box<dyn Transport + Send>)
    } else {
        // One SSH connection is one request.
        config.throttle.admit().map_err(|held| Error::Throttled {
            url: shown.clone(),
            reason: held.to_string(),
        })?;
        remote.connect(Direction::Fetch).map_err(|e| connect_err(&e))?
    };
    if config.url.is_http() {
        let options = transport::http_options(&repo, url, &config.auth, &shown)?;
        connection.set_transport_options(Box::new(options));
        if let Some(identity) = transport::preemptive_identity(&config.auth, embedded.as_ref(), scrubber) {
            connection
                .transport_mut()
                .set_identity(identity)
                .map_err(|e| connect_err(&e))?;
        }
    }
    let connection =
        connection.with_credentials(transport::credentials(&config.auth, embedded.as_ref(), scrubber));

    let prepare = connection
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| connect_err(&e))?;
    let found: Vec<RemoteRef> = prepare
        .ref_map()
        .mappings
        .iter()
        .filter_map(|m| {
            Some(RemoteRef {
                name: m.remote.as_name().map(|n| n.to_string()).unwrap_or_default(),
                id: m.remote.as_id()?.to_owned().into(),
                spec: match m.spec_index {
                    gix::protocol::fetch::refmap::SpecIndex::ExplicitInRemote(i) => i,
                    gix::protocol::fetch::refmap::SpecIndex::Implicit(_) => return None,
                },
            })
        })
        .collect();
    if found.is_empty() || have(&repo, &found) {
        return Ok((found, false));
    }
    let depth = std::num::NonZeroU32::new(depth.max(1)).expect("at least 1");
    let cap = super::fetch_cap::Cap::new(config.limits.max_fetch_bytes);
    let over_cap = |found: String| {
        Error::from(super::limits::Exceeded {
            path: format!("{shown} ({})", config.reference),
            limit: super::limits::Limit::FetchBytes,
            max: config.limits.max_fetch_bytes,
            found,
        })
    };
    let prepare = prepare.with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(depth));
    cap.receive(interrupt, |progress, stop| prepare.receive(progress, stop))
        .map_err(|e| {
            if cap.exceeded() {
                return over_cap(format!(
                    "a fetch that had sent {} and was still sending",
                    super::limits::Bytes(cap.received())
                ));
            }
            if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
                return Error::Interrupted;
            }
            if describe(&e, scrubber).contains("too large to fit in memory") {
                return over_cap(format!(
                    "an object in the fetched pack inflating beyond half of it ({})",
                    super::limits::Bytes(config.limits.max_inflated_object())
                ));
            }
            match classify(&e, &shown, scrubber) {
                Error::Connect { reason, .. } => Error::Fetch {
                    url: shown.clone(),
                    reference: config.reference.to_string(),
                    reason,
                },
                other => other,
            }
        })?;
    drop(repo);
    // Compaction refetches the configured reference only, the first refspec.
    if let Some(first) = found.iter().find(|r| r.spec == 0)
        && pack_count(&cache_path(config)) > MAX_PACKS
    {
        compact(config, scrubber, interrupt, first.id);
    }
    Ok((found, true))
}

/// Number of pack files in a bare repository.
fn pack_count(repo: &std::path::Path) -> usize {
    std::fs::read_dir(repo.join("objects/pack"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                .count()
        })
        .unwrap_or(0)
}

/// Rebuild the cache with one fresh shallow fetch into a sibling directory, then swap it in. Failures leave the
/// old cache in place (it still works, it is only larger).
fn compact(config: &Config, scrubber: &Scrubber, interrupt: &AtomicBool, commit: Revision) {
    let path = cache_path(config);
    let staging = path.with_extension("compact");
    let old = path.with_extension("old");
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_dir_all(&old);
    let staging_config = Config {
        cache_dir: staging.clone(),
        ..config.clone()
    };
    // `update` lays the fresh repository out as `<staging>/repo-<hash>.git`.
    let built = cache_path(&staging_config);
    match update(&staging_config, scrubber, interrupt) {
        // `commit` is what the ref was advertised as (an annotated tag's object for a tag): the fresh cache
        // tracks the same object when the ref did not move.
        Ok(_) if open_cache(&staging_config).is_ok_and(|r| tracking_ref_is(&r, commit)) => {
            if std::fs::rename(&path, &old).is_ok() {
                if std::fs::rename(&built, &path).is_ok() {
                    tracing::info!(cache = %path.display(), "Git cache compacted");
                } else {
                    let _ = std::fs::rename(&old, &path);
                }
            }
        }
        Ok(_) => tracing::debug!("Ref moved during cache compaction; keeping the old cache"),
        Err(e) => tracing::warn!(error = %e, "Git cache compaction failed; keeping the old cache"),
    }
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_dir_all(&old);
}

/// Whether the tracking ref already points at `commit` (the objects are then complete, not a partial pack).
fn tracking_ref_is(repo: &gix::Repository, commit: Revision) -> bool {
    repo.find_reference(TRACKING_REF)
        .ok()
        .and_then(|r| r.target().try_id().map(|id| id.to_owned()))
        == Some(commit.object_id())
}

/// Turn a gix error into ours, recognising refused credentials.
fn classify(err: &dyn std::error::Error, url: &str, scrubber: &Scrubber) -> Error {
    let reason = describe(err, scrubber);
    let lower = reason.to_ascii_lowercase();
    if names_status(&lower, "401") || names_status(&lower, "403") || lower.contains("authentication") {
        return Error::Unauthorized { url: url.to_owned() };
    }
    Error::Connect {
        url: url.to_owned(),
        reason,
    }
}
