import { expect, test } from "@playwright/test";
import { hydrated, signIn, uniqueEmail } from "./support";

// The release archive (scripts/package), unpacked into an empty directory and started there
// with no LEPTOS_* variable, no Cargo.toml, Leptos.toml or target/site around: everything the
// browser loads comes from the binary itself. scripts/test starts it and sets this URL.
const packaged = process.env.WJ_E2E_PACKAGED_URL;

test.describe("the release archive, started from an empty directory", () => {
  test.skip(!packaged, "WJ_E2E_PACKAGED_URL is not set (scripts/test packages, unpacks and starts the archive, then sets it)");
  test.use({ baseURL: packaged });

  test("the portal hydrates from the embedded site and signs in", async ({ page }) => {
    const problems: string[] = [];
    page.on("console", (msg) => {
      if (msg.type() === "error") problems.push(msg.text());
    });
    page.on("pageerror", (err) => problems.push(err.message));
    const bundle: string[] = [];
    page.on("response", (r) => {
      const path = new URL(r.url()).pathname;
      if (path.startsWith("/pkg/")) bundle.push(`${path} ${r.status()} ${r.headers()["content-type"]}`);
    });

    const response = await page.goto("/login");
    expect(response?.status()).toBe(200);
    await expect(page.getByRole("heading", { name: "Sign in to Workjet" })).toBeVisible();
    await hydrated(page);
    expect(bundle.some((line) => /\.wasm 200 application\/wasm$/.test(line)), bundle.join("\n")).toBe(true);
    expect(bundle.some((line) => /\.js 200 text\/javascript/.test(line)), bundle.join("\n")).toBe(true);
    expect(bundle.some((line) => /\.css 200 text\/css/.test(line)), bundle.join("\n")).toBe(true);

    // The built-in local sign-in, then Settings > API Keys, hydrated and usable.
    await signIn(page, uniqueEmail("packaged"), "Packaged Person");
    await expect(page.getByRole("heading", { name: "No API keys yet" })).toBeVisible();
    await page.getByRole("button", { name: "Create API Key" }).click();
    await expect(page.getByRole("dialog", { name: "Create API key" })).toBeVisible();
    expect(problems, problems.join("\n")).toEqual([]);
  });

  test("the bundle is served with its media type, a validator and the right caching", async ({ request }) => {
    const html = await (await request.get("/login")).text();
    const wasmPath = html.match(/\/pkg\/(?:[0-9a-f]{16}\/)?[\w.-]+\.wasm/)?.[0];
    expect(wasmPath, "the page names its wasm bundle").toBeTruthy();

    const wasm = await request.get(wasmPath!, { headers: { "accept-encoding": "br, gzip" } });
    expect(wasm.status()).toBe(200);
    const headers = wasm.headers();
    expect(headers["content-type"]).toBe("application/wasm");
    // cargo-leptos --precompress wrote .br variants, embedded with the rest.
    expect(headers["content-encoding"]).toBe("br");
    expect(headers["vary"]).toBe("accept-encoding");
    // The embedded bundle is linked from its content address (/pkg/<16 hex digits>/…, a hash
    // of every bundle file): a new build is a new path, so the browser may keep it for a year.
    expect(wasmPath!, "the packaged binary links its content-addressed bundle").toMatch(/^\/pkg\/[0-9a-f]{16}\//);
    expect(headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    // The stylesheet is linked from the same address; the plain name is still served, revalidated.
    const cssPath = html.match(/\/pkg\/[0-9a-f]{16}\/[\w.-]+\.css/)?.[0];
    expect(cssPath, "the page links its stylesheet from the bundle's address").toBeTruthy();
    const css = await request.get(cssPath!);
    expect(css.status()).toBe(200);
    expect(css.headers()["cache-control"]).toBe("public, max-age=31536000, immutable");
    const plain = await request.get(wasmPath!.replace(/\/[0-9a-f]{16}\//, "/"));
    expect(plain.status()).toBe(200);
    expect(plain.headers()["cache-control"]).toBe("no-cache");
    const otherBuild = await request.get(wasmPath!.replace(/\/[0-9a-f]{16}\//, "/0123456789abcdef/"));
    expect(otherBuild.status()).toBe(404);
    const etag = headers["etag"];
    expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
    const again = await request.get(wasmPath!, { headers: { "accept-encoding": "br, gzip", "if-none-match": etag } });
    expect(again.status()).toBe(304);

    const favicon = await request.get("/favicon.svg");
    expect(favicon.status()).toBe(200);
    expect(favicon.headers()["content-type"]).toBe("image/svg+xml");
    const robots = await request.get("/robots.txt");
    expect(robots.status()).toBe(200);
    expect(robots.headers()["content-type"]).toBe("text/plain; charset=utf-8");

    // Missing bundle files are plain 404s, and nothing outside the site is reachable.
    // (The client resolves `..` and `%2e%2e/` itself; the Rust tests send those raw.)
    for (const path of ["/pkg/missing.js", "/pkg/..%2f..%2fCargo.toml", "/pkg/.env.example"]) {
      const res = await request.get(path);
      expect(res.status(), path).toBe(404);
      expect(res.headers()["content-type"], path).toBe("text/plain; charset=utf-8");
    }
    expect((await request.get("/workjet")).status()).toBe(404);
    expect((await request.get("/.env.example")).status()).toBe(404);
  });
});
