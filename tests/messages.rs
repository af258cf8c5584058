//! Errors of the transport and process layers name what the user named (the address, the
//! link, the program), never zipc's internals (a link's segments, a Rust tuple), and their
//! `Display` reads as a sentence.
#![cfg(not(loom))]

use std::path::PathBuf;
use std::time::Duration;
use zipc::process::{Command, Pool, Worker};
use zipc::transport::{self, Address, Shm};
use zipc::{Config, Error};

fn unique(tag: &str) -> String {
    static N: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    format!("msg-{}-{tag}-{}", std::process::id(), *n)
}

fn connect(address: &str) -> Error {
    let address: Address = address.parse().unwrap();
    transport::connect(&address).expect_err("nothing listens there")
}

/// A socket path nothing is bound at: in a directory that does not exist.
fn missing_socket() -> PathBuf {
    std::env::temp_dir()
        .join(unique("no-such-dir"))
        .join("x.sock")
}

#[test]
fn a_unix_socket_nobody_listens_at_is_named() {
    let path = missing_socket();
    let e = connect(&format!("unix:{}", path.display()));
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "a Unix socket listening at {} was not found",
            path.display()
        )
    );
    // A socket file whose owner is gone (std's listener leaves it behind) says the same.
    let stale = std::env::temp_dir().join(format!("zipc-{}.sock", unique("stale")));
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let e = connect(&format!("unix:{}", stale.display()));
    std::fs::remove_file(&stale).unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "a Unix socket listening at {} was not found",
            stale.display()
        )
    );
}

#[test]
fn a_live_unix_socket_is_named() {
    let path = std::env::temp_dir().join(format!("zipc-{}.sock", unique("live")));
    let address = Address::Unix(path.clone());
    let _listener = transport::listen(&address).unwrap();
    let e = transport::listen(&address).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("a live Unix socket at {} already exists", path.display())
    );
}

#[test]
fn a_unix_socket_path_that_cannot_be_bound_is_named() {
    let path = missing_socket();
    let e = transport::listen(&Address::Unix(path.clone())).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(&e, Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert!(
        text.starts_with(&format!(
            "I/O error: cannot bind a Unix socket at {}: ",
            path.display()
        )),
        "{text}"
    );
}

#[test]
fn a_tcp_address_nobody_listens_at_is_named_as_written() {
    let e = connect("tcp:127.0.0.1:1");
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    assert_eq!(e.to_string(), "a TCP listener at 127.0.0.1:1 was not found");
    // An IPv6 host is written in brackets, as in the address (where IPv6 is missing the
    // connect fails otherwise, and says so of the same address).
    let e = connect("tcp:[::1]:1");
    assert!(e.to_string().contains(" [::1]:1"), "{e}");
    assert!(!e.to_string().contains('"'), "{e}");
}

#[test]
fn a_tcp_address_in_use_is_named() {
    let listener = transport::listen(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
    let address = listener.address().unwrap();
    let Address::Tcp { port, .. } = &address else {
        panic!("{address:?}");
    };
    let e = transport::listen(&address).unwrap_err();
    assert!(matches!(e, Error::Exists(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("a TCP listener at 127.0.0.1:{port} already exists")
    );
}

#[test]
fn shm_link_errors_name_the_link_not_its_segments() {
    let name = unique("link");
    let address = Address::Shm(name.clone());
    let mut texts = Vec::new();
    let e = connect(&format!("shm:{name}"));
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    texts.push((
        e.to_string(),
        format!("a listener at shm:{name} was not found"),
    ));
    let mut listener = transport::listen(&address).unwrap();
    let e = transport::listen(&address).unwrap_err();
    assert!(matches!(e, Error::Exists(_)), "{e:?}");
    texts.push((
        e.to_string(),
        format!("a live link at shm:{name} already exists"),
    ));
    let _first = transport::connect(&address).unwrap();
    let busy = format!("the link shm:{name} already has a peer connected to it");
    let e = transport::connect(&address).unwrap_err();
    assert!(matches!(e, Error::Busy(_)), "{e:?}");
    texts.push((e.to_string(), busy.clone()));
    let _accepted = listener.accept_timeout(Duration::from_secs(30)).unwrap();
    // Directly, and once the link is up, too.
    texts.push((Shm::connect(&name).unwrap_err().to_string(), busy));
    // A name of its own is fine, but the segments' names would be too long.
    let long = "x".repeat(zipc::shm::MAX_NAME_LEN);
    let e = Shm::listen(&long, Config::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidName(_)), "{e:?}");
    texts.push((
        e.to_string(),
        format!(
            "invalid segment name: {long:?} is too long for a link, whose segments add 4 \
             bytes (\".a2b\") to it"
        ),
    ));
    for (text, expect) in texts {
        assert_eq!(text, expect);
    }
}

#[test]
fn a_missing_program_is_named() {
    let e = Worker::spawn(&Command::new("/nonexistent/zipc-worker")).unwrap_err();
    assert!(
        matches!(&e, Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with("I/O error: cannot run /nonexistent/zipc-worker: "),
        "{text}"
    );
    // Looked up in PATH.
    let mut cmd = Command::new("zipc-no-such-program");
    cmd.env("PATH", "/nonexistent");
    let text = Worker::spawn(&cmd).unwrap_err().to_string();
    assert_eq!(
        text,
        "I/O error: the program zipc-no-such-program was not found in any directory of \
         PATH=/nonexistent"
    );
}

#[test]
fn a_missing_working_directory_is_named() {
    let mut cmd = Command::new("/bin/sh");
    cmd.current_dir("/nonexistent/zipc-dir");
    let e = Worker::spawn(&cmd).unwrap_err();
    assert!(
        matches!(&e, Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(
            "I/O error: cannot start /bin/sh in the directory /nonexistent/zipc-dir: "
        ),
        "{text}"
    );
}

#[test]
fn a_pool_of_nothing_says_which_setting() {
    let e = Pool::builder(Command::new("/bin/true"))
        .size(0)
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid argument: the pool's size(0): a pool needs at least 1 worker"
    );
    let e = Pool::builder(Command::new("/bin/true"))
        .max_in_flight(0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("max_in_flight(0)"), "{e}");
}
