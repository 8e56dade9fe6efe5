// Te Kudasai service worker: static assets from a versioned cache, an offline page for pages
// that cannot load. Pages and API answers always come from the network (personal data).
const CACHE = "tk-static-{{ version }}";
const OFFLINE_URL = {{ offline | tojson }};
const PRECACHE = {{ assets | tojson }};

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll([OFFLINE_URL, ...PRECACHE]);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith("tk-static-") && key !== CACHE) await caches.delete(key);
      }
      await self.clients.claim();
    })(),
  );
});

async function offlinePage() {
  return (await caches.match(OFFLINE_URL, { cacheName: CACHE })) ?? Response.error();
}

async function staticAsset(request) {
  const cached = await caches.match(request, { cacheName: CACHE });
  return cached ?? fetch(request); // an asset newer than this worker: from the network
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith(fetch(request).catch(offlinePage));
  } else if (url.pathname.startsWith("/static/")) {
    event.respondWith(staticAsset(request));
  }
});
