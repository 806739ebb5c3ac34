//! A branch added to a running pipeline and taken out again while the rest plays on: the
//! second encoder, fed from the raw frames' tee.
//!
//! The branch starts with a leaky one-frame queue, so its encoder runs on a thread of its own
//! and a slow one loses frames instead of holding up the camera and the first encoder. It is
//! taken out from an idle probe on its tee pad (no buffer in flight), then stopped and removed.

use std::sync::mpsc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::error::MediaError;

/// How long removal waits for the tee to be between two buffers.
const UNLINK_WAIT: Duration = Duration::from_secs(1);

/// A branch in a running pipeline, linked to a tee's request pad.
pub struct EncoderBranch {
    bin: gst::Bin,
    tee: gst::Element,
    tee_pad: gst::Pad,
}

impl EncoderBranch {
    /// Adds `description` (ending in its own sinks) to `pipeline`, fed by the tee named `tee`.
    /// Call [`EncoderBranch::play`] once what watches its elements is attached.
    pub fn add(pipeline: &gst::Pipeline, tee: &str, description: &str) -> Result<Self, MediaError> {
        let what = "a second encoder";
        let tee = pipeline
            .by_name(tee)
            .ok_or_else(|| MediaError::build(what, "no raw frames' tee"))?;
        let bin = gst::parse::bin_from_description(
            &format!("queue leaky=downstream max-size-buffers=1 max-size-bytes=0 max-size-time=0 ! {description}"),
            true,
        )
        .map_err(|e| MediaError::build(what, e))?;
        pipeline.add(&bin).map_err(|e| MediaError::build(what, e))?;
        let tee_pad = match tee.request_pad_simple("src_%u") {
            Some(pad) => pad,
            None => {
                let _ = pipeline.remove(&bin);
                return Err(MediaError::build(what, "the tee gave no pad"));
            }
        };
        let branch = Self { bin, tee, tee_pad };
        let linked = branch
            .bin
            .static_pad("sink")
            .ok_or_else(|| MediaError::build(what, "no sink pad"))
            .and_then(|sink| {
                branch
                    .tee_pad
                    .link(&sink)
                    .map_err(|e| MediaError::build(what, e))
            });
        if let Err(e) = linked {
            branch.remove(pipeline);
            return Err(e);
        }
        Ok(branch)
    }

    pub fn bin(&self) -> &gst::Bin {
        &self.bin
    }

    /// Brings the branch to the pipeline's state.
    pub fn play(&self) -> Result<(), MediaError> {
        self.bin
            .sync_state_with_parent()
            .map_err(|e| MediaError::StateChange(e.to_string()))
    }

    /// Unlinks the branch between two buffers, stops it and takes it out of `pipeline`.
    pub fn remove(self, pipeline: &gst::Pipeline) {
        let (unlinked, wait) = mpsc::channel();
        let sink = self.bin.static_pad("sink");
        self.tee_pad
            .add_probe(gst::PadProbeType::IDLE, move |pad, _| {
                if let Some(sink) = &sink {
                    let _ = pad.unlink(sink);
                }
                let _ = unlinked.send(());
                gst::PadProbeReturn::Remove
            });
        if wait.recv_timeout(UNLINK_WAIT).is_err() {
            log::warn!("the second encoder's branch was busy; stopping it anyway");
        }
        let _ = self.bin.set_state(gst::State::Null);
        self.tee.release_request_pad(&self.tee_pad);
        if let Err(e) = pipeline.remove(&self.bin) {
            log::warn!("the second encoder's branch could not be removed: {e}");
        }
    }
}
