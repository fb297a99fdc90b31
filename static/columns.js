// The explorer's binary columns (GET /embedding/columns, app/explorer/columns.py), read as typed-array views on the
// response buffer with no parsing; the explorer and bench/explorer.py's Plotly page read them alike.
const TYPED = { i4: Int32Array, f4: Float32Array, u1: Uint8Array };

/** uint32 header length, JSON header, then each column at header offset (from the end of the header), little-endian. */
export function decodeColumns(buffer) {
  const view = new DataView(buffer);
  const size = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, size)));
  const start = 4 + size;
  const out = { n: header.n, splits: header.splits, class_names: header.class_names };
  for (const c of header.columns) out[c.name] = new TYPED[c.dtype](buffer, start + c.offset, c.length);
  return out;
}
