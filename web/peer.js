// One RTCPeerConnection with what both kinds of call need: trickled candidates sent through
// signaling (and shown in the debug panel), remote candidates held until the remote
// description is set, and the moment the first video frame is shown.
import { outgoing } from './signaling.js';
import { debugPanel } from './debug.js';

export class Peer {
  /**
   * `ice` is the server's `joined`/`created` message (iceServers, iceTransportPolicy); `send`
   * sends a signaling message; `onTrack(stream, track)` is called for remote tracks;
   * `onState(connectionState)` on every connection state change.
   */
  constructor({ ice, send, onTrack, onState }) {
    this.pc = new RTCPeerConnection({
      iceServers: ice.iceServers ?? [],
      iceTransportPolicy: ice.iceTransportPolicy ?? 'all',
      bundlePolicy: 'max-bundle',
    });
    this.send = send;
    this.pending = [];
    this.pc.addEventListener('icecandidate', (event) => {
      if (!event.candidate) return;
      debugPanel.candidate('local', event.candidate.candidate);
      send(outgoing.candidate(event.candidate));
    });
    this.pc.addEventListener('track', (event) => {
      onTrack(event.streams[0] ?? new MediaStream([event.track]), event.track);
    });
    this.pc.addEventListener('connectionstatechange', () => onState(this.pc.connectionState));
  }

  async offer() {
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    debugPanel.sdp('offer', this.pc.localDescription.sdp, 'this browser');
    this.send(outgoing.offer(this.pc.localDescription.sdp));
  }

  /** Takes the other side's offer; `beforeAnswer` may adjust transceivers first. */
  async answer(sdp, beforeAnswer = async () => {}) {
    debugPanel.sdp('offer', sdp, 'the other side');
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    await beforeAnswer(this.pc);
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    debugPanel.sdp('answer', this.pc.localDescription.sdp, 'this browser');
    this.send(outgoing.answer(this.pc.localDescription.sdp));
    await this.#flush();
  }

  async accept(sdp) {
    debugPanel.sdp('answer', sdp, 'the other side');
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    await this.#flush();
  }

  async addCandidate(message) {
    debugPanel.candidate('remote', message.candidate);
    const candidate = { candidate: message.candidate, sdpMLineIndex: message.sdpMLineIndex, sdpMid: message.sdpMid };
    if (!this.pc.remoteDescription) {
      this.pending.push(candidate);
      return;
    }
    await this.#add(candidate);
  }

  async #flush() {
    for (const candidate of this.pending.splice(0)) await this.#add(candidate);
  }

  async #add(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (e) {
      console.warn('peercam: ignoring a candidate', e);
    }
  }

  close() {
    this.pc.close();
  }
}

/** Calls `done()` once, when `video` shows its first frame. */
export function onFirstFrame(video, done) {
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
    video.requestVideoFrameCallback(() => done());
  } else {
    video.addEventListener('loadeddata', () => done(), { once: true });
  }
}
