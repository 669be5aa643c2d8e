// ONNX Runtime (CPU provider) side of bench/engine_vs_ort.sh.
//
// usage: node bench/ort_bench.mjs MODEL_DIR [--runs N] [--warmup N] [--threads N] [--check]
//
// MODEL_DIR is what tools/export_models.py wrote (model.json, model.onnx,
// input_0.bin, output_N.bin). Runs the model on the saved input with
// intraOpNumThreads = --threads, interOpNumThreads = 1, sequential execution,
// and prints one JSON line: load_ms, median_ms, p10_ms, p90_ms, and (with
// --check) max_abs_err / max_abs_ref of every output against torch's.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const ortPath = process.env.ORT_NODE_MODULES
  ? resolve(process.env.ORT_NODE_MODULES, 'onnxruntime-node')
  : 'onnxruntime-node';
const ort = require(ortPath);

function usage() {
  console.error('usage: node ort_bench.mjs MODEL_DIR [--runs N] [--warmup N] [--threads N] [--check]');
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length < 1) usage();
const opt = { runs: 20, warmup: 3, threads: 2, check: false };
const dir = args[0];
for (let i = 1; i < args.length; i++) {
  const a = args[i];
  if (a === '--check') opt.check = true;
  else if (['--runs', '--warmup', '--threads'].includes(a) && i + 1 < args.length) {
    opt[a.slice(2)] = parseInt(args[++i], 10);
  } else usage();
}

function readTensor(entry) {
  if (entry.dtype !== 1) throw new Error(`${entry.name}: only float32 supported here`);
  const buf = readFileSync(join(dir, entry.file));
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return new ort.Tensor('float32', data, entry.shape);
}

function quantile(sorted, q) {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

const meta = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
const t0 = performance.now();
const session = await ort.InferenceSession.create(join(dir, meta.onnx), {
  executionProviders: ['cpu'],
  intraOpNumThreads: opt.threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
});
const loadMs = performance.now() - t0;

const feeds = {};
for (const e of meta.inputs) feeds[e.name] = readTensor(e);

let result;
for (let i = 0; i < opt.warmup; i++) result = await session.run(feeds);
const times = [];
for (let i = 0; i < opt.runs; i++) {
  const s = performance.now();
  result = await session.run(feeds);
  times.push(performance.now() - s);
}
if (!result) result = await session.run(feeds);
times.sort((a, b) => a - b);

const out = {
  model: meta.model,
  runtime: 'onnxruntime-node',
  version: ort.env.versions.common,
  threads: opt.threads,
  runs: times.length,
  load_ms: loadMs,
  median_ms: times.length ? quantile(times, 0.5) : null,
  p10_ms: times.length ? quantile(times, 0.1) : null,
  p90_ms: times.length ? quantile(times, 0.9) : null,
};
if (opt.check) {
  out.outputs = meta.outputs.map((e) => {
    const want = readTensor(e).data;
    const got = result[e.name].data;
    let maxErr = 0, maxRef = 0;
    for (let i = 0; i < want.length; i++) {
      maxRef = Math.max(maxRef, Math.abs(want[i]));
      maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
    }
    return { name: e.name, max_abs_err: maxErr, max_abs_ref: maxRef, rel: maxErr / maxRef,
             ok: got.length === want.length && maxErr <= 1e-4 * maxRef };
  });
}
console.log(JSON.stringify(out));
