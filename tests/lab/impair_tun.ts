/**
 * The lab's userspace delay (this kernel has no `netem`): owns a TUN device in the impaired
 * core router (see `impair.ts`), holds each packet the kernel routes into it for a random delay
 * (`DelayLine`: bounded in packets and bytes, drops counted) and writes it back, from where the
 * kernel forwards it on by the main routing table.
 *
 *   impair_tun.ts TUN DELAY_MS JITTER_MS MAX_PACKETS MAX_BYTES
 *
 * Prints `ready TUN` once the device exists, a `stats ...` line on SIGUSR1 and on SIGTERM, and
 * exits on SIGTERM/SIGINT. Needs root (`--allow-ffi`).
 *
 * @module
 */
import { openLinuxTun } from "../../ffi/tun_linux.ts";
import { DelayLine } from "./delay_line.ts";

const [name, delayText, jitterText, maxPacketsText, maxBytesText] = Deno.args;
if (name === undefined || maxBytesText === undefined) {
  console.error("usage: impair_tun.ts TUN DELAY_MS JITTER_MS MAX_PACKETS MAX_BYTES");
  Deno.exit(2);
}
const line = new DelayLine({
  delayMs: Number(delayText),
  jitterMs: Number(jitterText),
  maxPackets: Number(maxPacketsText),
  maxBytes: Number(maxBytesText),
});
const tun = openLinuxTun(name);
let writeFailures = 0;
let timer: ReturnType<typeof setTimeout> | undefined;
let timerAt = Infinity;
let stopping = false;

function stats(): string {
  const c = line.counters;
  return `stats queued=${c.queued} released=${c.released} dropped=${c.dropped} ` +
    `peak=${c.peakPackets} held=${line.packets} writeFailures=${writeFailures}`;
}

/** Arms the one timer for the earliest packet, unless it already fires early enough. */
function schedule(): void {
  const next = line.nextDueMs();
  if (next === undefined || stopping || (timer !== undefined && timerAt <= next)) return;
  clearTimeout(timer);
  timerAt = next;
  timer = setTimeout(release, Math.max(0, next - performance.now()));
}

function release(): void {
  timer = undefined;
  timerAt = Infinity;
  if (stopping) return;
  for (const packet of line.due(performance.now())) {
    if (!tun.write(packet)) writeFailures++;
  }
  schedule();
}

const stop = () => {
  if (stopping) return;
  stopping = true;
  clearTimeout(timer);
  console.log(stats());
  tun.close();
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGUSR1", () => console.log(stats()));
console.log(`ready ${tun.name}`);

const buf = new Uint8Array(65_536);
while (!stopping) {
  let n: number;
  try {
    while ((n = tun.tryRead(buf)) > 0) line.push(buf.subarray(0, n), performance.now());
  } catch (err) {
    if (stopping) break;
    throw err;
  }
  schedule();
  await tun.waitReadable();
}
Deno.exit(0);
