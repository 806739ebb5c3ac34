//! The HTTPS certificate: a configured one, or a self-signed one made at first start and kept in
//! the state directory, so a browser that accepted it once keeps accepting it.
//!
//! The generated certificate names every way a user may reach the device: `localhost`, the host
//! name, `<hostname>.local` and every local IP address. TLS 1.2 and 1.3 only.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("certificate and key do not work together: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS configuration in force, replaced as a whole when the certificate is reloaded
/// (SIGHUP).
pub type SharedTls = crate::swappable::Swappable<rustls::ServerConfig>;

/// Where the certificate came from, for the start-up log.
#[derive(Debug)]
pub struct LoadedCertificate {
    pub config: Arc<rustls::ServerConfig>,
    pub origin: String,
    /// SHA-256 of the leaf certificate, `AB:CD:...`, as browsers show it.
    pub fingerprint: String,
}

/// The SHA-256 fingerprint of a DER certificate in the colon-separated form browsers show.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Where certificates come from: the config's paths, else the state directory.
#[derive(Debug, Clone)]
pub struct CertificateStore {
    pub state_dir: PathBuf,
    pub host_name: String,
    pub addresses: Vec<IpAddr>,
}

impl CertificateStore {
    /// The certificate the `[http]` config asks for (see [`load_or_create`]).
    pub fn load(&self, http: &crate::config::HttpConfig) -> Result<LoadedCertificate, TlsError> {
        let configured = http.certificate.as_deref().zip(http.private_key.as_deref());
        load_or_create(
            configured,
            &self.state_dir,
            &self.host_name,
            &self.addresses,
        )
    }
}

/// Loads the configured certificate, else the one in `state_dir`, else makes one there.
pub fn load_or_create(
    configured: Option<(&Path, &Path)>,
    state_dir: &Path,
    host_name: &str,
    addresses: &[IpAddr],
) -> Result<LoadedCertificate, TlsError> {
    let (cert_path, key_path, origin) = match configured {
        Some((cert, key)) => (cert.to_owned(), key.to_owned(), "configured".to_owned()),
        None => {
            let cert = state_dir.join(CERT_FILE);
            let key = state_dir.join(KEY_FILE);
            if cert.exists() && key.exists() {
                (cert, key, "generated earlier".to_owned())
            } else {
                generate(&cert, &key, host_name, addresses)?;
                (cert, key, "generated now".to_owned())
            }
        }
    };
    let (config, fingerprint) = server_config(&cert_path, &key_path)?;
    Ok(LoadedCertificate {
        config,
        origin: format!("{} ({origin})", cert_path.display()),
        fingerprint,
    })
}

/// The names a generated certificate covers.
pub fn subject_names(host_name: &str, addresses: &[IpAddr]) -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if !host_name.is_empty() && host_name != "localhost" {
        names.push(host_name.to_owned());
        names.push(format!("{host_name}.local"));
    }
    names.extend(addresses.iter().map(IpAddr::to_string));
    names.dedup();
    names
}

fn generate(
    cert_path: &Path,
    key_path: &Path,
    host_name: &str,
    addresses: &[IpAddr],
) -> Result<(), TlsError> {
    let names = subject_names(host_name, addresses);
    let key_pair = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("peercam {host_name}"));
    let certificate = params.self_signed(&key_pair)?;
    write_file(cert_path, certificate.pem().as_bytes(), 0o644)?;
    write_file(
        key_path,
        key_pair.serialize_pem().as_bytes(),
        crate::state_file::PRIVATE,
    )?;
    log::info!("made a self-signed certificate: {}", cert_path.display());
    Ok(())
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    crate::state_file::write(path, contents, mode).map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}

fn server_config(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Arc<rustls::ServerConfig>, String), TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            path: cert_path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: cert_path.to_owned(),
            what: "PEM certificate",
        });
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| TlsError::Read {
            path: key_path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            path: key_path.to_owned(),
            what: "PEM private key",
        })?;
    let leaf_fingerprint = fingerprint(certs[0].as_ref());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), leaf_fingerprint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_host_mdns_and_addresses() {
        let names = subject_names("cam", &["192.168.1.5".parse().unwrap()]);
        assert_eq!(names, ["localhost", "cam", "cam.local", "192.168.1.5"]);
    }

    #[test]
    fn generated_certificate_is_reused() {
        let dir = std::env::temp_dir().join(format!("peercam-tls-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = load_or_create(None, &dir, "cam", &[]).expect("generate");
        assert!(first.origin.contains("generated now"));
        let pem = std::fs::read(dir.join(CERT_FILE)).unwrap();
        let second = load_or_create(None, &dir, "cam", &[]).expect("reuse");
        assert!(second.origin.contains("generated earlier"));
        assert_eq!(pem, std::fs::read(dir.join(CERT_FILE)).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fingerprint_is_colon_separated_sha256() {
        let print = fingerprint(b"abc");
        assert_eq!(print.len(), 32 * 3 - 1);
        assert!(print.starts_with("BA:78:16:BF:8F:01:CF:EA"), "{print}");
    }

    #[test]
    fn missing_configured_file_names_the_path() {
        let err = load_or_create(
            Some((
                Path::new("/nonexistent/c.pem"),
                Path::new("/nonexistent/k.pem"),
            )),
            Path::new("/tmp"),
            "cam",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/c.pem"));
    }
}
