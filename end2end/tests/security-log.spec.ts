import { expect, test, type Page } from "@playwright/test";
import { hydrated, screenshot, signIn, uniqueEmail } from "./support";

/** Creates a key through the portal and closes the copy-once modal without copying. */
async function createKey(page: Page, name: string) {
  await page.getByRole("button", { name: "Create API Key" }).click();
  await page.getByRole("dialog", { name: "Create API key" }).getByLabel("Name").fill(name);
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByRole("dialog", { name: "Save your API key" }).getByRole("button", { name: "Done" }).click();
  await page.getByRole("button", { name: "Close without copying" }).click();
  await expect(page.getByRole("dialog")).toHaveCount(0);
}

test("creating and revoking a key shows in the security log, newest first", async ({ page }) => {
  await signIn(page, uniqueEmail("log"), "Log Reader");
  await createKey(page, "Build server");
  await page.getByRole("button", { name: "Revoke Build server" }).click();
  await page.getByRole("dialog", { name: /Revoke/ }).getByRole("button", { name: "Revoke key" }).click();
  await expect(page.getByRole("table").getByText(/^Revoked /).filter({ visible: true })).toBeVisible();

  await page.getByRole("navigation", { name: "Settings" }).getByRole("link", { name: "Security log" }).click();
  await page.waitForURL("**/settings/security-log");
  await expect(page.getByRole("heading", { name: "Security log" })).toBeVisible();
  const rows = page.getByRole("table").getByRole("row");
  // Header, then revoke, create, sign-in.
  await expect(rows).toHaveCount(4);
  await expect(rows.nth(1)).toHaveAttribute("data-action", "api_key.revoke");
  await expect(rows.nth(1)).toContainText("Revoked API key “Build server”");
  await expect(rows.nth(2)).toHaveAttribute("data-action", "api_key.create");
  await expect(rows.nth(2)).toContainText("Created API key “Build server”");
  await expect(rows.nth(3)).toContainText("Signed in");
  await expect(rows.nth(3)).toContainText("just now");
  await expect(rows.nth(3)).toContainText("127.0.0.1");
  await expect(rows.nth(3)).toContainText("Chrome on Linux");
  await expect(page.getByText("3 events on this page")).toBeVisible();
  // One page only: both paging controls are there, and off.
  await expect(page.getByText("Newer", { exact: true })).toHaveAttribute("aria-disabled", "true");
  await expect(page.getByText("Older", { exact: true })).toHaveAttribute("aria-disabled", "true");
  await screenshot(page, "security-log");

  // Server-rendered the same after a reload.
  await page.reload();
  await hydrated(page);
  await expect(page.getByRole("table").getByRole("row")).toHaveCount(4);

  // A key's event links to its page.
  await rows.nth(2).getByRole("link").click();
  await page.waitForURL(/\/settings\/api-keys\/\d+$/);
  await expect(page.getByRole("heading", { name: "Build server" })).toBeVisible();
});

test("the log pages 50 events at a time with Newer and Older", async ({ page }) => {
  await signIn(page, uniqueEmail("pager"), "Pager");
  // 1 sign-in + 25 created + 25 revoked = 51 events: two pages. Through the API, with the
  // browser's session cookie.
  for (let i = 0; i < 25; i++) {
    const created = await page.request.post("/v1/keys", { data: { name: `Key ${i}` } });
    expect(created.status()).toBe(201);
    const id = (await created.json()).id;
    const revoked = await page.request.delete(`/v1/keys/${id}`);
    expect(revoked.status()).toBe(200);
  }
  await page.goto("/settings/security-log");
  await hydrated(page);
  const rows = page.getByRole("table").getByRole("row");
  await expect(rows).toHaveCount(51);
  await expect(page.getByText("Newer", { exact: true })).toHaveAttribute("aria-disabled", "true");
  await page.getByRole("link", { name: "Older" }).click();
  await page.waitForURL(/before=\d+/);
  await expect(rows).toHaveCount(2);
  await expect(rows.nth(1)).toContainText("Signed in");
  await expect(page.getByText("Older", { exact: true })).toHaveAttribute("aria-disabled", "true");
  await page.getByRole("link", { name: "Newer" }).click();
  await page.waitForURL("**/settings/security-log");
  await expect(rows).toHaveCount(51);
});

test("the log reads well at phone width", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await signIn(page, uniqueEmail("phone-log"), "Phone Log");
  await page.goto("/settings/security-log");
  await hydrated(page);
  await expect(page.getByRole("table").getByRole("row")).toHaveCount(2);
  await expect(page.getByRole("row").nth(1)).toContainText("Signed in");
  // The address and browser move under the event.
  await expect(page.getByRole("row").nth(1)).toContainText("127.0.0.1 · Chrome on Linux");
  await screenshot(page, "security-log-phone");
});
