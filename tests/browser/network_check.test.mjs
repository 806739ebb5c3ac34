// The /check page, like the tutorials' "trickle ICE" sample: Chromium, which hides its host
// addresses behind mDNS names, learns its real address from the device's own STUN responder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, openPage, useDaemonAndBrowser } from './harness.mjs';

const env = useDaemonAndBrowser();

async function checkResult(page) {
  return eventually(async () => {
    const state = await page.locator('#verdict').getAttribute('data-state');
    if (state === 'running') return null;
    const rows = await page.locator('#candidates tr').evaluateAll((trs) => trs.map((tr) =>
      [...tr.cells].map((td) => td.textContent)));
    return { state, text: await page.locator('#verdict').textContent(), rows };
  }, 30_000, 'the check to finish');
}

test('Chromium gathers a server-reflexive candidate from the device', async () => {
  const page = await openPage(env.browser, `${env.daemon.url}check`);
  // The page fills the list in once it has fetched the ICE servers.
  const servers = await eventually(async () => {
    const text = await page.locator('#servers').textContent();
    return text.includes('…') ? null : text;
  }, 10_000, 'the ICE servers on the page');
  assert.match(servers, new RegExp(`stun:127\\.0\\.0\\.1:${env.daemon.stunPort}`));
  const result = await checkResult(page);
  const srflx = result.rows.filter(([type]) => type === 'srflx');
  assert.ok(srflx.length > 0, `a srflx candidate among ${JSON.stringify(result.rows)}`);
  for (const [, protocol, address] of srflx) {
    assert.equal(protocol, 'udp');
    assert.match(address, /^\d+\.\d+\.\d+\.\d+$/, 'a real address, not an mDNS name');
  }
  const exposed = result.rows.filter(([type, , address]) => type === 'host' && !address.endsWith('.local'));
  assert.deepEqual(exposed, [], 'host addresses stay hidden behind mDNS names');
  assert.match(result.text, /STUN works/);
  // A real connection to the device, not only gathering: the path a call takes is named.
  assert.match(result.text, /A call from this browser connects: directly, on the same network/);
  assert.match(result.text, /TURN: no TURN server configured/);
  assert.equal(result.state, 'ok');
  const metrics = await env.daemon.metrics();
  assert.ok(metrics.peercam_stun_answered_total >= 1);
});
