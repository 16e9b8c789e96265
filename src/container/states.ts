// The container state machine's one question: is there (or may there be) a process?
import type { ContainerState } from '../model/types.js';

const LIVE: ReadonlySet<ContainerState> = new Set(['running', 'paused', 'stopping']);

/** running, paused or stopping: a supervisor and a process tree may exist. */
export const isLive = (state: ContainerState) => LIVE.has(state);
