# nicesrc and nicesink, which webrtcbin uses for ICE. The plugin ships in the libnice package.
PACKAGECONFIG:append:peercam-os = " gstreamer"
