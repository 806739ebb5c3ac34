# Only what a call uses, in place of the recipe's defaults (curl, dash, hls, rsvg, ttml, webp,
# ... which would bring librsvg, pango and more into the build): webrtcbin (webrtc, with
# libnice), DTLS and SRTP for its media, SCTP for its data channels (without those elements
# webrtcbin refuses data channels). h264parse (videoparsersbad) needs no switch.
PACKAGECONFIG:peercam-os = "${GSTREAMER_ORC} dtls sctp srtp webrtc"
