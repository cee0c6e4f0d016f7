import { expect, test } from "@playwright/test";
import { hydrated, screenshot, signIn, uniqueEmail } from "./support";

test("a key's page shows its settings, both usage charts and its events", async ({ page }) => {
  await signIn(page, uniqueEmail("detail"), "Detail Viewer");
  await page.getByRole("button", { name: "Create API Key" }).click();
  await page.getByRole("dialog", { name: "Create API key" }).getByLabel("Name").fill("Nightly evals");
  await page.getByRole("button", { name: "Create key" }).click();
  const key = await page.getByRole("dialog", { name: "Save your API key" }).getByRole("textbox", { name: "API key" }).inputValue();
  await page.getByRole("dialog", { name: "Save your API key" }).getByRole("button", { name: "Done" }).click();
  await page.getByRole("button", { name: "Close without copying" }).click();

  // Use it once, so that it has a last use.
  const me = await page.request.get("/v1/me", { headers: { Authorization: `Bearer ${key}`, "User-Agent": "curl/8.5.0" } });
  expect(me.status()).toBe(200);

  await page.getByRole("link", { name: "Nightly evals" }).click();
  await page.waitForURL(/\/settings\/api-keys\/\d+$/);
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "Nightly evals" })).toBeVisible();
  await expect(page.getByText(`wj_live_${key.slice(8, 12)}…${key.slice(-4)}`)).toBeVisible();
  await expect(page.getByText("Active", { exact: true })).toBeVisible();
  const settings = page.getByRole("region", { name: "Settings" });
  await expect(settings).toContainText("All models");
  await expect(settings).toContainText("Never");
  await expect(settings).toContainText("No daily limit");

  const charts = page.getByRole("img");
  await expect(charts).toHaveCount(2);
  await expect(charts.nth(0)).toHaveAttribute("aria-label", /per hour over the last 24 hours/);
  await expect(charts.nth(1)).toHaveAttribute("aria-label", /per day over the last 30 days/);
  await expect(charts.nth(0).locator("title")).toHaveCount(24);
  await expect(charts.nth(1).locator("title")).toHaveCount(30);

  await expect(page.getByRole("table", { name: /Changes to this key/ })).toContainText("Created API key");
  expect(await page.content()).not.toContain(key);
  await screenshot(page, "key-detail");
  await page.screenshot({ path: "test-results/key-detail.png", fullPage: true });

  await page.setViewportSize({ width: 390, height: 844 });
  await screenshot(page, "key-detail-phone");
});

test("another user's key id is not found", async ({ page, browser }) => {
  await signIn(page, uniqueEmail("keyowner"), "Key Owner");
  await page.getByRole("button", { name: "Create API Key" }).click();
  await page.getByRole("dialog", { name: "Create API key" }).getByLabel("Name").fill("Private key");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByRole("dialog", { name: "Save your API key" }).getByRole("button", { name: "Done" }).click();
  await page.getByRole("button", { name: "Close without copying" }).click();
  await page.getByRole("link", { name: "Private key" }).click();
  await page.waitForURL(/\/settings\/api-keys\/\d+$/);
  const url = page.url();

  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await signIn(otherPage, uniqueEmail("snoop"), "Snoop");
  const response = await otherPage.goto(url);
  expect(response?.status()).toBe(404);
  await expect(otherPage.getByRole("heading", { name: "That API key does not exist." })).toBeVisible();
  await expect(otherPage.getByText("Private key")).toHaveCount(0);
  await other.close();
});
