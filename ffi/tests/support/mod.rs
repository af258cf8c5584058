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

/// The code block that follows the marker `<!-- readme-test: {marker} -->` in `ffi/README.md`,
/// a fenced block of `lang`, as written.
pub fn readme_block(marker: &str, lang: &str) -> String {
    let path = ffi_dir().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let tag = format!("<!-- readme-test: {marker} -->\n```{lang}\n");
    let start = readme
        .find(&tag)
        .unwrap_or_else(|| panic!("{} has no {tag:?}", path.display()))
        + tag.len();
    let len = readme[start..]
        .find("\n```\n")
        .unwrap_or_else(|| panic!("the block after {tag:?} does not end"));
    readme[start..=start + len].to_owned()
}

/// Which process of a README example starts first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum First {
    /// The sender, which creates the channel, sends every frame and closes; the receiver
    /// starts once the sender said it sent them all (its close is under way, or about to be).
    Sender,
    /// The receiver, which waits for the channel to appear; the sender starts once the receiver
    /// said it is about to wait.
    Receiver,
}

/// How many frames the README examples send: `order 0` to `order 999`.
pub const README_FRAMES: usize = 1000;

/// Runs a README example's two processes on the channel `name`, `first` first, and checks
/// that both succeed and that the receiver printed every frame, in order. The sender prints
/// `sent 1000 frames` once it sent them (before its close), the receiver `waiting for NAME`
/// just before it waits for the channel, then each frame on a line of its own.
pub fn sender_and_receiver(sender: Command, receiver: Command, name: &str, first: First) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let spawn = |mut cmd: Command| {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut peer = Peer::new(cmd.spawn().unwrap(), Some(name));
        let out = BufReader::new(peer.child().stdout.take().unwrap());
        (peer, out)
    };
    // The first line of `what`, which must be `want`; else what it printed on stderr.
    let expect_line = |peer: Peer, out: &mut BufReader<_>, want: &str, what: &str| {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if line.trim_end() != want {
            let done = peer.finish();
            panic!(
                "{what} printed {line:?}, not {want:?} ({}):\n{}",
                done.status,
                String::from_utf8_lossy(&done.stderr)
            );
        }
        peer
    };
    let sent = format!("sent {README_FRAMES} frames");
    let waiting = format!("waiting for {name}");
    match first {
        First::Sender => {
            let (tx, mut tx_out) = spawn(sender);
            let tx = expect_line(tx, &mut tx_out, &sent, "the sender");
            let (rx, mut rx_out) = spawn(receiver);
            let rx = expect_line(rx, &mut rx_out, &waiting, "the receiver");
            receive_and_finish(tx, tx_out, rx, rx_out, None);
        }
        First::Receiver => {
            let (rx, mut rx_out) = spawn(receiver);
            let rx = expect_line(rx, &mut rx_out, &waiting, "the receiver");
            let (tx, tx_out) = spawn(sender);
            receive_and_finish(tx, tx_out, rx, rx_out, Some(&sent));
        }
    }
    assert!(
        !Path::new(&format!("/dev/shm/zipc.{name}")).exists(),
        "the sender's close did not remove the name"
    );
}

/// The rest of [`sender_and_receiver`]: every frame from the receiver, then both finished.
fn receive_and_finish(
    tx: Peer,
    mut tx_out: std::io::BufReader<std::process::ChildStdout>,
    rx: Peer,
    rx_out: std::io::BufReader<std::process::ChildStdout>,
    sent: Option<&str>,
) {
    use std::io::{BufRead, Read};
    let lines: Vec<String> = rx_out.lines().map(Result::unwrap).collect();
    let rx = rx.finish();
    let mut tx_text = String::new();
    tx_out.read_to_string(&mut tx_text).unwrap();
    let tx = tx.finish();
    let report = || {
        format!(
            "receiver ({}):\n{}\nsender ({}):\n{}",
            rx.status,
            String::from_utf8_lossy(&rx.stderr),
            tx.status,
            String::from_utf8_lossy(&tx.stderr)
        )
    };
    assert!(rx.status.success() && tx.status.success(), "{}", report());
    if let Some(sent) = sent {
        assert_eq!(tx_text.trim_end(), sent, "the sender's output");
    }
    let want: Vec<String> = (0..README_FRAMES).map(|i| format!("order {i}")).collect();
    if lines != want {
        let first_bad = lines.iter().zip(&want).position(|(a, b)| a != b);
        panic!(
            "the receiver printed {} lines, not the {README_FRAMES} frames (first difference \
             at {first_bad:?})\n{}",
            lines.len(),
            report()
        );
    }
}
