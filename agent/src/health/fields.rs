//! Reading what controllers publish in a live object: status conditions and fields by JSON pointer, with the
//! API server's habit of omitting zero counters and empty strings taken into account.

use serde_json::Value;

/// The fields of a status condition we judge by; missing strings read as empty.
pub(super) struct Condition<'a> {
    /// `True`, `False` or `Unknown` (or whatever the controller wrote).
    pub(super) status: &'a str,
    /// The machine-readable reason (`NewReplicaSetAvailable`).
    pub(super) reason: &'a str,
    /// The controller's words for people.
    pub(super) message: &'a str,
    /// The generation the controller judged when it wrote the condition.
    pub(super) observed_generation: Option<i64>,
}

impl Condition<'_> {
    /// The condition's own words if it has any, else `fallback`.
    pub(super) fn describe(&self, fallback: &str) -> String {
        match (self.reason, self.message) {
            ("", "") => fallback.to_owned(),
            (reason, "") => reason.to_owned(),
            ("", message) => message.to_owned(),
            (reason, message) => format!("{reason}: {message}"),
        }
    }
}

/// The condition of type `kind` in `status.conditions`, if the object has one.
pub(super) fn condition<'a>(obj: &'a Value, kind: &str) -> Option<Condition<'a>> {
    let list = obj.pointer("/status/conditions")?.as_array()?;
    let c = list.iter().find(|c| text(c, "/type") == Some(kind))?;
    Some(Condition {
        status: text(c, "/status").unwrap_or_default(),
        reason: text(c, "/reason").unwrap_or_default(),
        message: text(c, "/message").unwrap_or_default(),
        observed_generation: int(c, "/observedGeneration"),
    })
}

/// The string at `pointer`.
pub(super) fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The integer at `pointer`.
pub(super) fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// Status counters are omitted by the API server when zero.
pub(super) fn count(v: &Value, pointer: &str) -> i64 {
    int(v, pointer).unwrap_or(0)
}
