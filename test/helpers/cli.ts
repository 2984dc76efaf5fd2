// The pipework command as a child process, run in a named netns playing "host".
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

export const BIN = resolve(__dirname, '../../bin/pipework.js');

export interface CliResult { code: number | null; signal: string | null; stdout: string; stderr: string }

/** `pipework ARGS` run in /run/netns/HOST (nsenter execs: the PID is node's, so a signal reaches it). */
export function cliIn(host: string): (args: string[], env?: NodeJS.ProcessEnv) => Promise<CliResult> {
  return (args, env = {}) => new Promise((done, fail) => {
    const child = spawn('nsenter', [`--net=/run/netns/${host}`, '--', process.execPath, BIN, ...args], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', fail);
    child.on('close', (code, signal) => done({ code, signal, stdout, stderr }));
  });
}
