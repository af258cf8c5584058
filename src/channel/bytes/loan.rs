//! Writing in place: a producer's loans, and batches of frames published together.

use super::Deadline;
use super::producer::Producer;
use crate::error::{Error, Result};
use crate::ring::Reservation;
use std::ops::{Deref, DerefMut};

/// Frames staged by a producer and published together. See [`Producer::batch`].
pub struct Batch<'a> {
    pub(super) producer: &'a mut Producer,
}

impl Batch<'_> {
    /// Lends `len` bytes in place; its commit is published with the batch.
    ///
    /// # Errors
    /// As for [`Producer::loan`]. When the ring is full, the frames staged so far are
    /// published before waiting.
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.producer.loan_until(len, Deadline::Never, false)
    }

    /// Copies `data` in as one frame, published with the batch.
    ///
    /// # Errors
    /// As for [`Producer::send`].
    #[inline]
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        if data.len() > self.producer.ring.max_payload() && self.producer.side.is_some() {
            // A side segment publishes itself, and what the batch staged before it.
            return self.producer.send_side(data, Deadline::Never);
        }
        let mut loan = self.loan(data.len())?;
        loan.copy_from_slice(data);
        loan.commit();
        Ok(())
    }

    /// Publishes what the batch staged so far.
    pub fn flush(&mut self) {
        self.producer.flush();
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.producer.flush();
    }
}

/// Bytes lent in place by [`Producer::loan`]. Write them, then [`commit`](Loan::commit).
///
/// A loan dropped without a commit sends nothing and leaves the ring as it was: loaning the
/// same length again at once lends the same bytes (the C API's `zipc_loan` and `zipc_commit`,
/// two calls that cannot share a borrow, rely on it).
pub struct Loan<'a> {
    pub(super) producer: &'a mut Producer,
    pub(super) res: Option<Reservation>,
    pub(super) len: usize,
    pub(super) publish: bool,
}

impl Loan<'_> {
    /// Sends the loaned bytes as one frame.
    #[inline]
    pub fn commit(mut self) {
        let len = self.len;
        self.finish(len);
    }

    /// Sends the first `len` loaned bytes as one frame.
    ///
    /// # Errors
    /// `InvalidArgument` if `len` is more than was loaned (nothing is sent, the loan is kept).
    pub fn commit_len(mut self, len: usize) -> std::result::Result<(), (Self, Error)> {
        if len > self.len {
            let e = Error::InvalidArgument(format!("commit of {len} bytes, {} loaned", self.len));
            return Err((self, e));
        }
        self.finish(len);
        Ok(())
    }

    #[inline]
    fn finish(&mut self, len: usize) {
        if let Some(res) = self.res.take() {
            let p = &mut *self.producer;
            p.ring.commit(res, len, !self.publish);
            if self.publish {
                p.flush();
            }
        }
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        let res = self.res.as_ref().expect("a live loan has its reservation");
        // SAFETY: the reservation is `len` writable bytes inside the ring that only this
        // producer may touch until it commits; the loan borrows the producer mutably.
        unsafe { std::slice::from_raw_parts(self.producer.ring.payload(res), self.len) }
    }
}

impl DerefMut for Loan<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        let res = self.res.as_ref().expect("a live loan has its reservation");
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.producer.ring.payload(res), self.len) }
    }
}

impl std::fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan").field("len", &self.len).finish()
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}
