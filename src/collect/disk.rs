//! disk collector (stub, to be written).
use super::{CollectError, Collector, Paths};
use crate::config::DiskConfig;
use crate::sample::Sample;

#[allow(dead_code)]
pub struct Disk {
    paths: Paths,
    config: DiskConfig,
}

impl Disk {
    pub fn new(paths: Paths, config: DiskConfig) -> Self {
        Disk { paths, config }
    }
}

impl Collector for Disk {
    fn name(&self) -> &'static str {
        "disk"
    }
    fn collect(&mut self, _sample: &mut Sample) -> Result<(), CollectError> {
        Ok(())
    }
}
