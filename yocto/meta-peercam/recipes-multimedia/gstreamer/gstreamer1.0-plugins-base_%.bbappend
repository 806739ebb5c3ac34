# Opus: the call's audio, both ways.
PACKAGECONFIG:append:peercam-os = " opus"
