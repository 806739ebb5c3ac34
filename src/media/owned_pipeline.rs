//! A peer's pipeline that cannot outlive its owner while playing: dropping an
//! `OwnedPipeline` on any path (a finished call, an error half-way through building a peer, a
//! panic unwinding) detaches its bus handler and sets it to NULL, which closes its sockets and
//! ends its threads. Without this, an error after `set_state(Playing)` left the pipeline
//! running unreferenced: three descriptors and a thread kept for good per refused offer.
//!
//! Runs on whichever thread drops it; setting NULL blocks briefly, so the media owner drops
//! peers inside `block_in_place` as it does for every other state change.

use std::ops::Deref;

use gstreamer as gst;
use gstreamer::prelude::*;

/// A pipeline that is stopped when dropped.
#[derive(Debug)]
pub struct OwnedPipeline(gst::Pipeline);

impl OwnedPipeline {
    pub fn new(name: &str) -> Self {
        Self(gst::Pipeline::with_name(name))
    }
}

impl Deref for OwnedPipeline {
    type Target = gst::Pipeline;

    fn deref(&self) -> &gst::Pipeline {
        &self.0
    }
}

impl Drop for OwnedPipeline {
    fn drop(&mut self) {
        if let Some(bus) = self.0.bus() {
            bus.unset_sync_handler();
        }
        // No EOS first: nothing in a call needs it, and NULL stops every element and closes
        // every socket.
        if let Err(e) = self.0.set_state(gst::State::Null) {
            log::warn!("{}: pipeline did not stop cleanly: {e}", self.0.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_pipeline_is_stopped() {
        gst::init().unwrap();
        let pipeline = OwnedPipeline::new("owned-pipeline-test");
        let source = gst::ElementFactory::make("fakesrc").build().unwrap();
        let sink = gst::ElementFactory::make("fakesink").build().unwrap();
        pipeline.add_many([&source, &sink]).unwrap();
        source.link(&sink).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let kept = pipeline.0.clone();
        drop(pipeline);
        assert_eq!(kept.current_state(), gst::State::Null);
    }
}
