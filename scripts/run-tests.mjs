#!/usr/bin/env node
// Runs the ava suite and ends with the plain summary line CI reads: "N passed, M failed".
import { spawn } from 'node:child_process';

const args = ['ava', '--verbose', ...process.argv.slice(2)];
const child = spawn('npx', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
let output = '';
for (const stream of [child.stdout, child.stderr]) {
  stream.on('data', (chunk) => {
    output += chunk.toString();
    (stream === child.stdout ? process.stdout : process.stderr).write(chunk);
  });
}
child.on('close', (code) => {
  const count = (re) => { const m = output.match(re); return m ? Number(m[1]) : 0; };
  // ava prints "N tests passed" only when nothing failed; otherwise count the verbose ✔ lines
  const passed = count(/(\d+) tests? passed/) || (output.match(/^\s*✔/gm) ?? []).length;
  let failed = count(/(\d+) tests? failed/) + count(/(\d+) uncaught exceptions?/) + count(/(\d+) unhandled rejections?/);
  failed += count(/(\d+) tests? timed out/) ;
  if (code !== 0 && failed === 0) failed = 1; // a crash or a runner error still counts as a failure
  console.log(`\n${passed} passed, ${failed} failed`);
  process.exit(code ?? 1);
});
