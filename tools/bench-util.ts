// Shared by the benchmark runners: the kernel's peak resident set of this process.
import * as fs from 'node:fs';

/** VmHWM from /proc (the true peak, even between samples); RSS now where /proc is missing. */
export function peakRssBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
}
