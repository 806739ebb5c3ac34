//! Media at start-up: GStreamer initialised, the elements every call needs checked once, the
//! SRTP encoder registered, and a rehearsal (camera and one call's pipeline started and thrown
//! away) so the first caller does not pay for plugin loading and encoder set-up.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::error::MediaError;
use super::settings::MediaSettings;
use super::{peer, plan, shared_source, srtp_encoder, webrtc_setup};
use crate::metrics::Metrics;
use crate::turn::DeviceIce;

/// Initialises GStreamer alone (enough to parse launch lines).
pub fn init_gstreamer() -> Result<(), MediaError> {
    gstreamer::init().map_err(|e| MediaError::Build {
        what: "GStreamer",
        reason: e.to_string(),
    })
}

/// Initialises GStreamer and checks, once, that the elements every call needs exist; starts
/// GLib's default main loop.
pub fn init() -> Result<(), MediaError> {
    init_gstreamer()?;
    run_default_main_loop();
    for factory in webrtc_setup::REQUIRED_ELEMENTS {
        if gstreamer::ElementFactory::find(factory).is_none() {
            return Err(MediaError::MissingElement(factory));
        }
    }
    srtp_encoder::register().map_err(|e| MediaError::Build {
        what: "the SRTP encoder",
        reason: e.to_string(),
    })?;
    Ok(())
}

/// Runs GLib's default main context on a thread of its own, once per process. GStreamer's
/// elements answer some asynchronous work there: webrtcbin resolves a browser's `<uuid>.local`
/// candidate (a phone's mDNS name) with GLib's resolver from its ICE thread, which has no
/// main context of its own pushed, so the answer comes back on the default one. With nothing
/// iterating it (the daemon runs on tokio), no `.local` candidate was ever resolved.
fn run_default_main_loop() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("glib-main".into())
            .spawn(|| gstreamer::glib::MainLoop::new(None, false).run());
        if let Err(e) = spawned {
            log::warn!("no thread for GLib's main loop ({e}): .local candidates go unresolved");
        }
    });
}

/// Starts the camera and a call's pipeline once and throws them away, so that plugin loading,
/// encoder set-up and the DTLS certificate are paid for before the first caller rather than
/// during its call.
pub fn warm_up(settings: &MediaSettings) {
    let started = std::time::Instant::now();
    let (notices, _ignored) = mpsc::unbounded_channel();
    let (source_notices, _ignored_too) = mpsc::unbounded_channel();
    // Its own counters: a rehearsal is not a call.
    let metrics = Arc::new(Metrics::default());
    let rehearsal = plan::plan_video(settings, &[], |f| {
        gstreamer::ElementFactory::find(f).is_some()
    })
    .map_err(MediaError::from)
    .and_then(|plan| shared_source::SharedSource::start(settings, plan, source_notices, &metrics))
    .and_then(|source| {
        let peer = peer::Peer::start(
            peer::PeerId::Caller(0),
            settings,
            &source,
            peer::Role::Caller {
                codec: source.codec(),
            },
            &DeviceIce::default(),
            notices,
            metrics,
        );
        let rehearsed = peer.map(|peer| {
            let rehearsed = peer.rehearse_offer();
            peer.stop(Some(&source));
            rehearsed
        });
        source.stop();
        rehearsed
    });
    match rehearsal {
        Ok(true) => log::info!("media warmed up in {} ms", started.elapsed().as_millis()),
        Ok(false) => log::warn!("media warm-up made no offer; the first call may be slower"),
        Err(e) => log::warn!("media warm-up failed: {e}"),
    }
}
