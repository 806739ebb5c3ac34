//! What a call's pipeline will be, decided without touching GStreamer: the video codec, the
//! encoder and the GStreamer launch descriptions of the two send branches.
//!
//! Pure functions of the settings, the codecs the browser can receive and the set of element
//! factories that exist, so the choices (hardware before software, H.264 before VP8, the reason
//! logged for each) are unit-tested here and the pipeline code only assembles what this says.

use std::fmt;

use thiserror::Error;

use super::settings::MediaSettings;
use crate::config::PRE_ENCODED;

/// RTP payload types used in the device's offer (a viewer's offer chooses its own).
pub const VIDEO_PAYLOAD: u32 = 96;
pub const AUDIO_PAYLOAD: u32 = 111;
/// The shared source's payloaders, by name.
pub const VIDEO_PAYLOADER: &str = "videopay";
pub const AUDIO_PAYLOADER: &str = "audiopay";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Vp8,
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::H264 => "H264",
            Self::Vp8 => "VP8",
        })
    }
}

/// The encoders peercam knows how to drive, best first for each codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// The board's V4L2 stateful encoder (Raspberry Pi up to 4).
    V4l2H264,
    X264,
    OpenH264,
    Vp8,
    /// `media.video_encoder` from the config (must produce H.264).
    Custom,
    /// `media.video_encoder = "none"`: the source already produces H.264, passed through.
    PreEncoded,
}

impl Encoder {
    /// The GStreamer element factory behind this encoder.
    pub fn factory(self) -> Option<&'static str> {
        match self {
            Self::V4l2H264 => Some("v4l2h264enc"),
            Self::X264 => Some("x264enc"),
            Self::OpenH264 => Some("openh264enc"),
            Self::Vp8 => Some("vp8enc"),
            Self::Custom | Self::PreEncoded => None,
        }
    }

    fn codec(self) -> VideoCodec {
        match self {
            Self::Vp8 => VideoCodec::Vp8,
            _ => VideoCodec::H264,
        }
    }
}

const H264_ENCODERS: [Encoder; 3] = [Encoder::V4l2H264, Encoder::X264, Encoder::OpenH264];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    /// The browser takes a codec the device sends, but its encoder is not installed.
    #[error(
        "no video encoder for the codecs this browser receives ({offered}): install {packages}"
    )]
    NoEncoder { offered: String, packages: String },
    /// The browser takes neither codec the device sends (or, with a camera that encodes
    /// H.264 itself, not H.264): no package would help.
    #[error(
        "this browser receives {offered}, and the device sends {sends}: try another browser \
         (every current Chrome, Safari, Edge and Firefox receives VP8)"
    )]
    NoCommonCodec {
        offered: String,
        sends: &'static str,
    },
}

/// The Debian package that has an encoder element.
fn package_of(factory: &str) -> &'static str {
    match factory {
        "x264enc" => "gstreamer1.0-plugins-ugly (x264enc)",
        "openh264enc" => "gstreamer1.0-plugins-bad (openh264enc)",
        "v4l2h264enc" => "gstreamer1.0-plugins-good (v4l2h264enc)",
        _ => "gstreamer1.0-plugins-good (vp8enc)",
    }
}

/// The decided video branch of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoPlan {
    pub codec: VideoCodec,
    pub encoder: Encoder,
    /// Why this encoder, for the log.
    pub reason: String,
    /// Launch description of the shared part: the source to encoded frames (H.264 byte-stream
    /// access units with SPS and PPS at every IDR, or VP8), with a tee named `raw` on the raw
    /// frames before the encoder (none for a pre-encoded source).
    pub description: String,
}

/// Chooses codec and encoder. `browser_codecs` is what the caller can receive (empty: unknown,
/// assume H.264, which every current browser receives); `has_factory` says whether a GStreamer
/// element factory exists.
pub fn plan_video(
    settings: &MediaSettings,
    browser_codecs: &[String],
    has_factory: impl Fn(&str) -> bool,
) -> Result<VideoPlan, PlanError> {
    let receives = |codec: VideoCodec| {
        browser_codecs.is_empty()
            || browser_codecs
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&codec.to_string()))
    };
    let mut candidates: Vec<Encoder> = Vec::new();
    if receives(VideoCodec::H264) {
        match settings.video_encoder.as_deref() {
            Some(PRE_ENCODED) => candidates.push(Encoder::PreEncoded),
            Some(_) => candidates.push(Encoder::Custom),
            None => {}
        }
        candidates.extend(H264_ENCODERS);
    }
    // A pre-encoded source is H.264 and nothing else.
    if receives(VideoCodec::Vp8) && settings.video_encoder.as_deref() != Some(PRE_ENCODED) {
        candidates.push(Encoder::Vp8);
    }
    let skipped: Vec<&str> = candidates
        .iter()
        .filter_map(|e| e.factory())
        .filter(|f| !has_factory(f))
        .collect();
    let offered = || {
        if browser_codecs.is_empty() {
            "no video codec".to_owned()
        } else {
            browser_codecs.join(", ")
        }
    };
    if candidates.is_empty() {
        return Err(PlanError::NoCommonCodec {
            offered: offered(),
            sends: if settings.video_encoder.as_deref() == Some(PRE_ENCODED) {
                "H.264 only (its camera encodes it)"
            } else {
                "H.264 or VP8"
            },
        });
    }
    let encoder = candidates
        .into_iter()
        .find(|e| e.factory().is_none_or(&has_factory))
        .ok_or_else(|| {
            let packages: Vec<&str> = skipped.iter().map(|f| package_of(f)).collect();
            PlanError::NoEncoder {
                offered: offered(),
                packages: packages.join(" or "),
            }
        })?;
    let codec = encoder.codec();
    let mut reason = match encoder {
        Encoder::Custom => "media.video_encoder from the config".to_owned(),
        Encoder::PreEncoded => {
            "the source is already H.264 (media.video_encoder = \"none\")".to_owned()
        }
        Encoder::V4l2H264 => "hardware encoder found".to_owned(),
        _ => format!("software encoder {}", encoder.factory().unwrap_or("?")),
    };
    if !skipped.is_empty() {
        reason.push_str(&format!("; not available: {}", skipped.join(", ")));
    }
    if codec == VideoCodec::Vp8 && !receives(VideoCodec::H264) {
        reason.push_str("; the browser does not receive H.264");
    }
    Ok(VideoPlan {
        codec,
        encoder,
        reason,
        description: video_description(settings, encoder),
    })
}

fn video_description(s: &MediaSettings, encoder: Encoder) -> String {
    // The framerate is a ceiling: a faster camera is thinned to it, a slower one keeps its own
    // rate (duplicated frames would only cost bits). `drop-only` also keeps videorate from
    // holding every frame until the next one arrives: a frame interval (33 ms at 30 fps) on
    // the first frame of a call and on every frame after it.
    let raw = format!(
        "videoconvert ! videoscale ! videorate drop-only=true max-rate={f} ! \
         video/x-raw,format=I420,width={w},height={h},framerate=[1/1,{f}/1],pixel-aspect-ratio=1/1",
        w = s.width,
        h = s.height,
        f = s.framerate
    );
    if encoder == Encoder::PreEncoded {
        return format!("{}{}", s.video_source, encoder_description(s, encoder));
    }
    format!(
        "{} ! {raw} ! tee name=raw ! {}",
        s.video_source,
        encoder_description(s, encoder)
    )
}

/// Launch description of `encoder` from raw frames (I420 at the configured size) to encoded
/// frames (for a pre-encoded source, from its H.264 to access units): the first encoder's, or
/// a second one's on the same raw frames.
pub fn encoder_description(s: &MediaSettings, encoder: Encoder) -> String {
    // The adaptive bitrate's starting point; it moves the encoder from there while it runs.
    let kbps = s.video_bitrate.start_kbps();
    let bps = kbps * 1000;
    let gop = s.keyframe_interval;
    // Constrained Baseline, level 3.1: profile-level-id 42e01f, which every browser decodes.
    let h264_caps = "video/x-h264,profile=constrained-baseline,stream-format=byte-stream";
    let encode = match encoder {
        Encoder::V4l2H264 => format!(
            "v4l2h264enc extra-controls=\"controls,repeat_sequence_header=1,\
             video_bitrate={bps},h264_i_frame_period={gop}\" ! {h264_caps},level=(string)3.1"
        ),
        Encoder::X264 => format!(
            "x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} \
             key-int-max={gop} bframes=0 b-adapt=false ! {h264_caps}"
        ),
        Encoder::OpenH264 => format!(
            "openh264enc bitrate={bps} gop-size={gop} complexity=low rate-control=bitrate \
             usage-type=camera ! {h264_caps}"
        ),
        // libvpx's fastest real-time speed (`cpu-used=16`): 720p at ~158 fps on this x86
        // machine where 8 managed ~84 (docs/benchmarks.md), the margin a small core needs;
        // and no taller than `vp8_max_height`.
        Encoder::Vp8 => format!(
            "{}vp8enc deadline=1 cpu-used=16 end-usage=cbr target-bitrate={bps} \
             keyframe-max-dist={gop} lag-in-frames=0 error-resilient=default threads=2",
            vp8_scale(s)
        ),
        Encoder::Custom => format!(
            "{} ! {h264_caps}",
            s.video_encoder.as_deref().unwrap_or("x264enc")
        ),
        Encoder::PreEncoded => String::new(),
    };
    // Every IDR carries SPS and PPS in band, so any viewer can start at any keyframe.
    let parse = match encoder.codec() {
        VideoCodec::H264 => {
            " ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au"
        }
        VideoCodec::Vp8 => "",
    };
    format!("{encode}{parse}")
}

/// What scales the raw frames down to `vp8_max_height` (the width in proportion, even) before
/// VP8's encoder; nothing when they are no taller.
fn vp8_scale(s: &MediaSettings) -> String {
    if s.height <= s.vp8_max_height {
        return String::new();
    }
    let height = s.vp8_max_height & !1;
    let width = ((u64::from(s.width) * u64::from(height) / u64::from(s.height)) as u32 & !1).max(2);
    format!("videoscale ! video/x-raw,width={width},height={height},pixel-aspect-ratio=1/1 ! ")
}

/// The shared source's video payloader, after the encoder: encoded frames to RTP with payload
/// type `pt`. Nothing after it: a capsfilter would take the payloader's lists of packets one by
/// one.
pub fn video_payload(codec: VideoCodec, pt: u32) -> String {
    match codec {
        VideoCodec::H264 => {
            format!("rtph264pay name={VIDEO_PAYLOADER} aggregate-mode=zero-latency pt={pt}")
        }
        VideoCodec::Vp8 => {
            format!("rtpvp8pay name={VIDEO_PAYLOADER} picture-id-mode=15-bit pt={pt}")
        }
    }
}

/// The RTP caps a peer offers for `codec`, complete (the `fmtp` parameters included), so an
/// offer can be made before the encoder's first frame: H.264 is Constrained Baseline level 3.1
/// (`42e01f`), which every browser decodes, in packetization mode 1.
pub fn video_rtp_caps(codec: VideoCodec, pt: u32) -> String {
    match codec {
        VideoCodec::H264 => format!(
            "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload={pt},\
             packetization-mode=(string)1,profile-level-id=(string)42e01f,\
             level-asymmetry-allowed=(string)1"
        ),
        VideoCodec::Vp8 => {
            format!("application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload={pt}")
        }
    }
}

/// The RTP caps of the audio both ways: Opus at 48 kHz, stereo as RFC 7587 writes it, with
/// payload type `pt`.
pub fn audio_caps(pt: u32) -> String {
    format!(
        "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload={pt},\
         encoding-params=(string)2,minptime=(string)10,useinbandfec=(string)1"
    )
}

/// The shared source's audio payloader, after the Opus encoder.
pub fn audio_payload(pt: u32) -> String {
    format!("rtpopuspay name={AUDIO_PAYLOADER} pt={pt}")
}

/// Launch description of the shared audio encoder, microphone to Opus frames; `None` for a
/// device without a microphone. In-band FEC is on: the media owner tells the encoder the worst
/// audio loss its peers report (`packet-loss-percentage`), and Opus spends bits on redundancy
/// only when there is loss to repair.
pub fn audio_description(s: &MediaSettings) -> Option<String> {
    let microphone = s.audio_source.as_ref()?;
    Some(format!(
        "{microphone} ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! \
         opusenc name=opus bitrate={} frame-size=20 inband-fec=true",
        s.audio_bitrate_kbps * 1000
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> MediaSettings {
        MediaSettings::test_pattern()
    }

    fn only(factories: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |f| factories.contains(&f)
    }

    #[test]
    fn hardware_encoder_wins_when_present() {
        let plan = plan_video(&settings(), &[], only(&["v4l2h264enc", "x264enc"])).unwrap();
        assert_eq!(plan.encoder, Encoder::V4l2H264);
        assert!(plan.description.contains("repeat_sequence_header=1"));
        assert!(plan.description.contains("level=(string)3.1"));
    }

    #[test]
    fn software_fallback_says_what_was_missing() {
        let plan = plan_video(&settings(), &["H264".into()], only(&["x264enc"])).unwrap();
        assert_eq!(plan.encoder, Encoder::X264);
        assert!(plan.reason.contains("v4l2h264enc"), "{}", plan.reason);
        assert!(plan.description.contains("bframes=0"));
        assert!(plan.description.contains("profile=constrained-baseline"));
        assert!(plan.description.contains("h264parse config-interval=-1"));
        assert!(plan.description.contains("tee name=raw"));
    }

    #[test]
    fn openh264_when_no_x264() {
        let plan = plan_video(&settings(), &[], only(&["openh264enc", "vp8enc"])).unwrap();
        assert_eq!(plan.encoder, Encoder::OpenH264);
        assert!(plan.description.contains("max-rate=30 ! "));
        assert!(plan.description.contains("framerate=[1/1,30/1]"));
    }

    #[test]
    fn vp8_when_browser_lacks_h264() {
        let plan = plan_video(
            &settings(),
            &["VP8".into(), "VP9".into()],
            only(&["x264enc", "vp8enc"]),
        )
        .unwrap();
        assert_eq!(plan.codec, VideoCodec::Vp8);
        assert!(plan.reason.contains("does not receive H.264"));
        assert!(plan.description.contains("vp8enc deadline=1 cpu-used=16 "));
        assert!(video_payload(plan.codec, 96).starts_with("rtpvp8pay "));
    }

    #[test]
    fn vp8_is_scaled_down_to_its_height() {
        let vp8 = |width, height| {
            let mut s = settings();
            (s.width, s.height) = (width, height);
            encoder_description(&s, Encoder::Vp8)
        };
        assert!(
            vp8(1280, 720).starts_with(
                "videoscale ! video/x-raw,width=640,height=360,pixel-aspect-ratio=1/1 ! vp8enc "
            ),
            "{}",
            vp8(1280, 720)
        );
        // 4:3, and an odd width in proportion rounded to even.
        assert!(vp8(1024, 768).contains("width=480,height=360"));
        assert!(vp8(1366, 768).contains("width=640,height=360"));
        assert!(vp8(640, 360).starts_with("vp8enc "));
        assert!(vp8(320, 240).starts_with("vp8enc "));
        // H.264 keeps the camera's size.
        assert!(!encoder_description(&settings(), Encoder::X264).contains("videoscale"));
    }

    #[test]
    fn vp8_when_no_h264_encoder_exists() {
        let plan = plan_video(&settings(), &[], only(&["vp8enc"])).unwrap();
        assert_eq!(plan.codec, VideoCodec::Vp8);
    }

    #[test]
    fn codec_names_match_case_insensitively() {
        let plan = plan_video(&settings(), &["h264".into()], only(&["x264enc"])).unwrap();
        assert_eq!(plan.codec, VideoCodec::H264);
    }

    #[test]
    fn no_common_codec_is_a_clear_error() {
        let err =
            plan_video(&settings(), &["AV1".into()], only(&["x264enc", "vp8enc"])).unwrap_err();
        assert!(matches!(err, PlanError::NoCommonCodec { .. }), "{err}");
        assert!(err.to_string().contains("AV1"));
        // No package would help, so none is named.
        assert!(!err.to_string().contains("install"), "{err}");
    }

    #[test]
    fn a_missing_encoder_names_its_package() {
        let err = plan_video(
            &settings(),
            &["VP8".into(), "VP9".into()],
            only(&["x264enc"]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no video encoder for the codecs this browser receives (VP8, VP9): install \
             gstreamer1.0-plugins-good (vp8enc)"
        );
    }

    #[test]
    fn configured_encoder_comes_first() {
        let mut s = settings();
        s.video_encoder = Some("openh264enc".into());
        let plan = plan_video(&s, &[], only(&["v4l2h264enc"])).unwrap();
        assert_eq!(plan.encoder, Encoder::Custom);
        assert!(plan.description.contains("openh264enc ! video/x-h264"));
    }

    #[test]
    fn a_pre_encoded_source_goes_straight_to_the_payloader() {
        let mut s = settings();
        s.video_source = "udpsrc port=5004 ! rtph264depay".into();
        s.video_encoder = Some("none".into());
        let plan = plan_video(&s, &["H264".into(), "VP8".into()], only(&["x264enc"])).unwrap();
        assert_eq!(plan.encoder, Encoder::PreEncoded);
        assert!(
            plan.description
                .starts_with("udpsrc port=5004 ! rtph264depay ! h264parse config-interval=-1"),
            "{}",
            plan.description
        );
        assert!(!plan.description.contains("videoconvert"));
        assert!(!plan.description.contains("tee name=raw"));
        // A browser without H.264 cannot be served from it, and no package would help.
        let err = plan_video(&s, &["VP8".into()], only(&["vp8enc"])).unwrap_err();
        assert!(err.to_string().contains("its camera encodes it"), "{err}");
    }

    #[test]
    fn audio_is_opus_at_48k() {
        let d = audio_description(&settings()).unwrap();
        assert!(d.starts_with("audiotestsrc"));
        assert!(d.contains("opusenc name=opus bitrate=48000 frame-size=20 inband-fec=true"));
        assert!(audio_payload(111).starts_with("rtpopuspay "));
        assert!(audio_caps(111).contains("useinbandfec=(string)1"));
        let mut without_microphone = settings();
        without_microphone.audio_source = None;
        assert_eq!(audio_description(&without_microphone), None);
    }
}
