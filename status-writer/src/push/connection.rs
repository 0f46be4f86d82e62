//! One receive-pack conversation: connect with the shared transport settings, read the advertisement
//! (answering HTTP authentication challenges), send the request body and read the report.
//!
//! Transport errors become ours here: refused credentials are [`Error::Unauthorized`], a server that lets us
//! read but not push is [`Error::ReadOnly`].

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use gix::ObjectId;
use gix::protocol::handshake::Ref;
use gix::protocol::transport::client::blocking_io::{Transport, connect};
use gix::protocol::transport::client::{Capabilities, MessageKind, TransportWithoutIO, WriteMode};
use gix::protocol::transport::{Protocol, Service};
use outpost_agent::secret::Scrubber;
use outpost_agent::source::{RepoUrl, describe, transport};

use super::report;
use super::types::{Error, PushRequest, Result};

/// A connection after the ref advertisement.
pub(super) type Connection = Box<dyn Transport + Send>;

/// Refs and capabilities from the receive-pack advertisement.
pub(super) struct Advertisement {
    /// Every ref the server has.
    pub(super) refs: Vec<Ref>,
    /// What the server's receive-pack supports.
    pub(super) capabilities: Capabilities,
}

/// Connect to receive-pack and read its advertisement, answering authentication challenges.
pub(super) fn advertise(
    req: &PushRequest<'_>,
    shown: &str,
    interrupt: &AtomicBool,
) -> Result<(Connection, Advertisement)> {
    let setup = |e: &dyn std::error::Error| Error::Setup {
        url: shown.to_owned(),
        reason: describe(e, req.scrubber),
    };
    let url = match req.url {
        RepoUrl::Remote { url, .. } => url.clone(),
        RepoUrl::Local(path) => {
            let path = gix::path::into_bstr(path.as_path())
                .map_err(|e| setup(&e))?
                .into_owned();
            gix::Url::from_parts(gix::url::Scheme::File, None, None, None, None, path, false)
                .map_err(|e| setup(&e))?
        }
    };
    let ssh = if url.scheme == gix::url::Scheme::Ssh {
        std::fs::create_dir_all(req.cache_dir).map_err(|e| setup(&e))?;
        transport::ssh_options(req.auth, req.cache_dir).map_err(|e| setup(&e))?
    } else {
        Default::default()
    };
    // Version 1: receive-pack has no protocol v2, and asking for v1 adds no header or environment variable.
    let options = connect::Options {
        version: Protocol::V1,
        ssh,
        trace: false,
    };
    let connect_err = |url, reason| Error::Connect { url, reason };
    let mut connection = connect::connect(url.clone(), options)
        .map_err(|e| failure(&e, shown, req.scrubber, interrupt, connect_err))?;
    let is_http = req.url.is_http();
    if is_http {
        let http = transport::http_options(req.repo, &url, req.auth, shown).map_err(|e| setup(&e))?;
        connection
            .configure(&http)
            .map_err(|e| failure(&e, shown, req.scrubber, interrupt, connect_err))?;
    }
    let embedded = match req.url {
        RepoUrl::Remote { embedded, .. } => embedded.as_ref(),
        RepoUrl::Local(_) => None,
    };
    if is_http && let Some(identity) = transport::preemptive_identity(req.auth, embedded, req.scrubber) {
        connection
            .set_identity(identity)
            .map_err(|e| failure(&e, shown, req.scrubber, interrupt, connect_err))?;
    }
    let mut answer = transport::credentials(req.auth, embedded, req.scrubber);
    // Only HTTP takes a username and token; for ssh a refusal must not turn into a different login user.
    let authenticate = |action| if is_http { answer(action) } else { Ok(None) };
    let handshake = gix::protocol::handshake(
        &mut connection,
        Service::ReceivePack,
        authenticate,
        Vec::new(),
        &mut gix::progress::Discard,
    )
    .map_err(|e| failure(&e, shown, req.scrubber, interrupt, connect_err))?;
    if handshake.server_protocol_version == Protocol::V2 {
        return Err(Error::Protocol {
            url: shown.to_owned(),
            reason: "the server answered receive-pack with protocol v2, which has no push".into(),
        });
    }
    let advertisement = Advertisement {
        refs: handshake.refs.unwrap_or_default(),
        capabilities: handshake.capabilities,
    };
    Ok((connection, advertisement))
}

/// Where `refname` points in the advertisement.
pub(super) fn tip_of(refs: &[Ref], refname: &str) -> Option<ObjectId> {
    refs.iter().find_map(|r| match r.unpack() {
        (name, Some(id), _) if name == refname => Some(id.to_owned()),
        _ => None,
    })
}

/// Send `body` (command, flush, pack) and read the report. The body goes out whole: HTTP then sends it with a
/// Content-Length, which every server and proxy accepts.
pub(super) fn send(
    connection: &mut Connection,
    body: &[u8],
) -> std::result::Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let persistent = connection.connection_persists_across_multiple_requests();
    let request = connection.request(
        WriteMode::OneLfTerminatedLinePerWriteCall,
        MessageKind::Flush,
        false,
    )?;
    let (mut out, mut reader) = request.into_parts();
    out.write_all(body)?;
    out.flush()?;
    // HTTP sends the request only once the body is complete.
    drop(out);
    reader.reset(Protocol::V1);
    let lines = report::read_lines(&mut reader)?;
    if persistent {
        // Let receive-pack finish (post-receive hooks, auto-gc) before the transport kills the process.
        reader.reset(Protocol::V1);
        while let Some(Ok(Ok(_))) = reader.readline() {}
    }
    Ok(lines)
}

/// End a conversation without updating anything: an empty command list tells receive-pack to exit cleanly.
pub(super) fn hang_up(connection: &mut Connection) {
    // Over HTTP there is nothing to end: every request stands alone.
    if connection.connection_persists_across_multiple_requests()
        && let Ok(request) = connection.request(WriteMode::Binary, MessageKind::Flush, false)
    {
        let _ = request.into_read();
    }
}

/// Turn a transport error into ours: refused credentials, refused pushes, or `other`.
pub(super) fn failure(
    err: &(dyn std::error::Error + 'static),
    url: &str,
    scrubber: &Scrubber,
    interrupt: &AtomicBool,
    other: impl FnOnce(String, String) -> Error,
) -> Error {
    if interrupt.load(Ordering::Relaxed) {
        return Error::Interrupted;
    }
    let reason = describe(err, scrubber);
    let url = url.to_owned();
    if gix::error::classify(err).is_unauthenticated() || reason.contains("HTTP status 401") {
        return Error::Unauthorized { url };
    }
    if gix::error::classify(err).is_permission_denied() || reason.contains("HTTP status 403") {
        return Error::ReadOnly { url, reason };
    }
    other(url, reason)
}

/// Stop early when shutdown was requested.
pub(super) fn stop_if(interrupt: &AtomicBool) -> Result<()> {
    if interrupt.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    Ok(())
}
