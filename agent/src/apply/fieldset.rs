//! Field sets as the API server records them in `metadata.managedFields[].fieldsV1`, for adoption.
//!
//! A fieldsV1 value is a trie: keys name a child (`f:<field>`, `k:<list key as JSON>`, `v:<list value as
//! JSON>`, `i:<index>`), an empty object `{}` marks a leaf that belongs to the set, and a `"."` child marks an
//! inner node that belongs to the set itself (a map or list item owned along with some of its children).
//! Values enter from the managed fields of a live object ([`FieldSet::from_fields_v1`]), are combined
//! ([`FieldSet::union`], [`FieldSet::difference`]) and leave as fieldsV1 again ([`FieldSet::to_fields_v1`]), or
//! as the removals they stand for in an object ([`FieldSet::remove_from`], for `outpost-agent plan`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One node of a field set: whether the path to it is in the set, and its children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// The path leading here is itself in the set.
    member: bool,
    /// Some set listed children here: the value is a map or list whose items are owned one by one. Without
    /// it, a member is owned whole (a scalar, or an atomic list or map), and removing it removes everything
    /// under it.
    granular: bool,
    /// Children by their fieldsV1 key (`f:name`, `k:{..}`, `v:..`, `i:N`).
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// The set a fieldsV1 value describes. Anything but an object (never written by an API server) is the
    /// empty set.
    pub fn from_fields_v1(value: &Value) -> FieldSet {
        let Some(map) = value.as_object() else {
            return FieldSet::default();
        };
        if map.is_empty() {
            return FieldSet {
                member: true,
                ..FieldSet::default()
            };
        }
        let mut set = FieldSet {
            granular: true,
            ..FieldSet::default()
        };
        for (key, child) in map {
            if key == "." {
                set.member = true;
            } else {
                set.children.insert(key.clone(), FieldSet::from_fields_v1(child));
            }
        }
        set
    }

    /// The fieldsV1 value of this set.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for (key, child) in &self.children {
            map.insert(key.clone(), child.to_fields_v1());
        }
        Value::Object(map)
    }

    /// True when no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Every path in `self` or in `other`.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut children = self.children.clone();
        for (key, child) in &other.children {
            let merged = match children.get(key) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            children.insert(key.clone(), merged);
        }
        FieldSet {
            member: self.member || other.member,
            granular: self.granular || other.granular,
            children,
        }
    }

    /// The paths of `self` that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut children = BTreeMap::new();
        for (key, child) in &self.children {
            let rest = match other.children.get(key) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                children.insert(key.clone(), rest);
            }
        }
        FieldSet {
            member: self.member && !other.member,
            granular: self.granular || other.granular,
            children,
        }
    }

    /// Remove this set's paths from `object` as server-side apply removes fields nobody owns any more: a member
    /// owned whole goes with everything under it; a map or list owned item by item loses the items in the set,
    /// and goes itself (when a member) only once nothing is left in it, since what others own or nobody
    /// owns stays.
    pub fn remove_from(&self, object: &mut Value) {
        match object {
            Value::Object(map) => {
                for (key, child) in &self.children {
                    let Some(name) = key.strip_prefix("f:") else {
                        continue;
                    };
                    if let Some(value) = map.get_mut(name)
                        && child.removes_whole(value)
                    {
                        map.remove(name);
                    }
                }
            }
            Value::Array(items) => {
                // Positions first, removed from the last: removing an item shifts the ones after it.
                let mut found: Vec<(usize, &FieldSet)> = self
                    .children
                    .iter()
                    .filter_map(|(key, child)| position(key, items).map(|i| (i, child)))
                    .collect();
                found.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
                for (i, child) in found {
                    if child.removes_whole(&mut items[i]) {
                        items.remove(i);
                    }
                }
            }
            _ => {}
        }
    }

    /// Remove the set's paths below `value`; true when `value` itself goes (a member owned whole, or one left
    /// empty).
    fn removes_whole(&self, value: &mut Value) -> bool {
        if !self.granular {
            return self.member;
        }
        self.remove_from(value);
        let empty = match value {
            Value::Object(map) => map.is_empty(),
            Value::Array(items) => items.is_empty(),
            _ => false,
        };
        self.member && empty
    }
}

/// Where in `items` the list item fieldsV1 key `key` names is (`k:{"name":"a"}`, `v:"x"`, `i:0`).
fn position(key: &str, items: &[Value]) -> Option<usize> {
    if let Some(fields) = key.strip_prefix("k:") {
        let Ok(Value::Object(wanted)) = serde_json::from_str::<Value>(fields) else {
            return None;
        };
        return items
            .iter()
            .position(|item| wanted.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
    if let Some(value) = key.strip_prefix("v:") {
        let value = serde_json::from_str::<Value>(value).ok()?;
        return items.iter().position(|item| item == &value);
    }
    let index: usize = key.strip_prefix("i:")?.parse().ok()?;
    (index < items.len()).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(v: Value) -> FieldSet {
        FieldSet::from_fields_v1(&v)
    }

    #[test]
    fn fields_v1_round_trips() {
        let v = json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:data": {"f:k": {}}});
        assert_eq!(set(v.clone()).to_fields_v1(), v);
    }

    #[test]
    fn a_leaf_joined_with_children_stays_a_member() {
        // One manager owns the labels map as a leaf, another some of its keys without the map itself.
        let a = set(json!({"f:metadata": {"f:labels": {}}}));
        let b = set(json!({"f:metadata": {"f:labels": {"f:x": {}}}}));
        assert_eq!(
            a.union(&b).to_fields_v1(),
            json!({"f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
        );
        assert_eq!(a.union(&b), b.union(&a));
    }

    #[test]
    fn difference_keeps_only_what_the_other_set_lacks() {
        let a = set(
            json!({"f:data": {"f:k": {}, "f:old": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}}),
        );
        let b = set(json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {".": {}}}}));
        let d = a.difference(&b);
        assert_eq!(
            d.to_fields_v1(),
            json!({"f:data": {"f:old": {}}, "f:metadata": {"f:labels": {"f:x": {}}}})
        );
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn removal_drops_leaves_list_items_and_emptied_members() {
        let mut object = json!({
            "metadata": {"labels": {"old": "1", "keep": "2"}, "annotations": {"gone": "x"}},
            "spec": {"containers": [{"name": "app", "image": "i", "env": [{"name": "OLD", "value": "1"}, {"name": "NEW", "value": "2"}]}],
                     "finalizers": ["a", "b"]}
        });
        let removed = set(json!({
            "f:metadata": {"f:labels": {"f:old": {}}, "f:annotations": {".": {}, "f:gone": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:env": {"k:{\"name\":\"OLD\"}": {".": {}, "f:name": {}, "f:value": {}}}}},
                       "f:finalizers": {"v:\"a\"": {}}}
        }));
        removed.remove_from(&mut object);
        assert_eq!(
            object,
            json!({
                "metadata": {"labels": {"keep": "2"}},
                "spec": {"containers": [{"name": "app", "image": "i", "env": [{"name": "NEW", "value": "2"}]}],
                         "finalizers": ["b"]}
            })
        );
    }

    #[test]
    fn a_map_owned_item_by_item_keeps_the_items_others_own() {
        // kubectl created the map (".") and its keys; we send the keys: only the map node is left to remove,
        // and it stays because it is not empty.
        let kubectl = set(json!({"f:data": {".": {}, "f:a": {}, "f:b": {}}}));
        let ours = set(json!({"f:data": {"f:a": {}, "f:b": {}}}));
        let mut object = json!({"data": {"a": "1", "b": "2"}, "spec": {"args": ["x"]}});
        kubectl.difference(&ours).remove_from(&mut object);
        assert_eq!(
            object,
            json!({"data": {"a": "1", "b": "2"}, "spec": {"args": ["x"]}})
        );
        // An atomic list is owned whole: it goes with its items.
        set(json!({"f:spec": {"f:args": {}}})).remove_from(&mut object);
        assert_eq!(object, json!({"data": {"a": "1", "b": "2"}, "spec": {}}));
    }

    #[test]
    fn anything_but_an_object_is_the_empty_set() {
        assert!(set(json!(null)).is_empty());
        assert!(set(json!("f:x")).is_empty());
        assert!(!set(json!({})).is_empty());
    }
}
