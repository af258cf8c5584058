//! When a blocking call gives up, and the one place that derives the usual three forms of a
//! blocking call (`x`, `try_x`, `x_timeout`) from its `x_deadline`.

use std::time::{Duration, Instant};

/// When a blocking call gives up: every blocking operation of a channel end takes one (its
/// `_deadline` form, such as
/// [`bytes::Producer::send_deadline`](crate::bytes::Producer::send_deadline)), and its plain,
/// `try_` and `_timeout` forms are that operation with [`Never`](Self::Never),
/// [`Now`](Self::Now) and [`after`](Self::after) the timeout.
///
/// ```
/// # fn main() -> zipc::Result<()> {
/// use std::time::{Duration, Instant};
/// use zipc::Deadline;
///
/// let (mut tx, mut rx) = zipc::bytes::channel(zipc::Config::default())?;
/// // Nothing to receive: `Now` fails at once, without sleeping, `At` once the instant passed.
/// assert!(matches!(rx.recv_deadline(Deadline::Now), Err(zipc::Error::WouldBlock)));
/// let soon = Deadline::At(Instant::now() + Duration::from_millis(1));
/// assert!(matches!(rx.recv_deadline(soon), Err(zipc::Error::Timeout)));
///
/// tx.send_deadline(b"ping", Deadline::after(Duration::from_secs(10)))?;
/// assert_eq!(&*rx.recv_deadline(Deadline::Never)?, b"ping");
/// // A timeout too long for an `Instant` is no deadline at all.
/// assert_eq!(Deadline::after(Duration::MAX), Deadline::Never);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// Do not wait: `WouldBlock` unless the operation can complete at once. Never sleeps.
    Now,
    /// Wait until this instant, then `Timeout`.
    At(Instant),
    /// Wait as long as it takes (or until the peer closes or dies).
    Never,
}

impl Deadline {
    /// The instant a wait gives up at: now for `Now`, none for `Never`.
    pub(crate) fn instant(self) -> Option<Instant> {
        match self {
            Deadline::Now => Some(Instant::now()),
            Deadline::At(t) => Some(t),
            Deadline::Never => None,
        }
    }

    /// `timeout` from now; [`Never`](Self::Never) when that is too far for an [`Instant`].
    pub fn after(timeout: Duration) -> Deadline {
        Instant::now()
            .checked_add(timeout)
            .map_or(Deadline::Never, Deadline::At)
    }
}

/// Derives the blocking, `try_` and `_timeout` forms of an operation from its `_deadline`
/// form, with their docs. The caller writes the blocking form's docs; the other two refer to
/// it. Arguments are passed on in order, the deadline last:
///
/// ```text
/// deadline_forms! {
///     /// Sends `data`, waiting for space.
///     pub fn send / try_send / send_timeout (data: &[u8]) -> Result<()> = send_deadline;
/// }
/// ```
macro_rules! deadline_forms {
    ($(
        $(#[$attr:meta])*
        $vis:vis fn $name:ident / $try_name:ident / $timeout_name:ident
            ($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty = $deadline_fn:ident;
    )+) => {$(
        $(#[$attr])*
        #[inline]
        $vis fn $name(&mut self $(, $arg: $ty)*) -> $ret {
            self.$deadline_fn($($arg,)* $crate::Deadline::Never)
        }

        #[doc = concat!("As [`", stringify!($name), "`](Self::", stringify!($name),
            "), but `WouldBlock` instead of waiting (it never sleeps).")]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = concat!("As for `", stringify!($name), "`, and `WouldBlock`.")]
        #[inline]
        $vis fn $try_name(&mut self $(, $arg: $ty)*) -> $ret {
            self.$deadline_fn($($arg,)* $crate::Deadline::Now)
        }

        #[doc = concat!("As [`", stringify!($name), "`](Self::", stringify!($name),
            "), waiting at most `timeout` (one too long for an `Instant` waits without limit).")]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = concat!("As for `", stringify!($name), "`, and `Timeout`.")]
        $vis fn $timeout_name(&mut self $(, $arg: $ty)*, timeout: std::time::Duration) -> $ret {
            self.$deadline_fn($($arg,)* $crate::Deadline::after(timeout))
        }
    )+};
}
pub(crate) use deadline_forms;
