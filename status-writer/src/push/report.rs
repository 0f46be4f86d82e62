//! The receive-pack conversation after the ref advertisement (protocol v0/v1, no side-band): the update
//! command we send, and the `report-status` the server answers with.
//!
//! The request is one pkt-line `<old> <new> <ref>\0<capabilities>`, a flush, then the raw pack. The answer is
//! `unpack ok|<error>` followed by `ok <ref>` or `ng <ref> <reason>` per command, and a flush.

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::protocol::transport::client::blocking_io::ReadlineBufRead;
use gix::protocol::transport::packetline::PacketLineRef;
use gix::protocol::transport::packetline::blocking_io::{StreamingPeekableIter, encode};

/// What the server said about our one command.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `unpack ok` and `ok <ref>`.
    Updated,
    /// `ng <ref> <reason>`: the objects arrived but the ref was not moved.
    Refused(String),
    /// The objects were not accepted, or the answer makes no sense.
    Failed(String),
}

/// The request body: the update command with `capabilities`, a flush packet, then `pack`.
#[cfg(test)]
pub(super) fn request(
    old: Option<ObjectId>,
    new: ObjectId,
    refname: &str,
    capabilities: &[String],
    pack: &[u8],
) -> Vec<u8> {
    request_many(&[(old, new, refname)], capabilities, pack)
}

/// The request body for several update commands `(old, new, ref)` (capabilities ride on the first; the server
/// applies them in this order), a flush packet, then `pack`.
pub(super) fn request_many(
    commands: &[(Option<ObjectId>, ObjectId, &str)],
    capabilities: &[String],
    pack: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 * commands.len() + pack.len());
    for (i, (old, new, refname)) in commands.iter().enumerate() {
        let old = old.unwrap_or_else(|| ObjectId::null(new.kind()));
        let mut command = format!("{old} {new} {refname}");
        if i == 0 {
            command.push('\0');
            command.push_str(&capabilities.join(" "));
        }
        encode::data_to_write(command.as_bytes(), &mut out).expect("writing to memory cannot fail");
    }
    encode::flush_to_write(&mut out).expect("writing to memory cannot fail");
    out.extend_from_slice(pack);
    out
}

/// Read the report's lines up to the flush packet that ends it.
pub(super) fn read_lines(reader: &mut (impl ReadlineBufRead + ?Sized)) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    while let Some(line) = reader.readline() {
        let line = line?.map_err(std::io::Error::other)?;
        if let Some(text) = line.as_bstr() {
            lines.push(text.trim_end().to_str_lossy().into_owned());
        }
    }
    Ok(lines)
}

/// Read a whole `report-status` answer (pkt-lines up to the flush that ends them) from `answer` and judge it
/// for `refname`, as a push does with the server's reply. Public only so the fuzz targets (`fuzz/`) can feed
/// it arbitrary bytes; pushes read the answer from their connection.
pub fn judge_report(answer: &[u8], refname: &str) -> std::io::Result<Verdict> {
    let mut packets = StreamingPeekableIter::new(answer, &[PacketLineRef::Flush], false);
    let lines = read_lines(&mut packets.as_read())?;
    Ok(verdict(&lines, refname))
}

/// Judge the report `lines` for `refname`.
pub(super) fn verdict(lines: &[String], refname: &str) -> Verdict {
    let Some(first) = lines.first() else {
        return Verdict::Failed("the server closed the connection without a report".into());
    };
    if let Some(error) = first.strip_prefix("ERR ") {
        return Verdict::Failed(error.to_owned());
    }
    match first.strip_prefix("unpack ") {
        Some("ok") => {}
        Some(error) => return Verdict::Failed(format!("the server could not unpack our objects: {error}")),
        None => return Verdict::Failed(format!("unexpected report line {first:?}")),
    }
    for line in &lines[1..] {
        if line.strip_prefix("ok ") == Some(refname) {
            return Verdict::Updated;
        }
        if let Some(rest) = line.strip_prefix("ng ")
            && let Some(reason) = rest.strip_prefix(refname).and_then(|r| r.strip_prefix(' '))
        {
            return Verdict::Refused(reason.to_owned());
        }
    }
    Verdict::Failed(format!("the report does not mention {refname}: {lines:?}"))
}

/// Whether `reason` (of an `ng` line) means the branch moved under us, so fetching and rebuilding helps.
pub(super) fn is_race(reason: &str) -> bool {
    const MOVED: &[&str] = &[
        "non-fast-forward",
        "fetch first",
        "stale info",
        // receive-pack's answer when the ref no longer holds the old id we sent (another push won the lock).
        "failed to update ref",
        "failed to lock",
        "incorrect old value",
    ];
    MOVED.iter().any(|m| reason.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn the_request_is_one_pkt_line_a_flush_and_the_raw_pack() {
        let new = ObjectId::from_hex(b"1111111111111111111111111111111111111111").unwrap();
        let caps = ["report-status".to_owned(), "agent=outpost/1".to_owned()];
        let body = request(None, new, "refs/heads/main", &caps, b"PACK-BYTES");
        let command = format!(
            "0000000000000000000000000000000000000000 {new} refs/heads/main\0report-status agent=outpost/1"
        );
        let expected = format!("{:04x}{command}0000PACK-BYTES", command.len() + 4);
        assert_eq!(body, expected.as_bytes());
        // Two commands: capabilities on the first only, in the order given.
        let side = ObjectId::from_hex(b"2222222222222222222222222222222222222222").unwrap();
        let body = request_many(
            &[
                (None, side, "refs/outpost/x"),
                (Some(side), new, "refs/heads/main"),
            ],
            &caps,
            b"P",
        );
        let first = format!(
            "0000000000000000000000000000000000000000 {side} refs/outpost/x\0report-status agent=outpost/1"
        );
        let second = format!("{side} {new} refs/heads/main");
        let expected = format!(
            "{:04x}{first}{:04x}{second}0000P",
            first.len() + 4,
            second.len() + 4
        );
        assert_eq!(body, expected.as_bytes());
    }

    #[test]
    fn report_lines_decide_the_outcome() {
        let main = "refs/heads/main";
        assert_eq!(
            verdict(&lines(&["unpack ok", "ok refs/heads/main"]), main),
            Verdict::Updated
        );
        assert_eq!(
            verdict(
                &lines(&["unpack ok", "ng refs/heads/main failed to update ref"]),
                main
            ),
            Verdict::Refused("failed to update ref".into())
        );
        assert!(matches!(
            verdict(&lines(&["unpack index-pack abnormal exit", "ng refs/heads/main unpacker error"]), main),
            Verdict::Failed(reason) if reason.contains("index-pack abnormal exit")
        ));
        assert!(matches!(
            verdict(&lines(&["unpack ok", "ok refs/heads/other"]), main),
            Verdict::Failed(_)
        ));
        assert!(matches!(verdict(&[], main), Verdict::Failed(_)));
        assert!(is_race("non-fast-forward"));
    }

    #[test]
    fn a_report_is_read_from_pkt_lines_up_to_the_flush() {
        let main = "refs/heads/main";
        let answer = b"000eunpack ok\n0017ok refs/heads/main\n0000";
        assert_eq!(judge_report(answer, main).unwrap(), Verdict::Updated);
        // What follows the flush is not part of the report.
        let answer = b"000eunpack ok\n00000017ok refs/heads/main\n";
        assert!(matches!(judge_report(answer, main).unwrap(), Verdict::Failed(_)));
        assert!(judge_report(b"zzzz", main).is_err());
        assert!(!is_race("pre-receive hook declined"));
    }
}
