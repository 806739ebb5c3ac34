// The debug panel: the offer and answer SDP of the current call and every ICE candidate
// gathered (ours) or received (theirs), with its type, protocol, address and port — the view
// the tutorials' "trickle ICE" page gives; and, in a call to the device, the link: the
// device's adaptive video target (from its /metrics) beside what this browser receives; and
// how the device is reached from outside the home (port mapping's public URL, or why not).

const $ = (id) => document.getElementById(id);

/** Splits an ICE candidate line into its parts; null for an end-of-candidates marker. */
export function parseCandidate(line) {
  if (!line) return null;
  const fields = line.replace(/^a=/, '').split(' ');
  const typeAt = fields.indexOf('typ');
  return {
    protocol: (fields[2] ?? '').toLowerCase(),
    address: fields[4] ?? '',
    port: Number(fields[5] ?? 0),
    type: typeAt >= 0 ? fields[typeAt + 1] : 'unknown',
    relayProtocol: null,
  };
}

/** The device's video target in kbit/s from its /metrics text, or null outside a call. */
export function videoTargetKbps(metricsText) {
  const match = metricsText.match(/^peercam_video_target_kbps (\d+)$/m);
  return match ? Number(match[1]) : null;
}

let linkTimer = null;

/** Once every 2 s while the call lasts: the device's target and this browser's video stats. */
async function showLink(pc, previous) {
  const response = await fetch('/metrics', { credentials: 'same-origin' }).catch(() => null);
  const target = response?.ok ? videoTargetKbps(await response.text()) : null;
  let video = null;
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'video') video = s;
  }
  const lines = [`device video target: ${target ?? '—'} kbit/s`];
  if (video) {
    const seconds = previous ? (video.timestamp - previous.timestamp) / 1000 : 0;
    const kbps = seconds > 0 ? Math.round(((video.bytesReceived - previous.bytesReceived) * 8) / seconds / 1000) : 0;
    lines.push(`received: ${kbps} kbit/s, ${Math.round(video.framesPerSecond ?? 0)} fps, `
      + `${video.frameWidth ?? 0}x${video.frameHeight ?? 0}`);
    lines.push(`lost: ${video.packetsLost ?? 0} packets, freezes: ${video.freezeCount ?? 0} `
      + `(${(video.totalFreezesDuration ?? 0).toFixed(1)} s), NACKs: ${video.nackCount ?? 0}, `
      + `PLIs: ${video.pliCount ?? 0}`);
  }
  $('link-stats').textContent = lines.join('\n');
  return video;
}

export const debugPanel = {
  /**
   * Shows the link of `pc`'s call to the device until the next reset, while the panel is open
   * (closed, it asks the device and the browser for nothing).
   */
  watchLink(pc) {
    clearInterval(linkTimer);
    let previous = null;
    const refresh = async () => {
      if (!$('debug').open) return;
      previous = await showLink(pc, previous).catch(() => previous);
    };
    linkTimer = setInterval(refresh, 2000);
    $('debug').ontoggle = refresh;
  },

  /** Stops updating the link (its last figures stay). */
  stopLink() {
    clearInterval(linkTimer);
    linkTimer = null;
  },

  /** Shows how the device is reached from outside (GET /api/remote). */
  async showRemote() {
    const response = await fetch('/api/remote', { cache: 'no-store' }).catch(() => null);
    if (!response?.ok) return;
    const remote = await response.json();
    $('remote-access').textContent = !remote.portMapping
      ? 'Port mapping is off ([remote] port_mapping; docs/remote.md).'
      : [`Public URL: ${remote.publicUrl ?? 'none'}`,
        `Router: ${remote.protocol ?? 'no answer'}${remote.externalAddress ? `, external address ${remote.externalAddress}` : ''}`,
        `Forwarded: ${remote.forwarded.join(', ') || 'nothing'}`,
        ...(remote.problem ? [`Problem: ${remote.problem}`] : [])].join('\n');
  },

  reset() {
    this.stopLink();
    $('link-stats').textContent = '—';
    $('sdp-offer').textContent = '—';
    $('sdp-answer').textContent = '—';
    $('candidates').replaceChildren();
    $('candidate-count').textContent = '0';
  },

  /** `kind` is 'offer' or 'answer'; `from` says whose it is. */
  sdp(kind, sdp, from) {
    $(`sdp-${kind}`).textContent = `(${from})\n${sdp}`;
  },

  /** Adds one candidate row; `side` is 'local' or 'remote'. */
  candidate(side, line) {
    const c = parseCandidate(line);
    if (!c) return;
    const row = document.createElement('tr');
    row.dataset.type = c.type;
    row.dataset.side = side;
    for (const text of [side, c.type, c.protocol, c.address, String(c.port)]) {
      const cell = document.createElement('td');
      cell.textContent = text;
      row.append(cell);
    }
    $('candidates').append(row);
    $('candidate-count').textContent = String($('candidates').rows.length);
  },
};
