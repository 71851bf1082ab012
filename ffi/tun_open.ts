/**
 * Opens the TUN device of the operating system meshub runs on.
 *
 * @module
 */

import type { TunDevice } from "./tun.ts";
import { type LinuxTunOptions, openLinuxTun } from "./tun_linux.ts";
import { openDarwinTun } from "./tun_darwin.ts";

/** Thrown when meshub has no TUN implementation for this OS. */
export class UnsupportedPlatformError extends Error {
  /** The value of `Deno.build.os`. */
  readonly os: string;

  /** @param os The value of `Deno.build.os`. */
  constructor(os: string) {
    super(`TUN devices are not supported on ${os}: meshub supports linux and darwin (macOS)`);
    this.name = "UnsupportedPlatformError";
    this.os = os;
  }
}

/**
 * Creates a TUN device on this OS: `/dev/net/tun` on Linux, a utun on macOS (where `name` is
 * honoured only in the form `utunN`; see `openDarwinTun`). `options.offload` asks Linux for
 * virtio headers and TSO/USO (see `openLinuxTun`); macOS has no such offloads and ignores it.
 *
 * @throws {UnsupportedPlatformError} on other systems; `OsError` when the kernel refuses.
 */
export function openTun(name: string, options: LinuxTunOptions = {}): TunDevice {
  switch (Deno.build.os) {
    case "linux":
      return openLinuxTun(name, options);
    case "darwin":
      return openDarwinTun(name);
    default:
      throw new UnsupportedPlatformError(Deno.build.os);
  }
}
