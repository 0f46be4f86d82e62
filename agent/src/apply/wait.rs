//! Waiting for Foundation objects to be usable: a CRD until Established, so its kinds can be resolved.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};

/// How long a CRD may take to become Established before its custom resources are reported as failed.
/// The API server establishes a valid CRD in well under a second; minutes mean it never will.
pub const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Wait until the CRD `name` is Established; `Err` carries a reason for the error message.
pub async fn crd_established(client: &Client, name: &str) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let wait = await_condition(api, name, conditions::is_crd_established());
    match tokio::time::timeout(CRD_ESTABLISH_TIMEOUT, wait).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "not Established after {}s",
            CRD_ESTABLISH_TIMEOUT.as_secs()
        )),
    }
}
