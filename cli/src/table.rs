//! The table of `zipc bench channel`: the machine above it, a row per transport, the ratios
//! and targets (all from the same run), and notes below it.

use crate::model::{FRAMES, Results, Row};
use crate::targets;
use std::fmt::Write as _;

/// Nanoseconds as ns, µs or ms.
pub(crate) fn ns(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v < 1e3 {
        format!("{v:.0} ns")
    } else if v < 1e6 {
        format!("{:.2} µs", v / 1e3)
    } else {
        format!("{:.2} ms", v / 1e6)
    }
}

fn per_sec(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else {
        format!("{:.0} k", v / 1e3)
    }
}

/// The cells of one row: latency p50, p99, p99.9, 8 B msg/s, then GB/s per larger frame.
fn cells(row: &Row) -> Vec<String> {
    let mut c = vec![
        ns(row.latency.p50),
        ns(row.latency.p99),
        ns(row.latency.p999),
    ];
    for r in &row.rates {
        c.push(match r {
            None => "-".into(),
            Some(r) if r.frame <= 64 => per_sec(r.frames_per_sec),
            Some(r) => format!("{:.2}", r.gb_per_sec),
        });
    }
    c
}

/// A ratio with two significant digits at least (0.0031x, 0.52x, 4.07x, 345x).
pub(crate) fn times(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0}x")
    } else if v >= 0.095 {
        format!("{v:.2}x")
    } else {
        let digits = (-v.log10().floor()) as usize + 1;
        format!("{v:.digits$}x")
    }
}

/// `items` joined with ", ", broken into lines of at most `width` characters.
fn wrap(items: &[String], width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        let len = item.chars().count() + usize::from(!last);
        if line > 0 && line + 1 + len > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(item);
        if !last {
            out.push(',');
        }
        line += len;
    }
    out
}

fn size(frame: usize) -> String {
    if frame >= 1024 && frame.is_multiple_of(1024) {
        format!("{} KiB", frame / 1024)
    } else {
        format!("{frame} B")
    }
}

/// The table, with the machine above and notes below.
pub(crate) fn table(r: &Results) -> String {
    const LABEL: usize = 18;
    const CELL: usize = 12;
    let mut out = String::new();
    let m = &r.machine;
    let _ = writeln!(out, "{}{}", m, if r.quick { "  (--quick)" } else { "" });
    let pinning = match r.cpus {
        Some((me, peer)) => format!("this one on CPU {me}, a re-exec'd peer on CPU {peer}"),
        None => "this one and a re-exec'd peer, unpinned".into(),
    };
    let _ = writeln!(
        out,
        "two processes ({pinning}); latency is one way (8 B round trip / 2)\n"
    );
    let mut header = vec![
        "lat p50".to_string(),
        "p99".to_string(),
        "p99.9".to_string(),
    ];
    for frame in FRAMES {
        let unit = if frame <= 64 { "msg/s" } else { "GB/s" };
        header.push(format!("{} {unit}", size(frame)));
    }
    let line = |out: &mut String, label: &str, cells: &[String]| {
        let _ = write!(out, "{label:<LABEL$}");
        for c in cells {
            let _ = write!(out, "{c:>CELL$}");
        }
        out.push('\n');
    };
    line(&mut out, "transport", &header);
    let width = LABEL + CELL * header.len();
    let rule = "-".repeat(width);
    let _ = writeln!(out, "{rule}");
    for row in &r.rows {
        line(&mut out, row.label, &cells(row));
    }
    let _ = writeln!(out, "{rule}");
    for ratio in targets::ratios(r) {
        let cells: Vec<String> = ratio.cells().into_iter().map(times).collect();
        line(&mut out, ratio.label, &cells);
    }
    let _ = writeln!(out, "{rule}");
    let checks: Vec<String> = targets::channel(r)
        .iter()
        .map(|t| {
            let floor = if t.floor_value.is_finite() {
                format!("; the raw floor's own: {}", times(t.floor_value))
            } else {
                String::new()
            };
            format!(
                "{} {} (target {} {:.1}x: {}{floor})",
                t.what,
                times(t.value),
                t.sign(),
                t.bound,
                t.verdict()
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "{:<LABEL$}{}",
        "targets",
        checks.join(";\n                  ")
    );
    let _ = writeln!(out, "{rule}");
    let s = &r.setup;
    let _ = writeln!(
        out,
        "{:<LABEL$}{} median, p99 {} (create + attach here {}; fd over SCM_RIGHTS,\n\
         {:<LABEL$}attach in the peer, 1-byte reply; a bare socket round trip alone is {})",
        "channel setup",
        ns(s.total_ns),
        ns(s.total_p99_ns),
        ns(s.local_ns),
        "",
        ns(s.bare_ns),
    );
    notes(&mut out, r);
    out
}

/// What each row is and how it was measured.
fn notes(out: &mut String, r: &Results) {
    let trips: Vec<String> = r
        .rows
        .iter()
        .map(|row| format!("{} {}", row.subject.key(), row.latency.round_trips))
        .collect();
    let trips = wrap(&trips, 88);
    let slots_of = |frame: usize| {
        r.floor_slots
            .iter()
            .find(|s| s.frame_bytes == frame)
            .map_or_else(|| "?".into(), |s| s.slots.to_string())
    };
    let slots: Vec<String> = FRAMES
        .iter()
        .filter(|&&frame| frame > 8)
        .map(|&frame| format!("{} x {}", slots_of(frame), size(frame)))
        .collect();
    let _ = write!(
        out,
        "\nratios: that zipc row ÷ the other, same run: for latency lower is better, for\n\
         throughput higher. targets: the project's, each a ratio within this run.\n\
         zipc: every zipc end of both processes waits the same way. spin = Wait::Spin\n\
         (busy-poll, never sleeps: the floor's configuration, for latency and throughput);\n\
         sleep = Wait::Sleep (futex at once, no spin); adaptive = Wait::Adaptive, the default\n\
         (spins a few µs, then futex-sleeps). loan+commit per frame, recv in place.\n\
         raw shm (floor): busy-poll, never sleeps. A cache-line ping-pong; 8 B: a ring of\n\
         {} u64 slots; larger: fixed slots memcpy'd in and out ({}).\n\
         Both rings SPSC, each side caching the other's counter, as zipc's ring.\n\
         raw futex (floor): blocking, latency only. One word in a shared memfd; each side\n\
         stores its value, FUTEX_WAKEs (always) and FUTEX_WAITs (not PRIVATE, no spin) until\n\
         the other's value is there.\n\
         pipe: one write per frame, reads through a 64 KiB buffer (a stream has no frames).\n\
         socket: SOCK_SEQPACKET, one send and one recv per frame.\n\
         latency: after a warm-up, each round trip timed; round trips:\n{}.\n\
         throughput: the parent copies each frame in from one buffer (stamped with a counter);\n\
         the peer copies each out into one buffer and sums the stamps (checked). Timed from the\n\
         first send until the peer reports the last frame read. Buffers: zipc ring 1 MiB; pipe\n\
         1 MiB (if pipe-max-size allows); socket 1 MiB (if wmem_max allows).\n\
         channel setup: {} reps, a fresh 1 MiB memfd channel each; the peer is long-lived.\n\
         took {:.1} s\n",
        slots_of(8),
        slots.join(", "),
        trips,
        r.setup.reps,
        r.seconds,
    );
}
