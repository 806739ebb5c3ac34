"""Writes the Yocto recipe's crate list, yocto/meta-peercam/recipes-peercam/peercam/peercam-crates.inc,
from Cargo.lock: one `crate://` entry in SRC_URI and one sha256sum per package, in the form
`bitbake -c update_crates peercam` (oe-core's cargo-update-recipe-crates class) writes, but
from the top-level Cargo.lock only (that class walks every Cargo.lock in the tree, and
fuzz/Cargo.lock is no part of the board's build). Needs no bitbake and no network; run it after
every change to Cargo.lock. `scripts/yocto-check` fails while the file is stale."""

import sys
from pathlib import Path

from .yocto_layer import CRATES_INC, LockError, crates_inc

TOP = Path(__file__).resolve().parents[2]


def main():
    try:
        text = crates_inc((TOP / "Cargo.lock").read_text())
    except (OSError, LockError) as error:
        sys.exit(f"yocto-crates: {error}")
    (TOP / CRATES_INC).write_text(text)
    print(f"yocto-crates: wrote {CRATES_INC} ({text.count('crate://')} crates)")


if __name__ == "__main__":
    main()
