import { expect, test } from "@playwright/test";
import { hydrated, screenshot } from "./support";

test("the login page renders on the server and hydrates", async ({ page }) => {
  const problems: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(msg.text());
  });
  page.on("pageerror", (err) => problems.push(err.message));

  const response = await page.goto("/login");
  expect(response?.status()).toBe(200);
  await expect(page.getByRole("heading", { name: "Sign in to Workjet" })).toBeVisible();
  // Hydration marks the document; a wasm that fails to load or instantiate never does
  // (a broken wasm-opt gives exactly that: a page that renders but never hydrates).
  await hydrated(page);
  await screenshot(page, "login-smoke");
  expect(problems, problems.join("\n")).toEqual([]);
});

test("after hydration, links navigate in the page without reloading it", async ({ page }) => {
  const response = await page.goto("/definitely/not/here");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  await hydrated(page);
  // A marker on the window survives client-side navigation, not a reload.
  await page.evaluate(() => ((window as unknown as { __marker: number }).__marker = 42));
  await page.getByRole("link", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole("heading", { name: "Sign in to Workjet" })).toBeVisible();
  expect(await page.evaluate(() => (window as unknown as { __marker?: number }).__marker)).toBe(42);
});
