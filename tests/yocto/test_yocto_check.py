"""scripts/yocto-check's checks fail on what they are there to catch: a lint error in the
layer, a crate list out of step with Cargo.lock, a kas file that does not parse or pins
nothing, a user the recipe makes unlike the sysusers file's; and pass on the tree as it is.
Each test breaks one thing in a copy of the files the layer reads. Run by scripts/test with
the Python environment of `scripts/setup --yocto` and scripts/ on PYTHONPATH."""

import shutil
import sys
import tempfile
import unittest
from pathlib import Path

from peercam_tools import yocto_layer as layer

TOP = Path(__file__).resolve().parents[2]

OELINT = str(Path(sys.executable).parent / "oelint-adv")
RECIPE = "yocto/meta-peercam/recipes-peercam/peercam/peercam_0.1.0.bb"


class YoctoCheckTest(unittest.TestCase):
    def setUp(self):
        self.tree = Path(tempfile.mkdtemp(prefix="peercam-yocto-check-"))
        self.addCleanup(shutil.rmtree, self.tree)
        for name in ("Cargo.lock", "Cargo.toml", "README.md"):
            shutil.copy(TOP / name, self.tree / name)
        for name in ("yocto", "systemd", "board"):
            shutil.copytree(TOP / name, self.tree / name)

    def edit(self, relative, old, new):
        path = self.tree / relative
        text = path.read_text()
        self.assertIn(old, text, f"{relative} no longer has {old!r}: update the test")
        path.write_text(text.replace(old, new, 1))

    def test_the_tree_as_it_is_passes_every_check(self):
        self.assertEqual(layer.check_crates(self.tree), [])
        self.assertEqual(layer.check_lint(self.tree, OELINT), [])
        self.assertEqual(layer.check_kas(self.tree), [])
        self.assertEqual(layer.check_recipe(self.tree), [])

    def test_a_lint_error_in_the_recipe_fails(self):
        self.edit(RECIPE, 'DEPENDS += "', 'DEPENDS = "')
        problems = layer.check_lint(self.tree, OELINT)
        self.assertTrue(any("oelint.vars.dependsappend" in p for p in problems), problems)

    def test_a_lint_error_in_an_append_fails(self):
        self.edit("yocto/meta-peercam/recipes-support/libnice/libnice_%.bbappend",
                  "PACKAGECONFIG:append:peercam-os", "PACKAGECONFIG:append")
        problems = layer.check_lint(self.tree, OELINT)
        self.assertTrue(any("oelint.vars.noncoreoverride" in p for p in problems), problems)

    def test_an_accepted_lint_the_readme_does_not_justify_fails(self):
        self.edit("yocto/meta-peercam/README.md", "`oelint.var.bbclassextend`", "BBCLASSEXTEND")
        problems = layer.check_lint(self.tree, OELINT)
        self.assertTrue(any("does not justify" in p for p in problems), problems)

    def test_a_crate_list_out_of_step_with_cargo_lock_fails(self):
        lock = (self.tree / "Cargo.lock").read_text()
        checksum = lock.split('checksum = "', 1)[1][:64]
        self.edit("Cargo.lock", checksum, "0" * 64)
        problems = layer.check_crates(self.tree)
        self.assertTrue(problems and "stale" in problems[0], problems)
        self.assertIn("0" * 64, problems[0])

    def test_a_crate_missing_from_the_list_fails(self):
        inc = "yocto/meta-peercam/recipes-peercam/peercam/peercam-crates.inc"
        self.edit(inc, "    crate://crates.io/anyhow/", "    crate://crates.io/anyhow-gone/")
        self.assertTrue(layer.check_crates(self.tree))

    def test_a_kas_file_that_does_not_parse_fails(self):
        (self.tree / "yocto/kas/raspberrypi5.yml").write_text("header:\n  version: 14\n machine: [\n")
        problems = layer.check_kas(self.tree)
        self.assertTrue(any("raspberrypi5.yml: not YAML" in p for p in problems), problems)

    def test_a_kas_file_outside_kas_s_schema_fails(self):
        self.edit("yocto/kas/raspberrypi4-64.yml", "machine:", "machines:")
        problems = layer.check_kas(self.tree)
        self.assertTrue(any("machines" in p for p in problems), problems)
        self.assertTrue(any("no machine" in p for p in problems), problems)

    def test_a_layer_not_pinned_by_commit_fails(self):
        self.edit("yocto/kas/common.yml", "    commit: ef022bf82d79015802309d14c28b13373ebe53f5\n", "")
        problems = layer.check_kas(self.tree)
        self.assertTrue(any("openembedded-core is not pinned" in p for p in problems), problems)

    def test_a_user_unlike_the_sysusers_file_fails(self):
        self.edit("systemd/peercam.sysusers", "m peercam render", "m peercam input")
        problems = layer.check_recipe(self.tree)
        self.assertTrue(any("groups" in p for p in problems), problems)

    def test_a_file_the_recipe_installs_that_is_gone_fails(self):
        (self.tree / "board/raspberrypi/peercam-pi5.toml").unlink()
        problems = layer.check_recipe(self.tree)
        self.assertTrue(any("peercam-pi5.toml" in p for p in problems), problems)

    def test_a_distro_named_as_a_package_fails(self):
        distro = self.tree / "yocto/meta-peercam/conf/distro"
        conf = (distro / "peercam-os.conf").read_text()
        (distro / "peercam-os.conf").unlink()
        (distro / "peercam-appliance.conf").write_text(
            conf.replace('DISTRO = "peercam-os"', 'DISTRO = "peercam-appliance"'))
        problems = layer.check_recipe(self.tree)
        self.assertTrue(any("named as a recipe or package" in p for p in problems), problems)

    def test_a_boot_partition_the_first_boot_unit_does_not_find_fails(self):
        self.edit("yocto/meta-peercam/files/wic/peercam-raspberrypi.wks",
                  "part /boot/firmware ", "part /boot ")
        problems = layer.check_recipe(self.tree)
        self.assertTrue(any("the boot partition is mounted at ['/boot']" in p for p in problems),
                        problems)


if __name__ == "__main__":
    unittest.main()

    def test_an_image_or_package_that_cannot_resolve_local_names_fails(self):
        self.edit("yocto/meta-peercam/recipes-peercam/images/peercam-image.bb",
                  "    avahi-libnss-mdns \\\n", "")
        self.edit("Cargo.toml", "gstreamer1.0-alsa, libnss-mdns,", "gstreamer1.0-alsa,")
        problems = layer.check_recipe(self.tree)
        self.assertTrue(any("avahi-libnss-mdns" in p for p in problems), problems)
        self.assertTrue(any("libnss-mdns" in p and "Cargo.toml" in p for p in problems), problems)
