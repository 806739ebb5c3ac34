//! The SRTP settings `dtlssrtpenc` gives the encoder (cipher and authentication for RTP and for
//! RTCP, with gst-plugins-bad's enum values and nicks) and what they come to: one protection
//! profile of `rtc-srtp`, keyed into a context, or an error that names the settings.

use gstreamer::glib;
use gstreamer::prelude::*;
use rtc_srtp::context::Context;
use rtc_srtp::protection_profile::ProtectionProfile;
use thiserror::Error;

/// An SRTP cipher; values and nicks are gst-plugins-bad's `GstSrtpCipherType`, which
/// `dtlssrtpenc` sets by number and by nick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[enum_type(name = "PeercamSrtpCipher")]
#[repr(i32)]
pub enum Cipher {
    #[enum_value(name = "NULL", nick = "null")]
    Null = 0,
    #[enum_value(name = "AES-128-ICM", nick = "aes-128-icm")]
    Aes128Icm = 1,
    #[enum_value(name = "AES-256-ICM", nick = "aes-256-icm")]
    Aes256Icm = 2,
    #[enum_value(name = "AES-128-GCM", nick = "aes-128-gcm")]
    Aes128Gcm = 3,
    #[enum_value(name = "AES-256-GCM", nick = "aes-256-gcm")]
    Aes256Gcm = 4,
}

/// An SRTP authentication; values and nicks are gst-plugins-bad's `GstSrtpAuthType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[enum_type(name = "PeercamSrtpAuth")]
#[repr(i32)]
pub enum Auth {
    #[enum_value(name = "NULL", nick = "null")]
    Null = 0,
    #[enum_value(name = "HMAC-SHA1-32", nick = "hmac-sha1-32")]
    HmacSha1_32 = 1,
    #[enum_value(name = "HMAC-SHA1-80", nick = "hmac-sha1-80")]
    HmacSha1_80 = 2,
}

/// The nick of a value of one of the enums above, as gst-plugins-bad puts it in caps.
pub fn nick<T: StaticType>(value: i32) -> String {
    glib::EnumClass::with_type(T::static_type())
        .and_then(|class| class.value(value).map(|value| value.nick().to_owned()))
        .unwrap_or_default()
}

/// What protects one kind of packet (RTP or RTCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub cipher: Cipher,
    pub auth: Auth,
}

impl Suite {
    pub const DEFAULT: Suite = Suite {
        cipher: Cipher::Aes128Icm,
        auth: Auth::HmacSha1_80,
    };
    const CLEAR: Suite = Suite {
        cipher: Cipher::Null,
        auth: Auth::Null,
    };
}

#[derive(Debug, Error)]
pub enum SrtpEncoderError {
    #[error(
        "SRTP settings not supported by peercam's encoder: RTP {rtp:?}, RTCP {rtcp:?} (supported: \
         AES-CM 128 or 256 with HMAC-SHA1-80, or AES-GCM, the same for RTP and RTCP)"
    )]
    UnsupportedSuite { rtp: Suite, rtcp: Suite },
    #[error("the SRTP master key is {got} bytes; {profile:?} needs {expected} (key and salt)")]
    KeyLength {
        profile: ProtectionProfile,
        expected: usize,
        got: usize,
    },
    #[error("no SRTP master key is set and random-key is off")]
    NoKey,
    #[error("cannot make a random SRTP key: {0}")]
    Random(String),
    #[error("cannot set up SRTP: {0}")]
    Context(String),
}

/// The SRTP protection profile for these settings; `None` when nothing is protected.
pub fn profile_for(rtp: Suite, rtcp: Suite) -> Result<Option<ProtectionProfile>, SrtpEncoderError> {
    let unsupported = || SrtpEncoderError::UnsupportedSuite { rtp, rtcp };
    if rtp != rtcp {
        return Err(unsupported());
    }
    if rtp == Suite::CLEAR {
        return Ok(None);
    }
    match (rtp.cipher, rtp.auth) {
        (Cipher::Aes128Icm, Auth::HmacSha1_80) => Ok(Some(ProtectionProfile::Aes128CmHmacSha1_80)),
        (Cipher::Aes256Icm, Auth::HmacSha1_80) => Ok(Some(ProtectionProfile::Aes256CmHmacSha1_80)),
        // GCM authenticates by itself; the auth setting is not used (as in gst-plugins-bad).
        (Cipher::Aes128Gcm, _) => Ok(Some(ProtectionProfile::AeadAes128Gcm)),
        (Cipher::Aes256Gcm, _) => Ok(Some(ProtectionProfile::AeadAes256Gcm)),
        _ => Err(unsupported()),
    }
}

/// A master key and salt as one buffer, the way DTLS hands them over, turned into a context.
pub fn context_for(profile: ProtectionProfile, key: &[u8]) -> Result<Context, SrtpEncoderError> {
    let expected = profile.key_len() + profile.salt_len();
    if key.len() != expected {
        return Err(SrtpEncoderError::KeyLength {
            profile,
            expected,
            got: key.len(),
        });
    }
    let (master_key, master_salt) = key.split_at(profile.key_len());
    let provider = rtc_srtp::crypto::default_provider()
        .map_err(|e| SrtpEncoderError::Context(e.to_string()))?;
    Context::new(
        master_key,
        master_salt,
        profile,
        None,
        None,
        provider.crypto(),
    )
    .map_err(|e| SrtpEncoderError::Context(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_map_to_one_profile_or_a_clear_error() {
        let suite = |cipher, auth| Suite { cipher, auth };
        let cm80 = suite(Cipher::Aes128Icm, Auth::HmacSha1_80);
        assert!(matches!(
            profile_for(cm80, cm80),
            Ok(Some(ProtectionProfile::Aes128CmHmacSha1_80))
        ));
        let gcm = suite(Cipher::Aes256Gcm, Auth::Null);
        assert!(matches!(
            profile_for(gcm, gcm),
            Ok(Some(ProtectionProfile::AeadAes256Gcm))
        ));
        assert!(matches!(profile_for(Suite::CLEAR, Suite::CLEAR), Ok(None)));
        for (rtp, rtcp) in [
            (
                suite(Cipher::Aes128Icm, Auth::HmacSha1_32),
                suite(Cipher::Aes128Icm, Auth::HmacSha1_32),
            ),
            (cm80, Suite::CLEAR),
            (
                suite(Cipher::Aes128Icm, Auth::Null),
                suite(Cipher::Aes128Icm, Auth::Null),
            ),
        ] {
            let error = profile_for(rtp, rtcp).expect_err("refused");
            assert!(error.to_string().contains("not supported"), "{error}");
        }
        let short = context_for(ProtectionProfile::Aes128CmHmacSha1_80, &[0; 16]);
        assert!(
            matches!(
                short,
                Err(SrtpEncoderError::KeyLength {
                    expected: 30,
                    got: 16,
                    ..
                })
            ),
            "a short key is named"
        );
    }
}
