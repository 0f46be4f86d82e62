//! Inventory decoding (`inventory::store::decode`): a parent Secret anyone with access to the agent's namespace
//! can edit. The first byte picks the part the rest replaces in an otherwise valid parent: 0 the member list's
//! JSON (gzipped here, so mutations reach the JSON decoder), 1 the raw gzip bytes of the member list, 2 the
//! bundle info JSON, 3 the sync annotation. Decoding must succeed or report the parent corrupt, never panic or
//! exhaust memory.
#![no_main]

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use libfuzzer_sys::fuzz_target;
use outpost_agent::inventory::store;

/// A valid member list and bundle info, replaced part by part.
const MEMBERS: &[u8] = br#"[{"k":"ConfigMap","ns":"web","n":"settings","v":"v1","d":"sha256:00"}]"#;
const INFO: &[u8] = br#"{"bundle":"web","cluster":"fuzz","dir":"web"}"#;

fn gzip(json: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let (mut members, mut info, mut sync) = (gzip(MEMBERS), INFO.to_vec(), None);
    match mode % 4 {
        0 => members = gzip(rest),
        1 => members = rest.to_vec(),
        2 => info = rest.to_vec(),
        _ => sync = Some(String::from_utf8_lossy(rest).into_owned()),
    }
    let mut secret = Secret::default();
    secret.metadata.name = Some("outpost-web".into());
    secret.metadata.annotations = sync.map(|s| BTreeMap::from([("outpost.dev/sync".to_owned(), s)]));
    secret.data = Some(BTreeMap::from([
        ("members.json.gz".to_owned(), ByteString(members)),
        ("bundle.json".to_owned(), ByteString(info)),
    ]));
    match store::decode(&secret) {
        Ok(inventory) => {
            let _ = (inventory.members.len(), inventory.info.dir.len());
        }
        Err(e) => {
            let _ = (e.to_string(), e.metric_label());
        }
    }
});
