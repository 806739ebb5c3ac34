#!/usr/bin/env python3
"""What the device's software encoders cost on the board's own kind of processor, counted in
instructions; run by `scripts/board-test --bench-encoders` inside its network namespace, as root.

Usage: python3 -m peercam_tools.board_encoder_bench WORK HOST_PEERCAM (as for board_test.py)

The method of `board_bench` (one Cortex-A53 under QEMU's `-icount shift=0`: the daemon's CPU
time in the emulated clock is its instruction count): the daemon is set to the test pattern
(SMPTE bars, moving) at each size, no microphone, and this machine's `peercam probe --codecs C`
calls it for SECONDS as a browser that receives only C would, which makes the daemon encode in
C with its own settings (`media::plan`).
Emulated so, the core runs far fewer instructions per second than a real one and the live
source's frames are thinned, so the result is the daemon's instructions per frame the viewer
received, which holds whether it keeps up or not, and what a real core doing one instruction per
cycle at 1 GHz (a Pi Zero 2 W's or Pi 3's Cortex-A53 runs 1-1.4 GHz) could encode per second.
"""

import os
import threading
import time

from . import bench
from .board_bench import COUNTED_CPU, counters
from .board_test import HOST, PASSWORD, URL, Board, wait_until_active

SECONDS = int(os.environ.get("SECONDS_PER_RUN", "40"))
# (codec the viewer takes, width, height)
RUNS = [("VP8", 640, 360), ("VP8", 854, 480), ("VP8", 1280, 720), ("H264", 854, 480),
        ("H264", 1280, 720)]
PATTERN = "videotestsrc is-live=true pattern=smpte horizontal-speed=4"


def configure(board, width, height):
    """The daemon on the test pattern at width x height, no audio."""
    code, out = board.run(
        "sed -i -e 's|^video_source = .*|video_source = \"" + PATTERN + "\"|' "
        f"-e 's|^width = .*|width = {width}|' -e 's|^height = .*|height = {height}|' "
        "-e 's|^audio_source = .*|audio_source = \"none\"|' /etc/peercam/peercam.toml && "
        "peercam check-config /etc/peercam/peercam.toml && systemctl restart peercam")
    if code != 0:
        raise RuntimeError(f"the board's daemon could not be set to {width}x{height}: {out}")
    if wait_until_active(board, timeout=600).get("ActiveState") != "active":
        raise RuntimeError("the daemon did not come back")


def encode(board, codec):
    """One call taking only `codec` for SECONDS: the daemon's instructions over the steady
    part (from 10 s after it dials to 2 s before the end) per frame received."""
    os.environ["PEERCAM_PASSWORD"] = PASSWORD
    window = {}

    def sample():
        time.sleep(10)
        before, started = counters(board), time.monotonic()
        time.sleep(SECONDS - 12)
        window.update(before=before, after=counters(board), seconds=time.monotonic() - started)

    sampler = threading.Thread(target=sample)
    sampler.start()
    report = bench.probe(URL, "--codecs", codec, "--duration", str(SECONDS), "--timeout", "90")
    sampler.join()
    if report is None or "seconds" not in window:
        raise RuntimeError("the viewer or the board's counters failed; see above")
    video = report["calls"][0]["video"]
    daemon_per_s = (window["after"][0] - window["before"][0]) / window["seconds"]
    clock_per_s = (window["after"][2] - window["before"][2]) / 1e9 / window["seconds"]
    fps = video["fps"]
    if fps <= 0:
        raise RuntimeError(f"no frames in {codec}: {report}")
    if codec.lower() not in (report["calls"][0].get("video_codec") or "").lower():
        raise RuntimeError(f"the call was not on {codec}: {report}")
    return {"fps": fps,
            "daemon_minstr_per_s": daemon_per_s / 1e6, "emulated_clock_per_s": clock_per_s,
            "minstr_per_frame": daemon_per_s / fps / 1e6}


def table(results):
    lines = ["| codec | size | frames/s received (emulated) | daemon, M instructions per frame | "
             "frames/s one 1 GHz core could encode |", "|---|---|---|---|---|"]
    for (codec, width, height), r in results:
        lines.append(f"| {codec} | {width}x{height} | {r['fps']:.1f} | "
                     f"{r['minstr_per_frame']:.1f} | {1000 / r['minstr_per_frame']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    bench.PEERCAM = HOST
    board = Board(cpu=COUNTED_CPU)
    results = []
    try:
        booted = board.wait_for_shell()
        if booted is None:
            raise SystemExit("board-encoder-bench: the board did not boot")
        print(f"board-encoder-bench: one Cortex-A53 under -icount booted in {booted:.0f} s",
              flush=True)
        if wait_until_active(board, timeout=600).get("ActiveState") != "active":
            raise SystemExit("board-encoder-bench: peercam did not start")
        for codec, width, height in RUNS:
            configure(board, width, height)
            result = encode(board, codec)
            results.append(((codec, width, height), result))
            print(f"board-encoder-bench: {codec} {width}x{height}: {result}", flush=True)
        print(table(results))
    except BaseException:
        board.show_logs()
        raise
    finally:
        board.stop()
