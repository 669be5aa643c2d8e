// Sanity check of gen_node_tests.py's output with ONNX Runtime: runs every
// converted case (baked model + raw tensors) on ORT's CPU provider and applies
// the runner's tolerance, so a conversion mistake shows up as an ORT failure
// rather than as an engine failure.
// usage: ORT_NODE_MODULES=bench/node_modules node tests/onnx/ort_check.mjs GEN_DIR
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const require = createRequire(import.meta.url);
const ort = require(resolve(process.env.ORT_NODE_MODULES || 'node_modules', 'onnxruntime-node'));
const gen = process.argv[2];
const types = { 1: ['float32', Float32Array], 2: ['uint8', Uint8Array], 3: ['int8', Int8Array],
  6: ['int32', Int32Array], 7: ['int64', BigInt64Array], 9: ['bool', Uint8Array],
  11: ['float64', Float64Array] };

function load(dir, e) {
  const t = types[e.dtype];
  if (!t || !e.file) return null;
  const b = readFileSync(join(dir, e.file));
  const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  return new ort.Tensor(t[0], new t[1](ab), e.shape);
}

const index = JSON.parse(readFileSync(join(gen, 'index.json'), 'utf8'));
const per = {};
for (const c of index.cases) {
  const dir = join(gen, c.dir);
  const cs = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8'));
  const p = per[c.op] ??= { pass: 0, total: 0, fails: [] };
  p.total++;
  let why = cs.error;
  try {
    if (!why) {
      const s = await ort.InferenceSession.create(join(dir, 'model.onnx'));
      for (const set of cs.sets) {
        const feeds = {};
        for (const e of set.inputs) {
          const t = load(dir, e);
          if (!t) throw new Error(`dtype ${e.dtype}`);
          feeds[e.name] = t;
        }
        const r = await s.run(feeds);
        for (const e of set.outputs) {
          const w = load(dir, e);
          if (!w) throw new Error(`dtype ${e.dtype}`);
          const g = r[e.name];
          if (g.dims.join() !== w.dims.join()) throw new Error(`${e.name} shape ${g.dims} want ${w.dims}`);
          for (let i = 0; i < w.data.length; i++) {
            const gv = Number(g.data[i]), wv = Number(w.data[i]);
            if (Number.isNaN(gv) && Number.isNaN(wv)) continue;
            if (!(Math.abs(gv - wv) <= cs.atol + cs.rtol * Math.abs(wv)))
              throw new Error(`${e.name}[${i}] ${gv} want ${wv}`);
          }
        }
      }
    }
  } catch (err) { why = String(err.message || err).split('\n')[0].slice(0, 160); }
  if (why) p.fails.push(`${c.case}: ${why}`); else p.pass++;
}
for (const [op, p] of Object.entries(per)) {
  console.log(`${op.padEnd(20)} ${p.pass}/${p.total}`);
  for (const f of p.fails) console.log(`    ${f}`);
}
