//! Records the version of the embedded Rhai crate (from Cargo.lock) for `kernel_info`.

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"rhai\"" {
            if let Some(version) = lines.next().and_then(|l| l.split('"').nth(1)) {
                println!("cargo:rustc-env=RHAI_VERSION={version}");
            }
            break;
        }
    }
}
