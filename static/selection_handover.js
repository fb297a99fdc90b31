// An explorer's selection handed to the neighbourhood comparison page (static/explore.js writes it,
// static/neighbourhoods.js reads it). Its indices can run to 2,000,000, far too many for a URL and past
// sessionStorage's quota (about 600,000 indices in Chromium): they wait in this browser's IndexedDB as one
// Int32Array, the last one handed over alone, and the URL carries the token that names it.
const DB = "embedlab", STORE = "handover", KEY = "selection";

function opened() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transact(mode, work) {
  const db = await opened();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Keep `indices` of the embedding `from` (job:<id> or collection:<id>); the token to put in the comparison's URL. */
export async function handOver(from, indices) {
  const token = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  try {
    await transact("readwrite", (store) => store.put({ token, from, indices: Int32Array.from(indices) }, KEY));
  } catch (err) {
    const name = err && err.name;
    throw new Error(name === "QuotaExceededError"
      ? `This browser has no room for a selection of ${indices.length.toLocaleString()} items: select fewer.`
      : `This browser would not keep the selection (${name || err}): its site storage may be turned off.`);
  }
  return token;
}

/** The selection handed over with `token`: { from, indices }, or null when this browser holds no such selection. */
export async function takeOver(token) {
  let kept = null;
  try {
    kept = await transact("readonly", (store) => store.get(KEY));
  } catch {
    return null;
  }
  if (!kept || kept.token !== token) return null;
  return { from: kept.from, indices: Array.from(kept.indices) };
}
