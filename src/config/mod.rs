//! The vocabulary every configuration section is read with: [`reader::Reader`], which
//! walks the YAML and collects *every* problem with its path, and the value types more
//! than one section uses (patterns, filters, the host's paths).
//!
//! A leaf: it imports nothing of ours. Each section's struct, defaults and parser live
//! with the code they configure (`collect/disk.rs`, `store/config.rs`, ...);
//! `settings.rs` assembles the whole [`crate::settings::Config`] from them.

pub mod file;
pub mod reader;
