//! What `zipc bench zerocopy` measured, and its table.

use crate::machine::Machine;
use crate::targets::{self, Target, ratio};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// One path: GB/s of each run, the best, and the best against its section's copying loop.
#[derive(Debug, Serialize)]
pub(crate) struct PathRow {
    pub(crate) label: &'static str,
    pub(crate) gb_per_sec: Vec<f64>,
    pub(crate) best_gb_per_sec: f64,
    /// The best ÷ the best of the section's last row (the copying loop).
    pub(crate) over_copying: f64,
}

impl PathRow {
    /// The row of `label` with the GB/s of its runs.
    pub(crate) fn new(label: &'static str, gb_per_sec: Vec<f64>) -> PathRow {
        let best_gb_per_sec = gb_per_sec.iter().copied().fold(f64::NAN, f64::max);
        PathRow {
            label,
            gb_per_sec,
            best_gb_per_sec,
            over_copying: f64::NAN,
        }
    }
}

/// A heading and its rows, the copying loop last.
#[derive(Debug, Serialize)]
pub(crate) struct Section {
    pub(crate) heading: &'static str,
    pub(crate) rows: Vec<PathRow>,
}

impl Section {
    /// The section, each row's ratio to the last worked out.
    pub(crate) fn new(heading: &'static str, mut rows: Vec<PathRow>) -> Section {
        let baseline = rows.last().map_or(f64::NAN, |r| r.best_gb_per_sec);
        for row in &mut rows {
            row.over_copying = ratio(row.best_gb_per_sec, baseline);
        }
        Section { heading, rows }
    }

    fn best(&self, row: usize) -> f64 {
        self.rows.get(row).map_or(f64::NAN, |r| r.best_gb_per_sec)
    }
}

/// Everything one run of `zipc bench zerocopy` measured.
#[derive(Debug, Serialize)]
pub(crate) struct ZerocopyResults {
    pub(crate) machine: Machine,
    pub(crate) quick: bool,
    /// (the writer's CPU, the reader's CPU) when pinned.
    pub(crate) pinned_cpus: Option<(usize, usize)>,
    pub(crate) bytes_per_run: u64,
    pub(crate) runs: usize,
    /// Each write, vmsplice and read of the pipe rows.
    pub(crate) chunk_bytes: usize,
    /// The page-aligned buffers the vmsplice writer cycles through.
    pub(crate) vmsplice_buffers: usize,
    pub(crate) sections: Vec<Section>,
    /// sendfile ÷ the read/write loop when the reader copies out (no target: the reader's
    /// copy bounds both).
    pub(crate) sendfile_over_copy_reader_copies: f64,
    pub(crate) targets: Vec<Target>,
    /// How long the run took.
    pub(crate) seconds: f64,
}

impl ZerocopyResults {
    /// The results, with the targets worked out from the sections, in the runner's order:
    /// socket with a discarding reader, socket with a copying reader, pipe; each with its
    /// copying loop last.
    pub(crate) fn new(
        machine: Machine,
        quick: bool,
        pinned_cpus: Option<(usize, usize)>,
        (bytes_per_run, runs): (u64, usize),
        (chunk_bytes, vmsplice_buffers): (usize, usize),
        sections: Vec<Section>,
        took: Duration,
    ) -> ZerocopyResults {
        let best = |s: usize, row: usize| sections.get(s).map_or(f64::NAN, |s| s.best(row));
        let sendfile = ratio(best(0, 0), best(0, 2));
        let vmsplice = ratio(best(2, 0), best(2, 2));
        let copying_reader = ratio(best(1, 0), best(1, 1));
        ZerocopyResults {
            machine,
            quick,
            pinned_cpus,
            bytes_per_run,
            runs,
            chunk_bytes,
            vmsplice_buffers,
            sendfile_over_copy_reader_copies: copying_reader,
            targets: targets::zerocopy(sendfile, vmsplice),
            sections,
            seconds: took.as_secs_f64(),
        }
    }
}

/// The table, with the targets and notes below.
pub(crate) fn table(r: &ZerocopyResults) -> String {
    const LABEL: usize = 44;
    let mut out = String::new();
    let size = if r.bytes_per_run >= 1 << 30 {
        format!("{} GiB", r.bytes_per_run >> 30)
    } else {
        format!("{} MiB", r.bytes_per_run >> 20)
    };
    let _ = writeln!(
        out,
        "{}{}",
        r.machine,
        if r.quick { "  (--quick)" } else { "" }
    );
    let pinning = match r.pinned_cpus {
        Some((a, b)) => format!("writer on CPU {a}, reader on CPU {b}"),
        None => "unpinned".into(),
    };
    let _ = writeln!(
        out,
        "zero-copy paths: {size} per run, two threads of this process ({pinning}), best of {} runs\n",
        r.runs
    );
    let rule = "-".repeat(LABEL + 24);
    let _ = writeln!(out, "{:<LABEL$}{:>12}{:>12}", "path", "GB/s", "÷ copying");
    let _ = writeln!(out, "{rule}");
    for section in &r.sections {
        let _ = writeln!(out, "{}", section.heading);
        for row in &section.rows {
            let _ = writeln!(
                out,
                "  {:<w$}{:>12.2}{:>11.2}x",
                row.label,
                row.best_gb_per_sec,
                row.over_copying,
                w = LABEL - 2
            );
        }
    }
    let _ = writeln!(out, "{rule}");
    for (i, t) in r.targets.iter().enumerate() {
        let _ = write!(
            out,
            "{}{} {:.2}x ({} {}x: {})",
            if i == 0 { "targets: " } else { "         " },
            t.what,
            t.value,
            t.sign(),
            t.bound,
            t.verdict()
        );
        if i == 0 {
            let _ = write!(
                out,
                "; with a reader that copies: {:.2}x",
                r.sendfile_over_copy_reader_copies
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\nsocket: the source is a memfd (tmpfs: every byte comes from the page cache). The\n\
         reader is another thread: recv_to_file into /dev/null (splice through a 1 MiB pipe;\n\
         it never touches the bytes, so the rows measure the sender), or read into one\n\
         {} KiB buffer (its copy then bounds every row). Timed until the reader sees the end.\n\
         pipe: the vmsplice writer cycles {} page-aligned {} KiB buffers, each given back by\n\
         VmspliceWriter once the reader is past it; splice into /dev/null never touches the\n\
         bytes, read copies them out; write + read copies them in and out.\n\
         took {:.1} s",
        r.chunk_bytes / 1024,
        r.vmsplice_buffers,
        r.chunk_bytes / 1024,
        r.seconds
    );
    out
}
