//! What the tests of the C API share: the built library, C programs compiled against it, and
//! running them (under valgrind when `ZIPC_FFI_VALGRIND=1`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// `ffi/`.
pub fn ffi_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where this test's build puts its libraries: the profile directory of the running test
/// binary (`<target>/[<triple>/]<profile>/deps/<test>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lies in <profile>/deps")
        .to_owned()
}

/// The directory holding `libzipc.so` and `libzipc.a`, built for this test's profile and
/// target.
///
/// An integration test does not make cargo build its crate's cdylib or staticlib (only an
/// rlib is linked into tests, and this crate has none: the Rust crate `zipc` has the name),
/// so the first caller runs `cargo build -p zipc-ffi --lib` with the same profile, target and
/// target directory. It takes a moment when the library is current.
pub fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = profile_dir();
        let target_root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
            .to_owned();
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_owned(),
            Some(other) => other.to_owned(),
            None => panic!("no profile directory in {}", dir.display()),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--lib", "--profile", &profile])
            .arg("--manifest-path")
            .arg(ffi_dir().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_root);
        let triple_dir = dir.parent().expect("a target directory");
        if triple_dir != target_root {
            cmd.arg("--target").arg(triple_dir.file_name().unwrap());
        }
        let status = cmd.status().expect("run cargo build for libzipc");
        assert!(status.success(), "cargo build of libzipc failed: {status}");
        for lib in ["libzipc.so", "libzipc.a"] {
            assert!(
                dir.join(lib).exists(),
                "{} missing",
                dir.join(lib).display()
            );
        }
        dir
    })
}

/// `ffi/include`.
pub fn include_dir() -> PathBuf {
    ffi_dir().join("include")
}

/// Where compiled C programs go (one directory per profile: they link that profile's library).
pub fn out_dir() -> PathBuf {
    let profile = profile_dir();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("zipc-ffi-c")
        .join(profile.file_name().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The C compiler: `$CC`, else gcc.
pub fn cc() -> Command {
    Command::new(std::env::var_os("CC").unwrap_or_else(|| "gcc".into()))
}

/// The flags every C program of the tests is held to.
pub const CFLAGS: &[&str] = &["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror"];

/// Runs a compiler command and panics with its output when it fails.
pub fn compile(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run the C compiler for {what}: {e}"));
    assert!(
        out.status.success(),
        "compiling {what} failed ({:?}):\n{}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ffi/tests/<name>.c`, compiled (once per test binary) against `libzipc.so`.
pub fn c_program(name: &str) -> PathBuf {
    compile_c("tests", name)
}

/// `ffi/<dir>/<name>.c`, compiled (once per process) against `libzipc.so`.
pub fn compile_c(dir: &str, name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(exe) = built.get(name) {
        return exe.clone();
    }
    let lib = lib_dir();
    let exe = out_dir().join(name);
    let mut cmd = cc();
    cmd.args(CFLAGS)
        .arg("-I")
        .arg(include_dir())
        .arg("-o")
        .arg(&exe)
        .arg(ffi_dir().join(dir).join(format!("{name}.c")))
        .arg("-L")
        .arg(lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lzipc");
    compile(cmd, &format!("ffi/tests/{name}.c"));
    built.insert(name.to_owned(), exe.clone());
    exe
}

/// Whether C programs run under valgrind memcheck (`ZIPC_FFI_VALGRIND=1`, set by `.ci/run`).
pub fn valgrind() -> bool {
    std::env::var("ZIPC_FFI_VALGRIND").is_ok_and(|v| v == "1")
}

/// How many frames the long streams carry: `ZIPC_FFI_FRAMES`, else a million (valgrind runs
/// use fewer).
pub fn frames() -> u64 {
    std::env::var("ZIPC_FFI_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// The program and the arguments that run `exe`: itself, or valgrind memcheck on it (any
/// error, a leak included, fails the run).
pub fn runner(exe: &Path) -> (PathBuf, Vec<String>) {
    if valgrind() {
        let args = [
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect,possible",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(exe.display().to_string());
        ("valgrind".into(), args)
    } else {
        (exe.to_owned(), Vec::new())
    }
}

/// A command that runs the C program `exe` (see [`runner`]).
pub fn c_command(exe: &Path) -> Command {
    let (program, args) = runner(exe);
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// Asserts a C program's run succeeded, showing what it printed when not.
pub fn assert_ran(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A peer process that is killed (and reaped) if the test panics before it was waited for,
/// so that a failed test leaves no C program blocked on a channel; a named channel it may
/// have left behind is removed.
pub struct Peer {
    child: Option<std::process::Child>,
    channel: Option<String>,
}

impl Peer {
    /// Guards `child`, which creates the named channel `channel` if any.
    pub fn new(child: std::process::Child, channel: Option<&str>) -> Peer {
        Peer {
            child: Some(child),
            channel: channel.map(str::to_owned),
        }
    }

    /// The process.
    pub fn child(&mut self) -> &mut std::process::Child {
        self.child.as_mut().unwrap()
    }

    /// Waits for it to end, collecting what it printed.
    pub fn finish(mut self) -> Output {
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(name) = &self.channel {
                let _ = zipc::shm::remove_if_stale(name);
            }
        }
    }
}
