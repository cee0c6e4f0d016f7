import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { hydrated, screenshot, signIn, uniqueEmail } from "./support";

/** Creates the first key in the dialog and returns it (an all-permissions key). */
async function firstKey(page: Page, name: string): Promise<string> {
  await page.getByRole("button", { name: "Create API Key" }).click();
  await page.getByLabel("Name").fill(name);
  await page.getByRole("button", { name: "Create key" }).click();
  const modal = page.getByRole("dialog", { name: "Save your API key" });
  const key = await modal.getByRole("textbox", { name: "API key" }).inputValue();
  await modal.getByRole("button", { name: "Done" }).click();
  await page.getByRole("button", { name: "Close without copying" }).click();
  await expect(page.getByRole("dialog")).toHaveCount(0);
  return key;
}

/** Creates a key through the API with `admin`; returns its id. */
async function apiKey(request: APIRequestContext, admin: string, name: string, expiresInSeconds?: number): Promise<number> {
  const data: Record<string, unknown> = { name };
  if (expiresInSeconds !== undefined) data.expires_at = Math.floor(Date.now() / 1000) + expiresInSeconds;
  const res = await request.post("/v1/keys", { headers: { Authorization: `Bearer ${admin}` }, data });
  expect(res.status(), await res.text()).toBe(201);
  return (await res.json()).id;
}

const rows = (page: Page) => page.getByRole("table").locator("tbody tr");
const tab = (page: Page, label: string, count: number) => page.getByRole("button", { name: new RegExp(`^${label}\\s*${count}$`) });

test("tabs count keys by state, the search filters by name, expiries are worded", async ({ page, request }) => {
  await signIn(page, uniqueEmail("filters"), "Filter User");
  const admin = await firstKey(page, "Admin key");
  await apiKey(request, admin, "alpha ci");
  await apiKey(request, admin, "beta CI");
  const gamma = await apiKey(request, admin, "gamma");
  await apiKey(request, admin, "soon", 3 * 86_400);
  await apiKey(request, admin, "hours", 5 * 3_600);
  await apiKey(request, admin, "blink", 2);
  expect((await request.delete(`/v1/keys/${gamma}`, { headers: { Authorization: `Bearer ${admin}` } })).status()).toBe(200);
  await page.waitForTimeout(2_500); // "blink" expires

  await page.reload();
  await hydrated(page);
  await expect(tab(page, "All", 7)).toHaveAttribute("aria-pressed", "true");
  await expect(tab(page, "Active", 5)).toBeVisible();
  await expect(tab(page, "Expired", 1)).toBeVisible();
  await expect(tab(page, "Revoked", 1)).toBeVisible();
  await expect(rows(page)).toHaveCount(7);
  await expect(page.getByRole("navigation", { name: "Pages" })).toContainText("1–7 of 7");

  // How each expiry reads.
  await expect(page.getByRole("row", { name: /Admin key/ })).toContainText("Never expires");
  await expect(page.getByRole("row", { name: /soon/ })).toContainText(/Expires in [23] days/);
  await expect(page.getByRole("row", { name: /hours/ })).toContainText(/Expires in [45] h/);
  await expect(page.getByRole("row", { name: /blink/ })).toContainText("Expired");
  await expect(page.getByRole("row", { name: /gamma/ })).toContainText("Revoked");
  await screenshot(page, "key-list-all");

  // The tabs.
  await tab(page, "Active", 5).click();
  await expect(tab(page, "Active", 5)).toHaveAttribute("aria-pressed", "true");
  await expect(rows(page)).toHaveCount(5);
  await expect(page).toHaveURL(/status=active/);
  await tab(page, "Expired", 1).click();
  await expect(rows(page)).toHaveCount(1);
  await expect(rows(page)).toContainText("blink");
  await tab(page, "Revoked", 1).click();
  await expect(rows(page)).toHaveCount(1);
  await expect(rows(page)).toContainText("gamma");
  await expect(page).toHaveURL(/status=revoked/);

  // The search (any case), with and without a tab.
  await tab(page, "All", 7).click();
  const search = page.getByRole("searchbox", { name: "Search keys" });
  await search.fill("ci");
  await expect(rows(page)).toHaveCount(2);
  await expect(page).toHaveURL(/q=ci/);
  await expect(page.getByRole("table")).toContainText("alpha ci");
  await expect(page.getByRole("table")).toContainText("beta CI");
  await screenshot(page, "key-list-search");
  await tab(page, "Revoked", 1).click();
  await expect(page.getByText("No revoked keys match “ci”.")).toBeVisible();

  // The query survives a reload (it is in the URL).
  await page.reload();
  await hydrated(page);
  await expect(search).toHaveValue("ci");
  await expect(tab(page, "Revoked", 1)).toHaveAttribute("aria-pressed", "true");
  await page.getByRole("button", { name: "Show all keys" }).click();
  await expect(rows(page)).toHaveCount(7);
  await expect(search).toHaveValue("");

  // Enter searches at once.
  await search.fill("gam");
  await search.press("Enter");
  await expect(rows(page)).toHaveCount(1);
  await expect(rows(page)).toContainText("gamma");
});

test("more than 50 keys are paged: Previous and Next", async ({ page, request }) => {
  test.setTimeout(90_000);
  await signIn(page, uniqueEmail("pages"), "Many Keys");
  const admin = await firstKey(page, "Admin key");
  for (let i = 1; i <= 54; i++) {
    await apiKey(request, admin, `bulk ${String(i).padStart(2, "0")}`);
  }
  await page.reload();
  await hydrated(page);
  const pages = page.getByRole("navigation", { name: "Pages" });
  await expect(pages).toContainText("1–50 of 55");
  await expect(rows(page)).toHaveCount(50);
  await expect(pages.getByRole("button", { name: "Previous" })).toBeDisabled();
  // Newest first: the last created key leads the first page.
  await expect(rows(page).first()).toContainText("bulk 54");

  await pages.getByRole("button", { name: "Next" }).click();
  await expect(pages).toContainText("51–55 of 55");
  await expect(rows(page)).toHaveCount(5);
  await expect(page).toHaveURL(/page=2/);
  await expect(rows(page).last()).toContainText("Admin key");
  await expect(pages.getByRole("button", { name: "Next" })).toBeDisabled();
  await screenshot(page, "key-list-page-2");

  await pages.getByRole("button", { name: "Previous" }).click();
  await expect(pages).toContainText("1–50 of 55");
  await expect(page).not.toHaveURL(/page=/);
});
