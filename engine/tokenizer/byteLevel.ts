// GPT-2's reversible byte <-> printable-character table, used by every byte-level BPE vocabulary
// (tokenizer.json stores tokens as these characters, e.g. 'Ġ' for the space byte 0x20).

/** BYTE_TO_CHAR[b] is the character that stands for byte b in a byte-level vocabulary. */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** Inverse of BYTE_TO_CHAR: char code -> byte, -1 where the character is not part of the alphabet. */
export const CHAR_TO_BYTE: Int16Array = buildCharToByte();

function buildByteToChar(): string[] {
  const out: string[] = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return out;
}

function buildCharToByte(): Int16Array {
  const table = new Int16Array(512).fill(-1);
  BYTE_TO_CHAR.forEach((ch, b) => {
    table[ch.charCodeAt(0)] = b;
  });
  return table;
}

/** Bytes of a byte-level vocabulary string, or null when it contains a character outside the alphabet. */
export function byteLevelDecode(token: string): Uint8Array | null {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const code = token.charCodeAt(i);
    const b = code < 512 ? CHAR_TO_BYTE[code] : -1;
    if (b < 0) return null;
    out[i] = b;
  }
  return out;
}

/** Byte-level vocabulary string of some bytes. */
export function byteLevelEncode(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}
