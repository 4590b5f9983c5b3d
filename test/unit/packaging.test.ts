// The systemd unit and the Dockerfile (README "Run it in production") stay true to the code: the
// unit passes `systemd-analyze verify` without a warning, and both start the file package.json
// names as the `xmppd` command, with the `start` subcommand.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { testNeeding, type Requirement } from '../helpers/requirements.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const read = (file: string): string => fs.readFileSync(path.join(root, file), 'utf8');
const commandFile = (JSON.parse(read('package.json')) as { bin: { xmppd: string } }).bin.xmppd;

const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const systemdAnalyze: Requirement = { available: fs.existsSync(SYSTEMD_ANALYZE), what: `systemd-analyze (${SYSTEMD_ANALYZE})`, debianPackages: 'systemd' };

testNeeding(systemdAnalyze)('the systemd unit verifies without a warning', (t) => {
  const result = spawnSync(SYSTEMD_ANALYZE, ['verify', path.join(root, 'packaging', 'xmppd.service')], { encoding: 'utf8' });
  t.is(result.status, 0, result.stderr);
  t.is(result.stderr.trim(), '', 'systemd-analyze warned');
});

test('the systemd unit starts the xmppd command, reloads with SIGHUP and stops with SIGTERM', (t) => {
  const unit = read('packaging/xmppd.service');
  const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? '';
  t.true(execStart.includes(`/opt/xmppd/${commandFile} start`), execStart);
  t.regex(unit, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  t.notRegex(unit, /^KillSignal=(?!SIGTERM)/m);
  t.true(fs.existsSync(path.join(root, commandFile)), `${commandFile} is built`);
});

test('the Dockerfile runs the xmppd command and copies only what exists', (t) => {
  const dockerfile = read('Dockerfile');
  t.true(dockerfile.includes(`ENTRYPOINT ["node", "/opt/xmppd/${commandFile}"]`));
  t.regex(dockerfile, /^CMD \["start"/m);
  // the sources copied from the build context
  for (const match of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const source of match[1]!.split(/\s+/)) t.true(fs.existsSync(path.join(root, source)), `COPY ${source}`);
  }
});
