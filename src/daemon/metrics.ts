/**
 * The daemon's counters, in Prometheus' text exposition format (version
 * 0.0.4): per operation, how many finished, how many failed and with which
 * code, how long they took (a histogram) and how many are running now; and
 * the process's own resident memory and open fds, the standard names.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Upper bounds of the latency buckets, in seconds: a CNI ADD takes about 1-20 ms, DHCP up to seconds. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface OperationStats {
  count: number;
  inFlight: number;
  errors: Map<string, number>;
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  buckets: number[];
  sum: number;
}

export class Metrics {
  private readonly ops = new Map<string, OperationStats>();
  private readonly startedAt = Date.now() / 1000;

  private stats(op: string): OperationStats {
    let s = this.ops.get(op);
    if (!s) this.ops.set(op, (s = { count: 0, inFlight: 0, errors: new Map(), buckets: BUCKETS.map(() => 0).concat(0), sum: 0 }));
    return s;
  }

  /** An operation starts; the function returned ends it, with the error code if it failed. */
  start(op: string): (errorCode?: string) => void {
    const s = this.stats(op);
    s.inFlight++;
    const t0 = process.hrtime.bigint();
    return (errorCode) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      s.inFlight--;
      s.count++;
      s.sum += seconds;
      const i = BUCKETS.findIndex((le) => seconds <= le);
      s.buckets[i < 0 ? BUCKETS.length : i]++;
      if (errorCode !== undefined) s.errors.set(errorCode, (s.errors.get(errorCode) ?? 0) + 1);
    };
  }

  render(): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const ops = [...this.ops.entries()].sort(([a], [b]) => a.localeCompare(b));
    family('pipework_operations_total', 'counter', 'Operations the daemon finished (succeeded or failed), by operation.');
    for (const [op, s] of ops) out.push(`pipework_operations_total{operation="${op}"} ${s.count}`);
    family('pipework_operation_errors_total', 'counter',
      'Operations that failed, by operation and code (CNI error code for cni_*; errno name, "refused" or "internal" otherwise).');
    for (const [op, s] of ops)
      for (const [code, n] of [...s.errors.entries()].sort()) out.push(`pipework_operation_errors_total{operation="${op}",code="${escapeLabel(code)}"} ${n}`);
    family('pipework_operation_duration_seconds', 'histogram', 'Time from request to answer, by operation.');
    for (const [op, s] of ops) {
      let cumulative = 0;
      BUCKETS.forEach((le, i) => {
        cumulative += s.buckets[i];
        out.push(`pipework_operation_duration_seconds_bucket{operation="${op}",le="${le}"} ${cumulative}`);
      });
      out.push(`pipework_operation_duration_seconds_bucket{operation="${op}",le="+Inf"} ${s.count}`);
      out.push(`pipework_operation_duration_seconds_sum{operation="${op}"} ${s.sum}`);
      out.push(`pipework_operation_duration_seconds_count{operation="${op}"} ${s.count}`);
    }
    family('pipework_operations_in_flight', 'gauge', 'Operations running now, by operation.');
    for (const [op, s] of ops) out.push(`pipework_operations_in_flight{operation="${op}"} ${s.inFlight}`);
    family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.');
    out.push(`process_resident_memory_bytes ${residentBytes()}`);
    family('process_open_fds', 'gauge', 'Number of open file descriptors.');
    out.push(`process_open_fds ${readdirSync('/proc/self/fd').length - 1}`);
    family('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.');
    out.push(`process_start_time_seconds ${this.startedAt}`);
    return `${out.join('\n')}\n`;
  }
}

/** VmRSS of /proc/self/status, in bytes. */
function residentBytes(): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
