// Invitation tokens are pasted on command lines (`xmppd invite revoke <token>`): none may start
// with '-', which commander reads as an option (one base64url token in 64 did).
import test from 'ava';
import { newToken } from '../../src/modules/invites/store.js';

test('invitation tokens are 24 URL-safe characters and never start with a dash', (t) => {
  for (let i = 0; i < 5000; i++) {
    const token = newToken();
    t.regex(token, /^[A-Za-z0-9_][A-Za-z0-9_-]{23}$/);
  }
});
