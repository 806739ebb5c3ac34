// Signaling when no WebSocket can be opened (iOS has refused WSS to a self-signed certificate
// even after the warning was accepted): the page's socket fails as it does there, and the page
// calls the device over plain requests to /signal instead, hangs up, and a named room works
// with one side on requests and the other on a socket. The requests endpoint is held to the
// same rules: login, an unguessable id, a cap per address, malformed messages answered with an
// `error` and nothing else disturbed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PASSWORD, callButton, eventually, hangUpButton, logIn, openPage, request, status,
  useDaemonAndBrowser, waitForFrames, waitForStatus, waitUntilIdle,
} from './harness.mjs';

const env = useDaemonAndBrowser('[media]\nwidth = 640\nheight = 360\n', { media: true });

/** A page whose WebSocket never opens, as on that iPhone; records its /signal requests. */
async function pageWithoutWebSocket() {
  const context = await env.browser.newContext({ ignoreHTTPSErrors: true });
  await context.addInitScript(() => {
    window.WebSocket = class RefusedWebSocket extends EventTarget {
      static OPEN = 1;

      constructor() {
        super();
        this.readyState = 3;
        setTimeout(() => {
          this.dispatchEvent(new Event('error'));
          this.dispatchEvent(new CloseEvent('close', { code: 1006 }));
        }, 20);
      }

      send() { throw new Error('not open'); }

      close() {}
    };
  });
  const page = await context.newPage();
  const signalRequests = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname.startsWith('/signal')) signalRequests.push(r.method());
  });
  const origin = new URL(env.daemon.url).origin;
  await page.goto(`${origin}/login`);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${origin}/`);
  return { page, signalRequests };
}

test('with no WebSocket, the page calls the device over requests and hangs up', async (t) => {
  const { page, signalRequests } = await pageWithoutWebSocket();
  t.after(() => page.context().close());
  await callButton(page).click();
  const video = await waitForFrames(page, 30);
  assert.ok(video.framesDecoded > 30);
  assert.equal((await status(page)).state, 'in-call');
  assert.ok(signalRequests.includes('POST') && signalRequests.includes('GET'),
    `the call went over /signal: ${signalRequests}`);
  await hangUpButton(page).click();
  // The `bye` went over requests too: the device is free at once, not after a resume wait.
  await waitUntilIdle(env.daemon);
  await eventually(() => signalRequests.includes('DELETE'), 5_000, 'the connection closed');
});

test('a named room with one side on requests and the other on a WebSocket', async (t) => {
  const { page: first } = await pageWithoutWebSocket();
  const second = await openPage(env.browser, env.daemon.url);
  t.after(async () => {
    // Leaving closes the connection over requests (DELETE), as hanging up does.
    await first.getByRole('button', { name: 'Leave' }).click();
    await Promise.all([first.context().close(), second.context().close()]);
  });
  for (const page of [first, second]) {
    await page.getByLabel('Room').fill('kitchen');
    await page.getByRole('button', { name: 'Connect' }).click();
  }
  await waitForStatus(first, 'in-call', 20_000);
  await waitForStatus(second, 'in-call', 20_000);
  await waitForFrames(first, 10);
  await waitForFrames(second, 10);
});

test('the requests endpoint: login, unknown ids, a cap per address, malformed messages', async () => {
  const port = env.daemon.port;
  assert.equal((await request(port, 'POST', '/signal')).status, 401, 'not logged in');
  const cookie = await logIn(port, PASSWORD);
  const headers = { cookie };
  assert.equal((await request(port, 'GET', '/signal/not-an-id', { headers })).status, 404);
  assert.equal((await request(port, 'POST', '/signal/not-an-id', { headers, body: '{}' })).status, 404);
  const opened = [];
  for (let i = 0; i < 4; i++) {
    const response = await request(port, 'POST', '/signal', { headers });
    assert.equal(response.status, 201, response.body.toString());
    opened.push(JSON.parse(response.body).id);
  }
  const fifth = await request(port, 'POST', '/signal', { headers });
  assert.equal(fifth.status, 503, 'a fifth connection from one address');
  // A malformed message is answered with an `error` in the next poll; the connection lives on.
  const [id] = opened;
  const sent = await request(port, 'POST', `/signal/${id}`, { headers, body: '{"type": 7}' });
  assert.equal(sent.status, 204);
  const poll = await request(port, 'GET', `/signal/${id}`, { headers });
  assert.equal(poll.status, 200);
  const [reply] = JSON.parse(poll.body);
  assert.equal(reply.type, 'error', poll.body.toString());
  for (const each of opened) {
    assert.equal((await request(port, 'DELETE', `/signal/${each}`, { headers })).status, 204);
  }
  assert.equal((await request(port, 'GET', `/signal/${id}`, { headers })).status, 404);
});
