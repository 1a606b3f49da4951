// Writes the spec of every PrometheusRule in a rendered manifest as a plain Prometheus rule
// file, so that promtool can check its PromQL and run the alert unit tests.
// Usage: node extract-rules.mjs RENDERED.yaml OUT.rules.yaml
import { readFileSync, writeFileSync } from "node:fs";
import yaml from "js-yaml";

const [input, output] = process.argv.slice(2);
const groups = yaml.loadAll(readFileSync(input, "utf8"))
  .filter((d) => d?.kind === "PrometheusRule")
  .flatMap((d) => d.spec?.groups ?? []);
if (!groups.length) {
  console.error(`extract-rules: no PrometheusRule groups in ${input}`);
  process.exit(1);
}
writeFileSync(output, yaml.dump({ groups }, { lineWidth: -1 }));
console.log(`extract-rules: ${groups.length} group(s), ${groups.reduce((n, g) => n + g.rules.length, 0)} rule(s) -> ${output}`);
