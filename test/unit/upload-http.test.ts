// The pure parts of the upload module's HTTP side: byte ranges (RFC 9110 §14), the
// Content-Disposition of a stored file (RFC 6266, RFC 8187) and which types are safe inline.
import test from 'ava';
import { contentDisposition, isInlineSafe, normaliseContentType, parseRange } from '../../src/modules/upload/http.js';

test('single byte ranges: first-last, open-ended and suffix', (t) => {
  t.deepEqual(parseRange('bytes=0-99', 1000), { start: 0, end: 99 });
  t.deepEqual(parseRange('bytes=900-', 1000), { start: 900, end: 999 });
  t.deepEqual(parseRange('bytes=-100', 1000), { start: 900, end: 999 });
  t.deepEqual(parseRange('bytes=-5000', 1000), { start: 0, end: 999 }, 'a suffix longer than the file is the whole file');
  t.deepEqual(parseRange('bytes=990-5000', 1000), { start: 990, end: 999 }, 'the last position is clipped to the end');
});

test('unsatisfiable ranges are told apart from ones to ignore', (t) => {
  t.is(parseRange('bytes=1000-', 1000), 'unsatisfiable');
  t.is(parseRange('bytes=-0', 1000), 'unsatisfiable');
  t.is(parseRange(undefined, 1000), undefined);
  t.is(parseRange('bytes=5-1', 1000), undefined, 'last before first: invalid, ignored');
  t.is(parseRange('bytes=0-1,5-6', 1000), undefined, 'several ranges: the whole file instead');
  t.is(parseRange('items=0-1', 1000), undefined);
  t.is(parseRange('bytes=-', 1000), undefined);
});

test('Content-Disposition keeps the UTF-8 name and gives an ASCII fallback without quotes to break out of', (t) => {
  t.is(contentDisposition('inline', 'photo.jpg'), `inline; filename="photo.jpg"; filename*=UTF-8''photo.jpg`);
  t.is(contentDisposition('attachment', 'Grüße "x".html'), `attachment; filename="Gr__e _x_.html"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%22x%22.html`);
  t.is(contentDisposition('attachment', "it's (1)*.txt"), `attachment; filename="it's (1)*.txt"; filename*=UTF-8''it%27s%20%281%29%2A.txt`);
});

test('only media and plain text are shown inline; HTML, SVG, XML, PDF and scripts are downloads', (t) => {
  for (const type of ['image/png', 'image/JPEG', 'video/mp4', 'audio/ogg; codecs=opus', 'text/plain; charset=utf-8']) t.true(isInlineSafe(type), type);
  for (const type of ['text/html', 'image/svg+xml', 'application/xhtml+xml', 'text/xml', 'application/pdf', 'text/javascript', 'application/octet-stream', 'multipart/x-mixed-replace']) {
    t.false(isInlineSafe(type), type);
  }
});

test('content types compare case-insensitively in the type and parameter names, not in values', (t) => {
  t.is(normaliseContentType('Image/PNG'), 'image/png');
  t.is(normaliseContentType('text/plain ; Charset=UTF-8'), 'text/plain;charset=UTF-8');
});
