//! Two processes over a named channel: the parent creates `zipc.example-<pid>` in /dev/shm,
//! re-runs this program as the child, which opens it and echoes what it reads.
//!
//! `cargo run --example cross_process`

use std::process::Command;
use std::time::Duration;

fn child(name: &str) -> zipc::Result<()> {
    // The parent may not have created the channel yet: wait for it.
    let mut rx = zipc::bytes::open_timeout(name, Duration::from_secs(10))?;
    let mut total = 0;
    loop {
        match rx.recv() {
            Ok(frame) => total += frame.len(),
            Err(zipc::Error::Disconnected) => break,
            Err(e) => return Err(e),
        }
    }
    println!("child: received {total} bytes");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let (Some(flag), Some(name)) = (args.next(), args.next())
        && flag == "--child"
    {
        return Ok(child(&name)?);
    }
    let name = format!("example-{}", std::process::id());
    let mut tx = zipc::bytes::create(&name, zipc::Config::default().capacity(1 << 20))?;
    let mut peer = Command::new(std::env::current_exe()?)
        .args(["--child", &name])
        .spawn()?;
    let block = vec![0xabu8; 64 * 1024];
    for _ in 0..1024 {
        // Waits while the ring is full; times out if the child never shows up.
        tx.send_timeout(&block, Duration::from_secs(10))?;
    }
    // Close: the child drains what is left, then sees Disconnected. Had the child not attached
    // yet, this would wait for it (up to `Config::linger`) and say how many frames it missed.
    tx.close()?;
    let status = peer.wait()?;
    println!("parent: sent 64 MiB; child exited with {status}");
    Ok(())
}
