//! `include/zipc.h` is what cbindgen makes of the crate now: regenerated in memory and compared.

use std::path::Path;

#[test]
fn the_checked_in_header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen parses the crate");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = dir.join("include/zipc.h");
    if std::env::var_os("ZIPC_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    if checked_in != fresh {
        let fresh = String::from_utf8_lossy(&fresh);
        let old = String::from_utf8_lossy(&checked_in);
        let first = fresh
            .lines()
            .zip(old.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(fresh.lines().count().min(old.lines().count()));
        panic!(
            "ffi/include/zipc.h is not what cbindgen makes of ffi/src (first difference at line \
             {}):\n  checked in: {:?}\n  generated:  {:?}\nregenerate it with \
             `ZIPC_BLESS=1 cargo test -p zipc-ffi --test header` and commit it",
            first + 1,
            old.lines().nth(first).unwrap_or("<end>"),
            fresh.lines().nth(first).unwrap_or("<end>"),
        );
    }
}
