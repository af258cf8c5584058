//! The peers of tests/crash.rs, which the tests kill with SIGKILL.

use crate::common::{fill_frame, frame_len};
use crate::shared::crash::MAX_EXTRA;
use std::time::Duration;
use zipc::{Config, bytes};

pub fn run(role: &str, args: &[&str]) {
    match role {
        // Argument: the inherited memfd's number.
        "producer-fd" => {
            produce_forever(bytes::Producer::from_fd(crate::fd_arg(args.first())).unwrap())
        }
        // Argument: the segment name.
        "producer-named" => {
            let name = args.first().expect("a segment name");
            produce_forever(bytes::create(name, Config::default().capacity(64 * 1024)).unwrap())
        }
        // Argument: the inherited memfd's number. Takes two frames, then waits to be killed.
        "consumer-fd" => {
            let mut rx = bytes::Consumer::from_fd(crate::fd_arg(args.first())).unwrap();
            drop(rx.recv().unwrap());
            drop(rx.recv().unwrap());
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role crash:{other}"),
    }
}

fn produce_forever(mut tx: bytes::Producer) -> ! {
    for seq in 0.. {
        let mut loan = tx.loan(frame_len(seq, MAX_EXTRA)).unwrap();
        fill_frame(seq, &mut loan);
        loan.commit();
    }
    unreachable!()
}
