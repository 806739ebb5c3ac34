//! The media owner: the only task that holds the shared source, the caller's peer and the
//! viewers' peers, and the only code that changes them.
//!
//! The source runs while anyone needs it (the caller, a viewer, a snapshot's tap) and stops
//! after the last. GStreamer callbacks never decide anything: they push a notice tagged with
//! their peer's id, and this task acts on it, dropping notices of peers that have ended. Once
//! a second it reads every connected peer's receiver reports, gives the shared encoder the
//! lowest bitrate target among them and Opus the worst audio loss, and lets go of a peer whose
//! reports stopped.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::error::MediaError;
use super::feeds::{Feed, FeedCommand, FeedHandle};
use super::health::{self, SourceHealth};
use super::motion_watch::MotionWatch;
use super::outlets::Inlet;
use super::peer::{Notice, Peer, PeerEvent, PeerId, Role};
use super::plan::{self, VideoCodec};
use super::settings::MediaSettings;
use super::shared_source::{SharedSource, SourceNotice};
use super::snapshot;
use super::viewer_offer;
use crate::media_link::{
    CallId, Grant, MediaCommand, MediaHealth, PeerReport, SnapshotRefused, Trickled, WatchAnswer,
    WatchRefused,
};
use crate::metrics::Metrics;
use crate::signaling::IceCandidate;
use crate::turn::DeviceIce;

/// A connected peer whose receiver reports say nothing new for this long has vanished (its
/// phone lost the network, or its browser froze): it is let go. A shorter blip keeps it.
/// Browsers report at least once a second or two. Before its first report a peer gets the
/// connect timeout: on a lossy path DTLS may still be retrying its handshake.
const PEER_GONE: Duration = Duration::from_secs(6);

/// How long a viewer's answer waits for the device's candidates to be gathered.
/// How long a camera that could not start for the motion detector rests before it is tried
/// again.
const MOTION_RETRY: Duration = Duration::from_secs(10);
const GATHER_LIMIT: Duration = Duration::from_millis(1500);

/// What the media owner is given at start.
pub struct Channels {
    pub commands: mpsc::UnboundedReceiver<MediaCommand>,
    pub room: mpsc::UnboundedSender<PeerReport>,
    pub health: mpsc::UnboundedSender<MediaHealth>,
    /// Told when the start-up rehearsal is over (however it went): the daemon announces
    /// itself ready then, so the first call after "ready" is as fast as any other.
    pub warmed_up: oneshot::Sender<()>,
    /// The RTSP server's feeds (see `feeds`).
    pub feeds: mpsc::UnboundedReceiver<FeedCommand>,
    /// Where motion events go, with `[motion] enabled` (see `motion_watch`).
    pub motion: Option<MotionWatch>,
}

/// One viewer (WHEP).
struct Viewer {
    peer: Peer,
    session: String,
    /// Who it is, for the log (the token's name).
    name: String,
    /// What let it in: it ends when that is withdrawn.
    grant: Grant,
    /// Its offer's ICE username fragment: trickled candidates under another one ask for an
    /// ICE restart.
    ice_ufrag: Option<String>,
    /// The answer, sent once the candidates are gathered (or `GATHER_LIMIT` passed).
    pending: Option<oneshot::Sender<Result<WatchAnswer, WatchRefused>>>,
    /// The session's entity tag (quoted), given with the answer.
    etag: Option<String>,
}

impl Viewer {
    /// Hands trickled candidates to the peer, unless they come under new ICE credentials (an
    /// ICE restart, refused: libnice would pair them with the old ones and fail quietly).
    fn trickle(
        &mut self,
        if_match: Option<&str>,
        ufrag: Option<&str>,
        candidates: &[IceCandidate],
    ) -> Trickled {
        let restart = if_match == Some("*")
            || viewer_offer::asks_for_ice_restart(self.ice_ufrag.as_deref(), ufrag, candidates);
        if restart {
            log::info!(
                "viewer {} ({}) asked for an ICE restart: refused",
                self.peer.id(),
                self.name
            );
            return Trickled::RestartRefused;
        }
        match if_match {
            None => return Trickled::TagMissing,
            Some(tag) if Some(tag.trim()) != self.etag.as_deref() => return Trickled::StaleTag,
            Some(_) => {}
        }
        for candidate in candidates {
            self.peer.add_candidate(candidate);
        }
        Trickled::Added
    }
}

/// Gives a snapshot's tap back to the owner when dropped, on every path of the thread that held
/// it.
struct TapRelease {
    tap: u64,
    done: mpsc::UnboundedSender<u64>,
}

impl Drop for TapRelease {
    fn drop(&mut self) {
        let _ = self.done.send(self.tap);
    }
}

struct Owner {
    settings: MediaSettings,
    max_viewers: usize,
    metrics: Arc<Metrics>,
    room: mpsc::UnboundedSender<PeerReport>,
    health_tx: mpsc::UnboundedSender<MediaHealth>,
    health: SourceHealth,
    notices: mpsc::UnboundedSender<(PeerId, Notice)>,
    source_notices: mpsc::UnboundedSender<SourceNotice>,
    source: Option<SharedSource>,
    caller: Option<Peer>,
    viewers: Vec<Viewer>,
    next_viewer: u64,
    taps: HashSet<u64>,
    next_tap: u64,
    /// Where a snapshot's thread says its tap is done with.
    taps_done: mpsc::UnboundedSender<u64>,
    /// The RTSP server's open feeds.
    feeds: Vec<Feed>,
    /// Watching for motion keeps the camera on.
    motion: Option<MotionWatch>,
    /// When the camera may be tried again for motion after it could not start.
    motion_retry: Option<Instant>,
}

/// Runs until the command channel closes.
pub async fn run(
    settings: MediaSettings,
    max_viewers: usize,
    channels: Channels,
    metrics: Arc<Metrics>,
) {
    let Channels {
        mut commands,
        room,
        health,
        warmed_up,
        mut feeds,
        motion,
    } = channels;
    // The rehearsal first: commands wait in the channel meanwhile, so an early caller waits
    // for it rather than racing it for the camera. The daemon says READY when it ends, or
    // after `main`'s limit however slow it is (an emulated board took over 30 s).
    let rehearsed = settings.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || super::start_up::warm_up(&rehearsed)).await
    {
        log::warn!("media warm-up did not finish: {e}");
    }
    // Nobody waiting any more (the daemon announced itself after its limit) is fine.
    let _ = warmed_up.send(());
    let (notice_tx, mut notices) = mpsc::unbounded_channel();
    let (source_tx, mut source_notices) = mpsc::unbounded_channel();
    let (taps_done, mut released_taps) = mpsc::unbounded_channel();
    let mut owner = Owner {
        settings,
        max_viewers,
        metrics,
        room,
        health_tx: health,
        health: SourceHealth::default(),
        notices: notice_tx,
        source_notices: source_tx,
        source: None,
        caller: None,
        viewers: Vec::new(),
        next_viewer: 1,
        taps: HashSet::new(),
        next_tap: 1,
        taps_done,
        feeds: Vec::new(),
        motion,
        motion_retry: None,
    };
    let mut stats_timer = tokio::time::interval(Duration::from_secs(1));
    stats_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = owner.next_deadline();
        // Sources are probed again only while nobody uses them.
        let probe_at = owner.health.next_probe().filter(|_| owner.source.is_none());
        tokio::select! {
            _ = stats_timer.tick() => owner.on_stats_tick(),
            () = sleep_until(probe_at) => owner.probe_sources(),
            () = sleep_until(deadline) => owner.on_deadline(),
            () = sleep_until(owner.next_motion_check()) => owner.check_motion(),
            command = commands.recv() => {
                let Some(command) = command else { break };
                if owner.on_command(command).is_break() {
                    // Shut down: the pipeline is stopped, and the runtime may be going away
                    // under this task, so no timer is polled again.
                    return;
                }
            }
            Some((id, notice)) = notices.recv() => owner.on_notice(id, notice),
            Some(SourceNotice::Stopped(reason)) = source_notices.recv() => {
                owner.on_source_stopped(reason);
            }
            Some(command) = feeds.recv() => owner.on_feed(command),
            Some(tap) = released_taps.recv() => {
                owner.taps.remove(&tap);
                owner.stop_source_if_unused();
            }
        }
        owner.publish_state();
    }
    owner.stop_everything();
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Owner {
    /// What the rest of the daemon reads without asking: the number of viewers, and whether
    /// any peer's media is connected (the watchdog expects video to flow only then: a call
    /// still connecting, or waiting for the start-up rehearsal, has none yet).
    fn publish_state(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics
            .viewers
            .store(self.viewers.len() as u64, Relaxed);
        let connected = self.caller.as_ref().is_some_and(Peer::is_connected)
            || self.viewers.iter().any(|v| v.peer.is_connected());
        self.metrics.media_connected.store(connected, Relaxed);
    }

    /// Acts on one command; `Break` after `Shutdown`, when the owner's work is over.
    fn on_command(&mut self, command: MediaCommand) -> ControlFlow<()> {
        match command {
            MediaCommand::Start { call, codecs, ice } => self.start_call(call, &codecs, &ice),
            MediaCommand::End { call } => {
                if self
                    .caller
                    .as_ref()
                    .is_some_and(|p| p.id() == PeerId::Caller(call))
                {
                    self.end_caller();
                }
            }
            MediaCommand::Answer { call, sdp } => {
                if let Some(peer) = self.caller_of(call)
                    && let Err(e) = peer.set_answer(&sdp)
                {
                    let reason = e.to_string();
                    self.fail_caller(call, reason);
                }
            }
            MediaCommand::Candidate { call, candidate } => {
                if let Some(peer) = self.caller_of(call) {
                    peer.add_candidate(&candidate);
                }
            }
            MediaCommand::Watch {
                offer,
                ice,
                viewer,
                grant,
                reply,
            } => self.watch(&offer, &ice, (viewer, grant), reply),
            MediaCommand::Withdraw { what, reason } => {
                while self.end_viewer_by(|v| what.covers(&v.grant), &reason) {}
            }
            MediaCommand::WatchCandidates {
                session,
                if_match,
                ufrag,
                candidates,
                reply,
            } => {
                let outcome = match self.viewers.iter_mut().find(|v| v.session == session) {
                    None => Trickled::NoSuchSession,
                    Some(viewer) => {
                        viewer.trickle(if_match.as_deref(), ufrag.as_deref(), &candidates)
                    }
                };
                let _ = reply.send(outcome);
            }
            MediaCommand::Unwatch { session, reply } => {
                let known = self.end_viewer_by(|v| v.session == session, "the viewer left");
                let _ = reply.send(known);
            }
            MediaCommand::Snapshot { width, reply } => self.snapshot(width, reply),
            MediaCommand::Shutdown { done } => {
                self.stop_everything();
                let _ = done.send(());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn caller_of(&mut self, call: CallId) -> Option<&mut Peer> {
        self.caller
            .as_mut()
            .filter(|p| p.id() == PeerId::Caller(call))
    }

    /// The shared source, started for a peer that receives `codecs` when it is not running.
    fn ensure_source(&mut self, codecs: &[String]) -> Result<(), MediaError> {
        if self.source.is_none() {
            let plan = plan::plan_video(&self.settings, codecs, |f| {
                gstreamer::ElementFactory::find(f).is_some()
            })?;
            log::info!(
                "camera: video {} via {:?} ({})",
                plan.codec,
                plan.encoder,
                plan.reason
            );
            let source = tokio::task::block_in_place(|| {
                SharedSource::start(
                    &self.settings,
                    plan,
                    self.source_notices.clone(),
                    &self.metrics,
                )
            });
            match source {
                Ok(source) => {
                    Metrics::set(
                        &self.metrics.video_target_kbps,
                        u64::from(source.bitrate_kbps()),
                    );
                    if !source.adapts_bitrate() {
                        log::info!(
                            "the encoder's bitrate is fixed (adaptive bitrate drives x264enc, \
                             openh264enc, vp8enc and V4L2 encoders)"
                        );
                    }
                    self.source = Some(source);
                    self.count_encoders();
                }
                Err(e) => {
                    if matches!(e, MediaError::Build { .. } | MediaError::StateChange(_)) {
                        let update = self.health.failed(e.to_string(), Instant::now());
                        let _ = self.health_tx.send(update);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn running_source(&self) -> Result<&SharedSource, MediaError> {
        self.source
            .as_ref()
            .ok_or_else(|| MediaError::StateChange("the camera did not start".into()))
    }

    fn start_call(&mut self, call: CallId, codecs: &[String], ice: &DeviceIce) {
        if self.caller.is_some() {
            self.end_caller();
        }
        let started = crate::descriptors::check_reserve()
            .map_err(MediaError::from)
            .and_then(|()| self.make_way_for_the_owner(call, codecs))
            .and_then(|()| self.ensure_source(codecs))
            .and_then(|()| {
                let source = self.running_source()?;
                let codec = source
                    .codec_for(codecs)
                    .ok_or(MediaError::NotEncoding(source.codec()))?;
                log::info!(
                    "call {call}: video {codec}, {} viewer(s) on the same encoder",
                    source.subscribers(codec)
                );
                tokio::task::block_in_place(|| {
                    Peer::start(
                        PeerId::Caller(call),
                        &self.settings,
                        source,
                        Role::Caller { codec },
                        ice,
                        self.notices.clone(),
                        Arc::clone(&self.metrics),
                    )
                })
            });
        match started {
            Ok(peer) => self.caller = Some(peer),
            Err(e) => {
                log::error!("call {call}: {e}");
                self.stop_source_if_unused();
                let _ = self.room.send(PeerReport::Failed {
                    call,
                    reason: e.to_string(),
                });
            }
        }
    }

    /// The owner always wins: when the shared encoders run no codec the caller's browser
    /// receives (viewers on H.264, say, and a Firefox without it calling), and the device has
    /// an encoder for one it does, a second encoder starts in the caller's codec on the same
    /// frames while `media.max_encoders` allows it, and the viewers watch on. Otherwise the
    /// viewers are let go and the encoder starts again in the caller's codec: a WHEP session
    /// cannot be moved to another codec, so each viewer is told why, and a player that takes
    /// the new codec gets it when it watches again. A browser the device has no encoder for is
    /// refused without disturbing anyone.
    fn make_way_for_the_owner(
        &mut self,
        call: CallId,
        codecs: &[String],
    ) -> Result<(), MediaError> {
        let Some(source) = self.source.as_mut() else {
            return Ok(());
        };
        if source.codec_for(codecs).is_some() {
            return Ok(());
        }
        let running = source.codec();
        let plan = plan::plan_video(&self.settings, codecs, |f| {
            gstreamer::ElementFactory::find(f).is_some()
        })?;
        if self.settings.max_encoders > 1 && source.can_add_encoder() {
            let added = tokio::task::block_in_place(|| source.add_encoder(&self.settings, &plan));
            match added {
                Ok(()) => {
                    self.count_encoders();
                    log::info!(
                        "call {call}: the owner's browser does not receive {running}: a second \
                         encoder sends it {}, and {} viewer(s) watch on in {running}",
                        plan.codec,
                        self.viewers.len()
                    );
                    return Ok(());
                }
                Err(e) => log::warn!("call {call}: a second encoder could not start: {e}"),
            }
        }
        let watching = self.viewers.len();
        log::warn!(
            "call {call}: the owner's browser does not receive {running}: the camera changes \
             to {} for the call, and {watching} viewer(s) on {running} are let go",
            plan.codec
        );
        let why = format!(
            "the owner called from a browser that does not receive {running}: the camera now \
             sends {}, so viewers on {running} were let go (a player that takes {} can watch \
             again)",
            plan.codec, plan.codec
        );
        while self.end_viewer_by(|_| true, &why) {}
        // A snapshot in progress loses its frames; it answers with an error, as when the
        // camera stops.
        self.taps.clear();
        self.stop_source_if_unused();
        Ok(())
    }

    fn end_caller(&mut self) {
        if let Some(peer) = self.caller.take() {
            tokio::task::block_in_place(|| peer.stop(self.source.as_ref()));
        }
        self.stop_source_if_unused();
    }

    fn fail_caller(&mut self, call: CallId, reason: String) {
        self.end_caller();
        let _ = self.room.send(PeerReport::Failed { call, reason });
    }

    fn watch(
        &mut self,
        offer: &str,
        ice: &DeviceIce,
        (name, grant): (String, Grant),
        reply: oneshot::Sender<Result<WatchAnswer, WatchRefused>>,
    ) {
        let running = self
            .source
            .as_ref()
            .map(SharedSource::codecs)
            .unwrap_or_default();
        let choice = match viewer_offer::choose(offer, &running, |codec| self.can_encode(codec)) {
            Ok(choice) => choice,
            Err(e) => {
                let refusal = match e {
                    viewer_offer::OfferError::NoCommonCodec { .. }
                    | viewer_offer::OfferError::NotTheRunningCodec { .. } => {
                        WatchRefused::NoCommonCodec(e.to_string())
                    }
                    _ => WatchRefused::BadOffer(e.to_string()),
                };
                let _ = reply.send(Err(refusal));
                return;
            }
        };
        // A malformed offer is told so even when the device is full.
        if self.viewers.len() >= self.max_viewers {
            let _ = reply.send(Err(WatchRefused::Full {
                max: self.max_viewers,
            }));
            return;
        }
        if let Err(short) = crate::descriptors::check_reserve() {
            let _ = reply.send(Err(WatchRefused::Busy(short.to_string())));
            return;
        }
        let id = self.next_viewer;
        self.next_viewer += 1;
        let codecs = [choice.codec.to_string()];
        let started = self.ensure_source(&codecs).and_then(|()| {
            let source = self.running_source()?;
            tokio::task::block_in_place(|| {
                Peer::start(
                    PeerId::Viewer(id),
                    &self.settings,
                    source,
                    Role::Viewer {
                        sdp: offer,
                        choice: &choice,
                    },
                    ice,
                    self.notices.clone(),
                    Arc::clone(&self.metrics),
                )
            })
        });
        // The session's id is its only credential for PATCH and DELETE.
        match (started, crate::media_link::fresh_secret().ok()) {
            (Ok(peer), Some(session)) => {
                log::info!(
                    "viewer {id} ({name}) watches: video {} (payload {}), {}",
                    choice.codec,
                    choice.video_payload,
                    if choice.audio_payload.is_some() {
                        "with audio"
                    } else {
                        "no audio"
                    }
                );
                Metrics::add(&self.metrics.viewers_started, 1);
                self.viewers.push(Viewer {
                    peer,
                    session,
                    name,
                    grant,
                    ice_ufrag: choice.ice_ufrag.clone(),
                    pending: Some(reply),
                    etag: None,
                });
            }
            (Ok(peer), None) => {
                tokio::task::block_in_place(|| peer.stop(self.source.as_ref()));
                let _ = reply.send(Err(WatchRefused::Failed("no randomness".into())));
                self.stop_source_if_unused();
            }
            (Err(e), _) => {
                // The web side logs the refusal (rate-limited per address).
                log::debug!("viewer {id} ({name}): {e}");
                let refusal = match e {
                    MediaError::BadOffer(reason) => WatchRefused::BadOffer(reason),
                    other => WatchRefused::Failed(other.to_string()),
                };
                let _ = reply.send(Err(refusal));
                self.stop_source_if_unused();
            }
        }
    }

    fn can_encode(&self, codec: VideoCodec) -> bool {
        plan::plan_video(&self.settings, &[codec.to_string()], |f| {
            gstreamer::ElementFactory::find(f).is_some()
        })
        .is_ok_and(|p| p.codec == codec)
    }

    /// Ends the first viewer that `matches`; whether there was one.
    fn end_viewer_by(&mut self, matches: impl Fn(&Viewer) -> bool, why: &str) -> bool {
        let Some(index) = self.viewers.iter().position(matches) else {
            return false;
        };
        let viewer = self.viewers.swap_remove(index);
        log::info!("{} ({}): {why}", viewer.peer.id(), viewer.name);
        if let Some(pending) = viewer.pending {
            let _ = pending.send(Err(WatchRefused::Failed(why.to_owned())));
        }
        tokio::task::block_in_place(|| viewer.peer.stop(self.source.as_ref()));
        self.stop_source_if_unused();
        true
    }

    /// Takes a picture on a blocking thread with a tap on the source's frames; the tap is
    /// released (`taps_done`) when the picture is sent, however it went (a panic included).
    fn snapshot(
        &mut self,
        width: Option<u32>,
        reply: oneshot::Sender<Result<Vec<u8>, SnapshotRefused>>,
    ) {
        let (tap, frames) = match self.tap_frames() {
            Ok(granted) => granted,
            Err(refused) => {
                let _ = reply.send(Err(refused));
                return;
            }
        };
        let release = TapRelease {
            tap,
            done: self.taps_done.clone(),
        };
        tokio::task::spawn_blocking(move || {
            let picture = snapshot::jpeg(&frames, width, snapshot::FRAME_TIMEOUT);
            let _ = reply.send(picture.map_err(SnapshotRefused::from));
            drop(release);
        });
    }

    fn tap_frames(&mut self) -> Result<(u64, gstreamer::Element), SnapshotRefused> {
        if self.settings.video_encoder.as_deref() == Some(crate::config::PRE_ENCODED) {
            return Err(SnapshotRefused::PreEncoded);
        }
        let failed = |e: MediaError| SnapshotRefused::SourceFailed(e.to_string());
        if self.source.is_none() {
            crate::descriptors::check_reserve()
                .map_err(|short| SnapshotRefused::Busy(short.to_string()))?;
        }
        self.ensure_source(&[]).map_err(failed)?;
        let frames = self
            .running_source()
            .map_err(failed)?
            .frames()
            .ok_or(SnapshotRefused::PreEncoded)?;
        let tap = self.next_tap;
        self.next_tap += 1;
        self.taps.insert(tap);
        Ok((tap, frames))
    }

    /// Stops the camera after its last user, or a second encoder after its last peer.
    fn stop_source_if_unused(&mut self) {
        if self.caller.is_none()
            && self.viewers.is_empty()
            && self.taps.is_empty()
            && self.feeds.is_empty()
            && self.motion.is_none()
            && let Some(source) = self.source.take()
        {
            tokio::task::block_in_place(|| source.stop());
            crate::memory::release_free_memory();
        } else if let Some(source) = self.source.as_mut() {
            tokio::task::block_in_place(|| source.stop_idle_encoder());
        }
        self.count_encoders();
    }

    fn next_motion_check(&self) -> Option<Instant> {
        let watch = self.motion.as_ref()?;
        Some(self.motion_retry.unwrap_or(watch.next_check()))
    }

    /// Hands the latest frame to the motion detector, starting the camera first if it is off
    /// (it was never started, or it failed: tried again every `MOTION_RETRY`).
    fn check_motion(&mut self) {
        if self.motion.is_none() {
            return;
        }
        if self.source.is_none() {
            self.motion_retry = None;
            if let Err(e) = self.ensure_source(&[]) {
                log::warn!(
                    "motion: the camera cannot start ({e}); trying again in {} s",
                    MOTION_RETRY.as_secs()
                );
                self.motion_retry = Some(Instant::now() + MOTION_RETRY);
                if let Some(watch) = self.motion.as_mut() {
                    watch.camera_stopped();
                    watch.check(None);
                }
                return;
            }
            self.count_encoders();
        }
        let frames = self.source.as_ref().and_then(SharedSource::frames);
        if let Some(watch) = self.motion.as_mut() {
            watch.check(frames.as_ref());
        }
    }

    fn count_encoders(&self) {
        let running = self.source.as_ref().map_or(0, |s| s.codecs().len());
        Metrics::set(&self.metrics.video_encoders, running as u64);
    }

    /// Opens or closes a feed of the RTSP server: it takes H.264, from the running encoder,
    /// a second one when another codec runs and `media.max_encoders` allows, or the camera's
    /// first.
    fn on_feed(&mut self, command: FeedCommand) {
        match command {
            FeedCommand::Open {
                id,
                consumer,
                video,
                audio,
                reply,
            } => {
                let opened = self.open_feed(&video, audio.as_ref());
                match &opened {
                    Ok(_) => {
                        log::info!("{consumer}: the stream is fed from the shared H.264 encoder");
                        self.feeds.push(Feed {
                            id,
                            consumer,
                            video,
                            audio,
                        });
                    }
                    Err(e) => log::warn!("{consumer}: no stream: {e}"),
                }
                self.count_encoders();
                if reply.send(opened.map_err(|e| e.to_string())).is_err() {
                    self.close_feed(id);
                }
                if self.feeds.is_empty() {
                    self.stop_source_if_unused();
                }
            }
            FeedCommand::Close { id } => self.close_feed(id),
        }
    }

    fn open_feed(
        &mut self,
        video: &gstreamer::Pad,
        audio: Option<&gstreamer::Pad>,
    ) -> Result<FeedHandle, MediaError> {
        let h264 = [VideoCodec::H264.to_string()];
        crate::descriptors::check_reserve()?;
        self.ensure_source(&h264)?;
        let settings = &self.settings;
        let source = self
            .source
            .as_mut()
            .ok_or_else(|| MediaError::StateChange("the camera did not start".into()))?;
        if source.codec_for(&h264).is_none() {
            if settings.max_encoders < 2 || !source.can_add_encoder() {
                return Err(MediaError::NotEncoding(VideoCodec::H264));
            }
            let plan = plan::plan_video(settings, &h264, |f| {
                gstreamer::ElementFactory::find(f).is_some()
            })?;
            tokio::task::block_in_place(|| source.add_encoder(settings, &plan))?;
        }
        let start = source.subscribe(
            VideoCodec::H264,
            Inlet {
                pad: video,
                payload_type: plan::VIDEO_PAYLOAD,
            },
            audio.map(|pad| Inlet {
                pad,
                payload_type: plan::AUDIO_PAYLOAD,
            }),
        )?;
        start.video();
        start.audio();
        Ok(FeedHandle {
            keyframes: source.keyframe_requester(VideoCodec::H264)?,
        })
    }

    fn close_feed(&mut self, id: u64) {
        let Some(index) = self.feeds.iter().position(|f| f.id == id) else {
            return;
        };
        let feed = self.feeds.swap_remove(index);
        if let Some(source) = &self.source {
            source.unsubscribe(&feed.video, feed.audio.as_ref());
        }
        if feed.consumer == "RTSP" {
            log::info!("RTSP: the stream's last client left");
        } else {
            log::info!("{}: the stream is no longer fed", feed.consumer);
        }
        self.stop_source_if_unused();
    }

    fn stop_everything(&mut self) {
        if let Some(peer) = self.caller.take() {
            tokio::task::block_in_place(|| peer.stop(self.source.as_ref()));
        }
        for viewer in std::mem::take(&mut self.viewers) {
            tokio::task::block_in_place(|| viewer.peer.stop(self.source.as_ref()));
        }
        self.taps.clear();
        for feed in std::mem::take(&mut self.feeds) {
            if let Some(source) = &self.source {
                source.unsubscribe(&feed.video, feed.audio.as_ref());
            }
        }
        self.stop_source_if_unused();
    }

    fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.caller
            .iter()
            .chain(self.viewers.iter().map(|v| &v.peer))
    }

    /// The earliest of: a peer's connect deadline, a viewer's answer that waited long enough.
    fn next_deadline(&self) -> Option<Instant> {
        let timeout = self.settings.connect_timeout;
        let connects = self.peers().filter_map(|p| p.connect_deadline(timeout));
        let answers = self
            .viewers
            .iter()
            .filter(|v| v.pending.is_some())
            .map(|v| Instant::now() + GATHER_LIMIT.saturating_sub(v.peer.age()));
        connects.chain(answers).min()
    }

    fn on_deadline(&mut self) {
        let timeout = self.settings.connect_timeout;
        let now = Instant::now();
        for index in 0..self.viewers.len() {
            if self.viewers[index].peer.age() >= GATHER_LIMIT {
                self.send_answer(index);
            }
        }
        let late = |p: &Peer| p.connect_deadline(timeout).is_some_and(|at| at <= now);
        let why = |whom: &str, peer: &Peer| {
            format!(
                "could not connect to the {whom} within {} s: no network path was found ({})",
                timeout.as_secs(),
                peer.no_path_hint()
            )
        };
        if let Some(peer) = self.caller.as_ref().filter(|p| late(p))
            && let PeerId::Caller(call) = peer.id()
        {
            let reason = why("caller", peer);
            self.fail_caller(call, reason);
        }
        while let Some(reason) = self
            .viewers
            .iter()
            .find(|v| late(&v.peer))
            .map(|v| why("viewer", &v.peer))
        {
            self.end_viewer_by(|v| late(&v.peer), &reason);
        }
    }

    /// Sends viewer `index`'s answer, if it still waits for it.
    fn send_answer(&mut self, index: usize) {
        let viewer = &mut self.viewers[index];
        let Some(pending) = viewer.pending.take() else {
            return;
        };
        // The device's ICE username fragment names this ICE session: the entity tag.
        let answer = viewer.peer.answer_sdp().map(|sdp| {
            let etag = format!(
                "\"{}\"",
                crate::signaling::ice_ufrag(&sdp).unwrap_or_else(|| viewer.session.clone())
            );
            viewer.etag = Some(etag.clone());
            WatchAnswer {
                session: viewer.session.clone(),
                etag,
                sdp,
            }
        });
        let _ = pending.send(answer.ok_or_else(|| WatchRefused::Failed("no answer".into())));
    }

    fn on_stats_tick(&mut self) {
        let timeout = self.settings.connect_timeout;
        let gone = |peer: &Peer| {
            peer.silence().and_then(|(silence, reported)| {
                if reported {
                    (silence > PEER_GONE).then(|| {
                        format!(
                            "stopped answering: no RTCP receiver report for {} s (a phone \
                             that lost its network or froze)",
                            PEER_GONE.as_secs()
                        )
                    })
                } else {
                    (silence > timeout).then(|| {
                        format!(
                            "never reported receiving media within {} s of connecting (DTLS \
                             or media blocked on the path)",
                            timeout.as_secs()
                        )
                    })
                }
            })
        };
        if let Some(peer) = &self.caller
            && let (PeerId::Caller(call), Some(reason)) = (peer.id(), gone(peer))
        {
            self.fail_caller(call, format!("the caller {reason}"));
        }
        while let Some(reason) = self.viewers.iter().find_map(|v| gone(&v.peer)) {
            self.end_viewer_by(|v| gone(&v.peer).is_some(), &format!("the viewer {reason}"));
        }
        for peer in self.peers().filter(|p| p.wants_stats()) {
            peer.ensure_sending_started();
            peer.request_stats();
        }
    }

    /// Each shared encoder follows the weakest peer on it: the lowest bitrate target among
    /// its connected peers; Opus follows the worst audio loss among all.
    fn follow_weakest_peer(&mut self) {
        let connected = || self.peers().filter(|p| p.is_connected());
        let loss = connected().map(Peer::audio_loss_percent).max();
        let Some(codecs) = self.source.as_ref().map(SharedSource::codecs) else {
            return;
        };
        let targets: Vec<_> = codecs
            .into_iter()
            .map(|codec| {
                let target = connected()
                    .filter(|p| p.codec() == codec)
                    .map(Peer::target_kbps)
                    .min();
                (codec, target)
            })
            .collect();
        for (codec, target) in targets {
            if let (Some(kbps), Some(source)) = (target, self.source.as_mut())
                && source.set_bitrate(codec, kbps)
                && codec == source.codec()
            {
                Metrics::set(&self.metrics.video_target_kbps, u64::from(kbps));
            }
        }
        let Some(source) = self.source.as_mut() else {
            return;
        };
        if let Some(loss) = loss {
            source.set_audio_loss(loss);
        }
    }

    fn on_notice(&mut self, id: PeerId, notice: Notice) {
        let is_stats = matches!(notice, Notice::Stats(_));
        let connected = matches!(notice, Notice::IceState(_));
        let source_trouble = matches!(notice, Notice::Error(_) | Notice::Eos);
        let events = match id {
            PeerId::Caller(_) => match self.caller.as_mut().filter(|p| p.id() == id) {
                Some(peer) => peer.on_notice(notice),
                None => return,
            },
            PeerId::Viewer(_) => match self.viewers.iter_mut().find(|v| v.peer.id() == id) {
                Some(viewer) => viewer.peer.on_notice(notice),
                None => return,
            },
        };
        for event in events {
            self.on_peer_event(id, event, source_trouble);
        }
        if is_stats {
            self.follow_weakest_peer();
        }
        if connected
            && self.peers().any(|p| p.id() == id && p.is_connected())
            && self.health.recovered()
        {
            let _ = self.health_tx.send(MediaHealth::Available);
        }
    }

    fn on_peer_event(&mut self, id: PeerId, event: PeerEvent, source_trouble: bool) {
        match (id, event) {
            (PeerId::Caller(call), PeerEvent::Offer(sdp)) => {
                let _ = self.room.send(PeerReport::Offer { call, sdp });
            }
            (PeerId::Caller(call), PeerEvent::Candidate(candidate)) => {
                let _ = self.room.send(PeerReport::Candidate { call, candidate });
            }
            (PeerId::Caller(call), PeerEvent::Failed(reason)) => {
                if source_trouble {
                    let update = self.health.failed(reason.clone(), Instant::now());
                    let _ = self.health_tx.send(update);
                }
                self.fail_caller(call, reason);
            }
            (PeerId::Viewer(_), PeerEvent::AnswerReady) => {
                if let Some(index) = self.viewers.iter().position(|v| v.peer.id() == id) {
                    self.send_answer(index);
                }
            }
            (PeerId::Viewer(_), PeerEvent::Failed(reason)) => {
                self.end_viewer_by(|v| v.peer.id() == id, &reason);
            }
            _ => {}
        }
    }

    /// The camera or microphone failed or ended: every peer on it ends.
    fn on_source_stopped(&mut self, reason: String) {
        if self.source.is_none() {
            return;
        }
        log::warn!("the camera's pipeline stopped: {reason}");
        let update = self.health.failed(reason.clone(), Instant::now());
        let _ = self.health_tx.send(update);
        if let Some(PeerId::Caller(call)) = self.caller.as_ref().map(Peer::id) {
            self.fail_caller(call, reason.clone());
        }
        while self.end_viewer_by(|_| true, &reason) {}
        self.taps.clear();
        if let Some(watch) = self.motion.as_mut() {
            // The motion detector does not hold a failed camera: it tries again later.
            watch.camera_stopped();
            self.motion_retry = Some(Instant::now() + MOTION_RETRY);
            if self.feeds.is_empty()
                && let Some(source) = self.source.take()
            {
                tokio::task::block_in_place(|| source.stop());
            }
        }
        self.stop_source_if_unused();
    }

    fn probe_sources(&mut self) {
        match tokio::task::block_in_place(|| health::probe_sources(&self.settings)) {
            Ok(()) => {
                if self.health.recovered() {
                    log::info!("camera and microphone work again");
                    let _ = self.health_tx.send(MediaHealth::Available);
                }
            }
            Err(reason) => {
                let update = self.health.failed(reason, Instant::now());
                log::warn!("media sources still unavailable: {update:?}");
                let _ = self.health_tx.send(update);
            }
        }
    }
}
