// Figures for one device call in headless Chromium (not a test: nothing is asserted).
// Run with scripts/bench. Prints time from pressing Call device to the first decoded frame over
// N calls, the daemon's RSS idle / in a call / after hanging up, and its CPU during a call.
import { readFileSync } from 'node:fs';
import {
  callButton, hangUpButton, launchBrowser, median, openPage, startDaemon, waitForFrames, waitUntilIdle,
} from '../harness.mjs';

const CALLS = Number(process.env.CALLS ?? 5);
const CPU_SECONDS = Number(process.env.CPU_SECONDS ?? 10);
const rssMb = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024;
const cpuSeconds = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
};
const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))];

const daemon = await startDaemon(process.env.TOML ?? '');
const browser = await launchBrowser();
const idle = rssMb(daemon.pid);
const page = await openPage(browser, daemon.url);
const firstFrames = [];
for (let i = 0; i < CALLS; i++) {
  await callButton(page).click();
  await waitForFrames(page, 30);
  firstFrames.push(await page.evaluate(() => window.peercam.lastFirstFrameMs));
  if (i < CALLS - 1) {
    await hangUpButton(page).click();
    await waitUntilIdle(daemon);
  }
}
const cpuBefore = cpuSeconds(daemon.pid);
const started = Date.now();
await new Promise((r) => setTimeout(r, CPU_SECONDS * 1000));
const cpuPercent = ((cpuSeconds(daemon.pid) - cpuBefore) / ((Date.now() - started) / 1000)) * 100;
const inCall = rssMb(daemon.pid);
const video = await page.evaluate(async () => {
  for (const s of (await window.peercam.pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'video') return { fps: s.framesPerSecond, width: s.frameWidth, height: s.frameHeight };
  }
  return {};
});
await hangUpButton(page).click();
await waitUntilIdle(daemon);
await new Promise((r) => setTimeout(r, 1000));
const after = rssMb(daemon.pid);

console.log(`calls: ${CALLS}; first frame after Call device (ms): ${firstFrames.join(', ')}`);
console.log(`first frame: first call ${firstFrames[0]} ms, median ${median(firstFrames)} ms, p95 ${percentile(firstFrames, 0.95)} ms`);
console.log(`received: ${video.width}x${video.height} at ${video.fps} fps`);
console.log(`daemon RSS: idle ${idle.toFixed(1)} MB, in a call ${inCall.toFixed(1)} MB, after hanging up ${after.toFixed(1)} MB`);
console.log(`daemon CPU in a call: ${cpuPercent.toFixed(1)}% of one core`);
if (process.env.PEERCAM_SHOW_LOG) console.log(daemon.output);
await browser.close();
await daemon.stop();
