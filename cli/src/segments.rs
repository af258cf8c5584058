//! `zipc ls` and `zipc clean`: the named segments in /dev/shm, and removing those whose
//! creator died.

use crate::Result;

/// Prints every named zipc segment with its size and whether its owner lives.
pub(crate) fn ls() -> Result<()> {
    let segments = zipc::shm::list()?;
    if segments.is_empty() {
        println!("no zipc segments in /dev/shm");
        return Ok(());
    }
    println!("{:<40} {:>12}  owner", "name", "bytes");
    for s in segments {
        let owner = if s.owner_alive {
            "alive"
        } else {
            "dead (stale)"
        };
        println!("{:<40} {:>12}  {owner}", s.name, s.bytes);
    }
    Ok(())
}

/// Removes the segments whose owner died; live ones stay.
pub(crate) fn clean() -> Result<()> {
    let mut removed = 0;
    for s in zipc::shm::list()?.into_iter().filter(|s| !s.owner_alive) {
        if zipc::shm::remove_if_stale(&s.name)? {
            println!("removed {} ({} bytes)", s.name, s.bytes);
            removed += 1;
        }
    }
    println!("{removed} stale segment(s) removed");
    Ok(())
}
