SUMMARY = "peercam: call the camera from a browser over WebRTC"
DESCRIPTION = "The daemon of the peercam camera appliance: it serves the call page, \
               answers as the other person of a two-person WebRTC room with its camera and \
               microphone, plays the caller's voice, and runs a STUN responder."
SECTION = "multimedia"
CVE_PRODUCT = "peercam"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=7;endline=7;md5=86b31c7756a1a7962f28b62856ed4f05"

# The source is the peercam tree this layer sits in (PEERCAM_TREE, from conf/layer.conf), built
# as checked out: the layer and the code it builds are one commit, pinned by whoever checks it
# out (see the layer's README). Only the crates are fetched, each by its checksum.
inherit externalsrc
EXTERNALSRC = "${PEERCAM_TREE}"
EXTERNALSRC_BUILD = "${WORKDIR}/build"

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

# Regenerate with scripts/yocto-crates after Cargo.lock changes (.ci/run fails when stale).
require ${BPN}-crates.inc

# The -sys crates find the target's GStreamer through pkg-config.
DEPENDS += "gstreamer1.0 gstreamer1.0-plugins-bad gstreamer1.0-plugins-base gstreamer1.0-rtsp-server"

# The board's daemon leaves out `peercam probe` (the webrtc-rs caller for benchmarks).
CARGO_BUILD_FLAGS += "--no-default-features"

# Which of board/raspberrypi/ becomes /etc/peercam/peercam.toml: the CSI camera and the
# hardware H.264 encoder, or on a Pi 5 (no encoder on the SoC) x264 at 960x540.
PEERCAM_BOARD_CONFIG ??= "peercam.toml"
PEERCAM_BOARD_CONFIG:raspberrypi5 ??= "peercam-pi5.toml"
PACKAGE_ARCH = "${MACHINE_ARCH}"

PACKAGES =+ "${PN}-appliance"

do_install:append() {
    install -Dm 0644 ${S}/systemd/peercam.service ${D}${systemd_system_unitdir}/peercam.service
    install -Dm 0644 ${S}/systemd/peercam.sysusers ${D}${nonarch_libdir}/sysusers.d/peercam.conf
    install -Dm 0644 ${S}/board/raspberrypi/${PEERCAM_BOARD_CONFIG} ${D}${sysconfdir}/peercam/peercam.toml
    install -d ${D}${datadir}/peercam/raspberrypi
    for file in README.md config.txt peercam.toml peercam-pi5.toml; do
        install -m 0644 ${S}/board/raspberrypi/$file ${D}${datadir}/peercam/raspberrypi/
    done
    install -Dm 0644 ${S}/README.md ${D}${docdir}/peercam/README.md

    # The appliance: first boot (password and Wi-Fi from the boot partition), networks by
    # DHCP, the pairing link on the console. Shared with the Debian image.
    image=${S}/board/raspberrypi/image
    install -Dm 0755 $image/usr/lib/peercam/firstboot ${D}${libdir}/peercam/firstboot
    install -Dm 0644 $image/etc/systemd/system/peercam-firstboot.service \
        ${D}${systemd_system_unitdir}/peercam-firstboot.service
    install -d ${D}${systemd_unitdir}/network
    install -m 0644 $image/etc/systemd/network/*.network ${D}${systemd_unitdir}/network/
    install -Dm 0644 $image/etc/systemd/journald.conf.d/peercam.conf \
        ${D}${systemd_unitdir}/journald.conf.d/peercam.conf
    install -Dm 0644 $image/etc/systemd/system/systemd-networkd-wait-online.service.d/peercam.conf \
        ${D}${systemd_system_unitdir}/systemd-networkd-wait-online.service.d/peercam.conf
}

SYSTEMD_PACKAGES = "${PN} ${PN}-appliance"
SYSTEMD_SERVICE:${PN} = "peercam.service"
SYSTEMD_SERVICE:${PN}-appliance = "peercam-firstboot.service"

# The same user and groups as systemd/peercam.sysusers (.ci/run checks the two agree). The
# render group comes from systemd's udev package.
USERADD_PACKAGES = "${PN}"
USERADD_DEPENDS = "systemd"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/peercam --no-create-home \
                       --shell ${sbindir}/nologin --comment 'peercam camera appliance' \
                       --user-group --groups video,audio,render peercam"

CONFFILES:${PN} = "${sysconfdir}/peercam/peercam.toml"
FILES:${PN} += "${systemd_system_unitdir}/peercam.service ${nonarch_libdir}/sysusers.d/peercam.conf"
FILES:${PN}-appliance += "\
    ${libdir}/peercam/firstboot \
    ${systemd_system_unitdir}/peercam-firstboot.service \
    ${systemd_system_unitdir}/systemd-networkd-wait-online.service.d \
    ${systemd_unitdir}/network \
    ${systemd_unitdir}/journald.conf.d \
"

# The GStreamer elements a call uses (src/media): capture, convert, encode, payload, ICE,
# DTLS-SRTP, and the caller's voice back to the speaker.
RDEPENDS:${PN} = "\
    gstreamer1.0 \
    gstreamer1.0-plugins-bad-dtls \
    gstreamer1.0-plugins-bad-sctp \
    gstreamer1.0-plugins-bad-srtp \
    gstreamer1.0-plugins-bad-videoparsersbad \
    gstreamer1.0-plugins-bad-webrtc \
    gstreamer1.0-plugins-base-alsa \
    gstreamer1.0-plugins-base-app \
    gstreamer1.0-plugins-base-audioconvert \
    gstreamer1.0-plugins-base-audioresample \
    gstreamer1.0-plugins-base-audiotestsrc \
    gstreamer1.0-plugins-base-opus \
    gstreamer1.0-plugins-base-videoconvertscale \
    gstreamer1.0-plugins-base-videorate \
    gstreamer1.0-plugins-base-videotestsrc \
    gstreamer1.0-plugins-good-autodetect \
    gstreamer1.0-plugins-good-jpeg \
    gstreamer1.0-plugins-good-rtp \
    gstreamer1.0-plugins-good-rtpmanager \
    gstreamer1.0-plugins-good-video4linux2 \
    gstreamer1.0-plugins-good-vpx \
    gstreamer1.0-plugins-ugly-x264 \
    libnice \
"
RDEPENDS:${PN}-appliance = "${PN} systemd util-linux-runuser wpa-supplicant"
# libcamerasrc, for CSI cameras (a USB camera needs only video4linux2).
RRECOMMENDS:${PN} = "libcamera-gst"
