// Splitting a command line into words the way a POSIX shell does (quotes and backslashes
// honoured), without running a shell: no expansion, no globbing, no operators.
import { invalid } from '../model/errors.js';

export function splitCommand(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < line.length && '"\\$`\n'.includes(line[i + 1]!)) cur += line[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 < line.length) {
        const n = line[++i]!;
        if (n !== '\n') cur += n;
      }
      inWord = true;
    } else if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw invalid(`command: unterminated ${quote === '"' ? 'double' : 'single'} quote`);
  if (inWord) words.push(cur);
  if (words.length === 0) throw invalid('command: no command given');
  return words;
}
