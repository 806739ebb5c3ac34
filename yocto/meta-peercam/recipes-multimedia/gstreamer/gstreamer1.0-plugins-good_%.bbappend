# Only what a call uses, in place of the recipe's defaults (cairo, flac, lame, mpg123, soup3,
# speex, taglib, ...): V4L2 capture and the Pi's hardware encoder (v4l2, with gudev to find
# the devices), VP8 for a browser without H.264, JPEG for still pictures. RTP, rtpbin and
# autoaudiosink need no switch.
PACKAGECONFIG:peercam-os = "${GSTREAMER_ORC} gudev jpeg v4l2 vpx"
