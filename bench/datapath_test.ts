import assert from "node:assert/strict";
import {
  parseRcvbufErrors,
  parseSocketDrops,
  sumMemberPackets,
  sumStatusDrops,
} from "./datapath.ts";

const SNMP = `Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 1000
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors
Udp: 1212733 206 421163 1644676 421160 0 3
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors
UdpLite: 0 0 0 0 99 0 0
`;
const SNMP6 = `Udp6InDatagrams                 	52
Udp6RcvbufErrors                	17
Udp6SndbufErrors                	0
UdpLite6RcvbufErrors            	5
`;

Deno.test("parseRcvbufErrors() adds Udp RcvbufErrors and Udp6RcvbufErrors, nothing else", () => {
  assert.equal(parseRcvbufErrors(SNMP + SNMP6), 421_160 + 17);
  assert.equal(parseRcvbufErrors(SNMP), 421_160);
  assert.equal(parseRcvbufErrors(SNMP6), 17);
  assert.ok(Number.isNaN(parseRcvbufErrors("")));
  assert.ok(Number.isNaN(parseRcvbufErrors("Udp: InDatagrams\nUdp: 5\n")));
});

const SS = `State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess
UNCONN 0      0                  *:51830            *:*    users:(("deno",pid=4275,fd=23))
	 skmem:(r0,rb8388608,t0,tb8388608,f4096,w0,o0,bl0,d126)
UNCONN 0      0            0.0.0.0:5201       0.0.0.0:*    users:(("iperf3",pid=5000,fd=5))
	 skmem:(r0,rb4194304,t0,tb4194304,f0,w0,o0,bl0,d35000)
UNCONN 0      0                  *:51820            *:*    users:(("wireguard-go",pid=4300,fd=7),("wireguard-go",pid=4301,fd=7))
	 skmem:(r0,rb212992,t0,tb212992,f0,w0,o0,bl0,d7)
`;

Deno.test("parseSocketDrops() adds the drops of the sockets the given processes hold", () => {
  assert.equal(parseSocketDrops(SS, [4275]), 126);
  assert.equal(parseSocketDrops(SS, [4301]), 7);
  assert.equal(parseSocketDrops(SS, [4275, 4300]), 133);
  assert.equal(parseSocketDrops(SS, [1]), 0);
  assert.equal(parseSocketDrops("", [4275]), 0);
});

Deno.test("sumStatusDrops() adds the client's drops by reason; NaN for anything else", () => {
  const status = {
    version: 1,
    members: [{ name: "b", drops: { unreachable: 7 } }],
    drops: { "tun-no-route": 2, "udp-send-buffer-full": 40, unreachable: 7 },
  };
  assert.equal(sumStatusDrops(JSON.stringify(status)), 49);
  assert.equal(sumStatusDrops(JSON.stringify({ ...status, drops: {} })), 0);
  assert.ok(Number.isNaN(sumStatusDrops("meshub: no client is running")));
  assert.ok(Number.isNaN(sumStatusDrops(JSON.stringify({ version: 1 }))));
});

Deno.test("sumMemberPackets() adds the members' tx or rx packets; NaN for anything else", () => {
  const member = (tx: number, rx: number) => ({
    tx: { bytes: tx * 100, packets: tx },
    rx: { bytes: rx * 100, packets: rx },
  });
  const status = { version: 1, members: [member(5, 7), member(10, 1)], drops: {} };
  assert.equal(sumMemberPackets(JSON.stringify(status), "tx"), 15);
  assert.equal(sumMemberPackets(JSON.stringify(status), "rx"), 8);
  assert.equal(sumMemberPackets(JSON.stringify({ ...status, members: [] }), "tx"), 0);
  assert.ok(Number.isNaN(sumMemberPackets("meshub: no client is running", "tx")));
  assert.ok(Number.isNaN(sumMemberPackets(JSON.stringify({ version: 1 }), "rx")));
  assert.ok(Number.isNaN(sumMemberPackets(JSON.stringify({ members: [{ name: "b" }] }), "rx")));
});
