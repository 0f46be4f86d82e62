//! What was signed: the payload and the signature of a raw commit or tag object, split the way Git splits them
//! before handing both to `gpg --verify` or `ssh-keygen -Y verify`.
//!
//! A signed commit carries its signature in a `gpgsig` header (continuation lines start with one space); the
//! payload is the object with that header removed. A signed tag carries it at the end of the message, from the
//! last line that opens a signature block; the payload is everything before it. The time Git judges key
//! validity at (`-Overify-time`) is the committer's (commit) or tagger's (tag) timestamp.

/// What kind of signature a block is, from its armor line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `-----BEGIN PGP SIGNATURE-----` (GnuPG, `gpg.format=openpgp`).
    OpenPgp,
    /// `-----BEGIN SSH SIGNATURE-----` (`gpg.format=ssh`).
    Ssh,
    /// Anything else (X.509 `-----BEGIN SIGNED MESSAGE-----`): not supported.
    Other,
}

/// The armor lines that open a signature block, as Git recognises them at the end of a tag.
const MARKERS: [(&str, Format); 3] = [
    ("-----BEGIN PGP SIGNATURE-----", Format::OpenPgp),
    ("-----BEGIN SSH SIGNATURE-----", Format::Ssh),
    ("-----BEGIN SIGNED MESSAGE-----", Format::Other),
];

/// A signed object split into what was signed and the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The exact bytes the signer signed.
    pub payload: Vec<u8>,
    /// The armored signature.
    pub signature: Vec<u8>,
    /// Its kind.
    pub format: Format,
}

/// The kind of `signature` from its first line.
pub fn format_of(signature: &[u8]) -> Format {
    MARKERS
        .iter()
        .find(|(marker, _)| signature.starts_with(marker.as_bytes()))
        .map_or(Format::Other, |(_, format)| *format)
}

/// Split a raw commit object (without Git's `commit <len>\0` header); `None` when it has no `gpgsig` header.
pub fn commit(raw: &[u8]) -> Option<Signed> {
    let mut payload = Vec::with_capacity(raw.len());
    let mut signature: Option<Vec<u8>> = None;
    let mut in_headers = true;
    let mut in_signature = false;
    let mut rest = raw;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        if !in_headers {
            payload.extend_from_slice(line);
            continue;
        }
        if in_signature && let Some(more) = line.strip_prefix(b" ") {
            signature.get_or_insert_with(Vec::new).extend_from_slice(more);
            continue;
        }
        in_signature = false;
        if line == b"\n" {
            in_headers = false;
            payload.extend_from_slice(line);
        } else if signature.is_none()
            && let Some(value) = line
                .strip_prefix(b"gpgsig ")
                .or_else(|| line.strip_prefix(b"gpgsig-sha256 "))
        {
            signature = Some(value.to_vec());
            in_signature = true;
        } else {
            payload.extend_from_slice(line);
        }
    }
    let signature = signature?;
    Some(Signed {
        format: format_of(&signature),
        payload,
        signature,
    })
}

/// Split a raw tag object; `None` when its message ends in no signature block.
pub fn tag(raw: &[u8]) -> Option<Signed> {
    let mut at = None;
    let mut start = 0;
    // The last line that opens a signature block, as Git's `parse_signed_buffer` finds it.
    while start < raw.len() {
        let line = &raw[start..];
        if MARKERS.iter().any(|(m, _)| line.starts_with(m.as_bytes())) {
            at = Some(start);
        }
        match line.iter().position(|&b| b == b'\n') {
            Some(i) => start += i + 1,
            None => break,
        }
    }
    let at = at?;
    let signature = raw[at..].to_vec();
    Some(Signed {
        format: format_of(&signature),
        payload: raw[..at].to_vec(),
        signature,
    })
}

/// The Unix time of the header `name` (`committer` or `tagger`): the number before the zone at its end.
pub fn header_time(raw: &[u8], name: &str) -> Option<i64> {
    let prefix = format!("{name} ");
    for line in raw.split(|&b| b == b'\n') {
        if line.is_empty() {
            return None;
        }
        if let Some(value) = line.strip_prefix(prefix.as_bytes()) {
            let text = std::str::from_utf8(value).ok()?;
            let mut words = text.rsplit(' ');
            let _zone = words.next()?;
            return words.next()?.parse().ok();
        }
    }
    None
}

/// The object a raw tag points at and its type (`object <hex>`, `type <kind>` headers).
pub fn tag_target(raw: &[u8]) -> Option<(String, String)> {
    let mut object = None;
    let mut kind = None;
    for line in raw.split(|&b| b == b'\n') {
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix(b"object ") {
            object = std::str::from_utf8(v).ok().map(str::to_owned);
        } else if let Some(v) = line.strip_prefix(b"type ") {
            kind = std::str::from_utf8(v).ok().map(str::to_owned);
        }
    }
    Some((object?, kind?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED_COMMIT: &str = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
author A <a@x> 1700000000 +0000\n\
committer C <c@x> 1700000100 +0200\n\
gpgsig -----BEGIN SSH SIGNATURE-----\n \
U1NIU0lH\n \
-----END SSH SIGNATURE-----\n\
\n\
message\n\
gpgsig in the message stays\n";

    #[test]
    fn a_commit_signature_header_is_cut_out_of_the_payload() {
        let signed = commit(SIGNED_COMMIT.as_bytes()).unwrap();
        assert_eq!(signed.format, Format::Ssh);
        assert_eq!(
            String::from_utf8(signed.signature).unwrap(),
            "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"
        );
        assert_eq!(
            String::from_utf8(signed.payload).unwrap(),
            "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@x> 1700000000 +0000\n\
committer C <c@x> 1700000100 +0200\n\nmessage\ngpgsig in the message stays\n"
        );
        assert_eq!(
            header_time(SIGNED_COMMIT.as_bytes(), "committer"),
            Some(1700000100)
        );
        assert_eq!(header_time(SIGNED_COMMIT.as_bytes(), "tagger"), None);
    }

    #[test]
    fn an_unsigned_commit_has_no_signature() {
        let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ncommitter C <c@x> 1 +0000\n\nmsg\n";
        assert_eq!(commit(raw), None);
        // A header-looking line in the message is not a signature.
        let raw = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\ngpgsig -----BEGIN PGP SIGNATURE-----\n";
        assert_eq!(commit(raw), None);
    }

    #[test]
    fn a_tag_signature_is_the_last_block_of_its_message() {
        let raw = "object 0123456789abcdef0123456789abcdef01234567\ntype commit\ntag v1\n\
tagger T <t@x> 1700000200 +0000\n\nrelease\n-----BEGIN PGP SIGNATURE-----\nquoted\n\
-----END PGP SIGNATURE-----\n-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n";
        let signed = tag(raw.as_bytes()).unwrap();
        assert_eq!(signed.format, Format::OpenPgp);
        assert!(signed.payload.ends_with(b"-----END PGP SIGNATURE-----\n"));
        assert_eq!(
            String::from_utf8(signed.signature).unwrap(),
            "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"
        );
        assert_eq!(header_time(raw.as_bytes(), "tagger"), Some(1700000200));
        assert_eq!(
            tag_target(raw.as_bytes()),
            Some(("0123456789abcdef0123456789abcdef01234567".into(), "commit".into()))
        );
        assert_eq!(tag(b"object 01\ntype commit\ntag v1\n\nunsigned\n"), None);
    }

    #[test]
    fn unknown_signature_blocks_are_told_apart() {
        assert_eq!(format_of(b"-----BEGIN SIGNED MESSAGE-----\n"), Format::Other);
        assert_eq!(format_of(b"garbage"), Format::Other);
    }
}
