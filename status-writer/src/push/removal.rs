//! Ref removals in a conversation of their own, for servers that cannot push atomically.
//!
//! A landing removes the status refs it settled ([`crate::carry`]). With `atomic` they ride with the branch
//! update; without it they must wait until the branch has moved, because a removed status ref tells its writer
//! that its status is on the branch. [`super::push_with`] then calls [`remove`]: one more ref advertisement, and
//! a delete command (compare-and-swap on the id the landing listed) for every ref still there. A delete-only
//! request carries no pack.

use std::sync::atomic::AtomicBool;

use gix::ObjectId;
use outpost_agent::source::transport;

use super::connection::{advertise, failure, hang_up, send, stop_if, tip_of};
use super::report;
use super::types::{Error, PushRequest, RefCommand, Result};

/// Delete every ref of `removals` (commands with `new: None` and an `old`) that is still where its command
/// expects. Returns how many the server deleted; one that moved meanwhile (republished) is left alone.
pub(super) fn remove(
    req: &PushRequest<'_>,
    removals: &[RefCommand],
    interrupt: &AtomicBool,
) -> Result<usize> {
    let shown = req.url.to_string();
    stop_if(interrupt)?;
    let (mut connection, advertisement) = advertise(req, &shown, interrupt)?;
    let capabilities = &advertisement.capabilities;
    let due: Vec<(Option<ObjectId>, ObjectId, &str)> = removals
        .iter()
        .filter(|c| c.new.is_none() && c.old.is_some())
        .filter(|c| tip_of(&advertisement.refs, &c.refname) == c.old)
        .map(|c| (c.old, ObjectId::null(gix::hash::Kind::Sha1), c.refname.as_str()))
        .collect();
    if due.is_empty() || !capabilities.contains("delete-refs") || !capabilities.contains("report-status") {
        hang_up(&mut connection);
        return Ok(0);
    }
    let mut wanted = vec!["report-status".to_owned()];
    if capabilities.contains("agent") {
        wanted.push(format!("agent={}", transport::USER_AGENT));
    }
    let body = report::request_many(&due, &wanted, &[]);
    let lines = send(&mut connection, &body).map_err(|e| {
        failure(&*e, &shown, req.scrubber, interrupt, |url, reason| {
            Error::Protocol { url, reason }
        })
    })?;
    drop(connection);
    let removed = due
        .iter()
        .filter(|(_, _, refname)| report::verdict(&lines, refname) == report::Verdict::Updated)
        .count();
    if removed < due.len() {
        tracing::debug!(url = %shown, report = ?lines, "Some status refs were not removed");
    }
    Ok(removed)
}
