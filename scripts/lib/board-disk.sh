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
    disk_root=$1 disk_image=$2 disk_boot_extra=${3:-}
    disk_work=$(mktemp -d "${disk_image%/*}/.disk.XXXXXX")
    disk_root_start=$((BOARD_BOOT_START_MIB + BOARD_BOOT_MIB))
    disk_root_mib=$((BOARD_DISK_MIB - disk_root_start))

    # The boot partition: the firmware, config.txt, cmdline.txt, kernel, initrd, device trees.
    mkfs.vfat -F 32 -n "$BOARD_BOOT_LABEL" -C "$disk_work/boot.img" $((BOARD_BOOT_MIB * 1024)) >/dev/null
    mcopy -s -p -m -i "$disk_work/boot.img" "$disk_root/boot/firmware"/* ::
    if [ -n "$disk_boot_extra" ]; then
        mcopy -s -p -m -i "$disk_work/boot.img" "$disk_boot_extra"/* ::
    fi

    # The root, with the boot partition's mount point left empty (a private mount namespace
    # hides its contents from mkfs).
    truncate -s $((disk_root_mib))M "$disk_work/root.img"
    unshare -m --propagation private -- sh -c '
        mount -t tmpfs -o size=1m,mode=0755 tmpfs "$1/boot/firmware"
        exec mkfs.ext4 -q -F -L "$2" -d "$1" "$3"
    ' board_disk "$disk_root" "$BOARD_ROOT_LABEL" "$disk_work/root.img"

    # The partition table, then both partitions at their offsets (sparse, so holes stay holes).
    rm -f "$disk_image"
    truncate -s "${BOARD_DISK_MIB}M" "$disk_image"
    sfdisk --quiet "$disk_image" <<EOF
label: dos
start=${BOARD_BOOT_START_MIB}MiB, size=${BOARD_BOOT_MIB}MiB, type=c, bootable
start=${disk_root_start}MiB, type=83
EOF
    dd if="$disk_work/boot.img" of="$disk_image" bs=1M seek="$BOARD_BOOT_START_MIB" conv=notrunc,sparse status=none
    dd if="$disk_work/root.img" of="$disk_image" bs=1M seek="$disk_root_start" conv=notrunc,sparse status=none
    rm -rf "$disk_work"
}

board_disk_publish() {
    publish_image=$1
    bmaptool -q create -o "${publish_image%.img}.bmap" "$publish_image"
    zstd -q -f -T0 -6 --rm "$publish_image" -o "$publish_image.zst"
}

board_disk_boot_file() {
    mcopy -n -i "$1@@${BOARD_BOOT_START_MIB}M" "::$2" "$3"
}
