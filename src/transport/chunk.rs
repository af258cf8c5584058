//! The chunk header of the message transports ([`Shm`](super::Shm) ring frames and
//! [`UnixSocket`](super::UnixSocket) datagrams), and the checks that put chunks together.
//!
//! Every message starts with 8 bytes: a tag, three zero bytes and the frame's whole length
//! (u32, little endian). A frame that fits in one message is one `WHOLE` message; a larger one
//! is a `FIRST` message and then `MORE` messages, in order, each carrying the next bytes.
//! Nothing else may come between them: the sender finishes a frame before it starts the next.

use super::MAX_FRAME;
use crate::error::{Error, Result};

/// Bytes of header before each message's data.
pub(crate) const HEADER: usize = 8;

const WHOLE: u8 = 1;
const FIRST: u8 = 2;
const MORE: u8 = 3;

const _: () = assert!(MAX_FRAME <= u32::MAX as usize);

/// The header of the message that carries `frame[offset..offset + len]` of a frame of `total`
/// bytes (`total <= MAX_FRAME`, checked by the caller).
pub(crate) fn header(offset: usize, len: usize, total: usize) -> [u8; HEADER] {
    let tag = match (offset, len == total) {
        (0, true) => WHOLE,
        (0, false) => FIRST,
        _ => MORE,
    };
    let mut h = [0u8; HEADER];
    h[0] = tag;
    h[4..].copy_from_slice(&(total as u32).to_le_bytes());
    h
}

/// Where the frame being put together stands: `None` between frames, `Some(total)` after its
/// `FIRST` message.
#[derive(Debug, Default)]
pub(crate) struct Assembly {
    total: Option<usize>,
}

impl Assembly {
    /// Whether a frame is half received.
    pub(crate) fn in_frame(&self) -> bool {
        self.total.is_some()
    }

    /// The frame's whole length once its first message is in.
    pub(crate) fn total(&self) -> Option<usize> {
        self.total
    }

    /// Checks a message with header `h` and `len` bytes of data, arriving when `have` bytes of
    /// the frame are in; returns `(whole length, done)`: whether the frame is complete with it.
    ///
    /// # Errors
    /// `Corrupted` for a header the protocol forbids; the link cannot be trusted after it.
    pub(crate) fn accept(&mut self, h: &[u8], have: usize, len: usize) -> Result<(usize, bool)> {
        if h.len() < HEADER || h[1..4] != [0, 0, 0] {
            return Err(Error::Corrupted(format!(
                "a transport message header of {} bytes: {h:02x?}",
                h.len()
            )));
        }
        let total = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) as usize;
        if total > MAX_FRAME {
            return Err(Error::Corrupted(format!(
                "a frame of {total} bytes announced, more than {MAX_FRAME}"
            )));
        }
        let ok = match (h[0], self.total) {
            (WHOLE, None) => len == total,
            (FIRST, None) => len < total,
            (MORE, Some(t)) => t == total && len > 0 && have + len <= total,
            _ => false,
        };
        if !ok {
            return Err(Error::Corrupted(format!(
                "a message of tag {} carrying {len} bytes of a {total}-byte frame, with {have} \
                 bytes in and {} expected",
                h[0],
                self.total
                    .map_or("no frame".to_string(), |t| format!("{t}"))
            )));
        }
        let done = have + len == total;
        self.total = if done { None } else { Some(total) };
        Ok((total, done))
    }
}

/// The rest of a chunked frame whose send timed out after part of it went out: sent first at
/// the next send (or at close), so the peer never sees a torn frame.
#[derive(Debug)]
pub(super) struct PendingTx {
    /// The unsent bytes of the frame.
    pub(super) rest: Vec<u8>,
    /// How many of them were sent since.
    pub(super) done: usize,
    /// Where `rest` starts in the frame.
    pub(super) offset: usize,
    /// The whole frame's length.
    pub(super) total: usize,
}

impl PendingTx {
    /// What is left to finish of `frame` when its send stopped after `sent` bytes with `e`:
    /// something only when a timeout cut it after part of it went out.
    pub(super) fn left_by(frame: &[u8], sent: usize, e: &crate::Error) -> Option<PendingTx> {
        (sent > 0 && matches!(e, crate::Error::Timeout)).then(|| PendingTx {
            rest: frame[sent..].to_vec(),
            done: 0,
            offset: sent,
            total: frame.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_chunked_frames_go_through() {
        let mut a = Assembly::default();
        assert_eq!(a.accept(&header(0, 0, 0), 0, 0).unwrap(), (0, true));
        assert_eq!(a.accept(&header(0, 5, 5), 0, 5).unwrap(), (5, true));
        assert_eq!(a.accept(&header(0, 4, 10), 0, 4).unwrap(), (10, false));
        assert!(a.in_frame());
        assert_eq!(a.accept(&header(4, 4, 10), 4, 4).unwrap(), (10, false));
        assert_eq!(a.accept(&header(8, 2, 10), 8, 2).unwrap(), (10, true));
        assert!(!a.in_frame());
    }

    #[test]
    fn out_of_protocol_messages_are_corrupted() {
        let bad = |a: &mut Assembly, h: [u8; HEADER], have, len| {
            assert!(matches!(a.accept(&h, have, len), Err(Error::Corrupted(_))));
        };
        let mut a = Assembly::default();
        bad(&mut a, header(4, 4, 10), 0, 4); // MORE without FIRST
        bad(&mut a, header(0, 5, 5), 0, 4); // WHOLE of the wrong length
        bad(&mut a, header(0, 5, 5), 0, 6);
        let mut h = header(0, 5, 5);
        h[2] = 1;
        bad(&mut a, h, 0, 5); // reserved bytes
        let mut h = header(0, 5, 5);
        h[0] = 9;
        bad(&mut a, h, 0, 5); // unknown tag
        bad(&mut a, header(0, 1, MAX_FRAME + 1), 0, 1); // too large
        a.accept(&header(0, 4, 10), 0, 4).unwrap();
        bad(&mut a, header(0, 4, 10), 4, 4); // a new frame in the middle of one
        let mut a = Assembly::default();
        a.accept(&header(0, 4, 10), 0, 4).unwrap();
        bad(&mut a, header(4, 7, 10), 4, 7); // past the end
        let mut a = Assembly::default();
        a.accept(&header(0, 4, 10), 0, 4).unwrap();
        bad(&mut a, header(4, 4, 11), 4, 4); // another length
    }
}
