// Agents holding different numbers of objects, side by side (bench/get-lists, bench/rss): one
// agent per level, each with the base stack and populate()'d up to its level, all running at once
// so that their measurements can be interleaved.
import { join } from 'node:path';
import type { Agent } from './agent.js';
import type { Bench } from './bench.js';
import { envList, envNum, fmt, now } from './common.js';
import { baseStack, deleteAll, populate, type Counts } from './populate.js';

export interface Level {
  objects: number;
  agent: Agent;
  counts: Counts;
  /** Seconds it took to create the objects through the API. */
  populateS: number;
}

/** BENCH_OBJECTS (default 1000): the headline level; BENCH_LEVELS (default 10,100,BENCH_OBJECTS). */
export function levelSizes(dflt: number[] | null = null): { levels: number[]; headline: number } {
  const headline = envNum('BENCH_OBJECTS', 1000);
  const levels = [...new Set(envList('BENCH_LEVELS', dflt ?? [10, 100, headline]))].sort((a, b) => a - b);
  if (!levels.includes(headline)) levels.push(headline);
  levels.sort((a, b) => a - b);
  return { levels, headline };
}

export async function startLevels(b: Bench, sizes: number[], sockets = 1): Promise<Level[]> {
  const image = b.image();
  const out: Level[] = [];
  for (const objects of sizes) {
    const agent = b.agent(`run-${objects}-objects`, { sockets });
    await agent.start();
    const t0 = now();
    const stack = await baseStack(agent, image);
    const counts = await populate(agent, stack, join(b.work, `files-${objects}`), objects, 4, (m) => b.log(`${objects} objects: ${m}`));
    const populateS = (now() - t0) / 1000;
    b.log(`agent with ${objects} objects (${counts.containers} containers, ${counts.mounts} mounts, ${counts.attachments} attachments) populated in ${fmt(populateS)} s`);
    out.push({ objects, agent, counts, populateS });
  }
  return out;
}

export async function stopLevels(b: Bench, levels: Level[]): Promise<void> {
  for (const l of levels) {
    const t0 = now();
    await deleteAll(l.agent, 4);
    b.log(`agent with ${l.objects} objects: everything deleted in ${fmt((now() - t0) / 1000)} s`);
    await l.agent.stop();
  }
}
