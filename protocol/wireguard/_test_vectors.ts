// Pinned known-answer handshake, shared by device_test.ts and tests/wireguard_interop_test.ts.
// Recorded from this implementation after the live interop test against wireguard-go passed;
// the interop test also feeds PINNED_INITIATION to wireguard-go and expects a response, so the
// bytes are confirmed by a third party. Keys and ephemerals come from `seededRandom("a"/"b")`.

/** Static private key of the initiator ("a"). */
export const PINNED_PRIVATE_A = "00a7fa794091e1af476ed47eb9906ba7780dbd16e5c52f6898dfce7cbc468574";
/** Static private key of the responder ("b"). */
export const PINNED_PRIVATE_B = "785c56794e1956c4ee806633b95354d89392be5c229529c6d219860ea391fd78";
/** Wall clock (Unix ms) of the initiator when it built the initiation. */
export const PINNED_WALL_MS = 1_700_000_000_123;
/** Initiation a → b (mac2 zero: no cookie). */
export const PINNED_INITIATION =
  "0100000057d2d8193c1220a8be60e7d2f8e4c4dbe49d6b2d67c6029a446a4efd" +
  "88cbf5446940f72adcc447e577113580ce9acc343d686b85e48446e2b745985c" +
  "0b73971b1891d707e44e21b1d05ccfa4cdaaaff6ebdca9ee4ee96f94e6969102" +
  "2fb705d59bafa9c47a697e1428c7c5bcd96c25614feeec67649af6b6b8907eb7" +
  "fc5b73b600000000000000000000000000000000";
/** b's response to it. */
export const PINNED_RESPONSE = "0200000074a3d01457d2d8198e7c60237bb5f5e432bfc91c84db4827a4bdbdd0" +
  "da1eb22c6d27c99103601d0074421787b9bcabf6d4ac616ae94474bd8dc75993" +
  "315c4aa9b8f1b4a947b2e81600000000000000000000000000000000";
