//! The start-up announcements: where to point a browser, the certificate's fingerprint to
//! compare, and (with no password yet) the pairing link as a QR code on a terminal.

use std::io::IsTerminal;
use std::net::IpAddr;

use crate::host;

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
