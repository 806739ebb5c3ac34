//! The start-up announcements: where to point a browser, the certificate's fingerprint to
//! compare, how the device is reached from outside the home, and (with no password yet) the
//! pairing link as a QR code on a terminal.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::watch;

use crate::host;
use crate::reachability::Reachability;

/// How long the banner waits for the router's first answer (beside the media rehearsal).
const FIRST_ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Tells the person who started the daemon where to point a browser.
pub(super) fn ready(host_name: &str, addresses: &[IpAddr], port: u16, fingerprint: &str) {
    let urls = host::page_urls(host_name, addresses, port);
    log::info!("ready on HTTPS port {port}");
    println!(
        "peercam is ready. Open one of these in a browser, log in, and press \"Call device\":"
    );
    for url in urls {
        println!("  {url}");
    }
    println!("(The certificate is self-signed: accept the browser's warning once. Its SHA-256");
    println!(" fingerprint, to compare with what the browser shows: {fingerprint})");
}

/// What port mapping knows once the router first answered (at most `FIRST_ANSWER_WITHIN`;
/// right away with port mapping off).
pub(super) async fn first_reachability(mut state: watch::Receiver<Reachability>) -> Reachability {
    if state.borrow().port_mapping {
        let answered = |r: &Reachability| r.public_url.is_some() || r.problem.is_some();
        let _ = tokio::time::timeout(FIRST_ANSWER_WITHIN, state.wait_for(answered)).await;
    }
    state.borrow().clone()
}

/// Tells the person who started the daemon how the device is reached from outside the home.
pub(super) fn outside(reachability: &Reachability) {
    match (&reachability.public_url, &reachability.problem) {
        _ if !reachability.port_mapping => println!(
            "From outside the home: port mapping is off (README, \"Calling from outside\")."
        ),
        (Some(url), _) => println!("From outside the home: {url}"),
        (None, _) => {}
    }
    if reachability.port_mapping {
        println!("  ({})", reachability.summary());
    }
}

/// No password is set yet: the pairing link, logged once and shown as a QR code on a terminal
/// so a phone can scan it.
pub(super) fn pairing(urls: &[String], code: &str) {
    let Some(base) = urls.first() else {
        return;
    };
    let link = format!("{base}login?code={code}");
    log::warn!("no password set (run `peercam set-password`); pairing link: {link}");
    if std::io::stdout().is_terminal()
        && let Ok(qr) = qrcode::QrCode::new(link.as_bytes())
    {
        let picture = qr
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build();
        println!("Scan to pair this phone (or open {link}):\n{picture}");
    }
}
