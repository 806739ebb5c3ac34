//! Checks the GStreamer launch lines of `[media]` before any call needs them: at start, and by
//! `peercam check-config`. Each line must parse, name elements that exist, and a source must
//! leave an output to link onwards. `Strictness::SyntaxOnly` checks a board's file on another
//! machine: elements this machine lacks are listed rather than refused, but the syntax must
//! hold. A line that ends in caps (`libcamerasrc ! video/x-raw,width=1280`) is refused in both
//! modes with the fix, since GStreamer reads the caps as an element named `video`.
//! GStreamer must be initialised.

use gstreamer::prelude::*;

use crate::config::{AUTO, MediaConfig, NO_AUDIO, PRE_ENCODED};

use super::error::MediaError;

/// How much of a launch line must hold on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Every element exists here (the daemon, and `check-config` on the device).
    Elements,
    /// Only the syntax; missing elements are reported back (a board's file checked elsewhere).
    SyntaxOnly,
}

/// Media types whose caps a launch line may hold between elements, never at its end.
const MEDIA_TYPES: [&str; 5] = ["video", "audio", "image", "application", "text"];

/// Checks every launch line in `media` (anything but `auto` and the `none`s). Returns the
/// elements this machine lacks, sorted and without duplicates (always empty with
/// `Strictness::Elements`, which refuses them).
pub fn validate_launch_lines(
    media: &MediaConfig,
    strictness: Strictness,
) -> Result<Vec<String>, MediaError> {
    let checks = [
        ("media.video_source", &media.video_source, true),
        ("media.audio_source", &media.audio_source, true),
        ("media.video_encoder", &media.video_encoder, true),
        ("media.audio_sink", &media.audio_sink, false),
    ];
    let mut missing = Vec::new();
    for (field, launch, needs_output) in checks {
        let means_none = (field == "media.video_encoder" && launch == PRE_ENCODED)
            || (field == "media.audio_source" && launch == NO_AUDIO);
        if launch == AUTO || means_none {
            continue;
        }
        missing.extend(check_one(field, launch, needs_output, strictness)?);
    }
    missing.sort();
    missing.dedup();
    Ok(missing)
}

fn check_one(
    field: &'static str,
    launch: &str,
    needs_output: bool,
    strictness: Strictness,
) -> Result<Vec<String>, MediaError> {
    let invalid = |reason: String| MediaError::InvalidLaunch {
        field,
        launch: launch.to_owned(),
        reason,
    };
    if let Some(caps) = trailing_caps(launch) {
        return Err(invalid(format!(
            "a launch line cannot end in caps (`{caps}`, read as an element named `{}`): \
             end it with `! capsfilter caps={caps}`",
            caps.split('/').next().unwrap_or(caps)
        )));
    }
    let mut context = gstreamer::ParseContext::new();
    let parsed = gstreamer::parse::bin_from_description_full(
        launch,
        true,
        Some(&mut context),
        gstreamer::ParseFlags::empty(),
    );
    match parsed {
        Ok(bin) => {
            if needs_output && bin.static_pad("src").is_none() {
                return Err(invalid("it has no free output to link onwards".into()));
            }
            Ok(Vec::new())
        }
        Err(error) => {
            let missing: Vec<String> = context
                .missing_elements()
                .into_iter()
                .map(|name| name.to_string())
                .collect();
            let only_missing = error.matches(gstreamer::ParseError::NoSuchElement);
            if strictness == Strictness::SyntaxOnly && only_missing && !missing.is_empty() {
                // GStreamer reports the first error only: check the rest of the line again
                // with a stand-in for each missing element.
                let stand_in = with_stand_ins(launch, &missing);
                check_one(field, &stand_in, needs_output, Strictness::Elements).map_err(
                    |error| match error {
                        MediaError::InvalidLaunch { reason, .. } => invalid(reason),
                        other => other,
                    },
                )?;
                Ok(missing)
            } else {
                Err(invalid(error.to_string()))
            }
        }
    }
}

/// `launch` with every element named in `missing` (and its properties) replaced by `identity`,
/// which has one input and one output as sources, encoders and sinks in `[media]` do.
fn with_stand_ins(launch: &str, missing: &[String]) -> String {
    split_links(launch)
        .into_iter()
        .map(|segment| {
            let name = segment.split_whitespace().next().unwrap_or_default();
            if missing.iter().any(|m| m == name) {
                " identity ".to_owned()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("!")
}

/// The pieces of a launch line between its links (`!` outside quotes).
fn split_links(launch: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (index, c) in launch.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '!' if !quoted => {
                pieces.push(&launch[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    pieces.push(&launch[start..]);
    pieces
}

/// The caps at the end of a launch line, if it ends in caps (`... ! video/x-raw,width=320`).
fn trailing_caps(launch: &str) -> Option<&str> {
    let last = launch.rsplit('!').next()?.trim();
    let media_type = last.split('/').next()?;
    (last.contains('/') && !last.contains(' ') && MEDIA_TYPES.contains(&media_type)).then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(video_source: &str, video_encoder: &str) -> MediaConfig {
        MediaConfig {
            video_source: video_source.into(),
            video_encoder: video_encoder.into(),
            ..MediaConfig::default()
        }
    }

    fn check(video_source: &str, strictness: Strictness) -> Result<Vec<String>, String> {
        gstreamer::init().expect("GStreamer");
        validate_launch_lines(&media(video_source, AUTO), strictness).map_err(|e| e.to_string())
    }

    #[test]
    fn trailing_caps_are_refused_with_the_fix() {
        for strictness in [Strictness::Elements, Strictness::SyntaxOnly] {
            let error = check("videotestsrc ! video/x-raw,width=320", strictness).unwrap_err();
            assert!(error.starts_with("media.video_source:"), "{error}");
            assert!(error.contains("cannot end in caps"), "{error}");
            assert!(
                error.contains("capsfilter caps=video/x-raw,width=320"),
                "{error}"
            );
        }
    }

    #[test]
    fn caps_between_elements_and_in_a_capsfilter_are_fine() {
        assert_eq!(
            check(
                "videotestsrc ! video/x-raw,width=320 ! videoconvert",
                Strictness::Elements
            ),
            Ok(vec![])
        );
        assert_eq!(
            check(
                "videotestsrc ! capsfilter caps=video/x-raw,width=320,framerate=30/1",
                Strictness::Elements
            ),
            Ok(vec![])
        );
    }

    #[test]
    fn missing_elements_are_refused_or_listed() {
        let error = check("nosuchcamerasrc ! videoconvert", Strictness::Elements).unwrap_err();
        assert!(error.contains("nosuchcamerasrc"), "{error}");
        assert_eq!(
            check(
                "nosuchcamerasrc ! capsfilter caps=video/x-raw,format=NV12",
                Strictness::SyntaxOnly
            ),
            Ok(vec!["nosuchcamerasrc".to_owned()])
        );
    }

    #[test]
    fn syntax_errors_are_refused_even_when_elements_are_missing() {
        let error = check("nosuchcamerasrc ! ! videoconvert", Strictness::SyntaxOnly).unwrap_err();
        assert!(error.starts_with("media.video_source:"), "{error}");
        let error = check("videotestsrc ! fakesink", Strictness::SyntaxOnly).unwrap_err();
        assert!(error.contains("no free output"), "{error}");
    }

    #[test]
    fn missing_elements_get_stand_ins_with_their_properties() {
        assert_eq!(
            with_stand_ins(
                "nosuchsrc a=\"x ! y\" ! capsfilter caps=video/x-raw ! nosuchenc b=1",
                &["nosuchsrc".to_owned(), "nosuchenc".to_owned()]
            ),
            " identity ! capsfilter caps=video/x-raw ! identity "
        );
    }

    #[test]
    fn every_missing_element_of_every_field_is_listed_once() {
        gstreamer::init().expect("GStreamer");
        let config = MediaConfig {
            video_source: "nosuchcamerasrc ! capsfilter caps=video/x-raw".into(),
            video_encoder: "nosuchh264enc extra-controls=\"controls,video_bitrate=1\"".into(),
            audio_sink: "nosuchcamerasrc ! fakesink".into(),
            ..MediaConfig::default()
        };
        assert_eq!(
            validate_launch_lines(&config, Strictness::SyntaxOnly).map_err(|e| e.to_string()),
            Ok(vec![
                "nosuchcamerasrc".to_owned(),
                "nosuchh264enc".to_owned()
            ])
        );
    }
}
