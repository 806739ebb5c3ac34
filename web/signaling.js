// The signaling wire protocol, mirrored from src/signaling.rs; documented in docs/signaling.md.
// JSON text frames over the /ws WebSocket (or, when none can be opened, plain requests to
// /signal), each an object with a "type".

export const DEVICE_ROOM = 'device';

/** Messages the page sends. */
export const outgoing = {
  join: (room, codecs = []) => ({ type: 'join', room, codecs }),
  offer: (sdp) => ({ type: 'offer', sdp }),
  answer: (sdp) => ({ type: 'answer', sdp }),
  candidate: (c) => ({
    type: 'candidate',
    candidate: c.candidate,
    sdpMLineIndex: c.sdpMLineIndex ?? 0,
    ...(c.sdpMid != null ? { sdpMid: c.sdpMid } : {}),
  }),
  resume: (token) => ({ type: 'resume', token }),
  bye: () => ({ type: 'bye' }),
};

/** Types the server sends. */
export const INCOMING_TYPES = ['created', 'joined', 'ready', 'full', 'offer', 'answer', 'candidate', 'bye', 'error'];

/**
 * One signaling connection. `handlers` maps an incoming type to a function of the message;
 * `onclose` is called once when the connection closes for any reason. It is a WebSocket to
 * `url` when one can be opened; when none can (iOS has refused WSS to a self-signed
 * certificate even after the page's warning was accepted; some proxies drop upgrades), the
 * same messages go over plain same-origin requests to /signal instead (docs/signaling.md).
 */
export class Signaling {
  constructor(url, handlers, onclose) {
    this.handlers = handlers;
    this.onclose = onclose;
    this.transport = null;
    this.opened = this.#open(url);
  }

  async #open(url) {
    try {
      this.transport = await openSocket(url, this);
    } catch {
      this.transport = await openRequests(this);
      console.info('peercam: the WebSocket could not be opened; signaling over requests');
    }
  }

  /** `websocket` or `requests`, once opened. */
  get kind() { return this.transport?.kind ?? null; }

  deliver(data) {
    let message = data;
    if (typeof data === 'string') {
      try {
        message = JSON.parse(data);
      } catch {
        console.warn('peercam: ignoring a non-JSON message', data);
        return;
      }
    }
    const handler = INCOMING_TYPES.includes(message?.type) && this.handlers[message.type];
    if (handler) handler(message);
  }

  closed(event) {
    const onclose = this.onclose;
    this.onclose = null;
    if (onclose) onclose(event);
  }

  send(message) {
    this.transport?.send(message);
  }

  /** Closes without calling `onclose`: the page chose to end. */
  close() {
    this.onclose = null;
    this.transport?.close();
  }
}

/** A WebSocket to `url`, once open; rejects when it cannot be opened. */
function openSocket(url, signaling) {
  const socket = new WebSocket(url);
  let wasOpen = false;
  return new Promise((resolve, reject) => {
    socket.addEventListener('open', () => {
      wasOpen = true;
      resolve({
      kind: 'websocket',
      send: (message) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
      },
        close: () => socket.close(1000),
      });
    }, { once: true });
    socket.addEventListener('error', () => reject(new Error('cannot reach the device')), { once: true });
    socket.addEventListener('message', (event) => signaling.deliver(event.data));
    // A socket that never opened is not a connection that closed: requests take over.
    socket.addEventListener('close', (event) => { if (wasOpen) signaling.closed(event); }, { once: true });
  });
}

/**
 * The same connection over requests: POST /signal opens it, each message is a POST (one at a
 * time, in order), a GET waits for what the device sends, DELETE closes it.
 */
async function openRequests(signaling) {
  const opening = await fetch('/signal', { method: 'POST', cache: 'no-store' }).catch(() => null);
  if (opening?.status !== 201) throw new Error('cannot reach the device');
  const { id } = await opening.json();
  const resource = `/signal/${encodeURIComponent(id)}`;
  let open = true;
  const lost = (code) => {
    if (!open) return;
    open = false;
    signaling.closed({ code });
  };
  (async () => {
    while (open) {
      const response = await fetch(resource, { cache: 'no-store' }).catch(() => null);
      if (!open) return;
      if (response?.status !== 200) {
        lost(response?.status === 410 ? 1000 : 1006);
        return;
      }
      for (const message of await response.json().catch(() => [])) signaling.deliver(message);
    }
  })();
  let sending = Promise.resolve();
  return {
    kind: 'requests',
    send: (message) => {
      if (!open) return;
      sending = sending.then(() => fetch(resource, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(message),
        keepalive: true,
      })).then((response) => { if (response.status === 404) lost(1006); }, () => lost(1006));
    },
    close: () => {
      if (!open) return;
      open = false;
      // After what is still being sent (a `bye`, say).
      sending.finally(() => fetch(resource, { method: 'DELETE', keepalive: true }).catch(() => {}));
    },
  };
}

/** The wss:// URL of the signaling endpoint on the host that served this page. */
export function signalingUrl(location) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}
