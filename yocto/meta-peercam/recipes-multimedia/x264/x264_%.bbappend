# The library alone: ffmpeg is only for the x264 command's input files (lavf, swscale), which a
# camera never runs, and would bring all of ffmpeg into the build.
PACKAGECONFIG:remove:peercam-os = "ffmpeg"
