"""A WHEP player no one here wrote the WebRTC of: aiortc (PyPI) watches the device.

Run by tests/browser/clients.test.mjs with aiortc's own Python environment
(`scripts/setup --aiortc`). It posts a receive-only offer to the device's /whep, plays what
comes back for a few seconds, and prints one JSON line with what it saw: the HTTP answers, the
codecs the answer chose, the frames and audio it decoded, and how loud the audio was.

The offer takes the shapes other players send (`--shape`):
  default       video then audio, as aiortc offers them
  audio-first   audio m-line first
  bundle-only   audio with port 0 and `a=bundle-only`, as JSEP's max-bundle (Firefox) offers it
  video-only    no audio m-line
  audio-only    no video m-line (the device must refuse it: it has nothing to show)
  several       two video and two audio transceivers (the device fills the first of each)
`--codec VP8` offers only that video codec. `--trickle` leaves the candidates out of the
offer and sends them in a PATCH with the session's entity tag; `--restart` then asks for an ICE
restart; `--stale-etag` and `--no-etag` send a PATCH with a wrong tag and with none. The
session ends with DELETE unless `--keep`.
"""

import argparse
import array
import asyncio
import json
import math
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


def http(method, url, body=b"", headers=None):
    """One HTTP request to the device (its certificate is self-signed); (status, headers, text)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=15) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def sections(sdp):
    """The session part and the m-sections of `sdp`, each a list of lines."""
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    head, media = [], []
    for line in lines:
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            head.append(line)
    return head, media


def join(head, media):
    return "\r\n".join(head + [line for section in media for line in section]) + "\r\n"


def kind(section):
    return section[0][2:].split(" ")[0]


def shape_offer(sdp, shape, codec, trickle):
    """The offer as the chosen player would send it."""
    head, media = sections(sdp)
    if codec:
        media = [only_codec(s, codec) if kind(s) == "video" else s for s in media]
    if trickle:
        media = [[line for line in s if not line.startswith("a=candidate:")
                  and line != "a=end-of-candidates"] for s in media]
    if shape == "bundle-only":
        for section in media:
            if kind(section) == "audio":
                fields = section[0].split(" ")
                fields[1] = "0"
                section[0] = " ".join(fields)
                section[:] = [line for line in section if not line.startswith("a=candidate:")
                              and line != "a=end-of-candidates"]
                section.append("a=bundle-only")
    mids = [next(line[6:] for line in s if line.startswith("a=mid:")) for s in media]
    head = [f"a=group:BUNDLE {' '.join(mids)}" if line.startswith("a=group:BUNDLE") else line
            for line in head]
    return join(head, media)


def only_codec(section, codec):
    """A video m-section that offers only `codec` (and its retransmission payload)."""
    rtpmap = {}
    for line in section:
        match = re.match(r"a=rtpmap:(\d+) ([^/]+)/", line)
        if match:
            rtpmap[match.group(1)] = match.group(2)
    keep = {pt for pt, name in rtpmap.items() if name.upper() == codec.upper()}
    for line in section:
        match = re.match(r"a=fmtp:(\d+) apt=(\d+)", line)
        if match and match.group(2) in keep:
            keep.add(match.group(1))
    fields = section[0].split(" ")
    header = " ".join(fields[:3] + [pt for pt in fields[3:] if pt in keep])
    payload = re.compile(r"a=(rtpmap|fmtp|rtcp-fb):(\d+)")
    return [header] + [line for line in section[1:]
                       if not payload.match(line) or payload.match(line).group(2) in keep]


def fragment(sdp, ufrag, pwd):
    """A trickle-ice-sdpfrag (RFC 8840) with the first m-section's candidates."""
    _, media = sections(sdp)
    first = media[0]
    mid = next(line for line in first if line.startswith("a=mid:"))
    candidates = [line for line in first if line.startswith("a=candidate:")]
    return "\r\n".join([f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}", first[0], mid]
                       + candidates + ["a=end-of-candidates"]) + "\r\n"


async def count(track, seen):
    """Counts the frames of `track` and, for audio, the loudest sample."""
    last_frame_at = []
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            seen[track.kind]["ended"] = True
            return
        seen[track.kind]["frames"] += 1
        if track.kind == "video":
            seen["video"]["size"] = [frame.width, frame.height]
            # The longest wait between two frames: a viewer held up or cut off shows it.
            now = time.monotonic()
            if last_frame_at:
                gap = round((now - last_frame_at[0]) * 1000)
                seen["video"]["longestGapMs"] = max(seen["video"].get("longestGapMs", 0), gap)
            last_frame_at[:] = [now]
        else:
            # Signed 16-bit samples (aiortc decodes Opus to s16), read without numpy.
            samples = array.array("h", bytes(frame.planes[0]))
            loudest = max((abs(sample) for sample in samples), default=0)
            seen["audio"]["peak"] = max(seen["audio"]["peak"], loudest)


async def watch(args):
    headers = {"Content-Type": "application/sdp"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    pc = RTCPeerConnection()
    seen = {"video": {"frames": 0, "size": None}, "audio": {"frames": 0, "peak": 0}}
    tasks = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(count(track, seen))))
    kinds = {"audio-first": ["audio", "video"], "video-only": ["video"],
             "audio-only": ["audio"], "several": ["video", "audio", "video", "audio"]}.get(args.shape, ["video", "audio"])
    for medium in kinds:
        pc.addTransceiver(medium, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = shape_offer(pc.localDescription.sdp, args.shape, args.codec, args.trickle)
    report = {"shape": args.shape}
    status, answer_headers, answer = http("POST", args.endpoint, offer.encode(), headers)
    report["post"] = status
    if status != 201:
        report["error"] = answer.strip()
        await pc.close()
        return report
    report["etag"] = answer_headers.get("ETag")
    report["answer"] = answer
    resource = urllib.parse.urljoin(args.endpoint, answer_headers["Location"])
    try:
        return await play(args, pc, resource, headers, report, answer, seen, tasks)
    finally:
        await pc.close()


async def play(args, pc, resource, headers, report, answer, seen, tasks):
    """Trickles, plays, restarts and ends the session at `resource`, as `args` ask."""
    local = pc.localDescription.sdp
    ufrag = re.search(r"a=ice-ufrag:(\S+)", local).group(1)
    pwd = re.search(r"a=ice-pwd:(\S+)", local).group(1)
    patch = {**headers, "Content-Type": "application/trickle-ice-sdpfrag"}
    if args.trickle:
        body = fragment(local, ufrag, pwd).encode()
        if args.stale_etag:
            report["stale"] = http("PATCH", resource, body, {**patch, "If-Match": '"stale"'})[0]
        if args.no_etag:
            report["untagged"] = http("PATCH", resource, body, patch)[0]
        tag = {"If-Match": report["etag"]} if report["etag"] else {}
        report["patch"] = http("PATCH", resource, body, {**patch, **tag})[0]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await asyncio.sleep(args.seconds)
    if args.restart:
        body = fragment(local, "restart" + ufrag[:4], pwd[::-1] + "x").encode()
        status, restart_headers, text = http("PATCH", resource, body,
                                             {**patch, "If-Match": "*"})
        before = seen["video"]["frames"]
        await asyncio.sleep(1)
        report["restart"] = {"status": status, "body": text.strip(),
                             "etag": restart_headers.get("ETag"),
                             "framesAfter": seen["video"]["frames"] - before}
    report["video"] = seen["video"]
    report["audio"] = seen["audio"]
    report["audio"]["dbfs"] = (round(20 * math.log10(seen["audio"]["peak"] / 32768), 1)
                               if seen["audio"]["peak"] else None)
    if not args.keep:
        report["delete"] = http("DELETE", resource, headers={k: v for k, v in headers.items()
                                                             if k == "Authorization"})[0]
        # An RTCP BYE ends aiortc's tracks at once; without one they would wait for good.
        await asyncio.wait(tasks, timeout=3)
        report["endedAfterDelete"] = sorted(k for k in ("video", "audio") if seen[k].get("ended"))
    for task in tasks:
        task.cancel()
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint")
    parser.add_argument("--token", default="")
    parser.add_argument("--shape", default="default",
                        choices=["default", "audio-first", "bundle-only", "video-only",
                                 "audio-only", "several"])
    parser.add_argument("--codec", default="")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--trickle", action="store_true")
    parser.add_argument("--stale-etag", action="store_true")
    parser.add_argument("--no-etag", action="store_true")
    parser.add_argument("--restart", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the session without DELETE")
    report = asyncio.run(watch(parser.parse_args()))
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
