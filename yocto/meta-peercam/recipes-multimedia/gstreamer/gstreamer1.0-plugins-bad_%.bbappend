# webrtcbin and what it needs: SRTP for the media and SCTP for data channels (without its SCTP
# elements webrtcbin refuses data channels). DTLS is on by default; none of these three is.
PACKAGECONFIG:append:peercam-os = " webrtc srtp sctp"
