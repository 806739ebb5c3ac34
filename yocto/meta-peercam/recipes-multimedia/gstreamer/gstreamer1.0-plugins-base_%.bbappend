# Only what a call uses, in place of the recipe's defaults (ogg, pango, png, theora, vorbis):
# ALSA for the microphone and speaker, Opus for the call's audio both ways. The converters,
# appsink and the test sources need no switch.
PACKAGECONFIG:peercam-os = "${GSTREAMER_ORC} alsa opus"
