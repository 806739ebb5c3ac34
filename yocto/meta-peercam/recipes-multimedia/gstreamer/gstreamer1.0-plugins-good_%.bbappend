# VP8 (vp8enc) for a browser that does not receive H.264.
PACKAGECONFIG:append:peercam-os = " vpx"
