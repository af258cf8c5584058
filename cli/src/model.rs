//! What `zipc bench channel` measured: the results model. It names what was measured and
//! holds the numbers; the runner ([`crate::channel`]) fills it in, and the printers read it
//! ([`crate::table`], and JSON through its `Serialize`).

use crate::machine::Machine;
use serde::Serialize;

/// Frame sizes of the throughput columns.
pub(crate) const FRAMES: [usize; 3] = [8, 4096, 64 * 1024];

/// What one row measures: a transport, and for zipc how its ends wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Subject {
    /// zipc, every end of both processes busy-polling (`Wait::Spin`).
    ZipcSpin,
    /// zipc, every end futex-sleeping at once (`Wait::Sleep`).
    ZipcSleep,
    /// zipc as configured by default (`Wait::Adaptive`).
    ZipcAdaptive,
    /// The busy-poll floor: raw atomics in shared memory.
    Floor,
    /// The blocking floor: a raw futex ping-pong.
    Futex,
    /// Pipes.
    Pipe,
    /// A Unix SOCK_SEQPACKET socket pair.
    Socket,
}

impl Subject {
    /// Whether the throughput columns are measured.
    pub(crate) fn streams(self) -> bool {
        self != Subject::Futex
    }

    /// The row's name in the table.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Subject::ZipcSpin => "zipc (spin)",
            Subject::ZipcSleep => "zipc (sleep)",
            Subject::ZipcAdaptive => "zipc (adaptive)",
            Subject::Floor => "raw shm (floor)",
            Subject::Futex => "raw futex (floor)",
            Subject::Pipe => "pipe",
            Subject::Socket => "unix seqpacket",
        }
    }

    /// The row's name in JSON and in short lists.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Subject::ZipcSpin => "zipc_spin",
            Subject::ZipcSleep => "zipc_sleep",
            Subject::ZipcAdaptive => "zipc_adaptive",
            Subject::Floor => "floor",
            Subject::Futex => "futex",
            Subject::Pipe => "pipe",
            Subject::Socket => "socket",
        }
    }
}

/// One-way latency in nanoseconds (round trip / 2).
#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) round_trips: u64,
}

/// A one-way stream: `frames` frames of `frame` bytes in `secs`.
#[derive(Debug, Serialize)]
pub(crate) struct Rate {
    #[serde(rename = "frame_bytes")]
    pub(crate) frame: usize,
    pub(crate) frames: u64,
    #[serde(rename = "seconds")]
    pub(crate) secs: f64,
    pub(crate) frames_per_sec: f64,
    pub(crate) gb_per_sec: f64,
}

impl Rate {
    /// `frames` frames of `frame` bytes in `secs` seconds.
    pub(crate) fn new(frame: usize, frames: u64, secs: f64) -> Rate {
        let frames_per_sec = frames as f64 / secs;
        Rate {
            frame,
            frames,
            secs,
            frames_per_sec,
            gb_per_sec: frames_per_sec * frame as f64 / 1e9,
        }
    }
}

/// One row's results.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    #[serde(rename = "row")]
    pub(crate) subject: Subject,
    pub(crate) label: &'static str,
    #[serde(rename = "latency_one_way_ns")]
    pub(crate) latency: Latency,
    /// In the order of [`FRAMES`]; `None` where not measured.
    #[serde(rename = "throughput")]
    pub(crate) rates: Vec<Option<Rate>>,
}

impl Row {
    /// A row of `subject` with its latency, before its throughput is measured.
    pub(crate) fn new(subject: Subject, latency: Latency) -> Row {
        Row {
            subject,
            label: subject.label(),
            latency,
            rates: Vec::with_capacity(FRAMES.len()),
        }
    }
}

/// Channel setup across two processes, in nanoseconds.
#[derive(Debug, Serialize)]
pub(crate) struct Setup {
    pub(crate) reps: usize,
    /// Median of create + producer attach, in this process.
    #[serde(rename = "create_attach_local_median")]
    pub(crate) local_ns: f64,
    /// Median of create + attach here + fd passed + consumer attach in the peer + reply.
    #[serde(rename = "total_median")]
    pub(crate) total_ns: f64,
    #[serde(rename = "total_p99")]
    pub(crate) total_p99_ns: f64,
    /// Median of a bare 1-byte round trip over the same socket.
    #[serde(rename = "bare_socket_round_trip_median")]
    pub(crate) bare_ns: f64,
}

/// How many slots the raw floor's ring has for frames of one size.
#[derive(Debug, Serialize)]
pub(crate) struct FloorSlots {
    pub(crate) frame_bytes: usize,
    pub(crate) slots: usize,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct Results {
    pub(crate) machine: Machine,
    pub(crate) quick: bool,
    /// (this process's CPU, the peer's CPU) when pinned.
    #[serde(rename = "pinned_cpus")]
    pub(crate) cpus: Option<(usize, usize)>,
    pub(crate) rows: Vec<Row>,
    #[serde(rename = "setup_ns")]
    pub(crate) setup: Setup,
    /// The raw floor's ring, per frame size of [`FRAMES`].
    pub(crate) floor_slots: Vec<FloorSlots>,
    /// How long the run took.
    pub(crate) seconds: f64,
}

impl Results {
    /// The row of `s`, if it was measured.
    pub(crate) fn row(&self, s: Subject) -> Option<&Row> {
        self.rows.iter().find(|r| r.subject == s)
    }
}
