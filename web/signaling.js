// The signaling wire protocol, mirrored from src/signaling.rs; documented in docs/signaling.md.
// JSON text frames over the /ws WebSocket, each an object with a "type".

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
 * `onclose` is called once when the socket closes for any reason.
 */
export class Signaling {
  constructor(url, handlers, onclose) {
    this.handlers = handlers;
    this.onclose = onclose;
    this.socket = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.socket.addEventListener('open', resolve, { once: true });
      this.socket.addEventListener('error', () => reject(new Error('cannot reach the device')), { once: true });
    });
    this.socket.addEventListener('message', (event) => this.#dispatch(event.data));
    this.socket.addEventListener('close', (event) => {
      const onclose = this.onclose;
      this.onclose = null;
      if (onclose) onclose(event);
    }, { once: true });
  }

  #dispatch(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn('peercam: ignoring a non-JSON message', data);
      return;
    }
    const handler = INCOMING_TYPES.includes(message.type) && this.handlers[message.type];
    if (handler) handler(message);
  }

  send(message) {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Closes without calling `onclose`: the page chose to end. */
  close() {
    this.onclose = null;
    this.socket.close(1000);
  }
}

/** The wss:// URL of the signaling endpoint on the host that served this page. */
export function signalingUrl(location) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}
