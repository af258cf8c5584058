//! `zipc bench channel` (and plain `zipc bench`): zipc against pipes, Unix sockets and the raw shared-memory floor, every
//! measurement between two real processes (this one and a re-executed peer), every ratio
//! taken within one run.

use crate::PinnedArgs;
use crate::Result;
use crate::floor::{self, CacheLinePing, FutexPing, SharedMap, SlotSender, Watch};
use crate::machine::Machine;
use crate::model::{FRAMES, FloorSlots, Latency, Rate, Results, Row, Setup, Subject};
use crate::peer::{Mode, Peer, SENTINEL, Transport, WaitMode};
use crate::targets::ChannelReport;
use crate::transport::{
    BUFFER, FdPing, FdSink, FrameSink, PingEnd, ZipcPing, ZipcSink, pipe, seqpacket_pair,
};
use hdrhistogram::Histogram;
use nix::sys::socket::{ControlMessage, MsgFlags, recv, send, sendmsg};
use std::fs::File;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};
use zipc::bytes::{Consumer, Producer};

/// The rows, in table order: zipc busy-polling beside its busy-poll floor, zipc sleeping
/// beside its futex floor, zipc as configured by default, then the kernel's transports.
const SUBJECTS: [Subject; 7] = [
    Subject::ZipcSpin,
    Subject::Floor,
    Subject::ZipcSleep,
    Subject::Futex,
    Subject::ZipcAdaptive,
    Subject::Pipe,
    Subject::Socket,
];

/// The transport the peer of `s` runs, and how its zipc ends wait (meaningless for the
/// other transports).
fn peer_of(s: Subject) -> (Transport, WaitMode) {
    match s {
        Subject::ZipcSpin => (Transport::Zipc, WaitMode::Spin),
        Subject::ZipcSleep => (Transport::Zipc, WaitMode::Sleep),
        Subject::ZipcAdaptive => (Transport::Zipc, WaitMode::Adaptive),
        Subject::Floor => (Transport::Floor, WaitMode::Adaptive),
        Subject::Futex => (Transport::Futex, WaitMode::Adaptive),
        Subject::Pipe => (Transport::Pipe, WaitMode::Adaptive),
        Subject::Socket => (Transport::Socket, WaitMode::Adaptive),
    }
}

/// How long and how often to measure.
pub(crate) struct Plan {
    pub(crate) warmup: u64,
    pub(crate) warmup_budget: Duration,
    pub(crate) round_trips: u64,
    pub(crate) ping_budget: Duration,
    pub(crate) stream_budget: Duration,
    pub(crate) setup_reps: usize,
    /// The CPU the peer is pinned to, if any.
    pub(crate) peer_cpu: Option<usize>,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup: 2_000,
                warmup_budget: Duration::from_millis(30),
                round_trips: 20_000,
                ping_budget: Duration::from_millis(200),
                stream_budget: Duration::from_millis(40),
                setup_reps: 20,
                peer_cpu: None,
            }
        } else {
            Plan {
                warmup: 20_000,
                warmup_budget: Duration::from_millis(300),
                round_trips: 200_000,
                ping_budget: Duration::from_millis(2500),
                stream_budget: Duration::from_millis(400),
                setup_reps: 200,
                peer_cpu: None,
            }
        }
    }
}

/// Pins this process to the first CPU it may use and picks the second for the peer; `None`
/// with fewer than two CPUs (a spinning pair then shares one, and the table says so).
fn pin_parent() -> Result<Option<(usize, usize)>> {
    let allowed = crate::cpu::allowed()?;
    let [parent, peer, ..] = allowed[..] else {
        return Ok(None);
    };
    crate::cpu::pin(parent).map_err(|e| format!("cannot pin to CPU {parent}: {e}"))?;
    Ok(Some((parent, peer)))
}

/// The ring of each direction of the ping-pong.
const PING_RING: usize = 4096;

fn channel_config() -> zipc::Config {
    zipc::Config::default().capacity(BUFFER)
}

/// Runs `zipc bench channel` and prints its results.
pub(crate) fn run(args: &PinnedArgs) -> Result<()> {
    let quick = args.options.quick;
    let started = Instant::now();
    // Before pinning, which would make this process see one CPU.
    let machine = Machine::detect();
    let mut plan = Plan::new(quick);
    let cpus = if args.no_pin { None } else { pin_parent()? };
    plan.peer_cpu = cpus.map(|(_, peer)| peer);
    let mut rows = Vec::with_capacity(SUBJECTS.len());
    for s in SUBJECTS {
        let latency = latency(s, &plan).map_err(|e| format!("{} latency: {e}", s.label()))?;
        rows.push(Row::new(s, latency));
    }
    for frame in FRAMES {
        for row in &mut rows {
            let s = row.subject;
            let rate = if s.streams() {
                let rate = stream(s, frame, &plan)
                    .map_err(|e| format!("{} throughput at {frame} B: {e}", s.label()))?;
                Some(rate)
            } else {
                None
            };
            row.rates.push(rate);
        }
    }
    let setup = setup(&plan).map_err(|e| format!("channel setup: {e}"))?;
    let floor_slots = FRAMES
        .iter()
        .map(|&frame| FloorSlots {
            frame_bytes: frame,
            slots: floor::slot_count(frame),
        })
        .collect();
    let results = Results {
        machine,
        quick,
        cpus,
        rows,
        setup,
        floor_slots,
        seconds: started.elapsed().as_secs_f64(),
    };
    crate::print(args.options.format, &ChannelReport::new(&results), |r| {
        crate::table::table(r.results)
    })
}

/// 8-byte ping-pong over `s` with a peer process.
fn latency(s: Subject, plan: &Plan) -> Result<Latency> {
    let (t, wait) = peer_of(s);
    let spawn = |fds: &[_]| Peer::spawn(Mode::Ping, t, wait, 8, plan.peer_cpu, fds);
    match t {
        Transport::Zipc => {
            // One message in flight: a one-page ring keeps it in one page (no TLB misses as
            // the ring turns), as the floor's single line does.
            let ping_config = zipc::Config::default().capacity(PING_RING);
            let (to_peer, from_peer) = (
                zipc::bytes::memfd(ping_config.clone())?,
                zipc::bytes::memfd(ping_config)?,
            );
            let mut end = ZipcPing {
                tx: Producer::from_fd(to_peer.try_clone()?)?,
                rx: Consumer::from_fd(from_peer.try_clone()?)?,
            };
            end.tx.set_wait(wait.wait());
            end.rx.set_wait(wait.wait());
            let peer = spawn(&[to_peer.as_fd(), from_peer.as_fd()])?;
            drop((to_peer, from_peer));
            ping(end, peer, plan)
        }
        Transport::Pipe => {
            let (to_r, to_w) = pipe()?;
            let (from_r, from_w) = pipe()?;
            let peer = spawn(&[to_r.as_fd(), from_w.as_fd()])?;
            drop((to_r, from_w));
            let end = FdPing {
                tx: File::from(to_w),
                rx: File::from(from_r),
            };
            ping(end, peer, plan)
        }
        Transport::Socket => {
            let (mine, theirs) = seqpacket_pair()?;
            let peer = spawn(&[theirs.as_fd()])?;
            drop(theirs);
            let rx = File::from(mine);
            let tx = rx.try_clone()?;
            ping(FdPing { tx, rx }, peer, plan)
        }
        Transport::Floor => {
            let (map, fd) = SharedMap::create(floor::PING_LEN)?;
            let peer = spawn(&[fd.as_fd()])?;
            drop(fd);
            let end = CacheLinePing::parent(map, Watch::child(peer.pid()));
            ping(end, peer, plan)
        }
        Transport::Futex => {
            let (map, fd) = SharedMap::create(floor::PING_LEN)?;
            let peer = spawn(&[fd.as_fd()])?;
            drop(fd);
            let end = FutexPing::parent(map, Watch::child(peer.pid()));
            ping(end, peer, plan)
        }
    }
}

/// Warms up (`plan.warmup` round trips or `plan.warmup_budget`, whichever comes first), then
/// times each round trip (one clock read per round trip: the time between consecutive
/// answers) until `plan.round_trips` or `plan.ping_budget`, whichever comes first.
fn ping(mut end: impl PingEnd, mut peer: Peer, plan: &Plan) -> Result<Latency> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| format!("histogram: {e:?}"))?;
    peer.wait_ready()?;
    let mut v = 1u64;
    let warmup = Instant::now();
    for i in 0..plan.warmup {
        end.send(v)?;
        expect_answer(end.recv()?, v)?;
        v += 2;
        if i % 256 == 255 && warmup.elapsed() >= plan.warmup_budget {
            break;
        }
    }
    let start = Instant::now();
    let mut prev = start;
    let mut done = 0u64;
    while done < plan.round_trips {
        end.send(v)?;
        let answer = end.recv()?;
        let now = Instant::now();
        expect_answer(answer, v)?;
        hist.saturating_record(u64::try_from((now - prev).as_nanos()).unwrap_or(u64::MAX));
        prev = now;
        v += 2;
        done += 1;
        if done.is_multiple_of(1024) && now - start >= plan.ping_budget {
            break;
        }
    }
    end.send(SENTINEL)?;
    peer.finish()?;
    // One way is half a round trip.
    let one_way = |q: f64| hist.value_at_quantile(q) as f64 / 2.0;
    Ok(Latency {
        p50: one_way(0.5),
        p99: one_way(0.99),
        p999: one_way(0.999),
        round_trips: done,
    })
}

fn expect_answer(answer: u64, sent: u64) -> Result<()> {
    if answer != sent.wrapping_add(1) {
        return Err(format!("the peer answered {answer} to {sent}").into());
    }
    Ok(())
}

/// One-way stream of `frame`-byte frames over `s` to a peer process that reads every byte.
fn stream(s: Subject, frame: usize, plan: &Plan) -> Result<Rate> {
    let (t, wait) = peer_of(s);
    let spawn = |fds: &[_]| Peer::spawn(Mode::Stream, t, wait, frame, plan.peer_cpu, fds);
    match t {
        Transport::Zipc => {
            let fd = zipc::bytes::memfd(channel_config())?;
            let mut producer = Producer::from_fd(fd.try_clone()?)?;
            producer.set_wait(wait.wait());
            let peer = spawn(&[fd.as_fd()])?;
            drop(fd);
            pump(ZipcSink(producer), peer, frame, plan)
        }
        Transport::Pipe => {
            let (r, w) = pipe()?;
            let peer = spawn(&[r.as_fd()])?;
            drop(r);
            pump(FdSink(File::from(w)), peer, frame, plan)
        }
        Transport::Socket => {
            let (mine, theirs) = seqpacket_pair()?;
            let peer = spawn(&[theirs.as_fd()])?;
            drop(theirs);
            pump(FdSink(File::from(mine)), peer, frame, plan)
        }
        Transport::Floor => {
            let (map, fd) = SharedMap::create(floor::slot_ring_len(frame))?;
            let peer = spawn(&[fd.as_fd()])?;
            drop(fd);
            let sink = SlotSender::new(map, frame, Watch::child(peer.pid()));
            pump(sink, peer, frame, plan)
        }
        Transport::Futex => Err("the futex floor is measured for latency only".into()),
    }
}

/// Sends frames (each a copy of one source buffer, stamped with its index in the first 8
/// bytes) for `plan.stream_budget`, closes, and times until the peer reports that it read
/// them all; checks the count and the sum of the stamps.
fn pump(mut sink: impl FrameSink, mut peer: Peer, frame: usize, plan: &Plan) -> Result<Rate> {
    if frame < 8 {
        return Err(format!("frames of {frame} bytes; at least 8 are needed").into());
    }
    let mut src: Vec<u8> = (0..frame).map(|i| (i % 251) as u8).collect();
    // Read the clock every ~8 KiB of frames, or every 1024 small ones.
    let mask: u64 = if frame <= 64 { 1023 } else { 1 };
    peer.wait_ready()?;
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        src[..8].copy_from_slice(&n.to_le_bytes());
        sink.send_frame(&src)?;
        n += 1;
        if n & mask == 0 && start.elapsed() >= plan.stream_budget {
            break;
        }
    }
    sink.close()?;
    let (count, sum) = peer.read_report()?;
    let secs = start.elapsed().as_secs_f64();
    peer.finish()?;
    // 0 + 1 + ... + (n - 1), wrapping as the peer's sum does.
    let expected = if n.is_multiple_of(2) {
        (n / 2).wrapping_mul(n.wrapping_sub(1))
    } else {
        n.wrapping_mul((n - 1) / 2)
    };
    if count != n || sum != expected {
        return Err(format!(
            "sent {n} frames, the peer read {count} (stamp sum {sum}, expected {expected})"
        )
        .into());
    }
    Ok(Rate::new(frame, n, secs))
}

/// Channel setup across two processes: a long-lived peer receives each new channel's fd over
/// a Unix socket (SCM_RIGHTS), attaches the consumer and answers.
fn setup(plan: &Plan) -> Result<Setup> {
    let (mine, theirs) = seqpacket_pair()?;
    let mut peer = Peer::spawn(
        Mode::Setup,
        Transport::Zipc,
        WaitMode::Adaptive,
        8,
        plan.peer_cpu,
        &[theirs.as_fd()],
    )?;
    drop(theirs);
    peer.wait_ready()?;
    let warmup = plan.setup_reps / 10 + 1;
    let mut local = Vec::with_capacity(plan.setup_reps);
    let mut total = Vec::with_capacity(plan.setup_reps);
    for i in 0..warmup + plan.setup_reps {
        let t0 = Instant::now();
        let fd = zipc::bytes::memfd(channel_config())?;
        let producer = Producer::from_fd(fd.try_clone()?)?;
        let t1 = Instant::now();
        let fds = [fd.as_raw_fd()];
        sendmsg::<()>(
            mine.as_raw_fd(),
            &[IoSlice::new(b"F")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )?;
        await_ack(&mine)?;
        let t2 = Instant::now();
        drop(producer);
        drop(fd);
        if i >= warmup {
            local.push(t1 - t0);
            total.push(t2 - t0);
        }
    }
    let mut bare = Vec::with_capacity(plan.setup_reps);
    for i in 0..warmup + plan.setup_reps {
        let t0 = Instant::now();
        send(mine.as_raw_fd(), b"P", MsgFlags::empty())?;
        await_ack(&mine)?;
        if i >= warmup {
            bare.push(t0.elapsed());
        }
    }
    drop(mine);
    peer.finish()?;
    Ok(Setup {
        reps: plan.setup_reps,
        local_ns: quantile(&mut local, 0.5),
        total_ns: quantile(&mut total, 0.5),
        total_p99_ns: quantile(&mut total, 0.99),
        bare_ns: quantile(&mut bare, 0.5),
    })
}

fn await_ack(sock: &OwnedFd) -> Result<()> {
    let mut buf = [0u8; 1];
    match recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())? {
        1 if buf[0] == b'A' => Ok(()),
        0 => Err("the peer closed the socket".into()),
        _ => Err(format!("the peer answered {:?}", buf[0] as char).into()),
    }
}

/// The `q` quantile of `samples`, in nanoseconds.
fn quantile(samples: &mut [Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[i].as_nanos() as f64
}
