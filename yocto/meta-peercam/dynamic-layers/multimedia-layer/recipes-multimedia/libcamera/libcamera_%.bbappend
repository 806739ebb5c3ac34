# libcamerasrc, for the Pi's CSI cameras (the package libcamera-gst). meta-raspberrypi adds the
# Raspberry Pi pipelines and IPAs.
PACKAGECONFIG:append:peercam-os = " gst"
