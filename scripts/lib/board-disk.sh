# The board's disk image, without loop devices, sourced by scripts/board-image and
# scripts/board-test. POSIX sh; needs root.
#
#   board_disk_image ROOT IMAGE [BOOT_EXTRA]
#       IMAGE: an MBR disk of BOARD_DISK_MIB MiB, a FAT32 boot partition labelled
#       PEERCAMBOOT holding ROOT/boot/firmware (and the files of the directory BOOT_EXTRA),
#       then an ext4 root labelled peercam-root holding the rest of ROOT
#   board_disk_publish IMAGE   IMAGE.zst and the block map IMAGE%.img.bmap; removes IMAGE
#   board_disk_boot_file IMAGE NAME OUT   copies NAME from the boot partition to OUT

# 2 GiB: a power of two, as an SD card of qemu's raspi machines must be. The boot partition
# starts at 4 MiB (the erase block of most cards) and holds 256 MiB.
BOARD_DISK_MIB=${BOARD_DISK_MIB:-2048}
BOARD_BOOT_START_MIB=4
BOARD_BOOT_MIB=256
BOARD_BOOT_LABEL=PEERCAMBOOT
BOARD_ROOT_LABEL=peercam-root

board_disk_image() {
    root=$1 image=$2 boot_extra=${3:-}
    work=$(mktemp -d "${image%/*}/.disk.XXXXXX")
    root_start=$((BOARD_BOOT_START_MIB + BOARD_BOOT_MIB))
    root_mib=$((BOARD_DISK_MIB - root_start))

    # The boot partition: the firmware, config.txt, cmdline.txt, kernel, initrd, device trees.
    mkfs.vfat -F 32 -n "$BOARD_BOOT_LABEL" -C "$work/boot.img" $((BOARD_BOOT_MIB * 1024)) >/dev/null
    mcopy -s -p -m -i "$work/boot.img" "$root/boot/firmware"/* ::
    if [ -n "$boot_extra" ]; then
        mcopy -s -p -m -i "$work/boot.img" "$boot_extra"/* ::
    fi

    # The root, with the boot partition's mount point left empty (a private mount namespace
    # hides its contents from mkfs). The file system's dates and identifiers come from the
    # last commit where given, so the same tree gives the same image.
    truncate -s $((root_mib))M "$work/root.img"
    unshare -m --propagation private -- sh -c '
        mount -t tmpfs -o size=1m,mode=0755 tmpfs "$1/boot/firmware"
        exec mkfs.ext4 -q -F -L "$2" -d "$1" "$3"
    ' board_disk "$root" "$BOARD_ROOT_LABEL" "$work/root.img"

    # The partition table, then both partitions at their offsets (sparse, so holes stay holes).
    rm -f "$image"
    truncate -s "${BOARD_DISK_MIB}M" "$image"
    sfdisk --quiet "$image" <<EOF
label: dos
start=${BOARD_BOOT_START_MIB}MiB, size=${BOARD_BOOT_MIB}MiB, type=c, bootable
start=${root_start}MiB, type=83
EOF
    dd if="$work/boot.img" of="$image" bs=1M seek="$BOARD_BOOT_START_MIB" conv=notrunc,sparse status=none
    dd if="$work/root.img" of="$image" bs=1M seek="$root_start" conv=notrunc,sparse status=none
    rm -rf "$work"
}

board_disk_publish() {
    image=$1
    bmaptool -q create -o "${image%.img}.bmap" "$image"
    zstd -q -f -T0 -6 --sparse --rm "$image" -o "$image.zst"
}

board_disk_boot_file() {
    image=$1 name=$2 out=$3
    mcopy -n -i "$image@@${BOARD_BOOT_START_MIB}M" "::$name" "$out"
}
