//! What peercam asks of a running video encoder: a new target bitrate (from `bitrate`), and a
//! keyframe where the encoder would not otherwise give one.
//!
//! Bitrate: `x264enc bitrate` (kbit/s), `openh264enc bitrate` and `vp8enc target-bitrate`
//! (bit/s) may all change while playing; a V4L2 encoder takes `video_bitrate` through its
//! `extra-controls`.
//!
//! Keyframes: a browser's PLI or FIR reaches the encoder as an upstream force-key-unit event.
//! Software encoders (x264, openh264, vp8) honour it; GStreamer 1.22's V4L2 encoder ignores it
//! (`gstv4l2videoenc.c` never looks at the frame's force-keyframe flag). What it does honour is
//! its `extra-controls` property: set while the device is open, each field is applied at once
//! as a V4L2 control. So for such an encoder a request also sets `force_key_frame=1`
//! (V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, which the Pi's codec driver implements), keeping the
//! configured controls.

use gstreamer as gst;
use gstreamer::prelude::*;

/// The V4L2 control that makes the next frame a keyframe.
const FORCE_KEY_FRAME: &str = "force_key_frame";
/// The V4L2 control of the target bitrate, in bit/s.
const VIDEO_BITRATE: &str = "video_bitrate";

/// The kinds of encoder whose bitrate peercam can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    X264,
    OpenH264,
    Vp8,
    V4l2,
}

/// A running video encoder of a call's video branch.
#[derive(Debug, Clone)]
pub struct EncoderControl {
    element: gst::Element,
    kind: Kind,
}

impl EncoderControl {
    /// The encoder of `bin` peercam knows how to drive, if there is one (a custom encoder line
    /// with another element, or a pre-encoded source, has none).
    pub fn find(bin: &gst::Bin) -> Option<Self> {
        bin.iterate_recurse()
            .into_iter()
            .flatten()
            .find_map(|element| {
                let kind = match element.factory()?.name().as_str() {
                    "x264enc" => Kind::X264,
                    "openh264enc" => Kind::OpenH264,
                    "vp8enc" => Kind::Vp8,
                    _ if is_v4l2_encoder(&element) => Kind::V4l2,
                    _ => return None,
                };
                Some(Self { element, kind })
            })
    }

    /// Sets the encoder's target bitrate while it runs.
    pub fn set_bitrate(&self, kbps: u32) {
        let bps = kbps.saturating_mul(1000);
        match self.kind {
            Kind::X264 => self.element.set_property("bitrate", kbps),
            Kind::OpenH264 => self.element.set_property("bitrate", bps),
            Kind::Vp8 => self
                .element
                .set_property("target-bitrate", i32::try_from(bps).unwrap_or(i32::MAX)),
            Kind::V4l2 => {
                let current = self
                    .element
                    .property::<Option<gst::Structure>>("extra-controls");
                let controls = with_bitrate(current, i32::try_from(bps).unwrap_or(i32::MAX));
                self.element.set_property("extra-controls", controls);
            }
        }
    }

    /// Asks for a keyframe now, where the force-key-unit event alone would not.
    pub fn force_keyframe(&self) {
        if self.kind == Kind::V4l2 {
            let current = self
                .element
                .property::<Option<gst::Structure>>("extra-controls");
            self.element
                .set_property("extra-controls", with_forced_keyframe(current));
        }
    }
}

/// A video encoder driven through V4L2 controls: one with an `extra-controls` property.
fn is_v4l2_encoder(element: &gst::Element) -> bool {
    let is_video_encoder = element.factory().is_some_and(|factory| {
        factory.has_type(gst::ElementFactoryType::ENCODER | gst::ElementFactoryType::MEDIA_VIDEO)
    });
    is_video_encoder && element.find_property("extra-controls").is_some()
}

/// `controls` (the configured `extra-controls`, if any) with `force_key_frame=1` added.
pub fn with_forced_keyframe(controls: Option<gst::Structure>) -> gst::Structure {
    let mut controls = controls.unwrap_or_else(|| gst::Structure::new_empty("controls"));
    controls.set(FORCE_KEY_FRAME, 1i32);
    controls
}

/// `controls` with a new `video_bitrate`, and without a keyframe request left from before
/// (setting the controls again would apply it again).
pub fn with_bitrate(controls: Option<gst::Structure>, bps: i32) -> gst::Structure {
    let mut controls = controls.unwrap_or_else(|| gst::Structure::new_empty("controls"));
    controls.remove_field(FORCE_KEY_FRAME);
    controls.set(VIDEO_BITRATE, bps);
    controls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_controls_are_kept() {
        crate::media::init_gstreamer().unwrap();
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
        crate::media::init_gstreamer().unwrap();
        let forced = with_forced_keyframe(None);
        assert_eq!(forced.name(), "controls");
        assert_eq!(forced.n_fields(), 1);
        assert_eq!(forced.get::<i32>(FORCE_KEY_FRAME).unwrap(), 1);
    }

    #[test]
    fn a_new_bitrate_keeps_the_controls_but_not_an_old_keyframe_request() {
        crate::media::init_gstreamer().unwrap();
        let requested = with_forced_keyframe(Some(
            "controls,repeat_sequence_header=1,video_bitrate=2000000"
                .parse()
                .unwrap(),
        ));
        let changed = with_bitrate(Some(requested), 750_000);
        assert_eq!(changed.get::<i32>("repeat_sequence_header").unwrap(), 1);
        assert_eq!(changed.get::<i32>(VIDEO_BITRATE).unwrap(), 750_000);
        assert!(!changed.has_field(FORCE_KEY_FRAME));
    }

    #[test]
    fn the_software_encoders_are_found_and_a_v4l2_source_is_no_encoder() {
        crate::media::init_gstreamer().unwrap();
        for (description, kind) in [
            ("videotestsrc ! x264enc ! fakesink", Some(Kind::X264)),
            ("videotestsrc ! vp8enc ! fakesink", Some(Kind::Vp8)),
            // v4l2src has extra-controls but is no encoder.
            ("v4l2src ! fakesink", None),
            ("videotestsrc ! fakesink", None),
        ] {
            let bin = gst::parse::bin_from_description(description, false).unwrap();
            assert_eq!(
                EncoderControl::find(&bin).map(|c| c.kind),
                kind,
                "{description}"
            );
        }
    }

    #[test]
    fn bitrate_changes_reach_a_software_encoder() {
        crate::media::init_gstreamer().unwrap();
        let bin =
            gst::parse::bin_from_description("videotestsrc ! x264enc ! fakesink", false).unwrap();
        let control = EncoderControl::find(&bin).unwrap();
        control.set_bitrate(750);
        assert_eq!(control.element.property::<u32>("bitrate"), 750);
    }
}
