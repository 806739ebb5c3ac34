# The board's Debian 12 arm64 root, in one place: what it holds and how it is made. Sourced by
# scripts/board-image (which caches the root and makes the flashable image from it) and by
# scripts/board-test (which boots the same root). POSIX sh; needs root.
#
#   board_root_packages       the packages of the root: the system below plus the peercam
#                             package's dependencies and recommendations (Cargo.toml)
#   board_root_make ROOT PACKAGES MIRROR SECURITY
#                             makes ROOT with mmdebstrap, running mkinitramfs once
#   board_root_stage ROOT STAGED DEB
#                             STAGED: ROOT with peercam and the image's settings
#   board_root_dir, board_staged_dir
#                             where the cached root and the staged root are kept
#
# Under qemu-user mkinitramfs is the slow part (~20 min a run). Installing the kernel runs it
# once, and raspi-firmware's hook again; the root is made with update-initramfs diverted to a
# no-op, then it runs once at the end.

# The system around peercam: systemd with networkd and resolved, mDNS (peercam.local), the
# Raspberry Pi's firmware, kernel and Wi-Fi, and ALSA's tools for the owner's speaker.
BOARD_SYSTEM_PACKAGES="systemd systemd-sysv systemd-resolved systemd-timesyncd udev dbus kmod
  iproute2 netbase e2fsprogs dosfstools zstd initramfs-tools
  linux-image-arm64 raspi-firmware firmware-brcm80211 wpasupplicant
  avahi-daemon libnss-mdns alsa-utils gstreamer1.0-libcamera"

board_root_dir() {
    echo "${PEERCAM_CACHE:-/var/cache/peercam}/boardroot-arm64"
}

board_staged_dir() {
    echo "$(board_root_dir).staged"
}

# The package names of the peercam package's Depends and Recommends (Cargo.toml's
# [package.metadata.deb]), without versions or alternatives.
deb_dependencies() {
    python3 -c '
import re, sys, tomllib
deb = tomllib.load(open(sys.argv[1], "rb"))["package"]["metadata"]["deb"]
for field in ("depends", "recommends"):
    for item in deb.get(field, "").split(","):
        name = re.sub(r"\(.*?\)|\|.*", "", item).strip()
        if name:
            print(name)
' Cargo.toml
}

board_root_packages() {
    {
        echo $BOARD_SYSTEM_PACKAGES | tr ' ' '\n'
        deb_dependencies
    } | sort -u | tr '\n' ' ' | sed 's/ $//'
}

board_root_make() {
    make_root=$1 make_packages=$2 make_mirror=$3 make_security=$4
    components="main non-free-firmware"
    # Documentation, manual pages and translations are no use on the board.
    mmdebstrap --arch=arm64 --variant=apt --components="main,non-free-firmware" \
        --include="$(echo $make_packages | tr ' ' ',')" \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs' \
        --essential-hook='printf "#!/bin/sh\nexit 0\n" > "$1/usr/sbin/update-initramfs"; chmod 755 "$1/usr/sbin/update-initramfs"' \
        --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/boot/firmware"' \
        --essential-hook='echo COMPRESS=zstd > "$1/etc/initramfs-tools/conf.d/peercam.conf"' \
        --customize-hook='rm "$1/usr/sbin/update-initramfs"' \
        --customize-hook='chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs' \
        --customize-hook='chroot "$1" update-initramfs -c -k all' \
        --customize-hook='chroot "$1" apt-get clean' \
        bookworm "$make_root" \
        "deb $make_mirror bookworm $components" \
        "deb $make_mirror bookworm-updates $components" \
        "deb $make_security bookworm-security $components"
}

# Runs a command in ROOT with /proc and /dev mounted, in a mount namespace of its own.
board_chroot() {
    chroot_root=$1
    shift
    unshare -m --propagation private -- sh -c '
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
            PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"
    ' board_chroot "$chroot_root" "$@"
}

# STAGED: a copy of ROOT with the peercam package DEB installed, the image's settings
# (board/raspberrypi/image) and its peercam config, then cmdline.txt and config.txt
# written by raspi-firmware from them, and no machine id (each board makes its own).
board_root_stage() {
    stage_from=$1 stage_to=$2 stage_deb=$3
    rm -rf "$stage_to"
    cp -a --reflink=auto "$stage_from" "$stage_to"
    cp -a board/raspberrypi/image/. "$stage_to/"
    cp "$stage_deb" "$stage_to/tmp/peercam.deb"
    board_chroot "$stage_to" dpkg -i /tmp/peercam.deb
    rm "$stage_to/tmp/peercam.deb"
    cp board/raspberrypi/peercam-debian-image.toml "$stage_to/etc/peercam/peercam.toml"
    board_chroot "$stage_to" systemctl enable systemd-networkd.service systemd-resolved.service \
        peercam-firstboot.service
    board_chroot "$stage_to" /usr/bin/env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware
    # GStreamer's registry, made now (a minute under emulation, seconds here) where the unit
    # looks for it, so the first boot does not scan every plugin before the start times out.
    mkdir -p "$stage_to/var/cache/peercam"
    board_chroot "$stage_to" /usr/bin/env GST_REGISTRY=/var/cache/peercam/gstreamer-1.0.registry \
        GST_REGISTRY_FORK=no peercam check-config /etc/peercam/peercam.toml
    board_chroot "$stage_to" chown -R peercam:peercam /var/cache/peercam
    : > "$stage_to/etc/machine-id"
    rm -f "$stage_to/var/lib/dbus/machine-id"
}
