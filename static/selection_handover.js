// An explorer's selection handed to the neighbourhood comparison page in the same tab (static/explore.js writes it,
// static/neighbourhoods.js reads it). Its indices can run to hundreds of thousands, too many for a URL: they wait in
// sessionStorage under one key, and the URL carries a token that says which selection the page was opened for.
const KEY = "embedlab.selection";

/** Keep `indices` of the embedding `from` (job:<id> or collection:<id>); the token to put in the comparison's URL. */
export function handOver(from, indices) {
  const token = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  try {
    sessionStorage.setItem(KEY, JSON.stringify({ token, from, indices: indices.join(",") }));
  } catch (err) {
    throw new Error(`A selection of ${indices.length.toLocaleString()} items is too large to hand over in this browser (${err.name}): select fewer.`);
  }
  return token;
}

/** The selection handed over with `token`: { from, indices }, or null when this tab holds no such selection. */
export function takeOver(token) {
  let kept = null;
  try {
    kept = JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
  if (!kept || kept.token !== token) return null;
  return { from: kept.from, indices: kept.indices ? kept.indices.split(",").map(Number) : [] };
}
