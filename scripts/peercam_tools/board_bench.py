#!/usr/bin/env python3
"""What WHEP viewers cost on the board's own kind of processor, counted in instructions; run by
`scripts/board-test --bench-viewers` inside its network namespace, as root.

Usage: python3 -m peercam_tools.board_bench WORK HOST_PEERCAM (what scripts/board-test made, as for board_test.py)

The test image boots on `-M virt` as one Cortex-A53 (the core of the Pi Zero 2 W and the Pi
3) under QEMU's `-icount shift=0`: the emulated clock advances one nanosecond per instruction
the core executes, so the CPU time the board's kernel accounts is its instruction count (1 s
= 10^9 instructions), whatever the speed of the machine emulating it. The daemon is set to the
benchmarks' pre-encoded feed (720p30 H.264 at ~2 Mbit/s, sent over the tap network as RTP, as
the Pi's hardware encoder would hand it over: no encoding counted), and 1, 2 and 4 of this
machine's `peercam probe --whep` watch it. Per count: the instructions the daemon and the
whole board execute per second, the packets sent and each viewer's frame rate. Emulated so,
the core runs far fewer instructions per second than a real one and cannot keep up with the
feed, so the result is split per packet (the source's, and each one sent to a viewer), which
holds whether it keeps up or not, and scaled back to the feed's packet rate.
"""

import os
import struct
import sys
import threading
import time

from . import bench
from .board_test import BOARD, HOST, URL, Board, wait_until_active

FEED_PORT = 5004
SECONDS = int(os.environ.get("SECONDS_PER_COUNT", "40"))
COUNTS = (1, 2, 4)
# One core counted instruction by instruction: the board as a Pi Zero 2 W's or Pi 3's core.
COUNTED_CPU = ["-cpu", "cortex-a53", "-smp", "1", "-icount", "shift=0,sleep=on"]
CAPS = "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96"


def counters(board):
    """(the daemon's CPU ns (its threads', ended ones included), the board's busy ns, the
    board's clock ns), all in the emulated clock, where 1 ns is one instruction while busy."""
    code, out = board.run(
        "pid=$(systemctl show -p MainPID --value peercam); "
        "cut -d ')' -f 2 /proc/$pid/stat; head -n 1 /proc/stat; cat /proc/uptime; getconf CLK_TCK")
    lines = out.splitlines()
    if code != 0 or len(lines) < 4:
        raise RuntimeError(f"the board's counters: {out}")
    tick_ns = 1e9 / int(lines[3])
    # After the command's name: state is field 3 of stat(5), utime and stime 14 and 15.
    process = lines[0].split()
    daemon_ns = (int(process[11]) + int(process[12])) * tick_ns
    ticks = [int(v) for v in lines[1].split()[1:]]
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    busy_ns = (sum(ticks) - ticks[3] - ticks[4]) * tick_ns
    clock_ns = float(lines[2].split()[0]) * 1e9
    return daemon_ns, busy_ns, clock_ns


def watch(token, viewers):
    """`viewers` WHEP probes for SECONDS; the counters over the steady part (from 8 s after
    they dial, to 2 s before the end) and each probe's report."""
    reports = [None] * viewers
    window = {}

    def sample():
        time.sleep(8)
        before, started = counters(board), time.monotonic()
        time.sleep(SECONDS - 10)
        after, ended = counters(board), time.monotonic()
        window.update(before=before, after=after, seconds=ended - started)

    def one(index):
        reports[index] = bench.probe(URL, "--whep", "--duration", str(SECONDS), "--timeout", "60")

    os.environ["PEERCAM_TOKEN"] = token
    threads = [threading.Thread(target=sample)] + [
        threading.Thread(target=one, args=(i,)) for i in range(viewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if any(r is None for r in reports):
        raise RuntimeError("a viewer failed; see its error above")
    if "seconds" not in window:
        raise RuntimeError("the board's counters could not be read; see the error above")
    seconds = window["seconds"]
    delta = [a - b for a, b in zip(window["after"], window["before"])]
    videos = [r["calls"][0]["video"] for r in reports]
    # Packets each viewer got per second, over its whole watch.
    rates = [v["packets"] / SECONDS for v in videos]
    return {
        "daemon_minstr_per_s": delta[0] / seconds / 1e6,
        "board_minstr_per_s": delta[1] / seconds / 1e6,
        "emulated_clock_per_s": delta[2] / 1e9 / seconds,
        "source_pps": max(rates),
        "sent_pps": sum(rates),
        "fps": [v["fps"] for v in videos],
    }


def per_packet(results, key):
    """Least squares over the counts for instructions = source × packets the source handled +
    viewer × packets sent to viewers: (source, viewer) in instructions per packet. The split
    holds whether or not the emulated core kept up with the feed."""
    rows = [(r["source_pps"], r["sent_pps"], r[key] * 1e6) for r in results.values()]
    aa = sum(a * a for a, _, _ in rows)
    ab = sum(a * b for a, b, _ in rows)
    bb = sum(b * b for _, b, _ in rows)
    ay = sum(a * y for a, _, y in rows)
    by = sum(b * y for _, b, y in rows)
    det = aa * bb - ab * ab
    return (ay * bb - by * ab) / det, (by * aa - ay * ab) / det


def configure(board):
    """The daemon on the pre-encoded feed, and a viewer token for the probes."""
    # The caps have no spaces, so they need no quotes inside the TOML string.
    source = f"udpsrc port={FEED_PORT} caps={CAPS} ! rtph264depay"
    code, out = board.run(
        "sed -i -e 's|^video_source = .*|video_source = \"" + source + "\"|' "
        "-e 's|^video_encoder = .*|video_encoder = \"none\"|' "
        "-e 's|^audio_source = .*|audio_source = \"none\"|' /etc/peercam/peercam.toml && "
        "peercam check-config /etc/peercam/peercam.toml && systemctl restart peercam")
    if code != 0:
        raise RuntimeError(f"the board's daemon could not be set to the feed: {out}")
    if wait_until_active(board).get("ActiveState") != "active":
        raise RuntimeError("the daemon did not come back on the feed")
    code, token = board.run(f"runuser -u peercam -- peercam token create bench-{int(time.time())} "
                            "--config /etc/peercam/peercam.toml 2>/dev/null")
    if code != 0 or not token.strip():
        raise RuntimeError(f"no viewer token: {token}")
    return token.strip().splitlines()[-1]


def table(results, feed_pps):
    lines = ["| WHEP viewers | daemon, M instructions/s | whole board, M instructions/s | "
             "packets/s sent, all viewers | emulated s per s | lowest fps |",
             "|---|---|---|---|---|---|"]
    for count, r in results.items():
        lines.append(f"| {count} | {r['daemon_minstr_per_s']:.1f} | "
                     f"{r['board_minstr_per_s']:.1f} | {r['sent_pps']:.0f} | "
                     f"{r['emulated_clock_per_s']:.2f} | {min(r['fps']):.1f} |")
    lines.append("")
    for key, what in (("daemon_minstr_per_s", "the daemon"),
                      ("board_minstr_per_s", "the whole board")):
        source, viewer = per_packet(results, key)
        lines.append(f"- {what}: {source / 1000:.0f} k instructions per packet the source "
                     f"handles, {viewer / 1000:.0f} k per packet sent to a viewer; at the feed's "
                     f"{feed_pps:.0f} packets/s one viewer is {viewer * feed_pps / 1e6:.1f} M "
                     f"instructions/s")
    return "\n".join(lines)


if __name__ == "__main__":
    bench.PEERCAM = HOST
    bench.record_feed()
    board = Board(cpu=COUNTED_CPU)
    try:
        booted = board.wait_for_shell()
        if booted is None:
            raise SystemExit("board-bench: the board did not boot")
        print(f"board-bench: one Cortex-A53 under -icount booted in {booted:.0f} s", flush=True)
        if wait_until_active(board, timeout=600).get("ActiveState") != "active":
            raise SystemExit("board-bench: peercam did not start")
        token = configure(board)
        feeder = bench.Feeder([FEED_PORT], host=BOARD)
        # Packets per second of the feed, from its RTP timestamps (90 kHz), before it plays.
        first, last = (struct.unpack_from("!I", p, 4)[0] for p in (feeder.packets[0],
                                                                 feeder.packets[-1]))
        feed_rate = len(feeder.packets) / (((last - first) % (1 << 32)) / 90000)
        feeder.start()
        results = {}
        for count in COUNTS:
            results[count] = watch(token, count)
            print(f"board-bench: {count} viewer(s): {results[count]}", flush=True)
        feeder.stopped.set()
        print(table(results, feed_rate))
    except BaseException:
        board.show_logs()
        raise
    finally:
        board.stop()
