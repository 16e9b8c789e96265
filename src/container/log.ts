// The per-container log file: `<run-dir>/logs/<id>-<unix time>.log`. The agent's lines are
// `YYYY/MM/DD HH:MM:SS container(ID): message`; the init helper's lines and the container's
// output are appended to the same file by the helper.
import { appendFile } from 'node:fs/promises';

const pad = (n: number) => String(n).padStart(2, '0');

export function timestamp(d = new Date()): string {
  return `${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Append the agent's lines (one write, so they stay together). */
export async function logLine(file: string, id: number, ...messages: string[]): Promise<void> {
  const ts = timestamp();
  await appendFile(file, messages.map((m) => `${ts} container(${id}): ${m}\n`).join(''), { mode: 0o640 });
}
