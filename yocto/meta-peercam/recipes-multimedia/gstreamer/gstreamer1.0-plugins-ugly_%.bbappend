# x264enc: the software H.264 encoder, for a Pi 5 (no hardware encoder) and as the fallback
# when v4l2h264enc is missing. Under LICENSE_FLAGS "commercial" (see conf/distro/peercam-os.conf).
PACKAGECONFIG:peercam-os = "${GSTREAMER_ORC} x264"
