//! The SRTP encoder every peer's `webrtcbin` uses on x86: a GStreamer element registered under
//! `srtpenc`'s name, so that the DTLS-SRTP bins webrtcbin builds take it instead of the one in
//! gst-plugins-bad.
//!
//! Why: gst-plugins-bad's `srtpenc` protects each packet through libsrtp2, which Debian builds on
//! NSS; AES-CM and HMAC-SHA1 there set up NSS contexts for every packet, a third of what an
//! extra viewer cost (docs/benchmarks.md). This element protects packets with `rtc-srtp` (the
//! SRTP of webrtc-rs, on `ring` and the RustCrypto AES), keyed once per key. It takes over only
//! where that AES is in hardware (`hardware_aes`); the boards keep gst-plugins-bad's.
//!
//! It keeps the interface `dtlssrtpenc` relies on: request pads `rtp_sink_%u` and
//! `rtcp_sink_%u`, each with its `rtp_src_%u`/`rtcp_src_%u`; the properties `key`,
//! `rtp-cipher`, `rtp-auth`, `rtcp-cipher`, `rtcp-auth` (same values and nicks as
//! gst-plugins-bad's enums) and `random-key`. It protects RTP and RTCP with one suite:
//! AES-CM (128 or 256) with HMAC-SHA1-80, or AES-GCM; with every cipher and auth null it passes
//! packets through. Anything else (HMAC-SHA1-32, mixed suites, MKI) is refused with an element
//! error naming the settings. Decryption (`srtpdec`) stays gst-plugins-bad's.

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use rtc_srtp::context::Context;
use rtc_srtp::protection_profile::ProtectionProfile;
use thiserror::Error;

/// The factory name this element takes over.
pub const FACTORY_NAME: &str = "srtpenc";

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
fn nick<T: StaticType>(value: i32) -> String {
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
    const DEFAULT: Suite = Suite {
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

/// Whether the AES that `rtc-srtp` uses (RustCrypto's `aes`) runs in hardware here: x86 with
/// AES-NI, detected at run time. Elsewhere it is a constant-time software AES: on the emulated
/// Cortex-A53 a packet sent cost 101 k instructions with it against 54 k through libsrtp2, which
/// uses the core's AES instructions (docs/benchmarks.md); the boards keep gst-plugins-bad's.
pub fn hardware_aes() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("sse2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    {
        false
    }
}

/// Makes `srtpenc` this element from now on, in this process, where its AES is in hardware
/// (`hardware_aes`); says whether it did. Idempotent.
///
/// gst-plugins-bad's `srtpenc` must exist (its `srtpdec` decrypts, and `dtlssrtpenc` looks up
/// its enum types by name); one is made first so that its plugin and enum classes are loaded.
pub fn register() -> Result<bool, glib::BoolError> {
    static REGISTERED: OnceLock<Result<bool, glib::BoolError>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            gst::ElementFactory::make(FACTORY_NAME).build()?;
            if !hardware_aes() {
                log::info!(
                    "SRTP: packets are protected by gst-plugins-bad's srtpenc (libsrtp2): no \
                     hardware AES here for peercam's encoder"
                );
                return Ok(false);
            }
            gst::Element::register(
                None,
                FACTORY_NAME,
                gst::Rank::NONE,
                SrtpEncoder::static_type(),
            )?;
            log::info!("SRTP: peers' packets are protected by peercam's encoder (rtc-srtp)");
            Ok(true)
        })
        .clone()
}

glib::wrapper! {
    pub struct SrtpEncoder(ObjectSubclass<imp::SrtpEncoder>) @extends gst::Element, gst::Object;
}

mod imp {
    use super::*;

    /// RTP or RTCP: which of the two a pad pair carries.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Kind {
        Rtp,
        Rtcp,
    }

    impl Kind {
        fn sink_template(self) -> &'static str {
            match self {
                Kind::Rtp => "rtp_sink_%u",
                Kind::Rtcp => "rtcp_sink_%u",
            }
        }
        fn sink_name(self, index: u32) -> String {
            format!("{}_sink_{index}", self.prefix())
        }
        fn prefix(self) -> &'static str {
            match self {
                Kind::Rtp => "rtp",
                Kind::Rtcp => "rtcp",
            }
        }
        fn protected_media_type(self) -> &'static str {
            match self {
                Kind::Rtp => "application/x-srtp",
                Kind::Rtcp => "application/x-srtcp",
            }
        }
    }

    struct Settings {
        key: Option<gst::Buffer>,
        rtp: Suite,
        rtcp: Suite,
        random_key: bool,
    }

    /// What protects packets now: not yet worked out since the settings last changed, nothing
    /// (all null), or an SRTP context.
    enum Protection {
        Stale,
        Clear,
        Srtp(Box<Context>),
    }

    struct State {
        settings: Settings,
        protection: Protection,
        dropped: u64,
    }

    /// A requested sink pad and the source pad it feeds.
    struct Link {
        sink: gst::Pad,
        src: gst::Pad,
    }

    pub struct SrtpEncoder {
        state: Mutex<State>,
        links: Mutex<Vec<Link>>,
    }

    impl Default for SrtpEncoder {
        fn default() -> Self {
            Self {
                state: Mutex::new(State {
                    settings: Settings {
                        key: None,
                        rtp: Suite::DEFAULT,
                        rtcp: Suite::DEFAULT,
                        random_key: false,
                    },
                    protection: Protection::Stale,
                    dropped: 0,
                }),
                links: Mutex::new(Vec::new()),
            }
        }
    }

    #[glib::object_subclass]
    impl ObjectSubclass for SrtpEncoder {
        const NAME: &'static str = "PeercamSrtpEnc";
        type Type = super::SrtpEncoder;
        type ParentType = gst::Element;
    }

    impl ObjectImpl for SrtpEncoder {
        fn properties() -> &'static [glib::ParamSpec] {
            static PROPERTIES: OnceLock<Vec<glib::ParamSpec>> = OnceLock::new();
            PROPERTIES.get_or_init(|| {
                vec![
                    glib::ParamSpecBoxed::builder::<gst::Buffer>("key")
                        .nick("Key")
                        .blurb("Master key and salt (30 to 46 bytes)")
                        .mutable_playing()
                        .build(),
                    glib::ParamSpecEnum::builder_with_default("rtp-cipher", Suite::DEFAULT.cipher)
                        .nick("RTP Cipher")
                        .build(),
                    glib::ParamSpecEnum::builder_with_default("rtp-auth", Suite::DEFAULT.auth)
                        .nick("RTP Authentication")
                        .build(),
                    glib::ParamSpecEnum::builder_with_default("rtcp-cipher", Suite::DEFAULT.cipher)
                        .nick("RTCP Cipher")
                        .build(),
                    glib::ParamSpecEnum::builder_with_default("rtcp-auth", Suite::DEFAULT.auth)
                        .nick("RTCP Authentication")
                        .build(),
                    glib::ParamSpecBoolean::builder("random-key")
                        .nick("Generate random key")
                        .blurb("Generate a random key if no key is set")
                        .build(),
                ]
            })
        }

        fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
            let mut state = self.lock_state();
            let settings = &mut state.settings;
            match pspec.name() {
                "key" => settings.key = value.get().ok().flatten(),
                "rtp-cipher" => settings.rtp.cipher = value.get().unwrap_or(Cipher::Null),
                "rtp-auth" => settings.rtp.auth = value.get().unwrap_or(Auth::Null),
                "rtcp-cipher" => settings.rtcp.cipher = value.get().unwrap_or(Cipher::Null),
                "rtcp-auth" => settings.rtcp.auth = value.get().unwrap_or(Auth::Null),
                "random-key" => settings.random_key = value.get().unwrap_or(false),
                _ => return,
            }
            state.protection = Protection::Stale;
        }

        fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
            let state = self.lock_state();
            let settings = &state.settings;
            match pspec.name() {
                "key" => settings.key.to_value(),
                "rtp-cipher" => settings.rtp.cipher.to_value(),
                "rtp-auth" => settings.rtp.auth.to_value(),
                "rtcp-cipher" => settings.rtcp.cipher.to_value(),
                "rtcp-auth" => settings.rtcp.auth.to_value(),
                "random-key" => settings.random_key.to_value(),
                _ => pspec.default_value().clone(),
            }
        }
    }

    impl GstObjectImpl for SrtpEncoder {}

    impl ElementImpl for SrtpEncoder {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static METADATA: OnceLock<gst::subclass::ElementMetadata> = OnceLock::new();
            Some(METADATA.get_or_init(|| {
                gst::subclass::ElementMetadata::new(
                    "SRTP encoder",
                    "Filter/Network/SRTP",
                    "Protects RTP and RTCP as SRTP and SRTCP (rtc-srtp)",
                    "peercam",
                )
            }))
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: OnceLock<Vec<gst::PadTemplate>> = OnceLock::new();
            TEMPLATES.get_or_init(|| {
                let template = |name: &str, direction, presence, media_type: &str| {
                    gst::PadTemplate::new(
                        name,
                        direction,
                        presence,
                        &gst::Caps::new_empty_simple(media_type),
                    )
                };
                use gst::{PadDirection::*, PadPresence::*};
                [
                    template("rtp_sink_%u", Sink, Request, "application/x-rtp"),
                    template("rtp_src_%u", Src, Sometimes, "application/x-srtp"),
                    template("rtcp_sink_%u", Sink, Request, "application/x-rtcp"),
                    template("rtcp_src_%u", Src, Sometimes, "application/x-srtcp"),
                ]
                .into_iter()
                .filter_map(Result::ok)
                .collect()
            })
        }

        fn request_new_pad(
            &self,
            templ: &gst::PadTemplate,
            name: Option<&str>,
            _caps: Option<&gst::Caps>,
        ) -> Option<gst::Pad> {
            let kind = [Kind::Rtp, Kind::Rtcp]
                .into_iter()
                .find(|kind| templ.name_template() == kind.sink_template())?;
            let index = match name {
                Some(name) => name
                    .strip_prefix(kind.prefix())?
                    .strip_prefix("_sink_")?
                    .parse::<u32>()
                    .ok()?,
                None => self.next_index(kind),
            };
            self.add_link(kind, index)
        }

        fn release_pad(&self, pad: &gst::Pad) {
            let link = {
                let mut links = self.lock_links();
                let position = links.iter().position(|link| &link.sink == pad);
                position.map(|position| links.swap_remove(position))
            };
            if let Some(link) = link {
                let _ = link.src.set_active(false);
                let _ = link.sink.set_active(false);
                let element = self.obj();
                let _ = element.remove_pad(&link.src);
                let _ = element.remove_pad(&link.sink);
            }
        }

        fn change_state(
            &self,
            transition: gst::StateChange,
        ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
            let result = self.parent_change_state(transition);
            if transition == gst::StateChange::PausedToReady {
                // A new session starts from fresh rollover counters, as gst-plugins-bad's does.
                self.lock_state().protection = Protection::Stale;
            }
            result
        }
    }

    impl SrtpEncoder {
        fn lock_state(&self) -> MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        fn lock_links(&self) -> MutexGuard<'_, Vec<Link>> {
            self.links.lock().unwrap_or_else(PoisonError::into_inner)
        }

        fn next_index(&self, kind: Kind) -> u32 {
            let element = self.obj();
            (0..)
                .find(|index| element.static_pad(&kind.sink_name(*index)).is_none())
                .unwrap_or(0)
        }

        fn add_link(&self, kind: Kind, index: u32) -> Option<gst::Pad> {
            let element = self.obj();
            let sink_name = kind.sink_name(index);
            if element.static_pad(&sink_name).is_some() {
                return None;
            }
            let src_template = element.pad_template(&format!("{}_src_%u", kind.prefix()))?;
            let sink_template = element.pad_template(kind.sink_template())?;
            let src = gst::Pad::builder_from_template(&src_template)
                .name(format!("{}_src_{index}", kind.prefix()))
                .iterate_internal_links_function(|pad, parent| {
                    SrtpEncoder::catch_panic_pad_function(
                        parent,
                        || gst::Iterator::from_vec(Vec::new()),
                        |encoder| encoder.internal_links(pad),
                    )
                })
                .build();
            let chained_src = src.clone();
            let listed_src = src.clone();
            let evented_src = src.clone();
            let sink = gst::Pad::builder_from_template(&sink_template)
                .name(sink_name)
                .chain_function(move |_pad, parent, buffer| {
                    SrtpEncoder::catch_panic_pad_function(
                        parent,
                        || Err(gst::FlowError::Error),
                        |encoder| encoder.chain(kind, &chained_src, buffer),
                    )
                })
                .chain_list_function(move |_pad, parent, list| {
                    SrtpEncoder::catch_panic_pad_function(
                        parent,
                        || Err(gst::FlowError::Error),
                        |encoder| encoder.chain_list(kind, &listed_src, list),
                    )
                })
                .event_function(move |pad, parent, event| {
                    SrtpEncoder::catch_panic_pad_function(
                        parent,
                        || false,
                        |encoder| encoder.sink_event(kind, pad, &evented_src, event),
                    )
                })
                .query_function(|pad, parent, query| {
                    SrtpEncoder::catch_panic_pad_function(
                        parent,
                        || false,
                        |encoder| encoder.sink_query(pad, query),
                    )
                })
                .iterate_internal_links_function(|pad, parent| {
                    SrtpEncoder::catch_panic_pad_function(
                        parent,
                        || gst::Iterator::from_vec(Vec::new()),
                        |encoder| encoder.internal_links(pad),
                    )
                })
                .build();
            self.lock_links().push(Link {
                sink: sink.clone(),
                src: src.clone(),
            });
            let added = sink.set_active(true).is_ok()
                && element.add_pad(&sink).is_ok()
                && src.set_active(true).is_ok()
                && element.add_pad(&src).is_ok();
            if !added {
                // Undo the half-made pair: nothing is to refer to it.
                self.release_pad(&sink);
                return None;
            }
            Some(sink)
        }

        fn internal_links(&self, pad: &gst::Pad) -> gst::Iterator<gst::Pad> {
            let other = self.lock_links().iter().find_map(|link| {
                if &link.sink == pad {
                    Some(link.src.clone())
                } else if &link.src == pad {
                    Some(link.sink.clone())
                } else {
                    None
                }
            });
            gst::Iterator::from_vec(other.into_iter().collect())
        }

        fn sink_event(
            &self,
            kind: Kind,
            pad: &gst::Pad,
            src: &gst::Pad,
            event: gst::Event,
        ) -> bool {
            match event.view() {
                gst::EventView::Caps(caps) => {
                    let protected = self.protected_caps(kind, caps.caps());
                    src.push_event(gst::event::Caps::new(&protected))
                }
                _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
            }
        }

        /// The sink caps renamed to SRTP or SRTCP, with the suite's names (the key stays out:
        /// nothing downstream needs it, and caps end up in logs).
        fn protected_caps(&self, kind: Kind, caps: &gst::CapsRef) -> gst::Caps {
            let suite = {
                let state = self.lock_state();
                match kind {
                    Kind::Rtp => state.settings.rtp,
                    Kind::Rtcp => state.settings.rtcp,
                }
            };
            let mut protected = caps.to_owned();
            for structure in protected.make_mut().iter_mut() {
                structure.set_name(kind.protected_media_type());
                structure.set("srtp-cipher", nick::<Cipher>(suite.cipher as i32));
                structure.set("srtp-auth", nick::<Auth>(suite.auth as i32));
            }
            protected
        }

        fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
            match query.view_mut() {
                gst::QueryViewMut::Caps(caps_query) => {
                    let template = pad.pad_template_caps();
                    let result = match caps_query.filter() {
                        Some(filter) => {
                            filter.intersect_with_mode(&template, gst::CapsIntersectMode::First)
                        }
                        None => template,
                    };
                    caps_query.set_result(&result);
                    true
                }
                _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
            }
        }

        fn chain(
            &self,
            kind: Kind,
            src: &gst::Pad,
            buffer: gst::Buffer,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            let protected = {
                let mut state = self.ready_state()?;
                state.protect(kind, &buffer)
            };
            match protected {
                Some(buffer) => src.push(buffer),
                None => Ok(gst::FlowSuccess::Ok),
            }
        }

        fn chain_list(
            &self,
            kind: Kind,
            src: &gst::Pad,
            list: gst::BufferList,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            let mut protected = gst::BufferList::new_sized(list.len());
            {
                let mut state = self.ready_state()?;
                let protected = protected.make_mut();
                for buffer in list.iter() {
                    if let Some(buffer) = state.protect(kind, buffer) {
                        protected.add(buffer);
                    }
                }
            }
            if protected.is_empty() {
                return Ok(gst::FlowSuccess::Ok);
            }
            src.push_list(protected)
        }

        /// The state with its protection worked out from the settings (after a change, on the
        /// first packet); an element error when the settings cannot be used.
        fn ready_state(&self) -> Result<MutexGuard<'_, State>, gst::FlowError> {
            let mut state = self.lock_state();
            if matches!(state.protection, Protection::Stale) {
                match state.settings.protection() {
                    Ok(protection) => state.protection = protection,
                    Err(error) => {
                        drop(state);
                        gst::element_imp_error!(self, gst::LibraryError::Settings, ("{error}"));
                        return Err(gst::FlowError::NotNegotiated);
                    }
                }
            }
            Ok(state)
        }
    }

    impl Settings {
        fn protection(&mut self) -> Result<Protection, SrtpEncoderError> {
            let Some(profile) = profile_for(self.rtp, self.rtcp)? else {
                return Ok(Protection::Clear);
            };
            if self.key.is_none() {
                if !self.random_key {
                    return Err(SrtpEncoderError::NoKey);
                }
                let mut key = vec![0; profile.key_len() + profile.salt_len()];
                getrandom::getrandom(&mut key)
                    .map_err(|e| SrtpEncoderError::Random(e.to_string()))?;
                self.key = Some(gst::Buffer::from_mut_slice(key));
            }
            let key = self
                .key
                .as_ref()
                .ok_or(SrtpEncoderError::NoKey)?
                .map_readable()
                .map_err(|_| SrtpEncoderError::NoKey)?;
            Ok(Protection::Srtp(Box::new(context_for(profile, &key)?)))
        }
    }

    impl State {
        /// One packet protected, its timestamps and flags kept; `None` for a packet that cannot
        /// be protected (not RTP or RTCP), which is dropped and counted.
        fn protect(&mut self, kind: Kind, buffer: &gst::BufferRef) -> Option<gst::Buffer> {
            let context = match &mut self.protection {
                Protection::Srtp(context) => context,
                Protection::Clear => return Some(buffer.to_owned()),
                // Not reached (`ready_state` works it out first); never send in the clear.
                Protection::Stale => return None,
            };
            let map = buffer.map_readable().ok()?;
            let protected = match kind {
                Kind::Rtp => context.encrypt_rtp(&map),
                Kind::Rtcp => context.encrypt_rtcp(&map),
            };
            match protected {
                Ok(protected) => {
                    let mut out = gst::Buffer::from_mut_slice(protected);
                    if let Some(out) = out.get_mut() {
                        let _ = buffer.copy_into(
                            out,
                            gst::BufferCopyFlags::FLAGS
                                | gst::BufferCopyFlags::TIMESTAMPS
                                | gst::BufferCopyFlags::META,
                            ..,
                        );
                    }
                    Some(out)
                }
                Err(error) => {
                    self.dropped += 1;
                    if self.dropped == 1 || self.dropped.is_power_of_two() {
                        log::warn!(
                            "SRTP encoder: dropped a {kind:?} packet it could not protect \
                             ({error}); {} so far",
                            self.dropped
                        );
                    }
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer_app::AppSink;
    use std::time::Duration;

    const SSRC: u32 = 0x1234_5678;

    fn master_key() -> Vec<u8> {
        (0u8..30)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect()
    }

    /// An RTP packet as webrtcbin sends it: a one-byte header extension, then the payload.
    fn rtp_packet(sequence: u16, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0x90, 96];
        packet.extend_from_slice(&sequence.to_be_bytes());
        packet.extend_from_slice(&(u32::from(sequence) * 3000).to_be_bytes());
        packet.extend_from_slice(&SSRC.to_be_bytes());
        packet.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAB, 0x00, 0x00]);
        packet.extend_from_slice(payload);
        packet
    }

    fn payload(index: usize) -> Vec<u8> {
        (0..200).map(|i| (i * 7 + index) as u8).collect()
    }

    /// Our encoder feeding gst-plugins-bad's `srtpdec` (libsrtp2) through `kind`'s pads.
    struct RoundTrip {
        pipeline: gst::Pipeline,
        feeder: gst::Pad,
        /// Kept: a link does not hold its peer pad.
        relay: gst::Pad,
        received: AppSink,
    }

    impl RoundTrip {
        fn new(kind: &str, encoder_key: &[u8], decoder_key: &[u8]) -> RoundTrip {
            gst::init().expect("GStreamer");
            let pipeline = gst::Pipeline::new();
            let encoder = glib::Object::builder::<SrtpEncoder>()
                .property("key", gst::Buffer::from_slice(encoder_key.to_vec()))
                .build()
                .upcast::<gst::Element>();
            let decoder = gst::ElementFactory::make("srtpdec")
                .build()
                .expect("srtpdec");
            let received = AppSink::builder().sync(false).build();
            pipeline
                .add_many([&encoder, &decoder, received.upcast_ref()])
                .expect("add");
            let key_caps = gst::Caps::builder("application/x-srtp")
                .field("srtp-key", gst::Buffer::from_slice(decoder_key.to_vec()))
                .field("srtp-cipher", "aes-128-icm")
                .field("srtp-auth", "hmac-sha1-80")
                .field("srtcp-cipher", "aes-128-icm")
                .field("srtcp-auth", "hmac-sha1-80")
                .build();
            decoder.connect("request-key", false, move |_| Some(key_caps.to_value()));
            let encoder_sink = encoder
                .request_pad_simple(&format!("{kind}_sink_0"))
                .expect("request pad");
            let relay = one_at_a_time(
                &decoder
                    .static_pad(&format!("{kind}_sink"))
                    .expect("dec sink"),
            );
            encoder
                .static_pad(&format!("{kind}_src_0"))
                .expect("src pad")
                .link(&relay)
                .expect("link");
            decoder
                .static_pad(&format!("{kind}_src"))
                .expect("dec src")
                .link(&received.static_pad("sink").expect("appsink pad"))
                .expect("link");
            pipeline.set_state(gst::State::Playing).expect("play");
            let feeder = gst::Pad::new(gst::PadDirection::Src);
            feeder.set_active(true).expect("active");
            feeder.link(&encoder_sink).expect("link feeder");
            let media = if kind == "rtp" {
                "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"
            } else {
                "application/x-rtcp"
            };
            feeder.push_event(gst::event::StreamStart::new("srtp-test"));
            feeder.push_event(gst::event::Caps::new(&media.parse().expect("caps")));
            feeder.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                gst::ClockTime,
            >::new()));
            RoundTrip {
                pipeline,
                feeder,
                relay,
                received,
            }
        }

        fn next(&self) -> Option<Vec<u8>> {
            let sample = self
                .received
                .try_pull_sample(gst::ClockTime::from_seconds(2))?;
            let buffer = sample.buffer()?;
            Some(buffer.map_readable().ok()?.to_vec())
        }
    }

    /// A pad that hands on each buffer of a list singly: gst-plugins-bad 1.22's `srtpdec`
    /// mangles buffer lists (gst-plugins-bad's own `srtpenc` into it fails the same way), and
    /// webrtcbin feeds it single packets anyway.
    fn one_at_a_time(target: &gst::Pad) -> gst::Pad {
        let out = gst::Pad::new(gst::PadDirection::Src);
        out.set_active(true).expect("active");
        out.link(target).expect("link relay");
        let (chained, listed, evented) = (out.clone(), out.clone(), out);
        let relay = gst::Pad::builder(gst::PadDirection::Sink)
            .chain_function(move |_, _, buffer| chained.push(buffer))
            .chain_list_function(move |_, _, list| {
                for buffer in list.iter() {
                    listed.push(buffer.copy_deep().map_err(|_| gst::FlowError::Error)?)?;
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .event_function(move |_, _, event| evented.push_event(event))
            .build();
        relay.set_active(true).expect("active");
        relay
    }

    impl Drop for RoundTrip {
        fn drop(&mut self) {
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }

    #[test]
    fn libsrtp_decrypts_what_it_protects_across_a_sequence_number_wrap() {
        let key = master_key();
        let trip = RoundTrip::new("rtp", &key, &key);
        // Crossing 65535 moves the rollover counter; both ends must agree on it.
        let packets: Vec<Vec<u8>> = (0..3000usize)
            .map(|i| rtp_packet(64_000u16.wrapping_add(i as u16), &payload(i)))
            .collect();
        for (i, chunk) in packets.chunks(10).enumerate() {
            if i % 2 == 0 {
                for packet in chunk {
                    let pushed = trip.feeder.push(gst::Buffer::from_slice(packet.clone()));
                    assert_eq!(pushed, Ok(gst::FlowSuccess::Ok));
                }
            } else {
                let mut list = gst::BufferList::new();
                for packet in chunk {
                    list.make_mut().add(gst::Buffer::from_slice(packet.clone()));
                }
                assert_eq!(trip.feeder.push_list(list), Ok(gst::FlowSuccess::Ok));
            }
        }
        for (i, packet) in packets.iter().enumerate() {
            let decrypted = trip
                .next()
                .unwrap_or_else(|| panic!("packet {i} not decrypted"));
            assert_eq!(&decrypted, packet, "packet {i}");
        }
        let caps = trip
            .relay
            .current_caps()
            .expect("caps on the encoder's output");
        let caps = caps.structure(0).expect("a structure");
        assert_eq!(caps.name(), "application/x-srtp");
        assert_eq!(caps.get::<&str>("srtp-cipher"), Ok("aes-128-icm"));
        assert_eq!(caps.get::<&str>("srtp-auth"), Ok("hmac-sha1-80"));
        assert!(!caps.has_field("srtp-key"), "the key stays out of caps");
    }

    #[test]
    fn what_it_sends_is_encrypted_and_authenticated() {
        gst::init().expect("GStreamer");
        let profile = ProtectionProfile::Aes128CmHmacSha1_80;
        let mut context = context_for(profile, &master_key()).expect("context");
        let packet = rtp_packet(7, &payload(7));
        let protected = context.encrypt_rtp(&packet).expect("protect");
        assert_eq!(protected.len(), packet.len() + 10, "an 80-bit tag");
        assert_eq!(protected[..20], packet[..20], "the header stays readable");
        assert_ne!(
            protected[20..packet.len()],
            packet[20..],
            "the payload is encrypted"
        );

        // With another key libsrtp must refuse the packets: nothing comes out.
        let mut wrong = master_key();
        wrong[3] ^= 1;
        let trip = RoundTrip::new("rtp", &master_key(), &wrong);
        for i in 0..5u16 {
            let _ = trip
                .feeder
                .push(gst::Buffer::from_slice(rtp_packet(i, &payload(0))));
        }
        assert!(
            trip.next().is_none(),
            "a packet passed authentication with the wrong key"
        );
    }

    #[test]
    fn libsrtp_decrypts_its_rtcp() {
        let key = master_key();
        let trip = RoundTrip::new("rtcp", &key, &key);
        // Receiver reports with no report blocks, each with its own SSRC word after it.
        let reports: Vec<Vec<u8>> = (0..5u32)
            .map(|i| {
                let mut report = vec![0x80, 201, 0x00, 0x01];
                report.extend_from_slice(&(SSRC + i).to_be_bytes());
                report
            })
            .collect();
        for report in &reports {
            let pushed = trip.feeder.push(gst::Buffer::from_slice(report.clone()));
            assert_eq!(pushed, Ok(gst::FlowSuccess::Ok));
        }
        for (i, report) in reports.iter().enumerate() {
            assert_eq!(trip.next().as_ref(), Some(report), "report {i}");
        }
    }

    #[test]
    fn with_hardware_aes_srtpenc_is_this_element_and_dtlssrtpenc_takes_it() {
        gst::init().expect("GStreamer");
        let took_over = register().expect("register");
        assert_eq!(took_over, hardware_aes());
        assert_eq!(
            register().ok(),
            Some(took_over),
            "a second registration is a no-op"
        );
        let made = gst::ElementFactory::make(FACTORY_NAME)
            .build()
            .expect("srtpenc");
        assert_eq!(made.type_() == SrtpEncoder::static_type(), took_over);
        let dtls = gst::ElementFactory::make("dtlssrtpenc")
            .build()
            .expect("dtlssrtpenc");
        let bin = dtls.downcast::<gst::Bin>().expect("a bin");
        let ours = bin
            .iterate_elements()
            .into_iter()
            .filter_map(Result::ok)
            .any(|element| element.type_() == SrtpEncoder::static_type());
        assert_eq!(ours, took_over, "dtlssrtpenc's srtpenc (ours: {ours})");
    }

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

    #[test]
    fn a_missing_key_is_an_element_error_not_clear_packets() {
        gst::init().expect("GStreamer");
        let encoder = glib::Object::new::<SrtpEncoder>().upcast::<gst::Element>();
        let pipeline = gst::Pipeline::new();
        let sink = gst::ElementFactory::make("fakesink")
            .build()
            .expect("fakesink");
        pipeline.add_many([&encoder, &sink]).expect("add");
        let pad = encoder.request_pad_simple("rtp_sink_%u").expect("pad");
        assert_eq!(pad.name(), "rtp_sink_0");
        encoder
            .link_pads(Some("rtp_src_0"), &sink, None)
            .expect("link");
        pipeline.set_state(gst::State::Playing).expect("play");
        let feeder = gst::Pad::new(gst::PadDirection::Src);
        feeder.set_active(true).expect("active");
        feeder.link(&pad).expect("link");
        feeder.push_event(gst::event::StreamStart::new("no-key"));
        feeder.push_event(gst::event::Caps::new(&gst::Caps::new_empty_simple(
            "application/x-rtp",
        )));
        feeder.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()));
        let pushed = feeder.push(gst::Buffer::from_slice(rtp_packet(1, &payload(1))));
        assert_eq!(pushed, Err(gst::FlowError::NotNegotiated));
        let bus = pipeline.bus().expect("bus");
        let error = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(2), &[gst::MessageType::Error])
            .expect("an error message");
        let gst::MessageView::Error(error) = error.view() else {
            unreachable!("filtered for errors")
        };
        assert!(
            error.error().to_string().contains("no SRTP master key"),
            "{}",
            error.error()
        );
        let _ = pipeline.set_state(gst::State::Null);
        std::thread::sleep(Duration::from_millis(10));
    }
}
