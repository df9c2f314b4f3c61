// Prints, as a Markdown table, how evenly the ring spreads primary ownership over k nodes named
// node-1..node-k for several vnode counts. Run after `npm run build`:
//   node scripts/ownership.mjs
// Every figure is deterministic (it depends only on the hash and the node names).
import { Ring } from "../dist/index.js";

const nodeCounts = [3, 5, 10];
const vnodeCounts = [64, 256, 1024];
const percent = (x) => `${(x * 100).toFixed(2)}%`;
const relative = (x, ideal) => `${x / ideal >= 1 ? "+" : ""}${((x / ideal - 1) * 100).toFixed(1)}%`;

console.log("| nodes | vnodes | ideal share | min share | max share | stddev | stddev / ideal | max / min |");
console.log("|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const k of nodeCounts) {
  for (const vnodes of vnodeCounts) {
    const names = Array.from({ length: k }, (_, i) => `node-${i + 1}`);
    const shares = [...new Ring(names, { vnodes }).ownership().values()];
    const ideal = 1 / k;
    const min = Math.min(...shares);
    const max = Math.max(...shares);
    const stddev = Math.sqrt(shares.reduce((sum, s) => sum + (s - ideal) ** 2, 0) / k);
    console.log(
      `| ${k} | ${vnodes} | ${percent(ideal)} | ${percent(min)} (${relative(min, ideal)}) | ` +
        `${percent(max)} (${relative(max, ideal)}) | ${percent(stddev)} | ${percent(stddev / ideal)} | ${(max / min).toFixed(3)} |`,
    );
  }
}

// One naming is one sample; this second table averages over many clusters with other node names
// to show the spread to expect in general.
const clusters = 50;
console.log();
console.log(`Over ${clusters} clusters per row (node names c<j>-node-<i>):`);
console.log();
console.log("| nodes | vnodes | mean stddev / ideal | mean max / ideal | worst max / ideal | worst min / ideal |");
console.log("|---:|---:|---:|---:|---:|---:|");
for (const k of nodeCounts) {
  for (const vnodes of vnodeCounts) {
    const ideal = 1 / k;
    let sumCv = 0;
    let sumMax = 0;
    let worstMax = 0;
    let worstMin = Infinity;
    for (let j = 0; j < clusters; j++) {
      const names = Array.from({ length: k }, (_, i) => `c${j}-node-${i + 1}`);
      const shares = [...new Ring(names, { vnodes }).ownership().values()];
      const max = Math.max(...shares);
      const min = Math.min(...shares);
      sumCv += Math.sqrt(shares.reduce((sum, s) => sum + (s - ideal) ** 2, 0) / k) / ideal;
      sumMax += max / ideal;
      worstMax = Math.max(worstMax, max / ideal);
      worstMin = Math.min(worstMin, min / ideal);
    }
    console.log(`| ${k} | ${vnodes} | ${percent(sumCv / clusters)} | ${(sumMax / clusters).toFixed(3)} | ${worstMax.toFixed(3)} | ${worstMin.toFixed(3)} |`);
  }
}
