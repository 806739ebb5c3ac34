//! Motion to an MQTT broker (`[mqtt] broker`), with Home Assistant's MQTT discovery: at each
//! connection the device publishes (retained) a `binary_sensor` of class `motion` under
//! `<discovery_prefix>/binary_sensor/<device>/motion/config`, `online` on its availability
//! topic (the broker publishes `offline` for it as its last will) and the motion state now;
//! then `ON` and `OFF` on `<topic_prefix>/<device>/motion` as motion starts and ends.
//!
//! The client is rumqttc's; its event loop is polled here, and a broker that goes away is
//! tried again with a growing pause (1 s to 60 s), logged once per outage.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::config::MqttConfig;
use crate::motion::MotionEvent;

/// The topics of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Topics {
    pub state: String,
    pub availability: String,
    /// Home Assistant's discovery topic; `None` without a discovery prefix.
    pub discovery: Option<String>,
    device: String,
    name: String,
}

impl Topics {
    /// The topics of the device called `host_name` (its id: the name's letters, digits, `-`
    /// and `_`, lower case).
    pub fn new(config: &MqttConfig, host_name: &str) -> Self {
        let device: String = host_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let device = if device.is_empty() {
            "peercam".to_owned()
        } else {
            device
        };
        let base = format!("{}/{device}", config.topic_prefix);
        Self {
            state: format!("{base}/motion"),
            availability: format!("{base}/availability"),
            discovery: (!config.discovery_prefix.is_empty()).then(|| {
                format!(
                    "{}/binary_sensor/{device}/motion/config",
                    config.discovery_prefix
                )
            }),
            device,
            name: host_name.to_owned(),
        }
    }

    /// Home Assistant's discovery message for the motion sensor.
    pub fn discovery_message(&self) -> String {
        json!({
            "name": "Motion",
            "unique_id": format!("peercam_{}_motion", self.device),
            "device_class": "motion",
            "state_topic": self.state,
            "payload_on": "ON",
            "payload_off": "OFF",
            "availability_topic": self.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {
                "identifiers": [format!("peercam_{}", self.device)],
                "name": self.name,
                "manufacturer": "peercam",
                "model": "peercam camera",
            },
        })
        .to_string()
    }
}

/// The longest pause between attempts to reach a broker that is away.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Messages waiting for the event loop.
const QUEUE: usize = 16;

/// Publishes motion from `events` to the broker at `host:port` until the daemon stops.
pub async fn run(
    config: MqttConfig,
    (host, port): (String, u16),
    host_name: String,
    mut events: broadcast::Receiver<MotionEvent>,
    moving_now: impl Fn() -> bool + Send + 'static,
) {
    let topics = Topics::new(&config, &host_name);
    let mut options = MqttOptions::new(format!("peercam-{}", topics.device), &host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_last_will(LastWill::new(
        &topics.availability,
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if !config.username.is_empty() {
        options.set_credentials(&config.username, &config.password);
    }
    let (client, mut connection) = AsyncClient::new(options, QUEUE);
    log::info!("MQTT: motion to {host}:{port} on `{}`", topics.state);
    let mut away_since_logged = false;
    let mut retry = Duration::from_secs(1);
    loop {
        tokio::select! {
            polled = connection.poll() => match polled {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    log::info!("MQTT: connected to {host}:{port}");
                    away_since_logged = false;
                    retry = Duration::from_secs(1);
                    announce(&client, &topics, moving_now());
                }
                Ok(_) => {}
                Err(e) => {
                    if !away_since_logged {
                        log::warn!("MQTT: the broker {host}:{port} cannot be reached ({e}); \
                                    trying again");
                        away_since_logged = true;
                    }
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                }
            },
            event = events.recv() => match event {
                Ok(event) => publish_state(&client, &topics,
                    matches!(event, MotionEvent::MotionStarted { .. })),
                Err(RecvError::Lagged(_)) => publish_state(&client, &topics, moving_now()),
                Err(RecvError::Closed) => break,
            },
        }
    }
}

/// What a (re)connection publishes: discovery, availability and the state now, all retained.
fn announce(client: &AsyncClient, topics: &Topics, moving: bool) {
    if let Some(discovery) = &topics.discovery {
        queue(client, discovery, topics.discovery_message());
    }
    queue(client, &topics.availability, "online".to_owned());
    publish_state(client, topics, moving);
}

fn publish_state(client: &AsyncClient, topics: &Topics, moving: bool) {
    queue(
        client,
        &topics.state,
        if moving { "ON" } else { "OFF" }.to_owned(),
    );
}

/// Queues a retained message; with the queue full (the broker away) the message is dropped:
/// the next connection publishes the state then.
fn queue(client: &AsyncClient, topic: &str, payload: String) {
    if client
        .try_publish(topic, QoS::AtLeastOnce, true, payload)
        .is_err()
    {
        log::debug!("MQTT: `{topic}` not queued (the broker is away)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_named_after_the_device() {
        let topics = Topics::new(&MqttConfig::default(), "Front Door.local");
        assert_eq!(topics.state, "peercam/front_door_local/motion");
        assert_eq!(topics.availability, "peercam/front_door_local/availability");
        assert_eq!(
            topics.discovery.as_deref(),
            Some("homeassistant/binary_sensor/front_door_local/motion/config")
        );
        let message: serde_json::Value = serde_json::from_str(&topics.discovery_message()).unwrap();
        assert_eq!(message["device_class"], "motion");
        assert_eq!(message["state_topic"], "peercam/front_door_local/motion");
        assert_eq!(message["unique_id"], "peercam_front_door_local_motion");
        let without = MqttConfig {
            discovery_prefix: String::new(),
            ..MqttConfig::default()
        };
        assert_eq!(Topics::new(&without, "cam").discovery, None);
    }
}
