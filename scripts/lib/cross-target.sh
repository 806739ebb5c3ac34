# The board targets, in one place: what a cross build of peercam needs for each. Sourced by
# scripts/cross-build (its Debian 12 build roots) and used to generate cross/*.Dockerfile (the
# images `cross` builds in the owner's CI), so the two cannot drift apart. POSIX sh.
#
# cross_target NAME sets, for NAME in aarch64 | armv7:
#   RUST_TARGET  the Rust target triple
#   DEB_ARCH     the Debian architecture of the board
#   GNU_TRIPLE   the GNU triple of the cross compiler and of the multiarch library directory
#   QEMU_USER    the qemu-user binary that runs the target's programs on this machine
#   CROSS_PACKAGES    Debian 12 packages a cross build needs (compiler, target libraries)
#   RUST_PACKAGES     Debian 12's Rust (1.96, from bookworm-security) with the target's std
#   RUNTIME_PACKAGES  the target's GStreamer plugins, to run the board binary under qemu-user
# and cross_env prints the build environment, one NAME=value per line.

cross_target() {
    case "$1" in
        aarch64 | arm64 | aarch64-unknown-linux-gnu)
            RUST_TARGET=aarch64-unknown-linux-gnu
            DEB_ARCH=arm64
            GNU_TRIPLE=aarch64-linux-gnu
            QEMU_USER=qemu-aarch64-static
            ;;
        armv7 | armhf | armv7-unknown-linux-gnueabihf)
            RUST_TARGET=armv7-unknown-linux-gnueabihf
            DEB_ARCH=armhf
            GNU_TRIPLE=arm-linux-gnueabihf
            QEMU_USER=qemu-arm-static
            ;;
        *)
            echo "unknown target '$1': use aarch64 or armv7" >&2
            return 2
            ;;
    esac
    # gcc and libc6-dev: build scripts run on the build machine; ca-certificates: cargo fetches.
    CROSS_PACKAGES="gcc libc6-dev ca-certificates pkg-config
      gcc-$GNU_TRIPLE libc6-dev-$DEB_ARCH-cross binutils-$GNU_TRIPLE
      libgstreamer1.0-dev:$DEB_ARCH libgstreamer-plugins-base1.0-dev:$DEB_ARCH
      libgstreamer-plugins-bad1.0-dev:$DEB_ARCH libgstrtspserver-1.0-dev:$DEB_ARCH"
    RUST_PACKAGES="rustc-web cargo-web libstd-rust-web-dev:$DEB_ARCH"
    RUNTIME_PACKAGES="gstreamer1.0-plugins-base:$DEB_ARCH gstreamer1.0-plugins-good:$DEB_ARCH
      gstreamer1.0-plugins-bad:$DEB_ARCH gstreamer1.0-plugins-ugly:$DEB_ARCH
      gstreamer1.0-nice:$DEB_ARCH libgstrtspserver-1.0-0:$DEB_ARCH"
}

cross_env() {
    upper=$(echo "$RUST_TARGET" | tr 'a-z-' 'A-Z_')
    lower=$(echo "$RUST_TARGET" | tr '-' '_')
    echo "CARGO_TARGET_${upper}_LINKER=$GNU_TRIPLE-gcc"
    echo "CC_$lower=$GNU_TRIPLE-gcc"
    echo "AR_$lower=$GNU_TRIPLE-ar"
    echo "PKG_CONFIG_ALLOW_CROSS=1"
    echo "PKG_CONFIG_LIBDIR=/usr/lib/$GNU_TRIPLE/pkgconfig:/usr/share/pkgconfig"
}
