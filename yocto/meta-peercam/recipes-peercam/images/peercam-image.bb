SUMMARY = "peercam: a Raspberry Pi camera that answers video calls from a browser"
DESCRIPTION = "Boots to the peercam daemon under systemd, answers as peercam.local \
               (avahi), takes its address by DHCP on Ethernet or Wi-Fi, and has nothing a \
               camera does not need: no graphics, no sound server, no SSH server."
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES = ""
IMAGE_LINGUAS = ""

IMAGE_INSTALL = "\
    packagegroup-core-boot \
    peercam \
    peercam-appliance \
    libcamera-gst \
    avahi-daemon \
    avahi-libnss-mdns \
    alsa-utils-alsactl \
    alsa-utils-amixer \
    alsa-utils-aplay \
    alsa-utils-speaker-test \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"

# What the machine recommends (kernel modules for USB cameras and sound cards and the Pi's
# camera and codec drivers, its udev rules, its Wi-Fi firmware) but its Bluetooth firmware:
# the camera has no Bluetooth.
IMAGE_INSTALL += "${@oe.utils.str_filter_out('bluez-.*', d.getVar('MACHINE_EXTRA_RRECOMMENDS'), d)}"

# meta-raspberrypi's SD card layout, with the boot partition at /boot/firmware (see the file).
WKS_FILE = "peercam-raspberrypi.wks"
IMAGE_FSTYPES = "wic.bz2 wic.bmap"

# The size budget, in KiB: the build fails if the root grows past it (docs/flashing.md).
IMAGE_ROOTFS_MAXSIZE = "393216"
