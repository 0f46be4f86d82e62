//! The health of a bundle as every reader reports it: each member judged from what reading it from the API
//! server returned ([`member`]), folded into one verdict ([`summarize`]).
//!
//! `deps` asks before applying a wave (are this bundle's dependencies ready?) and `outpost-agent status` shows
//! it (for people, and for the kstatus oracle of the e2e tests); both read the same objects, so they use these
//! functions and say the same thing — a member the API server does not have is [`NOT_CREATED`] in both. Pure,
//! like the rest of [`super`]: the caller does the reading.

use std::fmt;

use super::rules::of_object;
use super::verdict::{Health, Status, aggregate, progressing};

/// Message for a member the API server does not have: applied (or about to be), not created yet — in
/// progress, not failed, since the next apply creates it.
pub const NOT_CREATED: &str = "not created yet";

/// The health of one member from what reading it returned: the live object is judged by its kind's rules;
/// nothing found is [`NOT_CREATED`] (InProgress); a failed read is Unknown, with the error as the message.
pub fn member<T: serde::Serialize, E: fmt::Display>(read: Result<Option<T>, E>) -> Health {
    match read {
        Ok(Some(live)) => match serde_json::to_value(&live) {
            Ok(value) => of_object(&value),
            Err(e) => unknown(e.to_string()),
        },
        Ok(None) => progressing(NOT_CREATED),
        Err(e) => unknown(e.to_string()),
    }
}

/// Unknown, because `message`: nothing could be judged (a kind not resolved, an unreadable inventory).
pub fn unknown(message: impl Into<String>) -> Health {
    Health {
        status: Status::Unknown,
        message: message.into(),
    }
}

/// The bundle's health from its members' (display name, health): the worst status, naming the first member
/// that has it and counting the others not current ([`aggregate`]).
pub fn summarize<'a>(members: impl IntoIterator<Item = (&'a str, &'a Health)>) -> Health {
    aggregate(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_member_is_judged_absent_unreadable_or_by_its_rules() {
        let absent = member::<serde_json::Value, String>(Ok(None));
        assert_eq!(
            (absent.status, absent.message.as_str()),
            (Status::InProgress, NOT_CREATED)
        );
        let refused = member::<serde_json::Value, _>(Err("forbidden"));
        assert_eq!(refused, unknown("forbidden"));
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert!(member::<_, String>(Ok(Some(config_map))).is_ready());
    }

    #[test]
    fn a_bundle_is_as_healthy_as_its_worst_member() {
        let absent = member::<serde_json::Value, String>(Ok(None));
        let ok = member::<_, String>(Ok(Some(json!({"apiVersion": "v1", "kind": "Secret"}))));
        let bundle = summarize([("ConfigMap/a", &ok), ("Deployment/web", &absent)]);
        assert_eq!(bundle.status, Status::InProgress);
        assert_eq!(bundle.message, "Deployment/web: not created yet");
    }
}
