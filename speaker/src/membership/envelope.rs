//! Authentication of membership datagrams with a shared key.
//!
//! Every datagram is sealed:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      'f'      |      'l'      |      'b'      |  version = 1  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +        HMAC-SHA256(key, magic || payload)  (32 octets)        +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  payload: one foca message (codec.rs) ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
//! ```
//!
//! The tag is checked in constant time before a single payload byte is decoded, so a
//! speaker without the key can neither join nor disturb the membership (it can replay a
//! recorded datagram; SWIM's incarnation numbers make stale replays harmless, and a replay
//! of fresh traffic only repeats what the sender said anyway).

use ring::hmac;

const MAGIC: [u8; 4] = *b"flb\x01";
const TAG_LEN: usize = 32;
/// Octets the envelope adds to a payload.
pub const OVERHEAD: usize = MAGIC.len() + TAG_LEN;

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("datagram of {0} bytes is shorter than the envelope")]
    Truncated(usize),
    #[error("datagram does not start with the ferrolb membership magic")]
    Magic,
    #[error("datagram authentication failed (wrong key or corrupted)")]
    Authentication,
}

/// Seals and opens datagrams with one key.
#[derive(Clone)]
pub struct Envelope {
    key: hmac::Key,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Envelope { key: <redacted> }")
    }
}

impl Envelope {
    pub fn new(key: &[u8]) -> Self {
        Envelope {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// The datagram carrying `payload`.
    pub fn seal(&self, payload: &[u8]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&MAGIC);
        ctx.update(payload);
        let tag = ctx.sign();
        let mut out = Vec::with_capacity(OVERHEAD + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(payload);
        out
    }

    /// The authenticated payload of `datagram`.
    pub fn open<'a>(&self, datagram: &'a [u8]) -> Result<&'a [u8], OpenError> {
        if datagram.len() < OVERHEAD {
            return Err(OpenError::Truncated(datagram.len()));
        }
        let (magic, rest) = datagram.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err(OpenError::Magic);
        }
        let (tag, payload) = rest.split_at(TAG_LEN);
        let mut signed = Vec::with_capacity(MAGIC.len() + payload.len());
        signed.extend_from_slice(&MAGIC);
        signed.extend_from_slice(payload);
        hmac::verify(&self.key, &signed, tag).map_err(|_| OpenError::Authentication)?;
        Ok(payload)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 4231 test case 2 fixes HMAC-SHA256 itself; this vector fixes our framing
    /// (magic prepended to the signed bytes), computed independently with Python's hmac.
    #[test]
    fn seal_vector() {
        let sealed = Envelope::new(b"Jefe").seal(b"what do ya want for nothing?");
        let hex: String = sealed[4..36].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&sealed[..4], b"flb\x01");
        assert_eq!(
            hex,
            "ec6341a6791dd07156409447eb6ec431e1bc1330045a9a137fab4d088eb24fba"
        );
    }

    #[test]
    fn wrong_key_truncated_and_garbage_are_refused() {
        let a = Envelope::new(b"key-a");
        let b = Envelope::new(b"key-b");
        let sealed = a.seal(b"hello");
        assert_eq!(a.open(&sealed), Ok(&b"hello"[..]));
        assert_eq!(b.open(&sealed), Err(OpenError::Authentication));
        assert_eq!(a.open(&sealed[..20]), Err(OpenError::Truncated(20)));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(a.open(&flipped), Err(OpenError::Authentication));
        assert_eq!(a.open(&[0u8; 64]), Err(OpenError::Magic));
    }

    proptest! {
        #[test]
        fn round_trip(key in proptest::collection::vec(any::<u8>(), 0..64), payload in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let e = Envelope::new(&key);
            let sealed = e.seal(&payload);
            prop_assert_eq!(e.open(&sealed), Ok(&payload[..]));
        }

        #[test]
        fn garbage_never_opens(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(Envelope::new(b"k").open(&bytes).is_err());
        }
    }
}
