//! Link settings for the `anomalyd` binary.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Relative relocations packed as DT_RELR (glibc 2.36, binutils 2.38; Debian 12):
    // the loader reads the whole relocation table at every start, and in the usual
    // RELA form it was 0.4 MB of the binary (17,000 entries of 24 bytes), all of it
    // resident for the daemon's lifetime. Packed, it is a few kilobytes.
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
