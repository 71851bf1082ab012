import assert from "node:assert/strict";
import { parseRcvbufErrors } from "./datapath.ts";

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
