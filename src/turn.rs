//! ICE servers: what each caller's browser and the device's own webrtcbin are told to use.
//!
//! Three sources, all from the config, never from page JavaScript: the device's own STUN
//! responder (as `stun:<the host the page was loaded from>:<port>`), static servers (for
//! example coturn with `user=name:password` and `lt-cred-mech`), and coturn's shared secret
//! (`use-auth-secret` + `static-auth-secret`), from which short-lived credentials are minted for
//! each call: username `<expiry unix time>:<id>`, password base64(HMAC-SHA1(secret, username)).
//! Pure: the time and the id are passed in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::signaling::{BrowserIce, IceServer, TransportPolicy};

/// coturn's `use-auth-secret` REST-API credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSecret {
    pub urls: Vec<String>,
    pub secret: String,
    pub lifetime: Duration,
}

/// What the device's webrtcbin is given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceIce {
    /// `stun://host:port`
    pub stun_server: Option<String>,
    /// `turn://user:password@host:port?transport=...` (user and password URL-encoded).
    pub turn_servers: Vec<String>,
    pub transport_policy: TransportPolicy,
}

/// The plan in force, replaced as a whole when the config is reloaded (SIGHUP).
pub type SharedIcePlan = crate::swappable::Swappable<IcePlan>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IcePlan {
    /// The device's STUN responder port, when it runs.
    pub own_stun_port: Option<u16>,
    pub static_servers: Vec<IceServer>,
    pub shared_secret: Option<SharedSecret>,
    pub transport_policy: TransportPolicy,
}

/// Mints coturn REST-API credentials valid until `now + lifetime`.
pub fn mint_credential(
    secret: &str,
    lifetime: Duration,
    now: SystemTime,
    id: &str,
) -> (String, String) {
    let expiry = now
        .checked_add(lifetime)
        .unwrap_or(now)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let username = format!("{expiry}:{id}");
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

impl IcePlan {
    /// The plan the config describes; `own_stun_port` is the responder's bound port, if it runs.
    pub fn from_config(config: &crate::config::Config, own_stun_port: Option<u16>) -> Self {
        Self {
            own_stun_port,
            static_servers: config
                .ice
                .servers
                .iter()
                .map(|s| IceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
            shared_secret: config.turn.secret.as_ref().map(|secret| SharedSecret {
                urls: config.turn.urls.clone(),
                secret: secret.clone(),
                lifetime: Duration::from_secs(config.turn.lifetime_seconds),
            }),
            transport_policy: config.ice.transport_policy,
        }
    }

    /// The ICE configuration for a browser that loaded the page from `host` (the Host header
    /// without its port); `id` names the call or connection in minted usernames.
    pub fn for_browser(&self, host: Option<&str>, now: SystemTime, id: &str) -> BrowserIce {
        let mut servers = Vec::new();
        if let (Some(port), Some(host)) = (self.own_stun_port, host) {
            servers.push(IceServer {
                urls: vec![format!("stun:{host}:{port}")],
                username: None,
                credential: None,
            });
        }
        servers.extend(self.static_servers.iter().cloned());
        if let Some(shared) = &self.shared_secret {
            let (username, credential) = mint_credential(&shared.secret, shared.lifetime, now, id);
            servers.push(IceServer {
                urls: shared.urls.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        BrowserIce {
            ice_servers: servers,
            transport_policy: self.transport_policy,
        }
    }

    /// The servers the device's own webrtcbin uses: the configured ones (its own STUN responder
    /// would only tell it what it already knows).
    pub fn for_device(&self, now: SystemTime, id: &str) -> DeviceIce {
        let mut device = DeviceIce {
            transport_policy: self.transport_policy,
            ..DeviceIce::default()
        };
        let minted = self.shared_secret.as_ref().map(|shared| {
            let (user, pass) = mint_credential(&shared.secret, shared.lifetime, now, id);
            (shared.urls.as_slice(), Some(user), Some(pass))
        });
        let configured = self
            .static_servers
            .iter()
            .map(|s| (s.urls.as_slice(), s.username.clone(), s.credential.clone()));
        for (urls, username, credential) in configured.chain(minted) {
            for url in urls {
                match gstreamer_url(url, username.as_deref(), credential.as_deref()) {
                    Some(GstUrl::Stun(stun)) if device.stun_server.is_none() => {
                        device.stun_server = Some(stun);
                    }
                    Some(GstUrl::Turn(turn)) => device.turn_servers.push(turn),
                    _ => {}
                }
            }
        }
        device
    }
}

enum GstUrl {
    Stun(String),
    Turn(String),
}

/// Turns a browser ICE URL (`stun:host:port`, `turn:host:port?transport=udp`, `turns:...`)
/// into webrtcbin's form (`stun://host:port`, `turn://user:pass@host:port?transport=udp`).
fn gstreamer_url(url: &str, username: Option<&str>, credential: Option<&str>) -> Option<GstUrl> {
    let (scheme, rest) = url.split_once(':')?;
    let rest = rest.trim_start_matches("//");
    match scheme {
        "stun" | "stuns" => Some(GstUrl::Stun(format!("stun://{rest}"))),
        "turn" | "turns" => {
            let user = url_encode(username.unwrap_or_default());
            let pass = url_encode(credential.unwrap_or_default());
            Some(GstUrl::Turn(format!("{scheme}://{user}:{pass}@{rest}")))
        }
        _ => None,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (`:` `+` `=` `/` included).
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn shared() -> SharedSecret {
        SharedSecret {
            urls: vec!["turn:turn.example:3478?transport=udp".into()],
            secret: "north".into(),
            lifetime: Duration::from_secs(3600),
        }
    }

    #[test]
    fn minted_credentials_follow_coturn_rest_api() {
        let (user, pass) =
            mint_credential("north", Duration::from_secs(3600), at(1_000_000), "call7");
        assert_eq!(user, "1003600:call7");
        // base64(HMAC-SHA1("north", "1003600:call7")), checked with `openssl dgst -sha1 -hmac`.
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(b"north").unwrap();
        mac.update(b"1003600:call7");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(pass, expected);
        assert_eq!(pass.len(), 28, "20 bytes of SHA-1 in base64");
    }

    #[test]
    fn browsers_get_the_devices_stun_at_the_host_they_used() {
        let plan = IcePlan {
            own_stun_port: Some(3478),
            ..IcePlan::default()
        };
        let ice = plan.for_browser(Some("192.168.1.20"), at(0), "c1");
        assert_eq!(ice.ice_servers[0].urls, ["stun:192.168.1.20:3478"]);
        assert_eq!(ice.transport_policy, TransportPolicy::All);
        let v6 = plan.for_browser(Some("[fd00::2]"), at(0), "c1");
        assert_eq!(v6.ice_servers[0].urls, ["stun:[fd00::2]:3478"]);
        assert!(plan.for_browser(None, at(0), "c1").ice_servers.is_empty());
    }

    #[test]
    fn shared_secret_servers_get_fresh_credentials() {
        let plan = IcePlan {
            shared_secret: Some(shared()),
            transport_policy: TransportPolicy::Relay,
            ..IcePlan::default()
        };
        let ice = plan.for_browser(Some("cam.local"), at(100), "c9");
        let turn = &ice.ice_servers[0];
        assert_eq!(turn.username.as_deref(), Some("3700:c9"));
        assert!(turn.credential.is_some());
        assert_eq!(ice.transport_policy, TransportPolicy::Relay);
        let json = serde_json::to_string(&ice).unwrap();
        assert!(json.contains(r#""iceTransportPolicy":"relay""#), "{json}");
    }

    #[test]
    fn the_device_gets_url_encoded_turn_urls() {
        let plan = IcePlan {
            own_stun_port: Some(3478),
            static_servers: vec![
                IceServer {
                    urls: vec!["stun:stun.example:3478".into()],
                    username: None,
                    credential: None,
                },
                IceServer {
                    urls: vec!["turn:turn.example:3478?transport=tcp".into()],
                    username: Some("cam:1".into()),
                    credential: Some("a+b=c/d".into()),
                },
            ],
            shared_secret: Some(shared()),
            transport_policy: TransportPolicy::Relay,
        };
        let device = plan.for_device(at(0), "d1");
        assert_eq!(
            device.stun_server.as_deref(),
            Some("stun://stun.example:3478")
        );
        assert_eq!(
            device.turn_servers[0],
            "turn://cam%3A1:a%2Bb%3Dc%2Fd@turn.example:3478?transport=tcp"
        );
        assert!(device.turn_servers[1].starts_with("turn://3600%3Ad1:"));
        assert_eq!(device.transport_policy, TransportPolicy::Relay);
    }
}
