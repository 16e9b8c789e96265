// The layer rule, enforced in CI (`npm run lint`): imports point down only.
//   util ← model ← sys ← image (fetch, verify, cache) ← drivers (attach, mount) ← store ← core ← container ← api ← the agent (src/*.ts)
// A layer may import any layer below it, never one above; the two driver folders never import
// each other (the core hands a driver what it needs of another kind).
const layers = ['util', 'model', 'sys', 'image', 'attach|mount', 'store', 'core', 'container', 'api'];
const dir = (l) => `^src/(${l})/`;
const forbidden = [];
layers.forEach((layer, i) => {
  const above = layers.slice(i + 1);
  forbidden.push({
    name: `${layer.replace('|', '-')}-imports-up`,
    comment: `src/${layer}/ is below ${above.join(', ')} and the agent: it may not import them`,
    severity: 'error',
    from: { path: dir(layer) },
    to: { path: [...above.map(dir), '^src/[^/]+\\.ts$'] },
  });
});
forbidden.push(
  { name: 'attach-imports-mount', severity: 'error', comment: 'drivers never call each other', from: { path: '^src/attach/' }, to: { path: '^src/mount/' } },
  { name: 'mount-imports-attach', severity: 'error', comment: 'drivers never call each other', from: { path: '^src/mount/' }, to: { path: '^src/attach/' } },
  { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
  { name: 'src-imports-tests', severity: 'error', from: { path: '^src/' }, to: { path: '^(test|bench)/' } },
);
module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
