//! Keyframe requests for V4L2 hardware encoders (`v4l2h264enc` on a Raspberry Pi).
//!
//! A browser's PLI or FIR reaches the encoder as an upstream force-key-unit event. Software
//! encoders (x264, openh264, vp8) honour it; GStreamer 1.22's V4L2 encoder ignores it
//! (`gstv4l2videoenc.c` never looks at the frame's force-keyframe flag). What it does honour is
//! its `extra-controls` property: set while the device is open, each field is applied at once
//! as a V4L2 control. So for such an encoder a request also sets `force_key_frame=1`
//! (V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, which the Pi's codec driver implements), keeping the
//! configured controls.

use gstreamer as gst;
use gstreamer::prelude::*;

/// The V4L2 control that makes the next frame a keyframe.
const FORCE_KEY_FRAME: &str = "force_key_frame";

/// The element of `bin` that encodes video through V4L2 controls, if there is one: a video
/// encoder with an `extra-controls` property.
pub fn v4l2_encoder(bin: &gst::Bin) -> Option<gst::Element> {
    bin.iterate_recurse().into_iter().flatten().find(|element| {
        let is_video_encoder = element.factory().is_some_and(|factory| {
            factory
                .has_type(gst::ElementFactoryType::ENCODER | gst::ElementFactoryType::MEDIA_VIDEO)
        });
        is_video_encoder && element.find_property("extra-controls").is_some()
    })
}

/// `controls` (the configured `extra-controls`, if any) with `force_key_frame=1` added.
pub fn with_forced_keyframe(controls: Option<gst::Structure>) -> gst::Structure {
    let mut controls = controls.unwrap_or_else(|| gst::Structure::new_empty("controls"));
    controls.set(FORCE_KEY_FRAME, 1i32);
    controls
}

/// Asks `encoder` (from `v4l2_encoder`) for a keyframe now.
pub fn force_keyframe(encoder: &gst::Element) {
    let current = encoder.property::<Option<gst::Structure>>("extra-controls");
    encoder.set_property("extra-controls", with_forced_keyframe(current));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_controls_are_kept() {
        super::super::init_gstreamer().unwrap();
        let configured: gst::Structure = "controls,repeat_sequence_header=1,video_bitrate=2000000"
            .parse()
            .unwrap();
        let forced = with_forced_keyframe(Some(configured));
        assert_eq!(forced.get::<i32>("repeat_sequence_header").unwrap(), 1);
        assert_eq!(forced.get::<i32>("video_bitrate").unwrap(), 2_000_000);
        assert_eq!(forced.get::<i32>(FORCE_KEY_FRAME).unwrap(), 1);
    }

    #[test]
    fn without_configured_controls_only_the_request_is_set() {
        super::super::init_gstreamer().unwrap();
        let forced = with_forced_keyframe(None);
        assert_eq!(forced.name(), "controls");
        assert_eq!(forced.n_fields(), 1);
        assert_eq!(forced.get::<i32>(FORCE_KEY_FRAME).unwrap(), 1);
    }

    #[test]
    fn software_encoders_and_v4l2_sources_are_not_v4l2_encoders() {
        super::super::init_gstreamer().unwrap();
        // x264enc has no extra-controls; v4l2src has them but is no encoder.
        for description in ["videotestsrc ! x264enc", "v4l2src ! fakesink"] {
            let bin = gst::parse::bin_from_description(description, false).unwrap();
            assert!(v4l2_encoder(&bin).is_none(), "{description}");
        }
    }
}
