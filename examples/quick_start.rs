//! The README's quick start: a byte channel and a typed channel between two threads.
//!
//! `cargo run --example quick_start`

fn main() -> zipc::Result<()> {
    // Byte frames: write in place, read in place.
    let (mut tx, mut rx) = zipc::bytes::channel(zipc::Config::default())?;
    let producer = std::thread::spawn(move || -> zipc::Result<()> {
        for i in 0..3u32 {
            let text = format!("frame {i}");
            let mut loan = tx.loan(text.len())?;
            loan.copy_from_slice(text.as_bytes());
            loan.commit();
        }
        Ok(()) // dropping `tx` closes the channel
    });
    loop {
        match rx.recv() {
            Ok(frame) => println!("got {:?}", String::from_utf8_lossy(&frame)),
            Err(zipc::Error::Disconnected) => break,
            Err(e) => return Err(e),
        }
    }
    producer.join().expect("producer thread")?;

    // Typed values: any bytemuck::Pod type.
    let (mut tx, mut rx) = zipc::typed::channel::<[f64; 3]>(zipc::Config::default())?;
    tx.send(&[1.0, 2.0, 3.0])?;
    println!("got {:?}", *rx.recv()?);
    Ok(())
}
