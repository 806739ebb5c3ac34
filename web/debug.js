// The debug panel: the offer and answer SDP of the current call and every ICE candidate
// gathered (ours) or received (theirs), with its type, protocol, address and port — the view
// the tutorials' "trickle ICE" page gives.

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

export const debugPanel = {
  reset() {
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
