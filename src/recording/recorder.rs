//! The recorder: a feed of the shared encoder (`media::feeds`, like an RTSP client's; no
//! second encoder) depayloaded into whole H.264 pictures and Opus packets (`tap`), a ring of
//! the last seconds of them (the pre-roll, from a keyframe), and while recording a writer per
//! segment: `mp4mux fragment-duration=1000` into its file (fragmented: a power cut loses at
//! most the last second written), a new one from the first keyframe after `segment_seconds`.
//!
//! With `mode = "motion"` the writer starts at `motion_started` (the ring first) and stops at
//! `motion_ended`; with `continuous` it always runs. A writer that fails (a full disk, a
//! read-only mount, a USB stick pulled out) is stopped and said in the status; the next
//! motion (or, continuous, a minute later) tries again. Retention runs each minute and at each
//! closed segment. Each segment gets a JPEG of its first moment (the media owner's snapshot).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::store;
use crate::config::{RecordingConfig, RecordingMode};
use crate::media::feeds::{self, FeedCommand};
use crate::media::plan;
use crate::media_link::MediaCommand;
use crate::motion::MotionEvent;

#[derive(Debug, Error)]
pub enum RecorderError {
    #[error("the recorder's pipeline cannot be built: {0}")]
    Build(String),
    #[error("the camera's stream cannot be had: {0}")]
    Feed(String),
    #[error(
        "the disk has {free_mb} MB free, under the floor of {floor_mb} MB (recording.min_free_mb)"
    )]
    Full { free_mb: u64, floor_mb: u64 },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// What `/recordings` says about the recorder.
#[derive(Debug, Default)]
pub struct RecordingStatus {
    state: Mutex<String>,
    writing: Mutex<Option<String>>,
}

impl RecordingStatus {
    pub fn state(&self) -> String {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set(&self, state: impl Into<String>) {
        let state = state.into();
        if let Ok(mut current) = self.state.lock()
            && *current != state
        {
            log::info!("recording: {state}");
            *current = state;
        }
    }

    /// The segment being written, if any.
    pub fn writing(&self) -> Option<String> {
        self.writing.lock().ok().and_then(|w| w.clone())
    }

    fn set_writing(&self, name: Option<String>) {
        if let Ok(mut writing) = self.writing.lock() {
            *writing = name;
        }
    }
}

/// Runs the recorder until the daemon stops.
pub async fn run(
    config: RecordingConfig,
    root: PathBuf,
    has_audio: bool,
    feeds: mpsc::UnboundedSender<FeedCommand>,
    mut motion: Option<broadcast::Receiver<MotionEvent>>,
    media: mpsc::UnboundedSender<MediaCommand>,
    status: Arc<RecordingStatus>,
) {
    let (notices_tx, mut notices) = mpsc::unbounded_channel();
    let mut recorder = loop {
        match Recorder::start(&config, &root, has_audio, &feeds, notices_tx.clone()).await {
            Ok(recorder) => break recorder,
            Err(e) => {
                status.set(format!("not recording: {e}; trying again in a minute"));
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    };
    let continuous = config.mode == RecordingMode::Continuous;
    status.set(if continuous {
        "recording continuously"
    } else {
        "waiting for motion"
    });
    let mut minute = tokio::time::interval(Duration::from_secs(60));
    loop {
        let motion_event = async {
            match motion.as_mut() {
                Some(receiver) => receiver.recv().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = minute.tick() => {
                recorder.keep_within_limits(&status);
                if continuous && !recorder.is_writing() {
                    recorder.start_writing(&status);
                }
            }
            event = motion_event => match event {
                Some(MotionEvent::MotionStarted { .. }) => recorder.start_writing(&status),
                Some(MotionEvent::MotionEnded { .. }) if !continuous => {
                    recorder.stop_writing(&status);
                    status.set("waiting for motion");
                }
                _ => {}
            },
            Some(notice) = notices.recv() => match notice {
                WriterNotice::Closed => recorder.keep_within_limits(&status),
                WriterNotice::Opened(path) => {
                    status.set_writing(recorder.name_of(&path));
                    tokio::spawn(thumbnail(media.clone(), path.with_extension("jpg")));
                }
                WriterNotice::Failed(reason) => {
                    recorder.stop_writing(&status);
                    status.set(format!("stopped: {reason}; trying again at the next {}",
                        if continuous { "minute" } else { "motion" }));
                }
            },
        }
    }
}

/// The width of a segment's thumbnail.
const THUMBNAIL_WIDTH: u32 = 320;

/// Writes the camera's picture now (a segment's start) to `path`: the media owner's snapshot,
/// from the raw frame it keeps (none for a camera that sends H.264 itself).
async fn thumbnail(media: mpsc::UnboundedSender<MediaCommand>, path: PathBuf) {
    let (reply, picture) = oneshot::channel();
    let asked = media.send(MediaCommand::Snapshot {
        width: Some(THUMBNAIL_WIDTH),
        reply,
    });
    if asked.is_err() {
        return;
    }
    match picture.await {
        Ok(Ok(jpeg)) => {
            if let Err(e) = tokio::fs::write(&path, jpeg).await {
                log::debug!("recording: no thumbnail {}: {e}", path.display());
            }
        }
        Ok(Err(refused)) => log::debug!("recording: no thumbnail: {refused}"),
        Err(_) => {}
    }
}

/// What the writer's bus says, on the recorder's task.
#[derive(Debug)]
enum WriterNotice {
    Opened(PathBuf),
    Closed,
    Failed(String),
}

/// The two kinds of packets.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Track {
    Video,
    Audio,
}

struct Recorder {
    config: RecordingConfig,
    root: PathBuf,
    has_audio: bool,
    /// The feed's pipeline, stopped when dropped.
    _tap: Tap,
    tape: Arc<Mutex<Tape>>,
    notices: mpsc::UnboundedSender<WriterNotice>,
}

/// The ring of recent packets and the writer they also go to while recording.
#[derive(Default)]
struct Tape {
    ring: VecDeque<(Track, gst::Sample)>,
    pre_roll: gst::ClockTime,
    writer: Option<Writer>,
}

impl Recorder {
    async fn start(
        config: &RecordingConfig,
        root: &Path,
        has_audio: bool,
        feeds: &mpsc::UnboundedSender<FeedCommand>,
        notices: mpsc::UnboundedSender<WriterNotice>,
    ) -> Result<Self, RecorderError> {
        store::prepare(root)?;
        let tape = Arc::new(Mutex::new(Tape {
            pre_roll: gst::ClockTime::from_seconds(u64::from(config.pre_roll_seconds)),
            ..Tape::default()
        }));
        let tap = Tap::start(has_audio, &tape)?;
        let (reply, answer) = oneshot::channel();
        feeds
            .send(FeedCommand::Open {
                id: FEED_ID,
                consumer: "recording",
                video: tap.video.0.clone(),
                audio: tap.audio.as_ref().map(|(src, _)| src.clone()),
                reply,
            })
            .map_err(|_| RecorderError::Feed("the media owner has stopped".into()))?;
        answer
            .await
            .map_err(|_| RecorderError::Feed("no answer".into()))?
            .map_err(RecorderError::Feed)?;
        Ok(Self {
            config: config.clone(),
            root: root.to_path_buf(),
            has_audio,
            _tap: tap,
            tape,
            notices,
        })
    }

    fn is_writing(&self) -> bool {
        self.tape.lock().is_ok_and(|tape| tape.writer.is_some())
    }

    /// The segment's name under the recordings' directory.
    fn name_of(&self, path: &Path) -> Option<String> {
        let name = path
            .strip_prefix(&self.root)
            .ok()?
            .to_string_lossy()
            .into_owned();
        store::is_segment_name(&name).then_some(name)
    }

    fn floor(&self) -> u64 {
        self.config.min_free_mb.saturating_mul(1 << 20)
    }

    /// Starts a writer (the ring first), unless one runs or the disk is under its floor.
    fn start_writing(&mut self, status: &RecordingStatus) {
        if self.is_writing() {
            return;
        }
        let free = store::free_bytes(&self.root).unwrap_or(0);
        if free < self.floor() {
            self.keep_within_limits(status);
        }
        let free = store::free_bytes(&self.root).unwrap_or(0);
        if free < self.floor() {
            status.set(format!(
                "not recording: {}",
                RecorderError::Full {
                    free_mb: free >> 20,
                    floor_mb: self.config.min_free_mb
                }
            ));
            return;
        }
        let segments = Segments {
            root: self.root.clone(),
            has_audio: self.has_audio,
            length: gst::ClockTime::from_seconds(u64::from(self.config.segment_seconds)),
            notices: self.notices.clone(),
        };
        let writer = match Writer::start(&segments) {
            Ok(writer) => writer,
            Err(e) => {
                status.set(format!("not recording: {e}"));
                return;
            }
        };
        if let Ok(mut tape) = self.tape.lock() {
            let mut writer = writer;
            for (track, sample) in &tape.ring {
                writer.push(*track, sample);
            }
            tape.writer = Some(writer);
        }
        status.set(if self.config.mode == RecordingMode::Continuous {
            "recording continuously"
        } else {
            "recording motion"
        });
    }

    fn stop_writing(&mut self, status: &RecordingStatus) {
        let writer = self
            .tape
            .lock()
            .ok()
            .and_then(|mut tape| tape.writer.take());
        if let Some(writer) = writer {
            tokio::task::block_in_place(|| writer.finish());
        }
        status.set_writing(None);
    }

    /// Retention: the old, then the oldest while under the floor; a writer with nowhere to
    /// write is stopped.
    fn keep_within_limits(&mut self, status: &RecordingStatus) {
        let writing = status.writing();
        let segments = store::list(&self.root);
        let free = store::free_bytes(&self.root).unwrap_or(0);
        let max_age = Duration::from_secs(u64::from(self.config.max_age_days) * 86_400);
        for name in store::to_delete(
            &segments,
            SystemTime::now(),
            max_age,
            free,
            self.floor(),
            writing.as_deref(),
        ) {
            log::info!("recording: {name} deleted (retention)");
            store::delete(&self.root, &name);
        }
        let free = store::free_bytes(&self.root).unwrap_or(0);
        if free < self.floor() && self.is_writing() {
            self.stop_writing(status);
            status.set(format!(
                "stopped: {}",
                RecorderError::Full {
                    free_mb: free >> 20,
                    floor_mb: self.config.min_free_mb
                }
            ));
        }
    }
}

/// The feed id the recorder uses with the media owner (the RTSP server counts from 1).
const FEED_ID: u64 = u64::MAX;

/// The feed's pipeline: RTP in, whole pictures and Opus packets out to the tape.
struct Tap {
    pipeline: gst::Pipeline,
    /// The bridge's pads (source, for the media owner; sink, kept alive here).
    video: (gst::Pad, gst::Pad),
    audio: Option<(gst::Pad, gst::Pad)>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Tap {
    fn start(has_audio: bool, tape: &Arc<Mutex<Tape>>) -> Result<Self, RecorderError> {
        let mut description = format!(
            "appsrc name=video is-live=true format=time max-bytes=4000000 caps=\"{}\" ! \
             rtph264depay ! h264parse config-interval=-1 ! \
             video/x-h264,stream-format=byte-stream,alignment=au ! \
             appsink name=video_out sync=false",
            plan::video_rtp_caps(plan::VideoCodec::H264, plan::VIDEO_PAYLOAD)
        );
        if has_audio {
            description.push_str(&format!(
                " appsrc name=audio is-live=true format=time max-bytes=400000 caps=\"{}\" ! \
                 rtpopusdepay ! appsink name=audio_out sync=false",
                plan::audio_caps(plan::AUDIO_PAYLOAD)
            ));
        }
        let build = |e: String| RecorderError::Build(e);
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| build(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| build("not a pipeline".into()))?;
        let appsrc = |name: &str| {
            pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        };
        let no_time = |_: &mut gst::BufferRef, _| {};
        let video_src = appsrc("video").ok_or_else(|| build("no video appsrc".into()))?;
        let video = feeds::bridge(video_src, no_time);
        let audio = appsrc("audio").map(|src| feeds::bridge(src, no_time));
        for (name, track) in [("video_out", Track::Video), ("audio_out", Track::Audio)] {
            let Some(sink) = pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            else {
                continue;
            };
            let tape = Arc::clone(tape);
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Ok(mut tape) = tape.lock() {
                            tape.take(track, sample);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| build(e.to_string()))?;
        Ok(Self {
            pipeline,
            video,
            audio,
        })
    }
}

impl Tape {
    /// A new packet: to the writer if one runs, and to the ring, which keeps the pre-roll
    /// from a keyframe.
    fn take(&mut self, track: Track, sample: gst::Sample) {
        if self
            .writer
            .as_ref()
            .is_some_and(|writer| writer.is_full_at(track, &sample))
            && let Some(full) = self.writer.take()
        {
            // The next segment starts with this keyframe; the full one is finished aside.
            match Writer::start(&full.segments) {
                Ok(next) => self.writer = Some(next),
                Err(e) => {
                    let _ = full
                        .segments
                        .notices
                        .send(WriterNotice::Failed(e.to_string()));
                }
            }
            std::thread::spawn(move || full.finish());
        }
        if let Some(writer) = self.writer.as_mut() {
            writer.push(track, &sample);
        }
        let newest = pts(&sample);
        self.ring.push_back((track, sample));
        let Some(newest) = newest else { return };
        // The newest keyframe at least the pre-roll old starts the ring.
        let start = self.ring.iter().rposition(|(track, sample)| {
            *track == Track::Video
                && is_keyframe(sample)
                && pts(sample).is_some_and(|at| newest.saturating_sub(at) >= self.pre_roll)
        });
        if let Some(start) = start {
            self.ring.drain(..start);
        }
        // Without keyframes (a broken stream), the ring still has an end.
        while self.ring.len() > RING_LIMIT {
            self.ring.pop_front();
        }
    }
}

/// Packets the ring holds at most (30 s of 30 fps video and 50 audio packets a second).
const RING_LIMIT: usize = 2400;

fn pts(sample: &gst::Sample) -> Option<gst::ClockTime> {
    sample.buffer().and_then(gst::BufferRef::pts)
}

fn is_keyframe(sample: &gst::Sample) -> bool {
    sample
        .buffer()
        .is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT))
}

/// How to make the next segment's writer (a segment ends at the first keyframe after
/// `segment`; the next starts with that keyframe).
#[derive(Clone)]
struct Segments {
    root: PathBuf,
    has_audio: bool,
    length: gst::ClockTime,
    notices: mpsc::UnboundedSender<WriterNotice>,
}

/// One segment: appsrcs into `mp4mux` (fragmented: a fragment a second) into its file, fed
/// from a keyframe on, with times counted from its first picture.
struct Writer {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: Option<gst_app::AppSrc>,
    /// Set when the end of the stream has reached the file (the MP4 is finished).
    ended: Arc<std::sync::atomic::AtomicBool>,
    /// The first picture's time; nothing before it is written.
    base: Option<gst::ClockTime>,
    /// The sound's time at the picture's start.
    audio_base: Option<gst::ClockTime>,
    /// The last picture's time in the file.
    last_video: gst::ClockTime,
    caps_set: (bool, bool),
    segments: Segments,
}

impl Writer {
    fn start(segments: &Segments) -> Result<Self, RecorderError> {
        let build = |e: String| RecorderError::Build(e);
        let path = store::segment_path(&segments.root, SystemTime::now());
        if let Some(day) = path.parent() {
            std::fs::create_dir_all(day).map_err(|e| build(format!("{}: {e}", day.display())))?;
        }
        let audio_branch = if segments.has_audio {
            "appsrc name=audio format=time ! opusparse ! queue ! mux. "
        } else {
            ""
        };
        let pipeline = gst::parse::launch(&format!(
            "appsrc name=video format=time ! h264parse ! queue ! mux. {audio_branch}\
             mp4mux name=mux fragment-duration=1000 streamable=true ! \
             filesink name=file buffer-mode=unbuffered"
        ))
        .map_err(|e| build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| build("not a pipeline".into()))?;
        let file = pipeline
            .by_name("file")
            .ok_or_else(|| build("no filesink".into()))?;
        file.set_property("location", path.to_string_lossy().as_ref());
        let appsrc = |name: &str| {
            pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| build(format!("no {name} appsrc")))
        };
        let video = appsrc("video")?;
        let audio = segments.has_audio.then(|| appsrc("audio")).transpose()?;
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let at_end = Arc::clone(&ended);
        let notices = segments.notices.clone();
        if let Some(bus) = pipeline.bus() {
            bus.set_sync_handler(move |_, message| {
                match message.view() {
                    gst::MessageView::Eos(_) => {
                        at_end.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = notices.send(WriterNotice::Closed);
                    }
                    gst::MessageView::Error(e) => {
                        let _ = notices.send(WriterNotice::Failed(e.error().to_string()));
                    }
                    _ => {}
                }
                gst::BusSyncReply::Drop
            });
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| build(e.to_string()))?;
        let _ = segments.notices.send(WriterNotice::Opened(path));
        Ok(Self {
            pipeline,
            video,
            audio,
            ended,
            base: None,
            audio_base: None,
            last_video: gst::ClockTime::ZERO,
            caps_set: (false, false),
            segments: segments.clone(),
        })
    }

    /// Whether `sample` is the keyframe that ends this segment.
    fn is_full_at(&self, track: Track, sample: &gst::Sample) -> bool {
        track == Track::Video
            && is_keyframe(sample)
            && match (self.base, pts(sample)) {
                (Some(base), Some(at)) => at.saturating_sub(base) >= self.segments.length,
                _ => false,
            }
    }

    /// Writes one packet: pictures from the first keyframe, sound from the first packet after
    /// it. Each track's times are counted from its own start (the sound's placed at the
    /// picture's time when it joins): the two depayloaders do not share a time line.
    fn push(&mut self, track: Track, sample: &gst::Sample) {
        let (Some(buffer), Some(at)) = (sample.buffer_owned(), pts(sample)) else {
            return;
        };
        let since = match (track, self.base, self.audio_base) {
            (Track::Video, None, _) if is_keyframe(sample) => {
                self.base = Some(at);
                Some(gst::ClockTime::ZERO)
            }
            (Track::Video, Some(base), _) => at.checked_sub(base),
            (Track::Audio, Some(_), Some(audio_base)) => at.checked_sub(audio_base),
            (Track::Audio, Some(_), None) => {
                self.audio_base = at.checked_sub(self.last_video);
                Some(self.last_video)
            }
            _ => None,
        };
        let Some(since) = since else { return };
        if track == Track::Video {
            self.last_video = since;
        }
        let (appsrc, caps_set) = match (track, &self.audio) {
            (Track::Video, _) => (&self.video, &mut self.caps_set.0),
            (Track::Audio, Some(audio)) => (audio, &mut self.caps_set.1),
            (Track::Audio, None) => return,
        };
        if !*caps_set {
            appsrc.set_caps(sample.caps_owned().as_ref());
            *caps_set = true;
        }
        let mut buffer = buffer;
        {
            let buffer = buffer.make_mut();
            buffer.set_pts(since);
            buffer.set_dts(since);
        }
        let _ = appsrc.push_buffer(buffer);
    }

    /// Ends the file (its MP4 is finished) and stops.
    fn finish(self) {
        let _ = self.video.end_of_stream();
        if let Some(audio) = &self.audio {
            let _ = audio.end_of_stream();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !self.ended.load(std::sync::atomic::Ordering::SeqCst)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
