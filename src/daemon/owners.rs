//! The owners of the daemon's state — the room owner (`rooms::run`), the media owner
//! (`media::run`) and, with `[remote] port_mapping`, the keeper of the router's forwards
//! (`port_mapping::run`) — started with the channels between them, the handles the web side
//! uses to reach them, and their orderly stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::control::Stop;
use crate::config::Config;
use crate::media::{self, MediaSettings};
use crate::media_link::MediaCommand;
use crate::metrics::Metrics;
use crate::motion::MotionEvent;
use crate::port_mapping;
use crate::reachability::Reachability;
use crate::rooms::{self, RoomLimits, RoomStatus, RoomsHandle};
use crate::system::Notifier;
use crate::turn::SharedIcePlan;

/// The owners' tasks and the handles to reach them.
pub(super) struct Owners {
    pub rooms_task: tokio::task::JoinHandle<()>,
    pub media_task: tokio::task::JoinHandle<()>,
    pub rooms: RoomsHandle,
    pub media: mpsc::UnboundedSender<MediaCommand>,
    /// The RTSP server's way to the media owner (`media::feeds`).
    pub feeds: mpsc::UnboundedSender<media::feeds::FeedCommand>,
    /// Motion events as the media owner sees them (`[motion]`), for `/events` and MQTT.
    pub motion: broadcast::Sender<MotionEvent>,
    pub status: Arc<RoomStatus>,
    /// The keeper of the router's forwards and how to tell it to stop, with port mapping on.
    port_mapping: Option<(tokio::task::JoinHandle<()>, oneshot::Sender<()>)>,
}

/// Port mapping, when `[remote] port_mapping` asks for it: what to forward, and where the
/// keeper says how the device is reached.
pub(super) struct PortMapping {
    pub plan: port_mapping::Plan,
    pub state: watch::Sender<Reachability>,
}

/// Motion events a slow listener may fall behind by before it misses some.
const MOTION_BACKLOG: usize = 16;

/// At stop, the keeper may take this long to delete the router's forwards.
const PORT_MAPPING_STOP: Duration = Duration::from_secs(4);

/// What both owners share with the rest of the daemon.
pub(super) struct Shared<'a> {
    pub ice: &'a Arc<SharedIcePlan>,
    pub metrics: &'a Arc<Metrics>,
    pub notifier: &'a Arc<Notifier>,
}

impl Owners {
    /// Starts both owners; the receiver hears when the media owner's start-up rehearsal is
    /// over.
    pub fn start(
        config: &Config,
        settings: MediaSettings,
        shared: &Shared<'_>,
        mapping: Option<PortMapping>,
    ) -> (Self, oneshot::Receiver<()>) {
        let (connections_tx, connections_rx) = mpsc::channel(256);
        let (warmed_up_tx, warmed_up) = oneshot::channel();
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let (feeds_tx, feeds_rx) = mpsc::unbounded_channel();
        let (room_input_tx, room_input_rx) = mpsc::unbounded_channel();
        let (health_tx, health_rx) = mpsc::unbounded_channel();
        let status = Arc::new(RoomStatus::default());
        let rooms_task = tokio::spawn(rooms::run(
            connections_rx,
            room_input_rx,
            health_rx,
            media_tx.clone(),
            RoomLimits {
                rooms_per_address: config.rooms.rooms_per_address,
                members_per_address: config.rooms.members_per_address,
                total_rooms: config.rooms.total_rooms,
            },
            rooms::Shared {
                ice: Arc::clone(shared.ice),
                status: Arc::clone(&status),
                metrics: Arc::clone(shared.metrics),
                notifier: Arc::clone(shared.notifier),
            },
        ));
        let (motion_tx, _) = broadcast::channel(MOTION_BACKLOG);
        let motion = config.motion.enabled.then(|| {
            media::motion_watch::MotionWatch::new(
                &config.motion,
                motion_tx.clone(),
                Arc::clone(shared.metrics),
            )
        });
        let media_task = tokio::spawn(media::run(
            settings,
            config.watchers.max,
            media::Channels {
                commands: media_rx,
                room: room_input_tx,
                health: health_tx,
                warmed_up: warmed_up_tx,
                feeds: feeds_rx,
                motion,
            },
            Arc::clone(shared.metrics),
        ));
        let owners = Self {
            rooms_task,
            media_task,
            rooms: RoomsHandle {
                connections: connections_tx,
            },
            media: media_tx,
            feeds: feeds_tx,
            motion: motion_tx,
            status,
            port_mapping: mapping.map(|PortMapping { plan, state }| {
                let (stop_tx, stop) = oneshot::channel();
                let keeper = port_mapping::Keeper {
                    plan,
                    state,
                    notifier: Arc::clone(shared.notifier),
                    stop,
                };
                (tokio::spawn(port_mapping::run(keeper)), stop_tx)
            }),
        };
        (owners, warmed_up)
    }

    /// Says bye to every caller, stops the pipeline, gives the sockets a moment to deliver
    /// the goodbyes, and has the router's forwards deleted; all within well under systemd's
    /// stop timeout.
    pub async fn shut_down(&mut self) -> Stop {
        let forwards_deleted = self.port_mapping.take().map(|(task, stop)| {
            let _ = stop.send(());
            tokio::time::timeout(PORT_MAPPING_STOP, task)
        });
        let (done, stopped) = oneshot::channel();
        let mut stop = Stop::Clean;
        if self
            .rooms
            .connections
            .send(rooms::ConnectionEvent::Shutdown { done })
            .await
            .is_ok()
            && tokio::time::timeout(Duration::from_millis(1500), stopped)
                .await
                .is_err()
        {
            log::warn!("media did not stop within 1.5 s; exiting anyway");
            stop = Stop::MediaStillStopping;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        if let Some(deleted) = forwards_deleted
            && deleted.await.is_err()
        {
            log::warn!("the router's forwards were not deleted in time; their leases end them");
        }
        stop
    }
}

impl Drop for Owners {
    /// The owners end with the daemon (after `shut_down`, the media owner has already
    /// returned; the room owner would wait for the last connection's handle otherwise).
    fn drop(&mut self) {
        self.rooms_task.abort();
        self.media_task.abort();
        if let Some((task, _)) = &self.port_mapping {
            task.abort();
        }
    }
}

/// The longest the daemon waits for the media rehearsal before it says it is ready. The
/// listeners are up meanwhile (a call waits in the media owner's queue); the limit keeps
/// READY well inside the unit's 30 s start timeout on a slow board.
const WARM_UP_LIMIT: Duration = Duration::from_secs(5);

/// Waits until the media owner's start-up rehearsal is over, so the first call after
/// "ready" is as fast as any other, or `WARM_UP_LIMIT` passed.
pub(super) async fn wait_for_warm_up(warmed_up: oneshot::Receiver<()>) {
    if tokio::time::timeout(WARM_UP_LIMIT, warmed_up)
        .await
        .is_err()
    {
        log::warn!(
            "the media rehearsal is still running after {} s; ready anyway (a call waits for it)",
            WARM_UP_LIMIT.as_secs()
        );
    }
}
