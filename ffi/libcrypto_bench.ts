import { openSslAead } from "./libcrypto.ts";
import { NODE_CRYPTO_AEAD } from "../protocol/wireguard/aead.ts";

const key = crypto.getRandomValues(new Uint8Array(32));
const nonce = new Uint8Array(12);
const plain = crypto.getRandomValues(new Uint8Array(1424));
const out = new Uint8Array(1440);
const back = new Uint8Array(1424);

for (const provider of [NODE_CRYPTO_AEAD, openSslAead()]) {
  if (provider === null) continue;
  const k = provider.key(key);
  k.seal(nonce, plain, out);
  Deno.bench({
    name: `${provider.name} seal 1424 B`,
    group: "seal",
    fn: () => k.seal(nonce, plain, out),
  });
  Deno.bench({
    name: `${provider.name} open 1424 B`,
    group: "open",
    fn: () => void k.open(nonce, out, back),
  });
}
