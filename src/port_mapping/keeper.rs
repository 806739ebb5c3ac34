//! The task that keeps the router's forwards: asks for them at start, renews them at half
//! their lease, asks again from the start when the router forgets them or goes away, and
//! deletes them when the daemon stops. Leases are short (`[remote] lease_seconds`, 10 minutes), so a device that crashes or
//! loses power leaves nothing open for longer than that.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::gateway::{default_gateway, local_address_towards};
use super::router::{Router, RouterError, Transport};
use crate::reachability::{MediaForwards, Reachability, is_public};
use crate::system::Notifier;

/// After no router answered, or it lost the forwards: how long until asking again.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// At stop, deleting the forwards may take this long (then their leases end them).
const REMOVE_WITHIN: Duration = Duration::from_secs(3);

/// What to forward to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub https_port: u16,
    /// The STUN responder's port, when it runs (a browser outside asks it for its address).
    pub stun_port: Option<u16>,
    pub media_ports: RangeInclusive<u16>,
    /// How long the router keeps a forward unless it is renewed (`[remote] lease_seconds`).
    pub lease: Duration,
}

impl Plan {
    /// Renewed at half the lease, so one lost renewal still leaves time for the next.
    fn renew_every(&self) -> Duration {
        self.lease / 2
    }

    fn forwards(&self) -> impl Iterator<Item = (Transport, u16)> + '_ {
        let stun = self.stun_port.map(|port| (Transport::Udp, port));
        stun.into_iter()
            .chain(self.media_ports.clone().map(|port| (Transport::Udp, port)))
    }
}

/// Where the keeper tells what it knows, and how it is told to stop.
pub struct Keeper {
    pub plan: Plan,
    pub state: watch::Sender<Reachability>,
    pub notifier: Arc<Notifier>,
    pub stop: oneshot::Receiver<()>,
}

/// The keeper's task: runs until `stop` is sent (or dropped), then deletes the forwards.
pub async fn run(keeper: Keeper) {
    let Keeper {
        plan,
        state,
        notifier,
        mut stop,
    } = keeper;
    // Said when it changes, not at every try: a device with no router to ask tries every 30 s
    // for as long as it runs, and the journal hears it once.
    let publish = |reachability: Reachability| {
        let summary = reachability.summary();
        let before = state.send_replace(reachability.clone());
        if before == reachability {
            return;
        }
        if reachability.problem.is_some() {
            log::warn!("remote access: {summary}");
        } else {
            log::info!("remote access: {summary}");
        }
        notifier.reachability(&summary);
    };
    loop {
        let problem = match establish(&plan).await {
            Ok((router, reachability)) => {
                let reachable = reachability.public_url.is_some();
                publish(reachability.clone());
                if reachable {
                    match keep(router, &plan, reachability, &publish, &mut stop).await {
                        Kept::Stopped => return,
                        Kept::Lost(problem) => problem,
                    }
                } else {
                    // The router's own address is private: forwards there reach no one. Asked
                    // again now and then: the home may get a public address.
                    router.remove_all().await;
                    if tokio::time::timeout(plan.renew_every(), &mut stop)
                        .await
                        .is_ok()
                    {
                        return;
                    }
                    continue;
                }
            }
            Err(problem) => problem,
        };
        publish(Reachability {
            port_mapping: true,
            problem: Some(problem),
            ..Reachability::default()
        });
        if tokio::time::timeout(RETRY_AFTER, &mut stop).await.is_ok() {
            return;
        }
    }
}

enum Kept {
    Stopped,
    Lost(String),
}

/// Finds the router and asks for every forward of `plan`.
async fn establish(plan: &Plan) -> Result<(Router, Reachability), String> {
    let gateway = default_gateway().ok_or("the device has no default route: no router to ask")?;
    let client = local_address_towards(gateway)
        .map_err(|e| format!("no address towards the router {gateway}: {e}"))?;
    let (mut router, https_forward) = Router::find(
        gateway,
        client,
        (Transport::Tcp, plan.https_port),
        plan.lease,
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut reachability = Reachability {
        port_mapping: true,
        protocol: Some(router.protocol()),
        ..Reachability::default()
    };
    let external = match router.external_address().await {
        Ok(external) if is_public(external) => external,
        Ok(private) => {
            reachability.external_address = Some(private);
            reachability.problem = Some(behind_providers_nat(&format!(
                "the router's external address {private} is itself private"
            )));
            return Ok((router, reachability));
        }
        Err(no_public @ RouterError::NoPublicAddress(_)) => {
            reachability.problem = Some(behind_providers_nat(&no_public.to_string()));
            return Ok((router, reachability));
        }
        Err(e) => {
            router.remove_all().await;
            let refusal = https_forward
                .err()
                .map(|r| format!("{r}; "))
                .unwrap_or_default();
            return Err(format!("{refusal}{e}"));
        }
    };
    reachability.external_address = Some(external);
    let https_external = match https_forward {
        Ok(port) => port,
        Err(refused) => {
            router.remove_all().await;
            return Err(refused.to_string());
        }
    };
    let mut media = BTreeMap::new();
    let mut refused = Vec::new();
    let mut forwarded = vec![format!("{}/tcp", plan.https_port)];
    for (transport, port) in plan.forwards() {
        match router.forward((transport, port), plan.lease).await {
            Ok(outside) if Some(port) == plan.stun_port => {
                forwarded.push(format!("{port}/udp"));
                if outside != port {
                    refused.push(format!("STUN {port}/udp came out as {outside}"));
                }
            }
            Ok(outside) => {
                media.insert(port, outside);
            }
            Err(e) => refused.push(e.to_string()),
        }
    }
    forwarded.extend(port_runs(media.keys().copied()).map(|run| format!("{run}/udp")));
    reachability.public_url = Some(public_url(external, https_external));
    reachability.forwarded = forwarded;
    reachability.media = MediaForwards {
        internal: Some(client),
        external: Some(external),
        ports: media,
    };
    if reachability.media.ports.is_empty() {
        refused.insert(0, "no media port is forwarded, so calls need TURN".into());
    }
    if !refused.is_empty() {
        reachability.problem = Some(refused.join("; "));
    }
    Ok((router, reachability))
}

/// The owner's words for a home whose router has no public address.
fn behind_providers_nat(what: &str) -> String {
    format!(
        "{what}: the internet provider's own NAT (CGNAT, DS-Lite) is in front of this home, and \
         forwards on this router cannot help; reach the device through a tunnel (README, \
         \"Calling from outside\")"
    )
}

/// Renews the forwards until told to stop (then deletes them) or the router fails.
async fn keep(
    mut router: Router,
    plan: &Plan,
    mut reachability: Reachability,
    publish: &impl Fn(Reachability),
    stop: &mut oneshot::Receiver<()>,
) -> Kept {
    loop {
        tokio::select! {
            _ = &mut *stop => {
                match tokio::time::timeout(REMOVE_WITHIN, router.remove_all()).await {
                    Ok(left) if left.is_empty() => log::info!("remote access: the router's forwards are deleted"),
                    Ok(left) => log::warn!("remote access: the router kept {} (its lease ends them)", left.join(", ")),
                    Err(_) => log::warn!("remote access: the router did not answer; the forwards end with their lease"),
                }
                return Kept::Stopped;
            }
            () = tokio::time::sleep(plan.renew_every()) => {}
        }
        let https_external = match renew(&mut router, plan, &reachability).await {
            Ok(port) => port,
            Err(problem) => {
                router.remove_all().await;
                return Kept::Lost(format!("renewing the forwards failed: {problem}"));
            }
        };
        let external = match router.external_address().await {
            Ok(external) => external,
            Err(e) => return Kept::Lost(e.to_string()),
        };
        // The home got a new address (or the router another outside port): the public URL and
        // the calls' candidates move.
        let url = public_url(external, https_external);
        if reachability.public_url.as_deref() != Some(url.as_str()) {
            reachability.external_address = Some(external);
            reachability.media.external = Some(external);
            reachability.public_url = Some(url);
            publish(reachability.clone());
        }
    }
}

/// Asks again for every forward that was made (the plan's, less the media ports the router
/// refused); returns the HTTPS port outside.
async fn renew(
    router: &mut Router,
    plan: &Plan,
    reachability: &Reachability,
) -> Result<u16, String> {
    let https = router
        .forward((Transport::Tcp, plan.https_port), plan.lease)
        .await
        .map_err(|e| e.to_string())?;
    let made =
        |port: u16| Some(port) == plan.stun_port || reachability.media.ports.contains_key(&port);
    for forward in plan.forwards().filter(|(_, port)| made(*port)) {
        router
            .forward(forward, plan.lease)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(https)
}

/// The page's address outside the home.
fn public_url(external: IpAddr, https_port: u16) -> String {
    format!("https://{external}:{https_port}/")
}

/// Consecutive ports as runs: 1,2,3,7 -> "1-3", "7".
fn port_runs(ports: impl Iterator<Item = u16>) -> impl Iterator<Item = String> {
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for port in ports {
        match runs.last_mut() {
            Some((_, last)) if u32::from(*last) + 1 == u32::from(port) => *last = port,
            _ => runs.push((port, port)),
        }
    }
    runs.into_iter().map(|(first, last)| {
        if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_shown_as_runs() {
        let runs: Vec<String> =
            port_runs([50000, 50001, 50002, 50007, 50009, 50010].into_iter()).collect();
        assert_eq!(runs, ["50000-50002", "50007", "50009-50010"]);
        assert_eq!(port_runs(std::iter::empty()).count(), 0);
    }

    #[test]
    fn the_plan_forwards_stun_then_media() {
        let plan = Plan {
            https_port: 8443,
            stun_port: Some(3478),
            media_ports: 50000..=50001,
            lease: Duration::from_secs(600),
        };
        assert_eq!(plan.renew_every(), Duration::from_secs(300));
        let forwards: Vec<_> = plan.forwards().collect();
        assert_eq!(
            forwards,
            [
                (Transport::Udp, 3478),
                (Transport::Udp, 50000),
                (Transport::Udp, 50001)
            ]
        );
    }

    #[test]
    fn the_public_url_names_the_port_outside() {
        let external = IpAddr::from([31, 77, 1, 2]);
        assert_eq!(public_url(external, 18443), "https://31.77.1.2:18443/");
    }
}
