//! memory collector (stub, to be written).
use super::{CollectError, Collector, Paths};
use crate::sample::Sample;

pub struct Memory {
    #[allow(dead_code)]
    paths: Paths,
}

impl Memory {
    pub fn new(paths: Paths) -> Self {
        Memory { paths }
    }
}

impl Collector for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn collect(&mut self, _sample: &mut Sample) -> Result<(), CollectError> {
        Ok(())
    }
}
