import { defineConfig } from "@playwright/test";
import * as os from "node:os";
import * as path from "node:path";

// The test command (scripts/test) builds the release binary and picks a free port; the
// server runs on a fresh SQLite database in a temporary directory.
const port = Number(process.env.WJ_E2E_PORT ?? 3107);
const root = path.resolve(__dirname, "..");
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(root, "target");
const binary = process.env.WJ_E2E_BINARY ?? path.join(targetDir, "release", "workjet");
const dataDir = process.env.WJ_E2E_DATA_DIR ?? path.join(os.tmpdir(), `workjet-e2e-${port}`);

export const chromiumArgs = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--no-first-run",
];

export default defineConfig({
  testDir: "./tests",
  outputDir: "./test-results",
  timeout: 45_000,
  expect: { timeout: 10_000 },
  fullyParallel: true,
  workers: 2,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.WJ_CHROMIUM ?? "/usr/bin/chromium",
      args: chromiumArgs,
    },
  },
  projects: [{ name: "chromium", use: { browserName: "chromium" } }],
  webServer: {
    command: `mkdir -p ${dataDir} && exec ${binary}`,
    cwd: root,
    url: `http://127.0.0.1:${port}/healthz`,
    timeout: 60_000,
    reuseExistingServer: false,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      WJ_LISTEN_ADDR: `127.0.0.1:${port}`,
      WJ_PUBLIC_URL: `http://127.0.0.1:${port}`,
      WJ_DATABASE_URL: `sqlite://${dataDir}/e2e.db?mode=rwc`,
      LEPTOS_SITE_ROOT: path.join(targetDir, "site"),
      // Providers from the environment, as a new user configures them (never called here).
      ANTHROPIC_API_KEY: "sk-ant-e2e-placeholder",
      ANTHROPIC_BASE_URL: "http://127.0.0.1:9",
      RUST_LOG: process.env.RUST_LOG ?? "warn",
      // The administrator of admin.spec.ts (no other spec signs in with this address).
      WJ_ADMIN_EMAILS: "e2e-admin@admin.example.org",
    },
  },
});
