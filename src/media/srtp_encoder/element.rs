//! The element itself: request pads `rtp_sink_%u`/`rtcp_sink_%u` with their source pads, the
//! properties `dtlssrtpenc` sets, and each packet protected with the context its settings make
//! (`suite`), on the streaming thread that pushes it.

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;
use rtc_srtp::context::Context;

glib::wrapper! {
    pub struct SrtpEncoder(ObjectSubclass<imp::SrtpEncoder>) @extends gst::Element, gst::Object;
}

mod imp {
    use super::*;
    use crate::media::srtp_encoder::suite::{
        Auth, Cipher, SrtpEncoderError, Suite, context_for, nick, profile_for,
    };

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
