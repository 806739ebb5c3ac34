// Runs aiortc_whep.py, the aiortc (PyPI) WHEP player, with the Python that
// `scripts/setup --aiortc` made (scripts/test names it in PEERCAM_AIORTC_PYTHON).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PLAYER = fileURLToPath(new URL('./aiortc_whep.py', import.meta.url));

/** aiortc's Python; the test fails, not skips, without it. */
export function aiortcPython() {
  const python = process.env.PEERCAM_AIORTC_PYTHON;
  assert.ok(python, 'PEERCAM_AIORTC_PYTHON names aiortc\'s Python (scripts/test sets it from '
    + '`scripts/setup --aiortc`)');
  return python;
}

/** Watches `endpoint` with `token` and the player's `args`; resolves with its report. */
export function playWhep(endpoint, token, ...args) {
  return new Promise((resolve, reject) => {
    execFile(aiortcPython(), [PLAYER, endpoint, '--token', token, ...args],
      { timeout: 90_000 }, (error, stdout, stderr) => {
        const line = stdout.split('\n').find((l) => l.startsWith('{'));
        if (!line) {
          reject(new Error(`aiortc player failed: ${error?.message}\n${stderr}`));
          return;
        }
        resolve(JSON.parse(line));
      });
  });
}
