import assert from "node:assert/strict";
import { iperfClientArgs, readSysctl } from "./lib.ts";

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
