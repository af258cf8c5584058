//! The machine a benchmark ran on, printed above each table.

use serde::Serialize;

/// The machine the run was on.
#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    cpus: usize,
    #[serde(rename = "cpu")]
    model: String,
    kernel: String,
}

impl Machine {
    /// Reads the CPU count (as `nproc`), the CPU model and the kernel release.
    pub(crate) fn detect() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| format!("Linux {}", r.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.into());
        Machine {
            cpus,
            model,
            kernel,
        }
    }
}

impl std::fmt::Display for Machine {
    /// `machine: N CPUs, model, kernel`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "machine: {} CPUs, {}, {}",
            self.cpus, self.model, self.kernel
        )
    }
}
