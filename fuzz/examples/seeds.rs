//! Writes the seed corpus, `fuzz/corpus/<target>/<name>`, from real channels (see
//! `zipc::fuzzing::seeds`). Run from the repository's root:
//! `RUSTFLAGS="--cfg fuzzing" cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, name, bytes) in zipc::fuzzing::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
