//! SIGHUP: what a reload may change in the running daemon (ICE servers and TURN credentials,
//! the certificate, the log level), applied from the config file read again. A bad file or
//! certificate is reported and the running one kept.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::tls;
use crate::turn::{IcePlan, SharedIcePlan};

/// The parts of the running daemon a reload replaces.
pub(super) struct Live<'a> {
    pub ice: &'a SharedIcePlan,
    pub stun_port: Option<u16>,
    pub tls: &'a tls::SharedTls,
    pub certificates: &'a tls::CertificateStore,
}

/// Reads the config at `path` again and applies what can change without a restart.
pub(super) fn reload(path: Option<&Path>, live: &Live<'_>) {
    let Some(path) = path else {
        log::info!("SIGHUP: no config file to reload (started without --config)");
        return;
    };
    match Config::load(path) {
        Ok(config) => {
            live.ice
                .replace(Arc::new(IcePlan::from_config(&config, live.stun_port)));
            match live.certificates.load(&config.http) {
                Ok(certificate) => {
                    live.tls.replace(certificate.config);
                    log::info!(
                        "SIGHUP: certificate {}, SHA-256 fingerprint {}",
                        certificate.origin,
                        certificate.fingerprint
                    );
                }
                Err(e) => log::error!("SIGHUP: kept the running certificate: {e}"),
            }
            if std::env::var_os("RUST_LOG").is_none()
                && let Some(level) = config.log_level.as_deref().and_then(|l| l.parse().ok())
            {
                log::set_max_level(level);
            }
            log::info!(
                "SIGHUP: reloaded {} (ICE servers, certificate, log level; port and media \
                 changes need a restart)",
                path.display()
            );
        }
        Err(e) => log::error!("SIGHUP: kept the running config: {e}"),
    }
}
