"""Checks the Yocto layer without bitbake and without the network: scripts/yocto-check runs it
as `python -m peercam_tools.yocto_check TREE OELINT_ADV` in the Yocto tools' virtualenv."""

import sys
from pathlib import Path

from . import yocto_layer as layer


def main():
    tree, oelint = Path(sys.argv[1]).resolve(), sys.argv[2]
    failed = 0
    for name, problems in [("the crate list", layer.check_crates(tree)),
                           ("oelint-adv", layer.check_lint(tree, oelint)),
                           ("the kas files", layer.check_kas(tree)),
                           ("the recipe", layer.check_recipe(tree))]:
        print(f"{'ok  ' if not problems else 'FAIL'} yocto layer: {name}", flush=True)
        for problem in problems:
            print(f"     {problem}", flush=True)
        failed += bool(problems)
    print(f"yocto-check: {4 - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
