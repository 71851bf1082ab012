import assert from "node:assert/strict";
import { parseSettings } from "./main.ts";

Deno.test("parseSettings() takes --tcp-cc as a congestion control name, none by default", () => {
  assert.equal(parseSettings([]).tcpCc, undefined);
  assert.equal(parseSettings(["--tcp-cc", "cubic"]).tcpCc, "cubic");
  assert.throws(() => parseSettings(["--tcp-cc", "cubic; reboot"]), /--tcp-cc: expected/);
  assert.throws(() => parseSettings(["--tcp-cc", ""]), /--tcp-cc: expected/);
  // TCP_CA_NAME_MAX is 16 with the NUL.
  assert.equal(parseSettings(["--tcp-cc", "a".repeat(15)]).tcpCc, "a".repeat(15));
  assert.throws(() => parseSettings(["--tcp-cc", "a".repeat(16)]), /--tcp-cc: expected/);
});
