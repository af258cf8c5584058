//! [`Shm`]: a link over two zipc byte channels, one each way.
//!
//! Frames larger than a ring frame (half the ring, less its header) are sent here in chunks
//! through the ring and put together on the other side (see [`chunk`](super::chunk)). The core
//! channel's own answer to big frames, side segments, needs a control socket to pass their fds;
//! a link made by name has none, so it chunks (a worker's link, which has one, uses side
//! segments: see [`crate::process`]).

use super::chunk::{self, Assembly, HEADER, PendingTx};
use super::stream::End;
use super::until;
use super::{Kind, MAX_FRAME, Transport, deadline_after};
use crate::Deadline;
use crate::bytes::{self, Consumer, Loan, Producer};
use crate::error::{Error, Result};
use crate::{Config, Wait};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// The ring size of each direction of a link made from an address (`shm:NAME`): 1 MiB, so a
/// frame of up to 512 KiB less 16 bytes goes through the ring in one piece.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 20;

/// One endpoint of a link over shared memory: a zipc byte channel to the peer and one from it.
///
/// Every frame carries an 8-byte header in the ring; a frame larger than the ring's largest
/// ([`Producer::max_loan_len`] less that header) travels as several ring frames.
///
/// Make a pair in one process with [`Shm::pair`]; across processes, [`Shm::listen`] on one
/// side (it creates the named segments `NAME.a2b`) and [`Shm::connect`] on the other (it
/// opens `NAME.a2b` and creates `NAME.b2a`), or build an end from channels of your own with
/// [`Shm::from_channels`]. The peer's death is the kernel's word (its liveness lock), so a
/// killed peer is [`Error::PeerGone`] here, after everything it committed. An end made by
/// `listen`/`connect` removes the peer's segment when it closes or drops, if the peer died
/// (a killed process cannot remove its names).
///
/// ```
/// use zipc::transport::{Shm, Transport};
/// # fn main() -> zipc::Result<()> {
/// let (mut a, mut b) = Shm::pair(zipc::Config::default())?;
/// let sender = std::thread::spawn(move || a.send(&[7; 1 << 20])); // larger than the ring
/// let mut buf = Vec::new();
/// b.recv(&mut buf)?;
/// assert_eq!(buf, [7; 1 << 20]);
/// sender.join().unwrap()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Shm {
    ends: Option<(Producer, Consumer)>,
    /// The rest of a frame whose send timed out after its first chunk.
    pending: Option<PendingTx>,
    assembly: Assembly,
    partial: Vec<u8>,
    end: Option<End>,
    /// The named segment the peer created, removed when this end goes if the peer died
    /// (a killed process cannot unlink its names).
    peer_segment: Option<String>,
}

impl Shm {
    /// A connected pair of ends in this process, each way a ring of `config.capacity` bytes.
    ///
    /// # Errors
    /// As for [`bytes::channel`].
    pub fn pair(config: Config) -> Result<(Shm, Shm)> {
        let (a_tx, b_rx) = bytes::channel(config.clone())?;
        let (b_tx, a_rx) = bytes::channel(config)?;
        Ok((
            Shm::from_channels(a_tx, a_rx),
            Shm::from_channels(b_tx, b_rx),
        ))
    }

    /// An end that sends on `tx` and receives on `rx` (whose other ends the peer holds).
    pub fn from_channels(tx: Producer, rx: Consumer) -> Shm {
        Shm {
            ends: Some((tx, rx)),
            pending: None,
            assembly: Assembly::default(),
            partial: Vec::new(),
            end: None,
            peer_segment: None,
        }
    }

    /// Creates the named link `name`: the channel `NAME.a2b` to the peer now, and, at
    /// [`ShmListener::accept`], the peer's `NAME.b2a` opened. A stale `NAME.b2a` left by a
    /// dead peer is removed first.
    ///
    /// # Errors
    /// `InvalidName`; `Exists` when a live process holds `NAME.a2b` or `NAME.b2a`; as for
    /// [`bytes::create`] otherwise. Errors name the link (`shm:NAME`), not its segments.
    pub fn listen(name: &str, config: Config) -> Result<ShmListener> {
        let (a2b, b2a) = names(name)?;
        let live = || Error::Exists(format!("a live link at shm:{name}"));
        if !crate::shm::remove_if_stale(&b2a).map_err(|e| link_error(name, e))? {
            return Err(live());
        }
        // A link's ends never linger (see `Config::linger`): their consumer is the one peer
        // that connected, and a link that closes with frames in flight says so to each end.
        let tx = bytes::create(&a2b, config.linger(Duration::ZERO)).map_err(|e| match e {
            Error::Exists(_) => live(),
            e => link_error(name, e),
        })?;
        Ok(ShmListener {
            name: name.to_string(),
            b2a,
            tx: Some(tx),
        })
    }

    /// Connects to the named link `name` made by [`Shm::listen`]: opens `NAME.a2b` and
    /// creates `NAME.b2a` with a ring of the same size.
    ///
    /// # Errors
    /// `InvalidName`; `NotFound` when nobody listens at `name`; `Busy` when another peer
    /// connected already; as for [`bytes::open`] and [`bytes::create`] otherwise. Errors
    /// name the link (`shm:NAME`), not its segments.
    pub fn connect(name: &str) -> Result<Shm> {
        let (a2b, b2a) = names(name)?;
        let rx = bytes::open(&a2b).map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(format!("a listener at shm:{name}")),
            e => link_error(name, e),
        })?;
        let ring = 2 * (rx.max_frame_len() + 8);
        let config = Config::default().capacity(ring).linger(Duration::ZERO);
        let tx = bytes::create(&b2a, config).map_err(|e| match e {
            // A live peer made its side of the link already.
            Error::Exists(_) => busy(name),
            e => link_error(name, e),
        })?;
        let mut end = Shm::from_channels(tx, rx);
        end.peer_segment = Some(a2b);
        Ok(end)
    }

    /// How both channels wait (default [`Wait::Adaptive`]: spin, then sleep).
    pub fn set_wait(&mut self, wait: Wait) {
        if let Some((tx, rx)) = &mut self.ends {
            tx.set_wait(wait);
            rx.set_wait(wait);
        }
    }

    fn send_until(&mut self, frame: &[u8], deadline: Option<Instant>) -> Result<()> {
        if frame.len() > MAX_FRAME {
            return Err(Error::TooLarge {
                len: frame.len(),
                max: MAX_FRAME,
            });
        }
        let Some((tx, _)) = &mut self.ends else {
            return Err(Error::Disconnected);
        };
        if let Some(mut p) = self.pending.take() {
            let rest = &p.rest[p.done..];
            if let Err((n, e)) = send_chunks(tx, rest, p.offset + p.done, p.total, deadline) {
                p.done += n;
                if matches!(e, Error::Timeout) {
                    self.pending = Some(p);
                }
                return Err(e);
            }
        }
        send_chunks(tx, frame, 0, frame.len(), deadline).map_err(|(sent, e)| {
            self.pending = PendingTx::left_by(frame, sent, &e);
            e
        })
    }

    fn recv_inner(&mut self, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<()> {
        if let Some(end) = &self.end {
            return Err(end.error());
        }
        let Some((_, rx)) = &mut self.ends else {
            return Err(Error::Disconnected);
        };
        loop {
            let frame = match deadline {
                None => rx.recv(),
                Some(t) => match t.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => rx.recv_timeout(left),
                    _ => rx.try_recv().map_err(|e| match e {
                        Error::WouldBlock => Error::Timeout,
                        other => other,
                    }),
                },
            };
            let frame = match frame {
                Ok(f) => f,
                // The producer went away in the middle of a frame: it died, or dropped its end
                // with the rest pending.
                Err(Error::Disconnected) if self.assembly.in_frame() => {
                    self.end = Some(End::Gone);
                    return Err(Error::PeerGone);
                }
                Err(e) => return Err(e),
            };
            if frame.len() < HEADER {
                let why = format!(
                    "a ring frame of {} bytes, shorter than its header",
                    frame.len()
                );
                self.end = Some(End::Corrupted(why.clone()));
                return Err(Error::Corrupted(why));
            }
            let (header, data) = frame.split_at(HEADER);
            match self.assembly.accept(header, buf.len(), data.len()) {
                Ok((_, true)) => {
                    buf.extend_from_slice(data);
                    return Ok(());
                }
                Ok((total, false)) => {
                    buf.reserve(total - buf.len());
                    buf.extend_from_slice(data);
                }
                Err(e) => {
                    if let Error::Corrupted(why) = &e {
                        self.end = Some(End::Corrupted(why.clone()));
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// The two segment names of the link `name`, once `name` is shown to make valid ones.
fn names(name: &str) -> Result<(String, String)> {
    crate::shm::shm_name(name)?;
    let (a2b, b2a) = (format!("{name}.a2b"), format!("{name}.b2a"));
    if crate::shm::shm_name(&a2b).is_err() {
        return Err(Error::InvalidName(format!(
            "{name:?} is too long for a link, whose segments add 4 bytes (\".a2b\") to it"
        )));
    }
    Ok((a2b, b2a))
}

/// `Busy` for the link `name`: another peer holds its far side.
fn busy(name: &str) -> Error {
    Error::Busy(format!(
        "the link shm:{name} already has a peer connected to it"
    ))
}

/// An error of one of the link's segments, said of the link `name` as the user named it
/// rather than of its segments (`NAME.a2b`, `NAME.b2a`), which the user never named.
fn link_error(name: &str, e: Error) -> Error {
    match e {
        Error::Busy(_) => busy(name),
        Error::NotFound(_) => Error::NotFound(format!("the link shm:{name}")),
        Error::Exists(_) => Error::Exists(format!("a live link at shm:{name}")),
        Error::Corrupted(why) => Error::Corrupted(format!("in the link shm:{name}, {why}")),
        Error::Incompatible(why) => Error::Incompatible(format!("in the link shm:{name}, {why}")),
        e => e,
    }
}

/// A loan of `len` bytes, waiting until `deadline`.
fn loan(tx: &mut Producer, len: usize, deadline: Option<Instant>) -> Result<Loan<'_>> {
    match deadline {
        None => tx.loan(len),
        Some(t) => match t.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => tx.loan_timeout(len, left),
            _ => tx.try_loan(len).map_err(|e| match e {
                Error::WouldBlock => Error::Timeout,
                other => other,
            }),
        },
    }
}

/// Sends `data`, which starts at `offset` in a frame of `total` bytes, as ring frames of at
/// most the ring's largest, each with its chunk header. On failure, says how much went out.
fn send_chunks(
    tx: &mut Producer,
    data: &[u8],
    offset: usize,
    total: usize,
    deadline: Option<Instant>,
) -> std::result::Result<(), (usize, Error)> {
    let chunk = tx.max_loan_len() - HEADER;
    let mut sent = 0;
    loop {
        let n = (data.len() - sent).min(chunk);
        let mut l = loan(tx, HEADER + n, deadline).map_err(|e| (sent, e))?;
        l[..HEADER].copy_from_slice(&chunk::header(offset + sent, n, total));
        l[HEADER..].copy_from_slice(&data[sent..sent + n]);
        l.commit();
        sent += n;
        if sent == data.len() {
            return Ok(());
        }
    }
}

impl Transport for Shm {
    fn kind(&self) -> Kind {
        Kind::Shm
    }

    fn send_deadline(&mut self, frame: &[u8], deadline: Deadline) -> Result<()> {
        until(deadline, |at| self.send_until(frame, at))
    }

    fn recv_deadline(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        if self.assembly.in_frame() {
            std::mem::swap(buf, &mut self.partial);
        } else {
            buf.clear();
        }
        let r = until(deadline, |at| self.recv_inner(buf, at));
        if r.is_err() {
            if self.assembly.in_frame() {
                std::mem::swap(buf, &mut self.partial);
            }
            buf.clear();
        }
        r
    }

    fn close(&mut self) -> Result<()> {
        let r = match (&mut self.ends, self.pending.take()) {
            (Some((tx, _)), Some(p)) => {
                send_chunks(tx, &p.rest[p.done..], p.offset + p.done, p.total, None)
                    .map_err(|(_, e)| e)
            }
            _ => Ok(()),
        };
        self.release();
        r
    }

    fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl Shm {
    /// Drops both channels, then removes the peer's segment if the peer died.
    fn release(&mut self) {
        self.ends = None;
        if let Some(name) = self.peer_segment.take() {
            // A live peer's segment is left alone; an error here changes nothing for us.
            let _ = crate::shm::remove_if_stale(&name);
        }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        self.release();
    }
}

/// The creator's side of a named link: [`Shm::listen`]. It accepts one peer.
#[derive(Debug)]
pub struct ShmListener {
    name: String,
    b2a: String,
    /// The channel to the peer, until it is handed to the accepted end.
    tx: Option<Producer>,
}

impl ShmListener {
    /// Waits for the peer to connect (to create `NAME.b2a`), then opens it.
    ///
    /// # Errors
    /// `InvalidArgument` when the peer was accepted already; as for [`bytes::open`].
    pub fn accept(&mut self) -> Result<Shm> {
        self.accept_deadline(None)
    }

    /// As [`accept`](Self::accept), waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout`, and as for `accept`.
    pub fn accept_timeout(&mut self, timeout: Duration) -> Result<Shm> {
        self.accept_deadline(deadline_after(timeout))
    }

    pub(crate) fn accept_deadline(&mut self, deadline: Option<Instant>) -> Result<Shm> {
        if self.tx.is_none() {
            return Err(Error::InvalidArgument(format!(
                "shm:{} links one pair of ends, and its peer was accepted already",
                self.name
            )));
        }
        loop {
            match bytes::open(&self.b2a) {
                Ok(rx) => {
                    let tx = self.tx.take().expect("checked above");
                    let mut end = Shm::from_channels(tx, rx);
                    end.peer_segment = Some(self.b2a.clone());
                    return Ok(end);
                }
                Err(Error::NotFound(_)) => {
                    if deadline.is_some_and(|t| Instant::now() >= t) {
                        return Err(Error::Timeout);
                    }
                    // No kernel object tells us when a name appears: look again shortly.
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(link_error(&self.name, e)),
            }
        }
    }

    /// The link's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
