#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*) from the repository's fixtures.

The manifests come from examples/clusters/ and from what tests/e2e/fixtures.rs and tests/e2e/emco_rsync.rs
commit (EMCO's single-line JSON, trackers, Flux root files); the report and URL seeds from the status writer's
and the source's unit tests. Every seed is a few hundred bytes, so the corpora are committed; run this again
after changing a fixture: `python3 fuzz/seeds.py`. Regression entries (crash-*) are never touched.
"""
import gzip
import json
import pathlib

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
CORPUS = FUZZ / "corpus"

# As tests/e2e/fixtures.rs and tests/e2e/emco_rsync.rs write them.
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n  labels:\n    outpost.test/fixture: \"true\"\n"
CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: web\ndata:\n  key: \"v1\"\n"
LIST = ("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n"
        "- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n")
MULTI = "---\n" + CONFIG_MAP + "---\n---\n# only a comment\n---\n" + NAMESPACE.rstrip("\n")
EMCO_JSON = json.dumps({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "emco", "labels": {"emco/deployment-id": "1234-web"}},
    "spec": {"replicas": 1, "template": {"metadata": {"labels": {"emco/deployment-id": "1234-web"}}}},
}, separators=(",", ":"))
TRACKER = json.dumps({
    "apiVersion": "k8splugin.io/v1alpha1", "kind": "ResourceBundleState",
    "metadata": {"creationTimestamp": None, "labels": {"emco/deployment-id": "1234-web"}, "name": "1234-web"},
    "spec": {"selector": {"matchLabels": {"emco/deployment-id": "1234-web"}}},
    "status": {"ready": False, "resourceCount": 0},
}, separators=(",", ":"))
GIT_REPOSITORY = ("apiVersion: source.toolkit.fluxcd.io/v1beta1\nkind: GitRepository\nmetadata:\n"
                  "  creationTimestamp: null\n  name: \"1234\"\n  namespace: emco\nspec:\n  interval: 30s\n"
                  "  ref:\n    branch: main\n  url: https://git.example/emco/resources\nstatus: {}\n")
KUSTOMIZATION = ("apiVersion: kustomize.toolkit.fluxcd.io/v1beta2\nkind: Kustomization\nmetadata:\n"
                 "  name: kust1234\n  namespace: emco\nspec:\n  path: clusters/p+c/context/1234\n  prune: true\n"
                 "  sourceRef:\n    kind: GitRepository\n    name: \"1234\"\n")


def examples():
    """(path relative to the cluster directory, text) of the example cluster."""
    root = REPO / "examples" / "clusters" / "demo-edge"
    return sorted((str(p.relative_to(root)), p.read_text()) for p in root.rglob("*") if p.is_file())


def files(entries):
    """The layout target's input: NUL-separated `path\\ncontent` records."""
    return b"\0".join(f"{path}\n{text}".encode() for path, text in entries)


def pkt(line):
    data = line.encode()
    return b"%04x" % (len(data) + 4) + data


def seeds():
    out = {"manifest": {}, "layout": {}, "inventory": {}, "report": {}, "url": {}}
    for path, text in examples():
        out["manifest"][path.replace("/", "-")] = text.encode()
    for name, text in [("namespace", NAMESPACE), ("list", LIST), ("multi", MULTI), ("emco-json", EMCO_JSON),
                       ("tracker", TRACKER), ("flow", "{apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n")]:
        out["manifest"][name] = text.encode()

    out["layout"]["plain"] = files(examples() + [(".outpostignore", "*.md\n"), ("web/README.md", "# no\n"),
                                                 ("web/outpost.yaml", "dependsOn: [monitoring]\n"),
                                                 ("status/web.yaml", TRACKER), ("root.yaml", CONFIG_MAP)])
    out["layout"]["emco"] = files([("1234.yaml", GIT_REPOSITORY), ("kust1234.yaml", KUSTOMIZATION),
                                   ("context/1234/app/web/web+Deployment.yaml", EMCO_JSON),
                                   ("context/1234/app/web/1234-web.yaml", TRACKER),
                                   ("context/1234/app/db/outpost.yaml", "dependsOn: [1234-web]\n"),
                                   ("context/1234/app/db/1234-db.yaml", TRACKER), ("flux-system/gotk.yaml", LIST)])

    members = [{"k": "ConfigMap", "ns": "web", "n": "settings", "v": "v1", "d": "sha256:" + "0" * 64, "rv": "7"},
               {"g": "apps", "k": "Deployment", "ns": "web", "n": "web", "v": "apps/v1", "d": "", "gen": 3},
               {"k": "Namespace", "n": "web", "v": "v1", "d": "sha256:" + "1" * 64}]
    info = {"bundle": "1234-web", "cluster": "p+c", "dir": "context/1234/app/web", "context": "1234", "app": "web",
            "trackers": [json.loads(TRACKER)], "dependsOn": ["1234-db"], "firstSeen": "2026-01-01T00:00:00Z"}
    sync = {"revision": "1" * 40, "time": "2026-01-01T00:00:00Z", "state": "Failed", "applied": 2, "pruned": 1,
            "errors": ["ConfigMap/web/settings: forbidden"]}
    out["inventory"]["members-json"] = b"\0" + json.dumps(members).encode()
    out["inventory"]["members-gzip"] = b"\1" + gzip.compress(json.dumps(members).encode(), mtime=0)
    out["inventory"]["info"] = b"\2" + json.dumps(info).encode()
    out["inventory"]["sync"] = b"\3" + json.dumps(sync).encode()

    main = "refs/heads/main"
    for name, lines in [("updated", ["unpack ok\n", f"ok {main}\n"]),
                        ("refused", ["unpack ok\n", f"ng {main} failed to update ref\n"]),
                        ("unpack-failed", ["unpack index-pack abnormal exit\n", f"ng {main} unpacker error\n"]),
                        ("other-ref", ["unpack ok\n", "ok refs/heads/other\n"]),
                        ("atomic", ["unpack ok\n", "ok refs/outpost/x\n", f"ok {main}\n"])]:
        out["report"][name] = b"".join(pkt(line) for line in lines) + b"0000"
    out["report"]["err"] = pkt("ERR access denied\n")
    out["report"]["empty"] = b"0000"

    for i, url in enumerate(["https://bot:s3cret-token@git.example.test/org/repo.git",
                             "git@git.example.test:org/repo.git", "ssh://git@127.0.0.1:2222/srv/repo.git",
                             "file:///srv/git/repo.git", "/srv/git/repo.git", "git://example.test/repo.git",
                             "http://127.0.0.1:8080/git/resources.git", "refs/tags/v1.0",
                             "0123456789abcdef0123456789abcdef01234567"]):
        out["url"][str(i)] = url.encode()
    return out


def main():
    for target, entries in seeds().items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in entries.items():
            (folder / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
