//! How we talk to the Git server, shared by every conversation with it: the agent's fetch ([`super::Remote`])
//! and the status writer's push.
//!
//! Data enters as the configured [`Auth`] and the URL; it leaves as the pieces gix's transport layer takes:
//! HTTP options (our user agent, a reqwest client hook that trusts `--git-ca-file`), a credentials callback
//! that answers HTTP authentication challenges, and the `ssh` invocation (our `ssh` command line). Nothing here
//! opens a connection.

use std::any::Any;
use std::path::Path;
use std::sync::{Arc, Mutex};

use gix::bstr::ByteSlice;
use gix::credentials::helper::Action;
use gix::credentials::protocol::Outcome;
use gix::protocol::transport::client::blocking_io::{http, ssh};

use super::auth::Auth;
use super::error::{Error, Result};
use crate::secret::{Scrubber, Secret};

/// User agent sent to HTTP servers and as the Git `agent=` capability; lets Git server operators tell our
/// requests apart.
pub const USER_AGENT: &str = concat!("outpost/", env!("CARGO_PKG_VERSION"));

/// The longest a new connection may take (gix's own default), shortened to `--git-timeout` when that is less.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// HTTP options for `url`: gix's defaults from `repo`'s configuration, our user agent, and a client hook that
/// trusts the CA bundle of `auth` (`--git-ca-file`), beside the system's CAs or alone (`--git-ca-only`). `shown` is the URL as it may be printed, for errors.
pub fn http_options(
    repo: &gix::Repository,
    url: &gix::Url,
    auth: &Auth,
    shown: &str,
) -> Result<http::Options> {
    let bstr = url.to_bstring();
    let mut options = repo
        .transport_options(bstr.as_bstr(), None)
        .ok()
        .flatten()
        .and_then(|o| o.downcast::<http::Options>().ok())
        .map(|o| *o)
        .unwrap_or_default();
    options.user_agent = Some(USER_AGENT.to_owned());
    let certs = match auth.ca_bundle()? {
        Some(pem) => Some(
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Connect {
                url: shown.to_owned(),
                reason: format!("--git-ca-file holds no usable PEM certificate: {e}"),
            })?,
        ),
        None => None,
    };
    let (timeout, only) = (auth.timeout, auth.ca_only);
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(move |mut builder| {
            builder = match &certs {
                Some(certs) if only => builder.tls_certs_only(certs.clone()),
                Some(certs) => builder.tls_certs_merge(certs.clone()),
                None => builder,
            };
            // The blocking client applies this to reaching the response headers and to every read of the body:
            // a server that stops sending mid-transfer fails the request instead of holding it.
            if let Some(limit) = timeout {
                builder = builder.timeout(limit).connect_timeout(limit.min(CONNECT_TIMEOUT));
            }
            Ok(builder)
        })),
        configure_request: None,
    };
    options.backend = Some(Arc::new(Mutex::new(backend)) as Arc<Mutex<dyn Any + Send + Sync + 'static>>);
    Ok(options)
}

/// The options gix's ssh transport is connected with: our `ssh` command (key copy in `scratch_dir`, pinned
/// known_hosts, strict host key checking, no prompts), known to be OpenSSH so gix passes the port its way.
pub fn ssh_options(auth: &Auth, scratch_dir: &Path) -> Result<ssh::connect::Options> {
    Ok(ssh::connect::Options {
        command: Some(super::ssh::command(auth, scratch_dir)?.into()),
        disallow_shell: false,
        kind: Some(ssh::ProgramKind::Ssh),
    })
}

/// A callback answering gix's credential requests with the configured username and token (or the credentials
/// embedded in the URL). The token file is read again at every request, so a rotated Secret is used at once;
/// nothing is stored or prompted, and every value read is learned by `scrubber`.
pub fn credentials(
    auth: &Auth,
    embedded: Option<&(String, Secret)>,
    scrubber: &Scrubber,
) -> impl FnMut(Action) -> gix::Result<Option<Outcome>> + Send + Sync + 'static {
    let (auth, embedded, scrubber) = (auth.clone(), embedded.cloned(), scrubber.clone());
    move |action| {
        let Action::Get(ctx) = action else {
            return Ok(None);
        };
        let creds = auth
            .http_credentials(embedded.as_ref(), &scrubber)
            .map_err(gix::Error::from_error)?;
        Ok(creds.map(|(user, token)| Outcome {
            identity: gix::sec::identity::Account {
                username: user,
                password: token.expose().to_owned(),
                oauth_refresh_token: None,
            },
            next: ctx.into(),
        }))
    }
}

/// The credentials to send with the first HTTP request, so the server need not answer 401 first (a round trip,
/// and on servers like ours a request of its own, saved on every connection). `None` without credentials.
pub fn preemptive_identity(
    auth: &Auth,
    embedded: Option<&(String, Secret)>,
    scrubber: &Scrubber,
) -> Option<gix::sec::identity::Account> {
    let (username, token) = auth.http_credentials(embedded, scrubber).ok()??;
    Some(gix::sec::identity::Account {
        username,
        password: token.expose().to_owned(),
        oauth_refresh_token: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_answer_with_the_token_file_as_it_is_now() {
        let dir = std::env::temp_dir().join(format!("outpost-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "token-one\n").unwrap();
        let auth = Auth {
            username: "bot".into(),
            token_file: Some(file.clone()),
            ..Default::default()
        };
        let scrubber = Scrubber::default();
        let mut answer = credentials(&auth, None, &scrubber);
        let ask = || Action::Get(Default::default());
        let first = answer(ask()).unwrap().unwrap();
        assert_eq!(
            (first.identity.username.as_str(), first.identity.password.as_str()),
            ("bot", "token-one")
        );
        std::fs::write(&file, "token-two\n").unwrap();
        assert_eq!(answer(ask()).unwrap().unwrap().identity.password, "token-two");
        assert_eq!(scrubber.scrub("token-one token-two"), "[redacted] [redacted]");
        std::fs::remove_file(&file).unwrap();
        assert!(
            answer(ask()).is_err(),
            "a vanished token file is an error, not anonymous access"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ssh_options_run_our_command_as_openssh() {
        let dir = std::env::temp_dir().join(format!("outpost-transport-ssh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let auth = Auth {
            known_hosts_file: Some("/etc/outpost/known_hosts".into()),
            ..Default::default()
        };
        let options = ssh_options(&auth, &dir).unwrap();
        assert_eq!(options.kind, Some(ssh::ProgramKind::Ssh));
        let command = options.command.unwrap().into_string().unwrap();
        assert!(command.starts_with("ssh -F /dev/null"), "{command}");
        assert!(command.contains("StrictHostKeyChecking=yes"), "{command}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
