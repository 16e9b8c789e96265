import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitCommand } from '../../src/container/command.js';

describe('splitCommand (shell-like words, no shell)', () => {
  const cases: Array<[string, string[]]> = [
    ['/sbin/init', ['/sbin/init']],
    ['  /bin/sh   -c  true ', ['/bin/sh', '-c', 'true']],
    [`/bin/sh -c "echo hi; exec sleep 1"`, ['/bin/sh', '-c', 'echo hi; exec sleep 1']],
    [`echo 'single $quoted' "dq \\"esc\\" \\$HOME"`, ['echo', 'single $quoted', 'dq "esc" $HOME']],
    [`a\\ b c`, ['a b', 'c']],
    [`x "" ''`, ['x', '', '']],
    [`p"art"'s'`, ['parts']],
    [`echo $HOME *`, ['echo', '$HOME', '*']],
    [`a\tb\nc`, ['a', 'b', 'c']],
  ];
  for (const [line, words] of cases) it(JSON.stringify(line), () => assert.deepEqual(splitCommand(line), words));
  it('rejects unterminated quotes and empty commands', () => {
    assert.throws(() => splitCommand(`sh -c "x`), /unterminated double quote/);
    assert.throws(() => splitCommand(`sh -c 'x`), /unterminated single quote/);
    assert.throws(() => splitCommand('   '), /no command/);
  });
});
