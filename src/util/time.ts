// Time helpers every layer uses.
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const nowIso = () => new Date().toISOString();
