// The layer rules of docs/architecture.md, checked over the import graph of src/ (read from the
// TypeScript sources, type imports included): the kernel (src/core) imports no edge and no
// module, and no import cycle spans more than one folder or more than 3 files.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const src = path.join(root, 'src');

/** Every .ts file under src/, as a path relative to src/ with forward slashes. */
function sourceFiles(dir = src): string[] {
  const files: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(path.relative(src, full).split(path.sep).join('/'));
  }
  return files.sort();
}

// `import x from '...'`, `import type { X } from '...'`, `export { x } from '...'`, `export * from '...'`,
// `import '...'` and `import('...')`; over several lines too.
const importPattern = /(?:^|[;\n}])\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The relative imports of one file, resolved to paths relative to src/ (packages and node: left out). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(src, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const targets = new Set<string>();
  for (const match of text.matchAll(importPattern)) {
    const specifier = match[1] ?? match[2]!;
    if (!specifier.startsWith('.')) continue;
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier)).replace(/\.js$/, '.ts');
    targets.add(resolved.endsWith('.ts') ? resolved : `${resolved}.ts`);
  }
  return [...targets];
}

function importGraph(): Map<string, string[]> {
  const files = sourceFiles();
  const known = new Set(files);
  return new Map(files.map((file) => [file, importsOf(file).filter((target) => known.has(target))]));
}

/** Strongly connected components (Tarjan), the ones with more than one file. */
function cycles(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const folderOf = (file: string) => path.posix.dirname(file).split('/')[0]!;
const topOf = (file: string) => (file.includes('/') ? folderOf(file) : file.replace(/\.ts$/, ''));

test('the import graph is read from the sources', (t) => {
  const graph = importGraph();
  t.true(graph.size > 50);
  t.true(graph.get('core/router.ts')!.includes('core/jid.ts'));
  // type imports count
  t.true([...graph.values()].some((targets) => targets.length > 0));
});

test('src/core imports only core, storage, xml and accounts (no edge, no module, no app)', (t) => {
  const allowed = new Set(['core', 'storage', 'xml', 'accounts']);
  const offending: string[] = [];
  for (const [file, targets] of importGraph()) {
    if (!file.startsWith('core/')) continue;
    for (const target of targets) if (!allowed.has(topOf(target))) offending.push(`${file} → ${target}`);
  }
  t.deepEqual(offending, [], `core imports an edge or a module:\n${offending.join('\n')}`);
});

test('no import cycle spans more than one folder or more than 3 files', (t) => {
  const all = cycles(importGraph());
  t.log(`largest cycle: ${Math.max(0, ...all.map((c) => c.length))} files; cycles: ${all.map((c) => c.join(' ↔ ')).join('; ') || 'none'}`);
  const bad = all.filter((component) => component.length > 3 || new Set(component.map((f) => path.posix.dirname(f))).size > 1);
  t.deepEqual(
    bad,
    [],
    `import cycles:\n${bad.map((component) => `  ${component.length} files: ${component.join(', ')}`).join('\n')}`,
  );
});
