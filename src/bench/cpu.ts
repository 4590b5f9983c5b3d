// CPU accounting for a timed phase: the server's utime+stime from /proc/<pid>/stat (the
// process and its descendants, e.g. cluster workers), and the generator's own CPU.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clockTicks: number | null = null;

/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on practically every Linux). */
function ticksPerSecond(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of one process in clock ticks, or null if it is gone. */
function processTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may contain spaces: fields after the last ')' start at 3 (state)
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // fields 14 (utime) and 15 (stime)
  } catch {
    return null;
  }
}

/** pid and all its descendants (via /proc/<pid>/task/<tid>/children). */
function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) {
    try {
      const children = readFileSync(`/proc/${all[i]}/task/${all[i]}/children`, 'utf8').trim();
      if (children) for (const c of children.split(/\s+/)) all.push(Number(c));
    } catch {
      // the process is gone, or the kernel has no children file: count what we have
    }
  }
  return all;
}

/** CPU time (ms) used so far by `pid` and its descendants, or null if `pid` is not readable. */
export function serverCpuMs(pid: number): number | null {
  if (processTicks(pid) === null) return null;
  let ticks = 0;
  for (const p of processTree(pid)) ticks += processTicks(p) ?? 0;
  return (ticks * 1000) / ticksPerSecond();
}

/**
 * Resolves once the server has stopped working on what came before (its CPU time grew by less
 * than `quietMs` over `windowMs`), at most after `maxMs`: the closing of one phase's connections
 * must not be counted in the next phase.
 */
export async function serverQuiet(pid: number | null, windowMs = 200, quietMs = 10, maxMs = 5000): Promise<void> {
  if (pid === null) return;
  const deadline = Date.now() + maxMs;
  let before = serverCpuMs(pid);
  while (before !== null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const now = serverCpuMs(pid);
    if (now === null || now - before < quietMs) return;
    before = now;
  }
}

function generatorCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export interface CpuReading {
  wall_ms: number;
  /** null without --pid, or when the server process cannot be read */
  server_cpu_ms: number | null;
  gen_cpu_ms: number;
}

/** Start at construction, read with stop(). */
export class CpuMeter {
  private readonly t0 = performance.now();
  private readonly server0: number | null;
  private readonly gen0 = generatorCpuMs();
  private readonly pids: readonly number[];

  /** One server process, or several whose CPU is summed (a cluster's nodes and Redis). */
  constructor(pids: number | null | readonly number[]) {
    this.pids = pids === null ? [] : typeof pids === 'number' ? [pids] : pids;
    this.server0 = this.read();
  }

  private read(): number | null {
    if (this.pids.length === 0) return null;
    let total = 0;
    for (const pid of this.pids) {
      const ms = serverCpuMs(pid);
      if (ms === null) return null;
      total += ms;
    }
    return total;
  }

  stop(): CpuReading {
    const wall = performance.now() - this.t0;
    const gen = generatorCpuMs() - this.gen0;
    const server1 = this.server0 === null ? null : this.read();
    return {
      wall_ms: wall,
      server_cpu_ms: server1 === null || this.server0 === null ? null : server1 - this.server0,
      gen_cpu_ms: gen,
    };
  }
}
