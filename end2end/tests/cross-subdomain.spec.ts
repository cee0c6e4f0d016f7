// Signing in on portal.<domain> authenticates on api.<domain> and marketplace.<domain>: a
// Workjet of its own serving HTTPS with a self-signed certificate, the cookie on
// `.workjet.test`, and Chromium resolving *.workjet.test to 127.0.0.1.
import { chromium, expect, test } from "@playwright/test";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { chromiumArgs } from "../playwright.config";
import { startProvider, type Provider } from "./oidc-provider";
import { artifacts, hydrated } from "./support";

const root = path.resolve(__dirname, "..", "..");
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(root, "target");
const binary = process.env.WJ_E2E_BINARY ?? path.join(targetDir, "release", "workjet");

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForTcp(port: number, server: ChildProcess, log: () => string) {
  for (let i = 0; i < 300; i++) {
    if (server.exitCode !== null) throw new Error(`workjet exited: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.end();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`workjet did not start: ${log()}`);
}

test.describe("cross-subdomain sign-in over HTTPS", () => {
  let provider: Provider;
  let server: ChildProcess;
  let port: number;
  let dir: string;
  let output = "";
  const email = `lin-${Date.now()}@workjet.test`;

  test.beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "workjet-xsub-"));
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=workjet.test",
      "-addext", "subjectAltName=DNS:workjet.test,DNS:*.workjet.test",
      "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"),
    ], { stdio: "ignore" });
    provider = await startProvider({ sub: "e2e-lin", email, name: "Lin Cross" });
    port = await freePort();
    server = spawn(binary, [], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? "",
        WJ_LISTEN_ADDR: `127.0.0.1:${port}`,
        WJ_PUBLIC_URL: `https://portal.workjet.test:${port}`,
        WJ_COOKIE_DOMAIN: ".workjet.test",
        WJ_ALLOWED_ORIGINS: `https://marketplace.workjet.test:${port}`,
        WJ_TLS_CERT: path.join(dir, "cert.pem"),
        WJ_TLS_KEY: path.join(dir, "key.pem"),
        WJ_OIDC_ISSUER: provider.issuer,
        WJ_GOOGLE_CLIENT_ID: provider.clientId,
        WJ_GOOGLE_CLIENT_SECRET: provider.clientSecret,
        WJ_DATABASE_URL: `sqlite://${dir}/xsub.db?mode=rwc`,
        LEPTOS_SITE_ROOT: path.join(targetDir, "site"),
        RUST_LOG: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    server.stdout!.on("data", (d) => (output += d));
    server.stderr!.on("data", (d) => (output += d));
    await waitForTcp(port, server, () => output);
  });

  test.afterAll(async () => {
    server?.kill("SIGTERM");
    await provider?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("signing in on portal.workjet.test authenticates api. and marketplace.workjet.test", async () => {
    const browser = await chromium.launch({
      executablePath: process.env.WJ_CHROMIUM ?? "/usr/bin/chromium",
      args: [
        ...chromiumArgs,
        "--host-resolver-rules=MAP *.workjet.test 127.0.0.1",
        "--ignore-certificate-errors",
        // The marketplace page below is made up by the test (no network address of its own), so
        // Chromium would treat its calls to 127.0.0.1 as public-to-local requests and block them.
        "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults",
      ],
    });
    try {
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      const portal = `https://portal.workjet.test:${port}`;
      const api = `https://api.workjet.test:${port}`;
      const marketplace = `https://marketplace.workjet.test:${port}`;

      // Not signed in: the API says so on every subdomain.
      const anonymous = await page.goto(`${api}/v1/me`);
      expect(anonymous!.status()).toBe(401);

      await page.goto(`${portal}/login`);
      await hydrated(page);
      await page.getByRole("button", { name: "Sign in with Google" }).click();
      await page.waitForURL(`${portal}/settings/api-keys`);
      await expect(page.getByText(email)).toBeVisible();
      expect(provider.refusals, "the provider accepted the client secret and the PKCE verifier").toEqual([]);
      fs.mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: path.join(artifacts, "cross-subdomain-portal.png"), fullPage: true });

      const cookie = (await context.cookies()).find((c) => c.name === "wj_session");
      expect(cookie, "wj_session is set").toBeTruthy();
      expect(cookie!.domain).toBe(".workjet.test");
      expect(cookie!.secure).toBe(true);
      expect(cookie!.httpOnly).toBe(true);
      expect(cookie!.sameSite).toBe("Lax");

      // The API subdomain, in the same browser: the signed-in user.
      const me = await page.goto(`${api}/v1/me`);
      expect(me!.status()).toBe(200);
      const body = JSON.parse(await page.locator("body").innerText());
      expect(body.user.email).toBe(email);
      expect(body.auth_method).toBe("session");

      // A page of the marketplace app (a sibling subdomain) calls the API with the cookie.
      await page.route(`${marketplace}/app`, (route) =>
        route.fulfill({ contentType: "text/html", body: "<!doctype html><title>Marketplace</title><h1>Marketplace</h1>" }),
      );
      await page.goto(`${marketplace}/app`);
      const fromMarketplace = await page.evaluate(async (url) => {
        const r = await fetch(url, { credentials: "include" });
        return { status: r.status, body: await r.json() };
      }, `${api}/v1/me`);
      expect(fromMarketplace.status).toBe(200);
      expect(fromMarketplace.body.user.email).toBe(email);

      // A state-changing call from the marketplace is allowed (listed origin) …
      const created = await page.evaluate(async (url) => {
        const r = await fetch(url, {
          method: "POST",
          credentials: "include",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name: "from the marketplace" }),
        });
        return r.status;
      }, `${api}/v1/keys`);
      expect(created).toBe(201);

      // … and one from a sibling that is not listed is refused, cookie or not.
      const rogue = `https://rogue.workjet.test:${port}`;
      await page.route(`${rogue}/app`, (route) => route.fulfill({ contentType: "text/html", body: "<!doctype html><title>Rogue</title>" }));
      await page.goto(`${rogue}/app`);
      const refused = await page.evaluate(async (url) => {
        try {
          const r = await fetch(url, {
            method: "POST",
            credentials: "include",
            headers: { "content-type": "text/plain" },
            body: JSON.stringify({ name: "csrf" }),
          });
          return r.status;
        } catch {
          return "blocked";
        }
      }, `${api}/v1/keys`);
      // Either the server's 403 or, since CORS refuses this origin, an opaque failure: never a 201.
      expect([403, "blocked"]).toContain(refused);

      await page.goto(`${portal}/settings/api-keys`);
      await expect(page.getByText("from the marketplace")).toBeVisible();
      await expect(page.getByText("csrf", { exact: true })).toHaveCount(0);
    } finally {
      await browser.close();
    }
  });
});
