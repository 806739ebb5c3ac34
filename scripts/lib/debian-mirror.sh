# The Debian mirror the build roots use, sourced by scripts/cross-build and scripts/board-image.
# Sets DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR: PEERCAM_DEBIAN_MIRROR and
# PEERCAM_DEBIAN_SECURITY_MIRROR when set, else the mirror this machine's apt already uses,
# else debootstrap's own default. POSIX sh.

host_debian_mirror() {
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$file" ] || continue
        grep -Eo '(https?|file)://[^ ]+/debian/?( |$)' "$file" | tr -d ' ' | sed 's:/$::' | head -n 1
    done | head -n 1
}

DEBIAN_MIRROR=${PEERCAM_DEBIAN_MIRROR:-$(host_debian_mirror)}
if [ -z "$DEBIAN_MIRROR" ] && command -v debootstrap >/dev/null; then
    DEBIAN_MIRROR=$(sed -n 's/^DEF_MIRROR="\(.*\)"$/\1/p' "$(command -v debootstrap)")
fi
DEBIAN_SECURITY_MIRROR=${PEERCAM_DEBIAN_SECURITY_MIRROR:-$DEBIAN_MIRROR-security}
