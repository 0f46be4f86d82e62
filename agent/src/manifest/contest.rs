//! One object defined by two bundles of the same EMCO app: an update in flight.
//!
//! EMCO's rsync writes an app's update under the Git path of the context it updates from, so after a second
//! update the changed resources appear in a new `context/<cid2>/app/<app>/` while the old directory still holds
//! the old versions (rsync removes files only for resources the update dropped). Two bundles then define the
//! same object. Between bundles of different apps that is a mistake and rejects the commit; within one app it
//! is resolved: the **newest** bundle takes the object (its content wins) and the others drop it — from their
//! manifests here, and later from their inventories without deleting it (the plan's "moved").
//!
//! Context ids are random numbers, so age cannot be read from them. A bundle is newer when its inventory was
//! created later (a bundle without an inventory yet is the newest); between bundles first seen together, the one
//! defining fewer objects is taken as newer — EMCO's update directory holds only what changed — then the name
//! decides, so the choice never flips between syncs.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::bundle::{Bundle, Layout, Manifest};
use super::layout::Error;

/// Identity of a manifest as written (group/kind/namespace/name).
pub fn identity(m: &Manifest) -> String {
    format!(
        "{}/{}/{}/{}",
        m.group(),
        m.kind,
        m.namespace.as_deref().unwrap_or(""),
        m.name
    )
}

/// Objects defined more than once: `Err` for a real duplicate (within a bundle, or across apps), otherwise the
/// contested objects by identity with the indexes of the bundles defining them.
pub fn find(bundles: &[Bundle]) -> Result<BTreeMap<String, Vec<usize>>, Error> {
    let mut seen: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for (b, bundle) in bundles.iter().enumerate() {
        for (m, manifest) in bundle.manifests.iter().enumerate() {
            seen.entry(identity(manifest)).or_default().push((b, m));
        }
    }
    let mut contested = BTreeMap::new();
    for (id, places) in seen.into_iter().filter(|(_, p)| p.len() > 1) {
        let duplicate = |(b1, m1): (usize, usize), (b2, m2): (usize, usize)| Error::Duplicate {
            object: bundles[b2].manifests[m2].display_name(),
            first: bundles[b1].manifests[m1].origin.clone(),
            second: bundles[b2].manifests[m2].origin.clone(),
        };
        let first = places[0];
        let app = emco_app(&bundles[first.0]);
        for &other in &places[1..] {
            let same_bundle = places.iter().filter(|p| p.0 == other.0).count() > 1;
            if same_bundle || app.is_none() || emco_app(&bundles[other.0]) != app {
                return Err(duplicate(first, other));
            }
        }
        contested.insert(id, places.iter().map(|p| p.0).collect());
    }
    Ok(contested)
}

/// The EMCO app of a bundle.
pub fn emco_app(bundle: &Bundle) -> Option<&str> {
    match &bundle.layout {
        Layout::Emco { app, .. } => Some(app),
        Layout::Plain => None,
    }
}

/// How new a bundle of an app is, for choosing which of them keeps an object they all define: the greatest is
/// the newest. `created` is its inventory's creation time (RFC 3339), `None` without one (newer than any);
/// then fewer objects is newer (EMCO's update directory holds only what changed); then the name decides.
pub type Newness = ((u8, String), Reverse<usize>, String);

/// The [`Newness`] of bundle `name` defining `objects` objects.
pub fn newness(name: &str, created: Option<String>, objects: usize) -> Newness {
    let age = created.map_or((1, String::new()), |t| (0, t));
    (age, Reverse(objects), name.to_owned())
}

/// Give each contested object to the newest of its bundles and remove it from the others' manifests.
/// `created` gives a bundle's inventory creation time (RFC 3339), `None` for a bundle without one.
/// Returns (identity, winner, losers) for the log.
pub fn settle(
    bundles: &mut [Bundle],
    contested: &BTreeMap<String, Vec<usize>>,
    created: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String, Vec<String>)> {
    let mut decisions = Vec::new();
    for (id, places) in contested {
        let rank = |b: usize| {
            let bundle = &bundles[b];
            newness(&bundle.name, created(&bundle.name), bundle.manifests.len())
        };
        let Some(&winner) = places.iter().max_by_key(|&&b| rank(b)) else {
            continue;
        };
        let mut losers = Vec::new();
        for &b in places.iter().filter(|&&b| b != winner) {
            bundles[b].manifests.retain(|m| &identity(m) != id);
            losers.push(bundles[b].name.clone());
        }
        decisions.push((id.clone(), bundles[winner].name.clone(), losers));
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::layout::bundles;
    use crate::source::SourceFile;

    fn file(path: &str, body: &str) -> SourceFile {
        SourceFile::new(path, body)
    }

    fn cm(name: &str, value: &str) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"emco"}},"data":{{"v":"{value}"}}}}"#
        )
    }

    #[test]
    fn an_update_directory_takes_the_changed_objects_of_its_app() {
        let files = [
            file("context/111/app/web/a+ConfigMap.yaml", &cm("a", "old")),
            file("context/111/app/web/b+ConfigMap.yaml", &cm("b", "same")),
            file("context/222/app/web/a+ConfigMap.yaml", &cm("a", "new")),
        ];
        let mut parsed = bundles("clusters/p+c", &files).unwrap();
        let contested = find(&parsed).unwrap();
        assert_eq!(contested.len(), 1);
        // Neither has an inventory yet: the one holding only what changed is newer.
        let decisions = settle(&mut parsed, &contested, |_| None);
        assert_eq!(decisions[0].1, "222-web");
        let names: Vec<_> = parsed
            .iter()
            .map(|b| (b.name.as_str(), b.manifests.len()))
            .collect();
        assert_eq!(names, [("111-web", 1), ("222-web", 1)]);
        assert!(parsed[1].manifests[0].body.get().contains("new"));
    }

    #[test]
    fn the_bundle_created_later_keeps_winning() {
        let files = [
            file("context/111/app/web/a+ConfigMap.yaml", &cm("a", "old")),
            file("context/222/app/web/a+ConfigMap.yaml", &cm("a", "new")),
            file("context/222/app/web/c+ConfigMap.yaml", &cm("c", "x")),
        ];
        let created = |b: &str| match b {
            "111-web" => Some("2026-12-01T00:00:00Z".to_owned()),
            _ => Some("2026-12-01T00:05:00Z".to_owned()),
        };
        for _ in 0..2 {
            let mut parsed = bundles("clusters/p+c", &files).unwrap();
            let contested = find(&parsed).unwrap();
            assert_eq!(settle(&mut parsed, &contested, created)[0].1, "222-web");
        }
        // A brand-new bundle (no inventory) beats both.
        let mut parsed = bundles("clusters/p+c", &files).unwrap();
        let contested = find(&parsed).unwrap();
        let only_old = |b: &str| (b == "111-web").then(|| "2026-12-01T00:00:00Z".to_owned());
        assert_eq!(settle(&mut parsed, &contested, only_old)[0].1, "222-web");
    }

    #[test]
    fn the_same_object_in_two_apps_or_twice_in_one_bundle_is_rejected() {
        let across_apps = [
            file("context/111/app/web/a+ConfigMap.yaml", &cm("a", "1")),
            file("context/111/app/db/a+ConfigMap.yaml", &cm("a", "2")),
        ];
        let err = find(&bundles("clusters/p+c", &across_apps).unwrap()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("both define ConfigMap/emco/a"), "{text}");
        assert!(
            text.contains("context/111/app/web/a+ConfigMap.yaml") && text.contains("context/111/app/db/"),
            "{text}"
        );
        let plain = [file("x/a.yaml", &cm("a", "1")), file("y/a.yaml", &cm("a", "2"))];
        assert!(find(&bundles("clusters/c", &plain).unwrap()).is_err());
        let twice = [
            file("context/1/app/web/a.yaml", &cm("a", "1")),
            file("context/1/app/web/b.yaml", &cm("a", "2")),
            file("context/2/app/web/a.yaml", &cm("a", "3")),
        ];
        assert!(find(&bundles("clusters/c", &twice).unwrap()).is_err());
    }
}
