// Headless Chromium as the owner's phone, driven one step at a time by scripts/peercam_tools/board_test.py
// while it works the emulated board between steps: one JSON request per line on standard
// input, one JSON answer per line on standard output ({ ok, ... } or { ok: false, error }).
//
//   { "do": "open", "url": "https://10.98.0.2/" }   a fresh Chromium (its microphone speaking:
//                                                    see writeVoiceWav), logged in through the
//                                                    login page
//   { "do": "call" }                                 press Call device
//   { "do": "frames", "more": N, "timeoutMs": T }    wait until N more frames have been decoded
//   { "do": "talk" }                                 press Talk
//   { "do": "status" }                               the page's status line
//   { "do": "close" }                                close Chromium and exit
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  callButton, eventually, inbound, launchBrowser, openPage, status, talkButton, writeVoiceWav,
} from '../harness.mjs';

const microphone = writeVoiceWav(join(mkdtempSync(join(tmpdir(), 'peercam-caller-')), 'voice.wav'));

let browser = null;
let page = null;

const decoded = async () => (await inbound(page, 'video'))?.framesDecoded ?? 0;

const steps = {
  async open({ url }) {
    await browser?.close();
    browser = await launchBrowser({ media: true, microphone });
    page = await openPage(browser, url);
    return { title: await page.title() };
  },
  async call() {
    await callButton(page).click();
    return {};
  },
  async frames({ more, timeoutMs }) {
    const from = await decoded();
    const video = await eventually(async () => {
      const now = await inbound(page, 'video');
      return now && now.framesDecoded >= from + more ? now : null;
    }, timeoutMs, `${more} more decoded frames`);
    return { from, framesDecoded: video.framesDecoded, codec: video.codec };
  },
  async talk() {
    await talkButton(page).click();
    await eventually(async () => (await talkButton(page).getAttribute('aria-pressed')) === 'true',
      10_000, 'Talk to show as on');
    return {};
  },
  async status() {
    return status(page);
  },
  async close() {
    await browser?.close();
    process.exit(0);
  },
};

for await (const line of createInterface({ input: process.stdin })) {
  let answer;
  try {
    const request = JSON.parse(line);
    answer = { ok: true, ...(await steps[request.do](request)) };
  } catch (e) {
    answer = { ok: false, error: String(e.message ?? e) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
await browser?.close();
