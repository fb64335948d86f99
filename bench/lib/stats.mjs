// Percentiles by the nearest-rank method over a Float64Array (sorted in place).
export function summarize(values) {
  const v = values instanceof Float64Array ? values : Float64Array.from(values);
  v.sort();
  const n = v.length;
  const at = (p) => (n === 0 ? null : v[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]);
  const round = (x) => (x === null ? null : Math.round(x * 10) / 10);
  let sum = 0;
  for (const x of v) sum += x;
  return { count: n, min: round(n ? v[0] : null), p50: round(at(50)), p90: round(at(90)), p99: round(at(99)), max: round(n ? v[n - 1] : null), mean: round(n ? sum / n : null) };
}
