// What `xmppd check dns|ports|features|certs` found: one line per thing looked at, good or not,
// with the fix when it is not (the way `prosodyctl check` reports).

export interface Finding {
  ok: boolean;
  /** What was looked at: a host, a DNS name, a listener. */
  subject: string;
  message: string;
  /** What to do about it, when not ok. */
  fix?: string;
}

export const good = (subject: string, message: string): Finding => ({ ok: true, subject, message });
export const bad = (subject: string, message: string, fix: string): Finding => ({ ok: false, subject, message, fix });

export function formatFindings(title: string, findings: readonly Finding[]): string {
  const lines = [`${title}:`];
  for (const finding of findings) {
    lines.push(`  ${finding.ok ? 'ok  ' : 'FAIL'} ${finding.subject}: ${finding.message}`);
    if (!finding.ok && finding.fix !== undefined) lines.push(`       fix: ${finding.fix}`);
  }
  if (findings.length === 0) lines.push('  (nothing to check)');
  return lines.join('\n');
}

/** A name the public DNS can have records for: not localhost, not a bare label, not an address. */
export function isPublicName(domain: string): boolean {
  if (/^[0-9.]+$/.test(domain) || domain.includes(':')) return false;
  if (!domain.includes('.')) return false;
  return !/\.(localhost|local|test|invalid|example|internal|lan|home\.arpa)$/.test(domain);
}
