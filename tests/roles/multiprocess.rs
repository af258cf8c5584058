//! The producers of tests/multiprocess.rs: a million frames, then a clean close.

use crate::common::{fill_frame, frame_len};
use crate::shared::multiprocess::{FRAMES, MAX_EXTRA, Record};
use zipc::{Config, bytes, typed};

pub fn run(role: &str, args: &[&str]) {
    // Argument: the inherited memfd's number (`-fd`) or the segment name (`-named`).
    match role {
        "bytes-fd" => produce_bytes(bytes::Producer::from_fd(crate::fd_arg(args.first())).unwrap()),
        "bytes-named" => produce_bytes(bytes::create(name(args), Config::default()).unwrap()),
        "typed-fd" => produce_typed(typed::Producer::from_fd(crate::fd_arg(args.first())).unwrap()),
        "typed-named" => {
            produce_typed(typed::create(name(args), Config::default().capacity(64 * 1024)).unwrap())
        }
        other => panic!("unknown role multiprocess:{other}"),
    }
}

fn name<'a>(args: &[&'a str]) -> &'a str {
    args.first().expect("a segment name")
}

fn produce_bytes(mut tx: bytes::Producer) {
    for seq in 0..FRAMES {
        let mut loan = tx.loan(frame_len(seq, MAX_EXTRA)).unwrap();
        fill_frame(seq, &mut loan);
        loan.commit();
    }
}

fn produce_typed(mut tx: typed::Producer<Record>) {
    for seq in 0..FRAMES {
        if seq % 2 == 0 {
            tx.send(&Record::new(seq)).unwrap();
        } else {
            let mut loan = tx.loan().unwrap();
            *loan = Record::new(seq);
            loan.commit();
        }
    }
}
