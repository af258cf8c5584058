//! The peer process of `zipc bench channel`: the parent re-executes itself as `zipc MODE
//! TRANSPORT --fds A,B,... --frame N --wait W` with `ZIPC_BENCH_ROLE=peer` in its environment
//! (see [`crate::role`]), handing the fds by inheritance (close-on-exec cleared on exactly
//! those fds for the spawn). The last fd is always the control pipe: the peer writes
//! `R` on it once attached, and, after a stream, its report (frames, checksum).

use crate::Result;
use crate::floor::{self, CacheLinePing, FutexPing, SharedMap, SlotReceiver};
use crate::transport::{
    FdPing, FrameSource, PacketSource, PingEnd, PipeSource, ZipcPing, ZipcSource,
};
use clap::{Parser, ValueEnum};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::Signal;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, send};
use std::fs::File;
use std::io::{ErrorKind, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};
use zipc::bytes::{Consumer, Producer};

/// What the peer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Answer each 8-byte value v with v + 1 until the sentinel.
    Ping,
    /// Read every frame of a one-way stream, then report.
    Stream,
    /// Attach to each channel fd that arrives over the socket, then acknowledge.
    Setup,
}

/// Which transport the peer's end is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Transport {
    /// A zipc byte channel on a memfd.
    Zipc,
    /// The raw shared-memory floor (busy-poll).
    Floor,
    /// The blocking floor: a raw futex ping-pong (latency only).
    Futex,
    /// Pipes.
    Pipe,
    /// A Unix SOCK_SEQPACKET socket pair.
    Socket,
}

/// How every zipc end of a measurement waits (`zipc::Wait`, which the command line cannot
/// name directly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum WaitMode {
    /// `Wait::Spin`: busy-poll, never sleep.
    Spin,
    /// `Wait::Sleep`: futex-sleep at once.
    Sleep,
    /// `Wait::Adaptive`, the library's default: spin, then futex-sleep.
    Adaptive,
}

impl WaitMode {
    /// The library's value.
    pub(crate) fn wait(self) -> zipc::Wait {
        match self {
            WaitMode::Spin => zipc::Wait::Spin,
            WaitMode::Sleep => zipc::Wait::Sleep,
            WaitMode::Adaptive => zipc::Wait::Adaptive,
        }
    }
}

/// `v` as the command line spells it.
fn spelled(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_owned())
}

/// The value that ends a ping-pong (odd, so the floor's peer sees it; never a counter value).
pub(crate) const SENTINEL: u64 = u64::MAX;

/// The peer's command line (its own parser: the peer is no command of the tool).
#[derive(Parser, Debug)]
#[command(name = "zipc bench peer")]
struct PeerArgs {
    mode: Mode,
    transport: Transport,
    /// Inherited fds, the control pipe last.
    #[arg(long, value_delimiter = ',', required = true)]
    fds: Vec<RawFd>,
    /// Frame size of a stream.
    #[arg(long, default_value_t = 8)]
    frame: usize,
    /// The CPU to pin the peer to.
    #[arg(long)]
    cpu: Option<usize>,
    /// How the peer's zipc ends wait.
    #[arg(long, value_enum, default_value_t = WaitMode::Adaptive)]
    wait: WaitMode,
}

/// The parent's handle on a running peer. Dropping it kills a peer that was not finished.
pub(crate) struct Peer {
    child: Option<Child>,
    ctl: File,
}

impl Peer {
    /// Starts the peer (this binary in its peer role) with `fds` (and a control pipe) inherited, pinned to `cpu`, its
    /// zipc ends waiting as `wait` says.
    pub(crate) fn spawn(
        mode: Mode,
        transport: Transport,
        wait: WaitMode,
        frame: usize,
        cpu: Option<usize>,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Peer> {
        let (ctl_r, ctl_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let mut handed: Vec<BorrowedFd<'_>> = fds.to_vec();
        handed.push(ctl_w.as_fd());
        let list: Vec<String> = handed.iter().map(|fd| fd.as_raw_fd().to_string()).collect();
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this executable to start the peer: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.env(crate::role::VAR, crate::role::PEER)
            .arg(spelled(mode))
            .arg(spelled(transport))
            .arg("--fds")
            .arg(list.join(","))
            .arg("--frame")
            .arg(frame.to_string())
            .arg("--wait")
            .arg(spelled(wait))
            .stdin(Stdio::null());
        if let Some(cpu) = cpu {
            cmd.arg("--cpu").arg(cpu.to_string());
        }

        let saved = set_inherited(&handed)?;
        let spawned = cmd.spawn();
        let restored = restore_flags(&handed, &saved);
        let child = spawned.map_err(|e| format!("cannot start the peer process: {e}"))?;
        let peer = Peer {
            child: Some(child),
            ctl: File::from(ctl_r),
        };
        restored?;
        Ok(peer)
    }

    /// The peer's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits for the peer's `R`: it has attached its end.
    pub(crate) fn wait_ready(&mut self) -> Result<()> {
        let mut b = [0u8; 1];
        self.read_ctl(&mut b)?;
        if b[0] != b'R' {
            return Err(format!("the peer sent {:?} instead of ready", b[0] as char).into());
        }
        Ok(())
    }

    /// Reads the peer's stream report: (frames, checksum).
    pub(crate) fn read_report(&mut self) -> Result<(u64, u64)> {
        let mut b = [0u8; 16];
        self.read_ctl(&mut b)?;
        let (count, sum) = b.split_at(8);
        Ok((
            u64::from_le_bytes(count.try_into()?),
            u64::from_le_bytes(sum.try_into()?),
        ))
    }

    fn read_ctl(&mut self, buf: &mut [u8]) -> Result<()> {
        match self.ctl.read_exact(buf) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err(self.failure()),
            Err(e) => Err(e.into()),
        }
    }

    /// The error for a peer that closed its control pipe early.
    fn failure(&mut self) -> crate::BoxError {
        match self.child.take().map(|mut c| c.wait()) {
            Some(Ok(status)) => format!("the peer process stopped early ({status})").into(),
            Some(Err(e)) => format!("the peer process stopped early: {e}").into(),
            None => "the peer process stopped early".into(),
        }
    }

    /// Waits for the peer to exit; an error unless it succeeded.
    pub(crate) fn finish(mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let status = child.wait()?;
            if !status.success() {
                return Err(format!("the peer process failed ({status})").into());
            }
        }
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Clears close-on-exec on `fds`; returns their previous flags.
fn set_inherited(fds: &[BorrowedFd<'_>]) -> Result<Vec<FdFlag>> {
    let mut saved = Vec::with_capacity(fds.len());
    for fd in fds {
        let flags = FdFlag::from_bits_retain(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFD)?);
        saved.push(flags);
        if let Err(e) = fcntl(
            fd.as_raw_fd(),
            FcntlArg::F_SETFD(flags - FdFlag::FD_CLOEXEC),
        ) {
            restore_flags(&fds[..saved.len()], &saved)?;
            return Err(e.into());
        }
    }
    Ok(saved)
}

/// Puts back the flags [`set_inherited`] saved.
fn restore_flags(fds: &[BorrowedFd<'_>], saved: &[FdFlag]) -> Result<()> {
    for (fd, flags) in fds.iter().zip(saved) {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(*flags))?;
    }
    Ok(())
}

/// Takes ownership of the inherited fds named on the command line, after checking that each
/// is open, named once, and not stdin/stdout/stderr.
fn take_fds(raw: &[RawFd]) -> Result<Vec<OwnedFd>> {
    for (i, &fd) in raw.iter().enumerate() {
        if fd <= 2 || raw[..i].contains(&fd) {
            return Err(format!("fd {fd} cannot be handed to the peer").into());
        }
        fcntl(fd, FcntlArg::F_GETFD).map_err(|e| format!("inherited fd {fd}: {e}"))?;
    }
    Ok(raw
        .iter()
        .map(|&fd| {
            // SAFETY: the parent handed us `fd`; it is open (checked above), named once, and
            // nothing else in this process owns it.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
        .collect())
}

/// The peer's main: reads its command line, attaches its end and plays its part.
pub(crate) fn run_from_args() -> Result<()> {
    let args = PeerArgs::try_parse().map_err(|e| e.to_string().trim_end().to_string())?;
    run(args)
}

fn run(args: PeerArgs) -> Result<()> {
    // Never outlive the parent (a spinning peer would spin forever).
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if let Some(cpu) = args.cpu {
        crate::cpu::pin(cpu).map_err(|e| format!("cannot pin the peer to CPU {cpu}: {e}"))?;
    }
    let mut fds = take_fds(&args.fds)?;
    let mut ctl = File::from(fds.pop().ok_or("no control fd")?);
    let mut fds = fds.into_iter();
    let mut next = || fds.next().ok_or("too few fds for the peer");
    let wait = args.wait.wait();
    match (args.mode, args.transport) {
        (Mode::Ping, Transport::Zipc) => {
            let mut rx = Consumer::from_fd(next()?)?;
            let mut tx = Producer::from_fd(next()?)?;
            rx.set_wait(wait);
            tx.set_wait(wait);
            echo(ZipcPing { tx, rx }, &mut ctl)
        }
        (Mode::Ping, Transport::Pipe) => {
            let rx = File::from(next()?);
            let tx = File::from(next()?);
            echo(FdPing { tx, rx }, &mut ctl)
        }
        (Mode::Ping, Transport::Socket) => {
            let rx = File::from(next()?);
            let tx = rx.try_clone()?;
            echo(FdPing { tx, rx }, &mut ctl)
        }
        (Mode::Ping, Transport::Floor) => {
            let map = SharedMap::open(next()?, floor::PING_LEN)?;
            echo(CacheLinePing::peer(map), &mut ctl)
        }
        (Mode::Ping, Transport::Futex) => {
            let map = SharedMap::open(next()?, floor::PING_LEN)?;
            echo(FutexPing::peer(map), &mut ctl)
        }
        (Mode::Stream, Transport::Zipc) => {
            let mut rx = Consumer::from_fd(next()?)?;
            rx.set_wait(wait);
            drain(ZipcSource(rx), args.frame, &mut ctl)
        }
        (Mode::Stream, Transport::Pipe) => {
            drain(PipeSource::new(File::from(next()?)), args.frame, &mut ctl)
        }
        (Mode::Stream, Transport::Socket) => {
            drain(PacketSource(File::from(next()?)), args.frame, &mut ctl)
        }
        (Mode::Stream, Transport::Floor) => {
            let map = SharedMap::open(next()?, floor::slot_ring_len(args.frame))?;
            drain(SlotReceiver::new(map, args.frame), args.frame, &mut ctl)
        }
        (Mode::Stream, Transport::Futex) => Err("the futex floor has no stream".into()),
        (Mode::Setup, _) => attach_each(next()?, &mut ctl),
    }
}

/// Answers each value v with v + 1 until the sentinel.
fn echo(mut end: impl PingEnd, ctl: &mut File) -> Result<()> {
    ctl.write_all(b"R")?;
    loop {
        let v = end.recv()?;
        if v == SENTINEL {
            return Ok(());
        }
        end.send(v.wrapping_add(1))?;
    }
}

/// Copies out every frame to the end, summing the counter in each frame's first 8 bytes, and
/// reports (frames, sum).
fn drain(mut source: impl FrameSource, frame: usize, ctl: &mut File) -> Result<()> {
    if frame < 8 {
        return Err(format!("frames of {frame} bytes; at least 8 are needed").into());
    }
    let mut dst = vec![0u8; frame];
    ctl.write_all(b"R")?;
    let (mut count, mut sum) = (0u64, 0u64);
    while source.recv_frame(&mut dst)? {
        let dst = std::hint::black_box(&mut dst);
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&dst[..8]);
        sum = sum.wrapping_add(u64::from_le_bytes(stamp));
        count += 1;
    }
    let mut report = [0u8; 16];
    report[..8].copy_from_slice(&count.to_le_bytes());
    report[8..].copy_from_slice(&sum.to_le_bytes());
    ctl.write_all(&report)?;
    Ok(())
}

/// Setup: for each message on `sock`, attaches the consumer of the channel fd it carries (an
/// `F`) or attaches nothing (a `P`), then answers `A`; returns when the parent closes.
fn attach_each(sock: OwnedFd, ctl: &mut File) -> Result<()> {
    ctl.write_all(b"R")?;
    loop {
        let mut buf = [0u8; 1];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )?;
            let mut fd = None;
            for cmsg in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(raw) = cmsg {
                    for r in raw {
                        // SAFETY: the kernel just installed `r` in our fd table for this
                        // message; nothing else owns it.
                        let owned = unsafe { OwnedFd::from_raw_fd(r) };
                        fd.get_or_insert(owned);
                    }
                }
            }
            (msg.bytes, fd)
        };
        if n == 0 {
            return Ok(());
        }
        let consumer = match (buf[0], fd) {
            (b'F', Some(fd)) => Some(Consumer::from_fd(fd)?),
            (b'P', None) => None,
            (b, _) => return Err(format!("unexpected setup message {:?}", b as char).into()),
        };
        send(sock.as_raw_fd(), b"A", MsgFlags::empty())?;
        drop(consumer);
    }
}
