/**
 * The Debian packages behind the lab's tools, and installing the missing ones (the demo and the
 * benchmark do that on a fresh machine; tests only skip).
 *
 * @module
 */
import { missingTools } from "./netns.ts";

/** Tool → Debian package that provides it. */
export const LAB_PACKAGES: Readonly<Record<string, string>> = {
  ip: "iproute2",
  iptables: "iptables",
  ping: "iputils-ping",
  iperf3: "iperf3",
  tcpdump: "tcpdump",
  "wireguard-go": "wireguard-go",
  wg: "wireguard-tools",
};

/**
 * Installs the Debian packages of the `tools` that are missing, with apt-get (root only), telling
 * `say` what it does. Returns the tools still missing afterwards (empty when all are there).
 */
export async function installMissingTools(
  tools: readonly string[],
  say: (line: string) => void,
): Promise<string[]> {
  const missing = missingTools(tools);
  if (missing.length === 0) return [];
  const packages = [...new Set(missing.map((t) => LAB_PACKAGES[t] ?? t))];
  if (Deno.uid() !== 0 || missingTools(["apt-get"]).length > 0) return missing;
  say(`installing ${packages.join(" ")} with apt-get (once)...`);
  const run = async (args: string[]) => {
    const out = await new Deno.Command("apt-get", {
      args,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      say(`apt-get ${args[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    return out.success;
  };
  if (await run(["update", "-qq"])) await run(["install", "-y", "-qq", ...packages]);
  return missingTools(tools);
}

/**
 * Why a lab test cannot run here (not Linux, not root, or tools missing), or null when it can.
 * Tests pass `ignore: labSkipReason(...) !== null`; the reason is printed once per test file.
 */
export function labSkipReason(tools: readonly string[], what = "this test"): string | null {
  let reason: string | null = null;
  if (Deno.build.os !== "linux") reason = "needs Linux network namespaces";
  else if (Deno.uid() !== 0) reason = "needs root (network namespaces, TUN devices)";
  else {
    const missing = missingTools(tools);
    if (missing.length > 0) {
      const packages = [...new Set(missing.map((t) => LAB_PACKAGES[t] ?? t))];
      reason = `needs ${missing.join(", ")} (apt-get install ${packages.join(" ")})`;
    }
  }
  if (reason !== null) console.warn(`skipping ${what}: ${reason}`);
  return reason;
}
