/**
 * Smoke test of the benchmark harness: `deno task bench --quick` as a subprocess (it needs
 * `--allow-all` to read /proc), within 3 minutes, leaving no namespace behind. Asserts that
 * every scenario produced figures, nothing about speed. Root only; skipped with a message
 * otherwise.
 *
 * @module
 */
import assert from "node:assert/strict";
import { listNamespaces } from "../tests/lab/netns.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const LIMIT_MS = 170_000;

const isRoot = Deno.build.os === "linux" && Deno.uid() === 0;
if (!isRoot) console.warn("skipping bench smoke test: needs root on Linux (network namespaces)");

Deno.test({
  name: "bench --quick: every scenario runs and cleans up",
  ignore: !isRoot,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // The bench's labs get their own prefix: other labs running meanwhile are not our leftovers.
    const prefix = "mhbq";
    const json = await Deno.makeTempFile({ prefix: "meshub-bench-", suffix: ".json" });
    try {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--allow-all", "--unstable-net", "--config", CONFIG, MAIN]
          .concat(["--quick", "--json", json]),
        env: { MESHUB_LAB_PREFIX: prefix },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // SIGTERM lets the bench clean its namespaces up (Lab handles the signal).
      const timer = setTimeout(() => child.kill("SIGTERM"), LIMIT_MS);
      const out = await child.output().finally(() => clearTimeout(timer));
      const dec = new TextDecoder();
      const text = dec.decode(out.stdout) + dec.decode(out.stderr);
      assert.ok(out.success, `bench --quick failed (code ${out.code}):\n${text.slice(-4000)}`);
      const r = JSON.parse(await Deno.readTextFile(json));
      assert.ok(r.machine?.cores > 0, "machine info");
      for (const s of r.datapath) {
        const raw = s.tunnels.find((t: { tunnel: string }) => t.tunnel === "raw");
        assert.ok(raw?.runs.length === 1, `${s.scenario}: raw measured`);
        const meshub = s.tunnels.find((t: { tunnel: string }) => t.tunnel === "meshub");
        assert.ok(!meshub?.skipped && meshub?.median.tcp4Mbps > 0, `${s.scenario}: meshub ran`);
        // Where the UDP loss at its maximum happened is counted (0 is a count too).
        const run = meshub.runs[0];
        const counted = [
          "udpAtMaxTunDropPercent",
          "udpAtMaxRcvbufPercent",
          "udpAtMaxBetweenEndsPercent",
        ];
        for (const k of counted) {
          assert.ok(run[k] >= 0, `${s.scenario}: meshub ${k} = ${run[k]}`);
        }
        // The at-max run is offered the maximum the table reports: the median full-load rate.
        assert.equal(run.udpAtMaxOfferedPps, meshub.median.udpPps, `${s.scenario}: offered`);
      }
      for (const f of r.formation) assert.equal(f.error, undefined, `formation: ${f.error}`);
      for (const h of r.hubScale) assert.ok(h.joined > 0 && !h.error, `hub scale: ${h.error}`);
      assert.ok(r.clientScale.edgesUp > 0 && !r.clientScale.error, "client scale");
      console.log(text.slice(text.indexOf("meshub bench")));
    } finally {
      await Deno.remove(json).catch(() => {});
      const left = await listNamespaces(prefix);
      assert.deepEqual(left, [], "namespaces left behind");
    }
  },
});
