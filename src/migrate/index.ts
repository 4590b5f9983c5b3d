// Moving users in and out: `xmppd export` (XEP-0227) and `xmppd import xep227|prosody|ejabberd`,
// run on the database with the server stopped. An import is one transaction: a file that turns
// out malformed halfway, or any other failure, leaves the database as it was. Accounts that exist
// already are left alone with everything of theirs in the file, so running an import again
// after fixing a file adds only what is missing.
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { ImportError, ImportSink, migrateStores, type ImportReport, type Tally } from './sink.js';
import { Xep227Reader } from './xep0227-reader.js';
import { Xep227Writer, type ExportCounts } from './xep0227-writer.js';
import { ProsodyReader } from './prosody-reader.js';
import { Progress } from './progress.js';

export { ImportError, type ImportReport } from './sink.js';

export type ImportFormat = 'xep227' | 'prosody' | 'ejabberd';

export async function importData(db: Knex, hosts: readonly string[], format: ImportFormat, source: string, progress = new Progress('importing')): Promise<ImportReport> {
  await migrateStores(db);
  try {
    return await db.transaction(async (trx) => {
      const sink = new ImportSink(trx, new Set(hosts), progress);
      if (format === 'prosody') await new ProsodyReader(sink).read(source);
      else {
        const reader = new Xep227Reader(sink);
        for (const file of format === 'ejabberd' ? piefxisFiles(source) : [source]) await reader.read(file);
      }
      await sink.flush();
      return sink.report;
    });
  } finally {
    progress.done();
  }
}

/**
 * What `ejabberdctl export_piefxis <dir>` wrote: a main file with an XInclude per host file. A
 * directory is searched for main files (their root is <server-data/>); a file is read as it is.
 */
function piefxisFiles(source: string): string[] {
  if (!fs.statSync(source, { throwIfNoEntry: false })?.isDirectory()) return [source];
  const mains = fs.readdirSync(source).filter((f) => f.endsWith('.xml')).sort().map((f) => path.join(source, f)).filter((file) => {
    const head = Buffer.alloc(1024);
    const fd = fs.openSync(file, 'r');
    try {
      const n = fs.readSync(fd, head, 0, head.length, 0);
      return /<server-data[\s>]/.test(head.subarray(0, n).toString('utf8'));
    } finally {
      fs.closeSync(fd);
    }
  });
  if (mains.length === 0) throw new ImportError(`${source} holds no XEP-0227 main file (an .xml file whose root is <server-data/>)`);
  return mains;
}

/**
 * Writes the hosts' data to `file` (XEP-0227), readable by its owner only (§6: it holds the
 * accounts' keys and messages). Written beside it first and renamed when complete, so a failed
 * export never leaves a file that looks whole.
 */
export async function exportData(db: Knex, hosts: readonly string[], file: string, progress = new Progress('exporting')): Promise<ExportCounts> {
  await migrateStores(db);
  const partial = `${file}.partial`;
  const out = fs.createWriteStream(partial, { mode: 0o600 });
  const opened = new Promise<void>((resolve, reject) => out.once('open', () => resolve()).once('error', reject));
  try {
    await opened;
    const writer = new Xep227Writer(db, out, progress);
    await writer.writeAll(hosts);
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    fs.renameSync(partial, file);
    return writer.counts;
  } catch (err) {
    out.destroy();
    fs.rmSync(partial, { force: true });
    if ((err as NodeJS.ErrnoException).code !== undefined && (err as NodeJS.ErrnoException).syscall === 'open') {
      throw new ImportError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code}`);
    }
    throw err;
  } finally {
    progress.done();
  }
}

/** The report of an import as the CLI prints it. */
export function describeImport(report: ImportReport): string {
  const lines = [
    `imported ${report.accounts} accounts, ${report.rosterItems} roster items, ${report.offlineMessages} offline messages, ${report.archivedMessages} archived messages, ${report.pepItems} PEP items`,
  ];
  const list = (t: Tally) => `${t.sample.join(', ')}${t.count > t.sample.length ? ` and ${t.count - t.sample.length} more` : ''}`;
  if (report.skipped.count > 0) lines.push(`skipped ${report.skipped.count} accounts that exist already (their data in the import left out): ${list(report.skipped)}`);
  if (report.unknownHosts.length > 0) lines.push(`skipped hosts this server does not serve (add them to hosts: and import again): ${report.unknownHosts.join(', ')}`);
  if (report.withoutPassword.count > 0) lines.push(`${report.withoutPassword.count} accounts came without a usable password and cannot log in until one is set (xmppd user passwd): ${list(report.withoutPassword)}`);
  if (report.sha1Only.count > 0) {
    lines.push(`${report.sha1Only.count} accounts have SCRAM-SHA-1 keys only: they log in with SCRAM-SHA-1 or PLAIN; their first PLAIN login, a SASL2 upgrade task (XEP-0480) or a new password adds SHA-256 and SHA-512 keys; until every account has them, the host does not offer SCRAM-SHA-256 and SCRAM-SHA-512`);
  }
  for (const what of report.ignored) lines.push(`not imported: ${what}`);
  return lines.join('\n');
}
