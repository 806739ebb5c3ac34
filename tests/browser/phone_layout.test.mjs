// On a 390x844 phone screen the picture and the buttons fit: no sideways scrolling, every
// button inside the viewport and big enough to touch, before and during a device or room call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { callButton, openPage, useDaemonAndBrowser, waitForFrames } from './harness.mjs';

const env = useDaemonAndBrowser('[media]\nwidth = 640\nheight = 360\n', { media: true });

async function checkLayout(page, buttons) {
  const layout = await page.evaluate((names) => {
    const box = (el) => el.getBoundingClientRect().toJSON();
    return {
      scrollWidth: document.documentElement.scrollWidth,
      remote: box(document.getElementById('remote')),
      buttons: names.map((name) => {
        const el = [...document.querySelectorAll('button')].find((b) => b.textContent.trim() === name);
        return { name, ...box(el) };
      }),
    };
  }, buttons);
  assert.ok(layout.scrollWidth <= 390, `no horizontal scroll (page is ${layout.scrollWidth}px wide)`);
  assert.ok(layout.remote.width >= 380 && layout.remote.height >= 300, 'the picture is large');
  for (const b of layout.buttons) {
    assert.ok(b.left >= 0 && b.right <= 390 && b.top >= 0 && b.bottom <= 844, `${b.name} is on screen`);
    assert.ok(b.height >= 44 && b.width >= 44, `${b.name} is a big touch target`);
  }
}

const PHONE = { viewport: { width: 390, height: 844 } };

test('the page fits a 390x844 phone before and during a call', async () => {
  const page = await openPage(env.browser, env.daemon.url, PHONE);
  await checkLayout(page, ['Call device', 'Watch', 'Talk']);
  await callButton(page).click();
  await waitForFrames(page, 10);
  await checkLayout(page, ['Talk', 'Hang up']);
  await page.context().close();
});

test('a room call fits a 390x844 phone: the other person large, buttons on screen', async () => {
  const alice = await openPage(env.browser, `${env.daemon.url}?room=phone`, PHONE);
  const bob = await openPage(env.browser, `${env.daemon.url}?room=phone`, PHONE);
  await waitForFrames(alice, 10);
  await checkLayout(alice, ['Leave', 'Mute microphone', 'Turn camera off', 'Share screen']);
  const local = await alice.locator('#local').boundingBox();
  const remote = await alice.locator('#remote').boundingBox();
  assert.ok(local.width < remote.width / 2, 'own picture is small, in a corner');
  await Promise.all([alice.context().close(), bob.context().close()]);
});
