import assert from "node:assert/strict";
import { idleCores, iperfClientArgs, machineCpu, readSysctl } from "./lib.ts";

Deno.test("iperfClientArgs() gives UDP runs the socket buffer, TCP runs their own windows", () => {
  const base = { address: "198.19.200.2", seconds: 5 };
  const udp = iperfClientArgs({ ...base, udp: true, bitsPerSecond: 1e9 }, 4194304);
  assert.deepEqual(udp.slice(udp.indexOf("-u")), [
    "-u",
    "-b",
    "1000000000",
    "-l",
    "1300",
    "-w",
    "4194304",
  ]);
  assert.equal(iperfClientArgs({ ...base, udp: true }, 0).includes("-w"), false);
  assert.equal(iperfClientArgs(base, 4194304).includes("-w"), false);
  assert.deepEqual(iperfClientArgs({ ...base, port: 5301 }, 0).slice(0, 5), [
    "iperf3",
    "-c",
    "198.19.200.2",
    "-p",
    "5301",
  ]);
});

Deno.test("iperfClientArgs() paces UDP in bursts only when asked", () => {
  const base = { address: "198.19.200.2", seconds: 5, udp: true, bitsPerSecond: 1.5e9 };
  const rate = (args: string[]) => args[args.indexOf("-b") + 1];
  assert.equal(rate(iperfClientArgs({ ...base, burst: 10 }, 0)), "1500000000/10");
  assert.equal(rate(iperfClientArgs(base, 0)), "1500000000");
});

Deno.test("iperfClientArgs() sets the congestion control of TCP runs only", () => {
  const base = { address: "198.19.200.2", seconds: 5, congestionControl: "cubic" };
  assert.deepEqual(iperfClientArgs(base, 0).slice(-2), ["-C", "cubic"]);
  assert.equal(iperfClientArgs({ ...base, udp: true }, 0).includes("-C"), false);
  assert.equal(iperfClientArgs({ ...base, congestionControl: undefined }, 0).includes("-C"), false);
});

Deno.test({
  name: "readSysctl() reads /proc/sys by dotted key; empty where it cannot, never throws",
  ignore: Deno.build.os !== "linux",
  fn() {
    // Deno lets only --allow-all read /proc/sys (the bench has it; `deno task test` does not).
    assert.ok(["Linux", ""].includes(readSysctl("kernel.ostype")));
    assert.equal(readSysctl("net.no_such_key"), "");
  },
});

Deno.test("machineCpu() and idleCores() give the idle cores between two /proc/stat readings", () => {
  const stat = (user: number, idle: number, iowait: number, steal: number) =>
    [
      `cpu  ${user} 0 100 ${idle} ${iowait} 0 50 ${steal} 7 0`,
      "cpu0 1 0 1 1 0 0 0 0 0 0",
      "cpu1 1 0 1 1 0 0 0 0 0 0",
      "intr 12345",
      "ctxt 999",
    ].join("\n");
  const before = machineCpu(stat(1000, 500, 20, 0));
  assert.deepEqual(before, { idle: 520, total: 1670, cpus: 2 });
  // 200 ticks pass on 2 CPUs: 100 busy (user), 50 idle, 10 I/O wait, 40 stolen.
  const after = machineCpu(stat(1100, 550, 30, 40));
  assert.equal(idleCores(before, after), 60 / 200 * 2);
  assert.ok(Number.isNaN(idleCores(before, before)));
  assert.ok(Number.isNaN(machineCpu("intr 1\n").idle));
  assert.ok(Number.isNaN(idleCores(machineCpu("garbage"), after)));
});
