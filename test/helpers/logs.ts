// A container's output as its command wrote it. By default (log_timestamps) the helper's log
// writer stamps every output line with its time and stream, `YYYY/MM/DD HH:MM:SS.uuuuuu stdout: `;
// tests that look at what the command printed take the stamp off. The agent's and init's lines
// (`YYYY/MM/DD HH:MM:SS container(N): …`, `… init: …`) have no microseconds and stay as they are.

/** The stamp of one output line (at the start of a line). */
export const OUTPUT_STAMP = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6} (stdout|stderr): /gm;

/** `text` (a log, or part of one) with the stamps of its output lines taken off. */
export function unstamped(text: string): string {
  return text.replace(OUTPUT_STAMP, '');
}
