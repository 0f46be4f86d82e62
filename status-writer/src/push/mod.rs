//! `git push` of one commit to one branch, fast-forward only, over gix's transport (gix has no porcelain push).
//!
//! Data enters as a [`PushRequest`]: the tip the commit was built on, the commit, and the exact objects the
//! remote lacks. We connect to `git-receive-pack` (HTTP(S) smart protocol, SSH, or the local `git` for
//! `file://`), read the ref advertisement and compare the branch's tip with `old`: when another writer moved it,
//! we answer [`PushOutcome::Rejected`] without sending anything. Otherwise we send the update command, then a
//! pack built by `pack`, and read the server's `report-status` (`report`). Never forces.
//!
//! Connection settings (CA bundle, user agent, credentials callback, ssh command) are the agent's
//! [`outpost_agent::source::transport`], so fetch and push authenticate the same way. Blocking: run it in
//! `spawn_blocking`.

mod connection;
mod pack;
mod removal;
mod report;
mod types;

use std::sync::atomic::AtomicBool;

use gix::ObjectId;
use outpost_agent::source::transport;

use connection::{advertise, failure, hang_up, send, stop_if, tip_of};
pub use report::{Verdict, judge_report};
pub use types::{Error, PushOutcome, PushRequest, RefCommand, Result};

/// Push `req.new` to `req.branch` if the branch is still at `req.old`. Blocking; never force-pushes.
pub fn push(req: &PushRequest<'_>, interrupt: &AtomicBool) -> Result<PushOutcome> {
    push_with(req, &[], interrupt).map(|(outcome, _)| outcome)
}

/// [`push`], with `extra` ref updates (removals of status refs). When the server supports atomic pushes they
/// go with the branch's, and either all land or none do. Otherwise they follow in a second conversation, and
/// only once the branch moved (never before: a removed status ref tells its writer its status is on the
/// branch); a failure there is logged and left to the next landing, which settles those refs again. An extra
/// update whose ref is not where it expects when the server lists the refs is left out (it was republished).
/// Returns the branch's outcome and whether every extra update was applied.
pub fn push_with(
    req: &PushRequest<'_>,
    extra: &[RefCommand],
    interrupt: &AtomicBool,
) -> Result<(PushOutcome, bool)> {
    let mut commands = vec![RefCommand {
        refname: format!("refs/heads/{}", req.branch),
        old: req.old,
        new: Some(req.new),
    }];
    commands.extend_from_slice(extra);
    let done = exchange(req, interrupt, |_| Ok((commands, req.objects.to_vec())))?;
    if done.outcome != PushOutcome::Updated || done.held.is_empty() {
        return Ok((done.outcome, done.applied));
    }
    let held = done.held.len();
    let applied = match removal::remove(req, &done.held, interrupt) {
        Ok(removed) => removed == held && held == extra.len(),
        Err(Error::Interrupted) => false,
        Err(e) => {
            tracing::warn!(error = %e, "Removing settled status refs after the branch moved failed; the next landing removes them");
            false
        }
    };
    Ok((done.outcome, applied))
}

/// Delete the refs of `removals` (`new: None`) that are still where they expect, without touching the branch:
/// status refs settled by an earlier landing whose removal did not land. Returns how many the server deleted.
/// Blocking.
pub fn remove(req: &PushRequest<'_>, removals: &[RefCommand], interrupt: &AtomicBool) -> Result<usize> {
    removal::remove(req, removals, interrupt)
}

/// Move the single ref `refname` to a commit made from what the server says is there now: `build(current)`
/// returns the commit and the objects the server lacks. One conversation (the ref advertisement and the
/// update), compare-and-swap; the branch is not touched. Returns the outcome and every advertised ref (name, id).
pub fn publish(
    req: &PushRequest<'_>,
    refname: &str,
    build: impl FnOnce(Option<ObjectId>) -> Result<(ObjectId, Vec<ObjectId>)>,
    interrupt: &AtomicBool,
) -> Result<(PushOutcome, Vec<(String, ObjectId)>)> {
    let done = exchange(req, interrupt, |refs| {
        let current = tip_of(refs, refname);
        let (new, objects) = build(current)?;
        let command = RefCommand {
            refname: refname.to_owned(),
            old: current,
            new: Some(new),
        };
        Ok((vec![command], objects))
    })?;
    Ok((done.outcome, done.refs))
}

/// The refs receive-pack advertises (name, id): one request, no pack. Blocking.
pub fn advertised(req: &PushRequest<'_>, interrupt: &AtomicBool) -> Result<Vec<(String, ObjectId)>> {
    let shown = req.url.to_string();
    let (mut connection, advertisement) = advertise(req, &shown, interrupt)?;
    hang_up(&mut connection);
    Ok(named(&advertisement.refs))
}

/// (name, id) of every ref that points at an object.
fn named(refs: &[gix::protocol::handshake::Ref]) -> Vec<(String, ObjectId)> {
    refs.iter()
        .filter_map(|r| match r.unpack() {
            (name, Some(id), _) => Some((name.to_string(), id.to_owned())),
            _ => None,
        })
        .collect()
}

/// What one conversation did.
struct Exchanged {
    /// For the first command.
    outcome: PushOutcome,
    /// Every command was applied (several commands need an atomic push).
    applied: bool,
    /// Removals held back because the server cannot push atomically: for after the branch moved.
    held: Vec<RefCommand>,
    /// The advertisement.
    refs: Vec<(String, ObjectId)>,
}

/// One receive-pack conversation. `prepare` sees the advertised refs and returns the commands (the first is
/// the one reported on) and the objects to pack. Every ref must be where its command expects (otherwise nothing
/// is sent); several commands go atomically when the server can, otherwise the first alone (the removals among
/// the others are returned as held).
fn exchange(
    req: &PushRequest<'_>,
    interrupt: &AtomicBool,
    prepare: impl FnOnce(&[gix::protocol::handshake::Ref]) -> Result<(Vec<RefCommand>, Vec<ObjectId>)>,
) -> Result<Exchanged> {
    let shown = req.url.to_string();
    stop_if(interrupt)?;
    let (mut connection, advertisement) = advertise(req, &shown, interrupt)?;
    let refs = named(&advertisement.refs);
    let (mut commands, objects) = match prepare(&advertisement.refs) {
        Ok(prepared) => prepared,
        Err(e) => {
            hang_up(&mut connection);
            return Err(e);
        }
    };
    for c in &commands {
        gix::refs::FullName::try_from(c.refname.as_str()).map_err(|e| Error::Setup {
            url: shown.clone(),
            reason: format!("{:?} is not a valid ref name: {e}", c.refname),
        })?;
    }
    let pack = pack::build(req.repo, &objects)?;
    let refname = commands[0].refname.clone();
    let tip = tip_of(&advertisement.refs, &refname);
    // The first command must find its ref where it expects; extra commands that do not are dropped.
    if tip != commands[0].old {
        hang_up(&mut connection);
        let reason = match tip {
            Some(tip) => format!("{refname} is at {tip} on the server, not where our commit was built"),
            None => format!("{refname} does not exist on the server any more"),
        };
        return Ok(Exchanged {
            outcome: PushOutcome::Rejected {
                remote_tip: tip,
                reason,
            },
            applied: false,
            held: Vec::new(),
            refs,
        });
    }
    let mut extras = commands.split_off(1);
    let extra_count = extras.len();
    extras.retain(|c| tip_of(&advertisement.refs, &c.refname) == c.old);
    commands.extend(extras);
    let capabilities = advertisement.capabilities;
    if !capabilities.contains("report-status") {
        hang_up(&mut connection);
        return Err(Error::Protocol {
            url: shown,
            reason: "the server does not offer report-status, so the result of a push could not be known"
                .into(),
        });
    }
    let mut wanted = vec!["report-status".to_owned()];
    let requested = 1 + extra_count;
    let deletes = commands.iter().any(|c| c.new.is_none());
    let together = commands.len() > 1
        && capabilities.contains("atomic")
        && (!deletes || capabilities.contains("delete-refs"));
    let mut held = Vec::new();
    if together {
        wanted.push("atomic".to_owned());
    } else {
        held = commands.split_off(1);
        held.retain(|c| c.new.is_none());
    }
    if capabilities.contains("quiet") {
        wanted.push("quiet".to_owned());
    }
    if capabilities.contains("agent") {
        wanted.push(format!("agent={}", transport::USER_AGENT));
    }
    stop_if(interrupt)?;
    tracing::debug!(url = %shown, refs = commands.len(), objects = objects.len(), bytes = pack.len(), "Pushing");
    let null = ObjectId::null(gix::hash::Kind::Sha1);
    let lines: Vec<(Option<ObjectId>, ObjectId, &str)> = commands
        .iter()
        .map(|c| (c.old, c.new.unwrap_or(null), c.refname.as_str()))
        .collect();
    let body = report::request_many(&lines, &wanted, &pack);
    let lines = send(&mut connection, &body).map_err(|e| {
        failure(&*e, &shown, req.scrubber, interrupt, |url, reason| {
            Error::Protocol { url, reason }
        })
    })?;
    drop(connection);

    let outcome = match report::verdict(&lines, &refname) {
        report::Verdict::Updated => PushOutcome::Updated,
        report::Verdict::Failed(reason) => {
            return Err(Error::Protocol {
                url: shown,
                reason: req.scrubber.scrub(&reason),
            });
        }
        report::Verdict::Refused(reason) => {
            let reason = req.scrubber.scrub(&reason);
            // Ask again where the refs are: a moved ref is a lost race, anything else is a real refusal.
            let now = advertise(req, &shown, interrupt)
                .ok()
                .map(|(mut connection, advertisement)| {
                    hang_up(&mut connection);
                    commands
                        .iter()
                        .map(|c| tip_of(&advertisement.refs, &c.refname))
                        .collect::<Vec<_>>()
                });
            let moved = now
                .as_ref()
                .is_some_and(|tips| tips.iter().zip(&commands).any(|(tip, c)| *tip != c.old));
            let why = format!("the server refused to update {refname}: {reason}");
            if moved || report::is_race(&reason) {
                PushOutcome::Rejected {
                    remote_tip: now.and_then(|t| t.first().copied().flatten()),
                    reason: why,
                }
            } else {
                return Err(Error::Protocol {
                    url: shown,
                    reason: why,
                });
            }
        }
    };
    let applied = commands.len() == requested && outcome == PushOutcome::Updated;
    Ok(Exchanged {
        outcome,
        applied,
        held,
        refs,
    })
}

#[cfg(test)]
mod tests;
