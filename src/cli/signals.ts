import { constants } from 'node:os';

/** What a long-running command says as it stops. */
export interface StopMessages {
  /** At the first signal: what stops, what is finished. */
  stopping: string;
  /** At the second, if it changes anything (rolls back what is in flight). */
  rollingBack?: string;
}

/** A graceful stop in progress: which signal asked for it, and the two steps as AbortSignals. */
export interface Stopping {
  signal?: NodeJS.Signals;
  /** Aborted at the first signal: start nothing new. */
  stop: AbortSignal;
  /** Aborted at the second: roll back what is in flight instead of finishing it. */
  rollback: AbortSignal;
  /** 128 + the signal's number, as a shell reports a process a signal ended; 0 if none came. */
  exitStatus(): number;
  dispose(): void;
}

/**
 * SIGINT, SIGTERM and SIGHUP while a command runs: the first stops new work
 * (what is in flight finishes), a second one rolls back what is in flight
 * instead; later ones change nothing more. Nothing is ever abandoned half-made.
 */
export function stopOnSignals(say: (text: string) => void, messages: StopMessages): Stopping {
  const stop = new AbortController();
  const rollback = new AbortController();
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const state: Stopping = {
    signal: undefined,
    stop: stop.signal,
    rollback: rollback.signal,
    exitStatus: () => (state.signal ? 128 + constants.signals[state.signal] : 0),
    dispose: () => { for (const sig of signals) process.off(sig, on); },
  };
  function on(sig: NodeJS.Signals) {
    if (!state.signal) {
      state.signal = sig;
      say(`pipework: ${sig}: ${messages.stopping}`);
      stop.abort();
    } else if (messages.rollingBack && !rollback.signal.aborted) {
      say(`pipework: ${sig}: ${messages.rollingBack}`);
      rollback.abort();
    }
  }
  for (const sig of signals) process.on(sig, on);
  return state;
}
