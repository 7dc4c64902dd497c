//! cpu collector (stub, to be written).
use super::{CollectError, Collector, Paths};
use crate::sample::Sample;

pub struct Cpu {
    #[allow(dead_code)]
    paths: Paths,
}

impl Cpu {
    pub fn new(paths: Paths) -> Self {
        Cpu { paths }
    }
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn collect(&mut self, _sample: &mut Sample) -> Result<(), CollectError> {
        Ok(())
    }
}
