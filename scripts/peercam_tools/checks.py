"""What cross_test.py and board_test.py share: one printed line per check, a
stop at the first failure, and a call from this machine's `peercam probe`."""

import json
import os
import subprocess
import sys

# libnice 0.1.21 (Debian 12) can abort the controlling ICE agent on a slow CPU: the next
# nomination tick after a valid pair was checked again asserts that every valid pair has
# succeeded (conncheck.c:987; still so in libnice 0.1.23). Under emulation it came in 3 of 42
# first calls while the device offered ICE-TCP candidates, and in 0 of 70 since it offers UDP
# ones only (src/media/webrtc_setup.rs, ICE_TCP); never on x86. It is upstream's, so the tests name it
# and call again (the board test up to three calls in all); any other failure fails them.
LIBNICE_ABORT = "priv_conn_check_tick_stream_nominate: assertion failed"


class Checks:
    """Prints `ok   NAME: DETAIL` or `FAIL NAME: DETAIL`; on a failure prints the tally, runs
    `on_failure` (to show logs, stop machines) and exits 1."""

    def __init__(self, tool, on_failure=None):
        self.tool = tool
        self.passed = 0
        self.on_failure = on_failure

    def check(self, name, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        if not ok:
            if self.on_failure:
                self.on_failure()
            print(f"{self.tool}: {self.passed} passed, 1 failed", flush=True)
            sys.exit(1)
        self.passed += 1

    def done(self):
        print(f"{self.tool}: {self.passed} passed, 0 failed", flush=True)


def probe_call(host_binary, url, *extra, password=None, duration=5, timeout=60):
    """One call from the host's probe: (exit code, the call's report or {}, its stderr)."""
    env = dict(os.environ)
    if password is not None:
        env["PEERCAM_PASSWORD"] = password
    probe = subprocess.run([host_binary, "probe", url, "--json", "--duration", str(duration),
                            "--timeout", str(timeout), *extra],
                           capture_output=True, text=True, timeout=timeout + duration + 60, env=env)
    try:
        return probe.returncode, json.loads(probe.stdout)["calls"][0], probe.stderr
    except (ValueError, KeyError, IndexError):
        return probe.returncode, {}, probe.stderr


def describe_call(report):
    """One line about a probe report: frames, fps, audio packets, codec, first keyframe."""
    video = report.get("video") or {}
    audio = report.get("audio") or {}
    return (f"{video.get('frames', 0)} frames at {video.get('fps', 0):.1f} fps, "
            f"{audio.get('packets', 0)} audio packets, codec {report.get('video_codec')}, "
            f"first keyframe {report.get('timings', {}).get('first_keyframe_ms', 0):.0f} ms")
