/**
 * `deno bench --allow-ffi --allow-net --unstable-net ffi/udp_linux_bench.ts`: one iteration
 * sends 64 datagrams of 1400 bytes over loopback and receives them all, with Deno's datagram
 * API and with this module's batched socket (with and without GSO/GRO).
 *
 * @module
 */
import { linuxUdpAvailable, type LinuxUdpSocket, openLinuxUdpSocket } from "./udp_linux.ts";

const BATCH = 64;
const payload = crypto.getRandomValues(new Uint8Array(1400));

{
  const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const b = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to = {
    transport: "udp" as const,
    hostname: "127.0.0.1",
    port: (b.addr as Deno.NetAddr).port,
  };
  Deno.bench({
    name: "Deno.listenDatagram: 64 × 1400 B send + receive",
    group: "udp",
    baseline: true,
    async fn() {
      const sends = [];
      for (let i = 0; i < BATCH; i++) sends.push(a.send(payload, to));
      await Promise.all(sends);
      for (let i = 0; i < BATCH; i++) await b.receive();
    },
  });
}

async function ffiRound(
  a: LinuxUdpSocket,
  b: LinuxUdpSocket,
  to: { hostname: string; port: number },
) {
  for (let i = 0; i < BATCH; i++) a.send(payload, to);
  a.flush();
  let got = 0;
  const count = () => {
    got++;
  };
  // Bounded: loopback delivers everything that was sent; a lost datagram would end the loop
  // after a few hundred empty waits.
  for (let i = 0; got < BATCH && i < 1000; i++) {
    if (b.tryReceive(count) === 0) await b.waitReadable();
  }
}

if (linuxUdpAvailable()) {
  for (const offload of [false, true]) {
    const a = openLinuxUdpSocket({ port: 0, gso: offload, gro: offload });
    const b = openLinuxUdpSocket({ port: 0, gso: offload, gro: offload });
    const to = { hostname: "127.0.0.1", port: b.port };
    Deno.bench({
      name: `LinuxUdpSocket${offload ? " GSO+GRO" : ""}: 64 × 1400 B send + receive`,
      group: "udp",
      fn: () => ffiRound(a, b, to),
    });
  }
}
