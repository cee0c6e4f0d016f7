import { expect, test } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";

const artifacts = path.join(__dirname, "..", ".artifacts");

test("the login page renders, hydrates and its button responds", async ({ page }) => {
  const consoleErrors: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => consoleErrors.push(err.message));

  const response = await page.goto("/login");
  expect(response?.status()).toBe(200);
  await expect(page.getByRole("heading", { name: "Sign in to Workjet" })).toBeVisible();
  // Hydration marks the document; a wasm that fails to load or instantiate never does.
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");

  fs.mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, "login.png"), fullPage: true });

  // Hold the sign-in navigation so the hydrated click handler's effect can be seen.
  await page.route("**/auth/google**", () => {});
  const button = page.getByRole("button", { name: "Sign in with Google" });
  await button.click();
  await expect(page.getByRole("button", { name: "Redirecting to Google…" })).toBeVisible();
  expect(consoleErrors, consoleErrors.join("\n")).toEqual([]);
});

test("unknown pages show the 404 page", async ({ page }) => {
  const response = await page.goto("/definitely/not/here");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  await expect(page.getByRole("link", { name: "Back to the portal" })).toBeVisible();
});
