#!/usr/bin/env python3
"""Side-by-side benchmarks of peercam (release build), Janus and coturn; run by scripts/bench
inside a network namespace. Nothing here asserts: it prints figures and a Markdown table.

Each round measures, in one run:
  a. time to first frame over CALLS calls of a freshly started daemon, with `peercam probe` and
     with headless Chromium (tests/browser/drivers/bench_call.mjs);
  b. CPU seconds per minute of a 720p30 ~2 Mbit/s call: peercam with the software encoder, peercam
     fed pre-encoded H.264 RTP through the pipeline override (media.video_encoder = "none",
     and media.audio_source = "none" since Janus's mountpoint carries video only), and Janus's
     streaming plugin fed the same RTP; all watched by `peercam probe`;
  c. RSS idle and in a call;
  d. the daemon's encoder-to-socket latency (p50/p99, from /metrics);
  e. the STUN and signaling benches (cargo bench).
The table holds the median over ROUNDS rounds. Then, once: Chromium and `peercam probe` calling
through a 1 Mbit/s bottleneck and random loss, and Chromium on a phone whose network changes
(tests/browser/bench_networks.mjs).

Environment: ROUNDS (3), CALLS (50), SECONDS (30: length of the CPU calls), SKIP (comma list of
chromium,stun,signaling,networks,viewers, and janus_aes_cm, to leave out).
`scripts/bench viewers` measures the cost per viewer alone (the sides' order reversed every
other round, CPU over SECONDS). `scripts/bench lab` calls from outside in the NAT lab (a phone
behind a symmetric carrier NAT; port mapping, a forward by hand, the tunnel, a carrier that drops
UDP: tests/browser/drivers/bench_lab.mjs); with BEFORE_BIN set to an older peercam, the same
cases with it as that version's docs set it up, beside.
"""

import json
import os
import re
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERCAM = os.path.join(ROOT, "target/release/peercam")
WORK = os.path.join(ROOT, "target/bench")
FEED_FILE = os.path.join(WORK, "feed-720p30-2mbit.rtp")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
CALLS = int(os.environ.get("CALLS", "50"))
SECONDS = float(os.environ.get("SECONDS", "30"))
SKIP = set(filter(None, os.environ.get("SKIP", "").split(",")))
TICKS = os.sysconf("SC_CLK_TCK")
PEERCAM_FEED_PORT = 15004
JANUS_FEED_PORT = 15006
JANUS_HTTP_PORT = 18088


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


# --- the pre-encoded feed -------------------------------------------------------------------

def record_feed(seconds=10):
    """Encodes SECONDS of 720p30 at ~2 Mbit/s once, as RTP packets kept in a file."""
    if os.path.exists(FEED_FILE):
        return
    os.makedirs(WORK, exist_ok=True)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    port = receiver.getsockname()[1]
    encoder = subprocess.Popen([
        "gst-launch-1.0", "-q", "videotestsrc", "is-live=true", "pattern=snow",
        f"num-buffers={int(seconds * 30)}", "!",
        "video/x-raw,width=1280,height=720,framerate=30/1", "!",
        "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "bitrate=2000",
        "key-int-max=30", "!", "video/x-h264,profile=constrained-baseline", "!",
        "rtph264pay", "pt=96", "mtu=1200", "config-interval=-1", "!",
        "udpsink", "host=127.0.0.1", f"port={port}",
    ])
    packets = []
    receiver.settimeout(3)
    try:
        while True:
            packets.append(receiver.recv(2048))
    except socket.timeout:
        pass
    encoder.wait()
    with open(FEED_FILE, "wb") as f:
        for packet in packets:
            f.write(struct.pack("!H", len(packet)) + packet)
    log(f"recorded {len(packets)} RTP packets of pre-encoded video in {FEED_FILE}")


def load_feed():
    with open(FEED_FILE, "rb") as f:
        data = f.read()
    packets, offset = [], 0
    while offset < len(data):
        (size,) = struct.unpack_from("!H", data, offset)
        packets.append(bytearray(data[offset + 2:offset + 2 + size]))
        offset += 2 + size
    return packets


class Feeder(threading.Thread):
    """Replays the recorded RTP in a loop, paced by its timestamps, to every port given (of
    `host`); the sequence numbers and timestamps run on across loops, as from a live encoder."""

    def __init__(self, ports, host="127.0.0.1"):
        super().__init__(daemon=True)
        self.packets = load_feed()
        self.ports = ports
        self.host = host
        self.stopped = threading.Event()
        self.sent_bytes = 0

    def run(self):
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        first_ts = struct.unpack_from("!I", self.packets[0], 4)[0]
        last_ts = struct.unpack_from("!I", self.packets[-1], 4)[0]
        loop_ticks = (last_ts - first_ts) % (1 << 32) + 3000
        offsets = [(struct.unpack_from("!I", p, 4)[0] - first_ts) % (1 << 32) for p in self.packets]
        seq, loop, start = 0, 0, time.monotonic()
        while not self.stopped.is_set():
            for packet, ts in zip(self.packets, offsets):
                due = start + (loop * loop_ticks + ts) / 90000
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                struct.pack_into("!HI", packet, 2, seq & 0xFFFF,
                                 (loop * loop_ticks + ts) & 0xFFFFFFFF)
                seq += 1
                for port in self.ports:
                    try:
                        out.sendto(packet, (self.host, port))
                    except OSError:
                        pass  # nobody listening on that port yet (or any more)
                self.sent_bytes += len(packet)
                if self.stopped.is_set():
                    return
            loop += 1


# --- the things measured --------------------------------------------------------------------

class Daemon:
    """peercam (release) on free ports with `auth = "none"`, and `extra` config."""

    def __init__(self, extra=""):
        self.dir = tempfile.mkdtemp(prefix="peercam-bench-")
        config = os.path.join(self.dir, "peercam.toml")
        with open(config, "w") as f:
            f.write('auth = "none"\n[http]\nbind = "127.0.0.1"\nhttps_port = 0\nhttp_port = 0\n'
                    f'[stun]\nport = 0\n{extra}')
        self.process = subprocess.Popen(
            [PEERCAM, "--config", config, "--state-dir", os.path.join(self.dir, "state")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "RUST_LOG": "info"})
        self.port = None
        for line in self.process.stdout:
            match = re.search(r"https://localhost:(\d+)/", line)
            if match:
                self.port = int(match.group(1))
                break
        threading.Thread(target=lambda: [None for _ in self.process.stdout], daemon=True).start()
        self.url = f"https://127.0.0.1:{self.port}/"
        self.pid = self.process.pid

    def metrics(self):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(self.url + "metrics", context=context, timeout=5) as r:
            return r.read().decode()

    def latency(self):
        text = self.metrics()
        found = dict(re.findall(
            r'peercam_send_latency_seconds\{quantile="([0-9.]+)"\} ([0-9.]+)', text))
        return {q: float(v) * 1000 for q, v in found.items()}

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)


class Janus:
    """Janus with only the HTTP transport and the streaming plugin, one RTP mountpoint."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="janus-bench-")
        lib = next(p for p in ["/usr/lib/x86_64-linux-gnu/janus", "/usr/lib/aarch64-linux-gnu/janus",
                               "/usr/lib/janus"] if os.path.isdir(p))
        plugins = sorted(f for f in os.listdir(f"{lib}/plugins") if f.endswith(".so"))
        transports = sorted(f for f in os.listdir(f"{lib}/transports") if f.endswith(".so"))
        files = {
            "janus.jcfg": f"""general: {{
    configs_folder = "{self.dir}"
    plugins_folder = "{lib}/plugins"
    transports_folder = "{lib}/transports"
    events_folder = "{lib}/events"
    loggers_folder = "{lib}/loggers"
    debug_level = 3
    session_timeout = 0
}}
plugins: {{ disable = "{",".join(p for p in plugins if "streaming" not in p)}" }}
transports: {{ disable = "{",".join(t for t in transports if "http" not in t)}" }}
media: {{ rtp_port_range = "20000-40000" }}
""",
            "janus.transport.http.jcfg": f"""general: {{
    base_path = "/janus"
    http = true
    port = {JANUS_HTTP_PORT}
    ip = "127.0.0.1"
    https = false
}}
admin: {{ admin_http = false }}
""",
            "janus.plugin.streaming.jcfg": f"""general: {{ }}
bench: {{
    type = "rtp"
    id = 1
    description = "pre-encoded 720p30 H.264"
    media = ({{ type = "video" mid = "v" port = {JANUS_FEED_PORT} pt = 96 codec = "h264"
               fmtp = "profile-level-id=42e01f;packetization-mode=1" }})
}}
""",
        }
        for name, text in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        self.process = subprocess.Popen(
            ["janus", "-F", self.dir, "-C", os.path.join(self.dir, "janus.jcfg")],
            stdout=open(os.path.join(WORK, "janus.log"), "w"), stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        self.url = f"http://127.0.0.1:{JANUS_HTTP_PORT}/janus"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", JANUS_HTTP_PORT), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def probe(url, *args):
    result = subprocess.run([PEERCAM, "probe", url, "--insecure", "--json", *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"probe failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def call_load(url, pid, *probe_args, viewers=1):
    """`viewers` SECONDS-long probes at once (one call, or WHEP/Janus viewers): CPU seconds per
    minute and RSS of `pid` over the steady part (from ~4 s after dialling, once media flows,
    to ~1 s before the end), and each probe's fps and bitrate (the first's as before)."""
    result = {}

    def sample():
        time.sleep(4)
        before, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(max(1.0, SECONDS - 5))
        result["cpu_s_per_min"] = (cpu_seconds(pid) - before) / (time.monotonic() - t0) * 60
        result["rss_mb"] = rss_mb(pid)

    sampler = threading.Thread(target=sample)
    sampler.start()
    reports = [None] * viewers

    def watch(index):
        reports[index] = probe(url, "--duration", str(SECONDS), *probe_args)

    watchers = [threading.Thread(target=watch, args=(i,)) for i in range(viewers)]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join()
    sampler.join()
    if any(r is None for r in reports):
        raise RuntimeError("a probe failed; see its error above")
    videos = [r["calls"][0]["video"] for r in reports]
    result.update(fps=videos[0]["fps"], kbps=videos[0]["bitrate_kbps"],
                  loss=videos[0]["loss_percent"], min_fps=min(v["fps"] for v in videos),
                  srtp=reports[0]["calls"][0]["srtp_cipher"])
    return result


def first_frames_probe():
    daemon = Daemon()
    idle = rss_mb(daemon.pid)
    report = probe(daemon.url, "--calls", str(CALLS), "--duration", "0.3")
    daemon.stop()
    calls = [c["timings"]["first_keyframe_ms"] for c in report["calls"]]
    return {"p50": report["first_keyframe_ms"]["p50"], "p95": report["first_keyframe_ms"]["p95"],
            "first": calls[0], "idle_rss": idle}


def first_frames_chromium():
    env = {**os.environ, "CALLS": str(CALLS), "CPU_SECONDS": "2",
           "PEERCAM_BIN": PEERCAM}
    out = subprocess.run(["node", "drivers/bench_call.mjs"], cwd=os.path.join(ROOT, "tests/browser"),
                         env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"first call (\d+) ms, median (\d+) ms, p95 (\d+) ms", out)
    return {"first": float(match.group(1)), "p50": float(match.group(2)),
            "p95": float(match.group(3))}


def poor_networks():
    """Chromium calls through a 1 Mbit/s bottleneck and random loss (tests/browser/drivers/bench_networks.mjs)."""
    env = {**os.environ, "SECONDS": str(SECONDS), "PEERCAM_BIN": PEERCAM}
    out = subprocess.run(["node", "drivers/bench_networks.mjs"], cwd=os.path.join(ROOT, "tests/browser"),
                         env=env, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


NETWORKS = [("clean loopback", None, None), ("1 Mbit/s bottleneck (tbf)", 1000, None),
            ("5% random UDP loss", None, 5), ("10% random UDP loss", None, 10)]


def degrade_loopback(rate_kbit, loss_percent, media_only=False):
    """The Python twin of harness.mjs degradeLoopback: tbf on loopback, nftables loss; with
    `media_only`, loss of RTP and RTCP only (a first byte of 128 to 191, RFC 7983)."""
    run = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True)
    if rate_kbit:
        run("ip", "link", "set", "lo", "mtu", "1500")
        run("tc", "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", f"{rate_kbit}kbit",
            "burst", "16kb", "latency", "200ms")
    if loss_percent:
        run("nft", "add", "table", "inet", "peercam_loss")
        run("nft", "add", "chain", "inet", "peercam_loss", "in",
            "{ type filter hook input priority 0 ; }")
        media = ["@th,64,8", ">=", "128"] if media_only else []
        run("nft", "add", "rule", "inet", "peercam_loss", "in", "meta", "l4proto", "udp", *media,
            "numgen", "random", "mod", "100", "<", str(loss_percent), "drop")

    def restore():
        if rate_kbit:
            run("tc", "qdisc", "del", "dev", "lo", "root")
            run("ip", "link", "set", "lo", "mtu", "65536")
        if loss_percent:
            run("nft", "delete", "table", "inet", "peercam_loss")
    return restore


def poor_networks_probe():
    """`peercam probe` calling through the same networks as Chromium: it NACKs, asks for
    keyframes and counts freezes as a browser does."""
    results = []
    for name, rate, loss in NETWORKS:
        daemon = Daemon()
        # Loss of media only: webrtc-rs's DTLS client does not resend a lost last handshake
        # flight, so with handshakes dropped too about one call in six never gets its keys.
        restore = degrade_loopback(rate, loss, media_only=True)
        try:
            # Should a call still fail, call again (counted in the table).
            for attempt in range(1, 4):
                try:
                    report = probe(daemon.url, "--duration", str(SECONDS + 5), "--timeout", "20")
                    break
                except RuntimeError:
                    if attempt == 3:
                        raise
        finally:
            restore()
            daemon.stop()
        call = report["calls"][0]
        video, seconds = call["video"], call["video_seconds"]
        later = seconds[5:int(SECONDS) + 5]
        results.append({
            "network": name,
            "fps": round(sum(s["frames"] for s in later) / max(len(later), 1), 1),
            "freezes": video["freezes"], "freezeSeconds": round(video["freeze_seconds"], 2),
            "longestGapMs": round(video["longest_gap_ms"]),
            "kbps": [round(sum(s["kbps"] for s in seconds[i:i + 5]) / 5)
                     for i in range(5, len(seconds) - 4, 5)],
            "nacked": video["nacked"], "recovered": video["recovered"], "lost": video["lost"],
            "keyframeRequests": video["keyframe_requests"], "calls": attempt,
        })
    return results


def probe_networks_table(results):
    rows = ["| network | fps after 5 s | freezes (s) | longest gap (ms) | received kbit/s every "
            "5 s | NACKed / recovered / lost packets | keyframe requests | calls made |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r['network']} | {r['fps']} | {r['freezes']} ({r['freezeSeconds']}) | "
                    f"{r['longestGapMs']} | {', '.join(map(str, r['kbps']))} | "
                    f"{r['nacked']} / {r['recovered']} / {r['lost']} | {r['keyframeRequests']} | "
                    f"{r['calls']} |")
    return "\n".join(rows)


def networks_table(results):
    rows = ["| network | fps after 5 s | freezes (s) | received kbit/s every 5 s | device target "
            "kbit/s every 5 s |", "|---|---|---|---|---|"]
    for r in results:
        if "pictureBackSeconds" in r:
            rows.append(f"\n{r['network']}: picture back after "
                        f"{', '.join(map(str, r['pictureBackSeconds']))} s; "
                        f"{r['resumed']} resumes, {r['callsStarted']} call started")
            continue
        rows.append(f"| {r['network']} | {r['fps']} | {r['freezes']} ({r['freezeSeconds']}) | "
                    f"{', '.join(map(str, r['receivedKbps']))} | "
                    f"{', '.join(map(str, r['targetKbps']))} |")
    return "\n".join(rows)


def relay_loads():
    """The software-encoder call, then peercam and Janus fed the same pre-encoded RTP."""
    out = {}
    daemon = Daemon()
    out["x264"] = call_load(daemon.url, daemon.pid)
    out["x264"]["latency"] = daemon.latency()
    out["x264"]["idle_rss"] = rss_mb(daemon.pid)
    daemon.stop()

    feeder = Feeder([PEERCAM_FEED_PORT, JANUS_FEED_PORT])
    feeder.start()
    caps = "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96"
    # The same streams on both sides: Janus's mountpoint is video only, so peercam runs as a
    # camera without a microphone. The feed comes over loopback in order: no jitter buffer.
    daemon = Daemon(f'[media]\nvideo_source = \'udpsrc port={PEERCAM_FEED_PORT} caps="{caps}" '
                    f'! rtph264depay\'\nvideo_encoder = "none"\naudio_source = "none"\n')
    idle = rss_mb(daemon.pid)
    out["pre-encoded"] = call_load(daemon.url, daemon.pid)
    out["pre-encoded"]["latency"] = daemon.latency()
    out["pre-encoded"]["idle_rss"] = idle
    daemon.stop()

    janus = Janus()
    idle = rss_mb(janus.pid)
    out["janus"] = call_load(janus.url, janus.pid, "--janus-stream", "1")
    out["janus"]["idle_rss"] = idle
    janus.stop()
    feeder.stopped.set()
    return out


VIEWER_COUNTS = (1, 2, 4)
VIEWER_SIDES = [side for side in ("peercam", "janus", "janus_aes_cm") if side not in SKIP]


def viewer_costs(reverse=False):
    """CPU and RSS for 1, 2 and 4 receive-only viewers of the same pre-encoded feed: peercam's
    WHEP viewers (`probe --whep`) on its one shared source, and Janus's streaming plugin
    serving the same RTP to the same number of viewers: once as browsers offer SRTP (Janus
    picks AES-GCM), once offered only AES-CM with HMAC-SHA1, the one profile GStreamer's DTLS
    element negotiates (the same cipher as peercam's viewers). `reverse` measures the sides in
    the opposite order, so that a drift in the machine's load does not favour one side."""
    out = {side: {} for side in VIEWER_SIDES}
    feeder = Feeder([PEERCAM_FEED_PORT, JANUS_FEED_PORT])
    feeder.start()
    caps = "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96"
    janus_args = {"janus": (), "janus_aes_cm": ("--srtp", "aes-cm")}
    for count in VIEWER_COUNTS:
        for side in (reversed(VIEWER_SIDES) if reverse else VIEWER_SIDES):
            if side == "peercam":
                daemon = Daemon(f'[media]\nvideo_source = \'udpsrc port={PEERCAM_FEED_PORT} '
                                f'caps="{caps}" ! rtph264depay\'\nvideo_encoder = "none"\n'
                                f'audio_source = "none"\n[watchers]\nmax = {max(VIEWER_COUNTS)}\n')
                out[side][count] = call_load(daemon.url, daemon.pid, "--whep", viewers=count)
                daemon.stop()
            else:
                janus = Janus()
                out[side][count] = call_load(janus.url, janus.pid, "--janus-stream", "1",
                                             *janus_args[side], viewers=count)
                janus.stop()
            log(f"  {side}, {count} viewers:", round(out[side][count]["cpu_s_per_min"], 3),
                "CPU s/min")
    feeder.stopped.set()
    return out


def viewers_table(rounds):
    names = {"peercam": "peercam", "janus": "Janus", "janus_aes_cm": "Janus on AES-CM"}
    sides = [(side, names[side]) for side in VIEWER_SIDES]
    cipher = lambda side: rounds[0]["viewers"][side][VIEWER_COUNTS[0]]["srtp"]
    lines = ["| Viewers of the same pre-encoded feed | "
             + " | ".join(f"{name} CPU s/min ({cipher(side)})" for side, name in sides)
             + " | " + " | ".join(f"{name} RSS (MB)" for side, name in sides)
             + " | lowest fps, " + " / ".join(name for _, name in sides) + " |",
             "|---" * (2 + 2 * len(sides)) + "|"]
    pick = lambda side, n, key: med(rounds, lambda r: r["viewers"][side][n][key])
    for n in VIEWER_COUNTS:
        cells = [f"{pick(side, n, 'cpu_s_per_min'):.2f}" for side, _ in sides]
        cells += [f"{pick(side, n, 'rss_mb'):.1f}" for side, _ in sides]
        cells.append(" / ".join(f"{pick(side, n, 'min_fps'):.1f}" for side, _ in sides))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    first, last = VIEWER_COUNTS[0], VIEWER_COUNTS[-1]
    # One round's CPU per extra viewer: the fewest viewers to the most, over the difference.
    per_extra = lambda r, side: ((r["viewers"][side][last]["cpu_s_per_min"]
                                  - r["viewers"][side][first]["cpu_s_per_min"]) / (last - first))
    extra = lambda side: med(rounds, lambda r: per_extra(r, side))
    lines.append("| each extra viewer (CPU s/min; target: peercam ≤ Janus) | "
                 + " | ".join(f"{extra(side):.2f}" for side, _ in sides)
                 + " |" * (len(sides) + 2))
    each_round = lambda side: ", ".join(f"{per_extra(r, side):.2f}" for r in rounds)
    lines.append("")
    lines.append("Each extra viewer, round by round (CPU s/min): "
                 + "; ".join(f"{name} {each_round(side)}" for side, name in sides) + ".")
    return "\n".join(lines)


def viewers_only():
    """`scripts/bench viewers`: the cost per viewer alone, ROUNDS rounds, the order of the sides
    reversed every other round."""
    rounds = []
    for number in range(1, ROUNDS + 1):
        log(f"round {number} of {ROUNDS}")
        rounds.append({"viewers": viewer_costs(reverse=number % 2 == 0)})
    with open(os.path.join(WORK, "viewers.json"), "w") as f:
        json.dump(rounds, f, indent=1)
    print(viewers_table(rounds))


def cargo_bench(name):
    return subprocess.run(["cargo", "bench", "--locked", "--bench", name], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def lab():
    """Calls from outside in the NAT lab (tests/browser/drivers/bench_lab.mjs), for this build
    and, with BEFORE_BIN, an older one."""
    runs = [("after", PEERCAM, "0")]
    if os.environ.get("BEFORE_BIN"):
        runs.insert(0, ("before", os.environ["BEFORE_BIN"], "1"))
    for label, binary, before in runs:
        log(f"NAT lab ({label}: {binary})")
        env = {**os.environ, "PEERCAM_BIN": binary, "BEFORE": before}
        out = subprocess.run(["node", "drivers/bench_lab.mjs"], cwd=os.path.join(ROOT, "tests/browser"),
                             env=env, capture_output=True, text=True, check=True).stdout
        print(out[out.index("\n| case"):].strip() + "\n")


def main():
    if sys.argv[1:] == ["lab"]:
        lab()
        return
    record_feed()
    if sys.argv[1:] == ["viewers"]:
        viewers_only()
        return
    rounds = []
    for number in range(1, ROUNDS + 1):
        log(f"round {number} of {ROUNDS}")
        r = {"probe": first_frames_probe()}
        log("  first frame (probe):", r["probe"])
        if "chromium" not in SKIP:
            r["chromium"] = first_frames_chromium()
            log("  first frame (Chromium):", r["chromium"])
        r["loads"] = relay_loads()
        log("  loads:", json.dumps(r["loads"]))
        if "viewers" not in SKIP:
            r["viewers"] = viewer_costs()
            log("  viewers:", json.dumps(r["viewers"]))
        if "stun" not in SKIP:
            text = cargo_bench("stun_load")
            r["stun"] = {k: float(v) for k, v in
                         re.findall(r"(peercam|coturn):\s+(\d+) answers/s", text)}
            log("  STUN:", r["stun"])
        if "signaling" not in SKIP:
            text = cargo_bench("signaling_load")
            r["signaling"] = {
                "joins": float(re.search(r"= (\d+) joins/s", text).group(1)),
                "p99": float(re.search(r"steady: \d+ messages relayed, latency p50 [0-9.]+ ms, "
                                       r"p99 ([0-9.]+) ms", text).group(1)),
                "cpu": float(re.search(r"CPU ([0-9.]+)% of one core", text).group(1)),
            }
            log("  signaling:", r["signaling"])
        rounds.append(r)
    with open(os.path.join(WORK, "rounds.json"), "w") as f:
        json.dump(rounds, f, indent=1)
    print(table(rounds))
    if "viewers" not in SKIP:
        print()
        print(viewers_table(rounds))
    if "networks" not in SKIP:
        log("poor networks (Chromium)")
        print()
        print(networks_table(poor_networks()))
        log("poor networks (probe)")
        print()
        print(probe_networks_table(poor_networks_probe()))


def med(rounds, pick):
    values = []
    for r in rounds:
        try:
            values.append(pick(r))
        except (KeyError, TypeError):
            pass
    return statistics.median(values) if values else float("nan")


def table(rounds):
    loads = lambda r: r["loads"]
    rows = [
        ("First frame p50, probe (ms)", med(rounds, lambda r: r["probe"]["p50"]), "≤ 120"),
        ("First frame p95, probe (ms)", med(rounds, lambda r: r["probe"]["p95"]), ""),
        ("First frame, first call after start, probe (ms)",
         med(rounds, lambda r: r["probe"]["first"]), "≤ 120"),
        ("First frame p50, Chromium (ms)", med(rounds, lambda r: r["chromium"]["p50"]), "≤ 120"),
        ("First frame p95, Chromium (ms)", med(rounds, lambda r: r["chromium"]["p95"]), ""),
        ("First frame, first call, Chromium (ms)", med(rounds, lambda r: r["chromium"]["first"]), ""),
        ("CPU s/min, x264 720p30 call", med(rounds, lambda r: loads(r)["x264"]["cpu_s_per_min"]), ""),
        ("CPU s/min, pre-encoded call, peercam",
         med(rounds, lambda r: loads(r)["pre-encoded"]["cpu_s_per_min"]), ""),
        ("CPU s/min, same feed, Janus", med(rounds, lambda r: loads(r)["janus"]["cpu_s_per_min"]), ""),
        ("CPU ratio peercam / Janus (pre-encoded)",
         med(rounds, lambda r: loads(r)["pre-encoded"]["cpu_s_per_min"]
             / loads(r)["janus"]["cpu_s_per_min"]), "≤ 0.5"),
        ("RSS idle, peercam (MB)", med(rounds, lambda r: r["probe"]["idle_rss"]), ""),
        ("RSS in a call, pre-encoded (MB)", med(rounds, lambda r: loads(r)["pre-encoded"]["rss_mb"]),
         "≤ 40"),
        ("RSS in a call, x264 720p (MB)", med(rounds, lambda r: loads(r)["x264"]["rss_mb"]), "≤ 60"),
        ("RSS idle / in a call, Janus (MB)",
         f'{med(rounds, lambda r: loads(r)["janus"]["idle_rss"]):.1f} / '
         f'{med(rounds, lambda r: loads(r)["janus"]["rss_mb"]):.1f}', ""),
        ("Added latency p50, x264 (ms)", med(rounds, lambda r: loads(r)["x264"]["latency"]["0.5"]), ""),
        ("Added latency p99, x264 (ms)", med(rounds, lambda r: loads(r)["x264"]["latency"]["0.99"]),
         "≤ 5"),
        ("Added latency p99, pre-encoded (ms)",
         med(rounds, lambda r: loads(r)["pre-encoded"]["latency"]["0.99"]), "≤ 5"),
        ("Received fps / kbit/s, pre-encoded, peercam",
         f'{med(rounds, lambda r: loads(r)["pre-encoded"]["fps"]):.1f} / '
         f'{med(rounds, lambda r: loads(r)["pre-encoded"]["kbps"]):.0f}', ""),
        ("Received fps / kbit/s, same feed, Janus",
         f'{med(rounds, lambda r: loads(r)["janus"]["fps"]):.1f} / '
         f'{med(rounds, lambda r: loads(r)["janus"]["kbps"]):.0f}', ""),
        ("Signaling: joins/s (TCP + TLS + WebSocket + join)",
         med(rounds, lambda r: r["signaling"]["joins"]), ""),
        ("Signaling: relay latency p99 at 10,000 msg/s (ms)",
         med(rounds, lambda r: r["signaling"]["p99"]), ""),
        ("Signaling: daemon CPU at 10,000 msg/s (% of a core)",
         med(rounds, lambda r: r["signaling"]["cpu"]), ""),
        ("STUN answers/s, peercam", med(rounds, lambda r: r["stun"]["peercam"]), ""),
        ("STUN answers/s, coturn", med(rounds, lambda r: r["stun"]["coturn"]), ""),
        ("STUN ratio peercam / coturn",
         med(rounds, lambda r: r["stun"]["peercam"] / r["stun"]["coturn"]), "≥ 2"),
    ]
    lines = [f"Medians of {len(rounds)} rounds; {CALLS} calls per first-frame run; "
             f"{SECONDS:.0f} s calls for CPU and RSS.", "",
             "| Figure | Measured | Target |", "|---|---|---|"]
    for name, value, target in rows:
        shown = value if isinstance(value, str) else f"{value:.2f}" if value < 10 else f"{value:.0f}"
        lines.append(f"| {name} | {shown} | {target} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
