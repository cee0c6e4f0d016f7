import { expect, test, type Page } from "@playwright/test";
import { screenshot, signIn, uniqueEmail } from "./support";

const KEY_FORMAT = /^wj_live_[0-9A-Za-z]{36}$/;

/** Closes the copy-once modal without copying (it asks first) and returns the key it showed. */
async function takeKey(page: Page, title: string): Promise<string> {
  const modal = page.getByRole("dialog", { name: title });
  await expect(modal).toBeVisible();
  const key = await modal.getByRole("textbox", { name: "API key" }).inputValue();
  expect(key).toMatch(KEY_FORMAT);
  await modal.getByRole("button", { name: "Done" }).click();
  await page.getByRole("button", { name: "Close without copying" }).click();
  await expect(page.getByRole("dialog")).toHaveCount(0);
  return key;
}

const hintOf = (key: string) => `wj_live_${key.slice(8, 12)}…${key.slice(-4)}`;

test("create a key with a model allow-list, a budget and an expiry, then edit it", async ({ page, request }) => {
  await signIn(page, uniqueEmail("guardrails"), "Guardrail User");
  await page.getByRole("button", { name: "Create API Key" }).click();
  const create = page.getByRole("dialog", { name: "Create API key" });
  await create.getByLabel("Name").fill("Budgeted");

  // Expiry choices show the date they land on.
  const expiry = create.getByLabel("Expiration");
  await expect(expiry.locator("option[value='30']")).toHaveText(/^30 days — [A-Z][a-z]{2} \d{1,2}, \d{4}$/);
  await expiry.selectOption("30");

  // Only one model, and a daily token budget.
  await create.getByRole("radio", { name: /Only selected models/ }).check();
  await create.getByRole("checkbox", { name: "claude-4-sonnet", exact: true }).check();
  await create.getByLabel(/Daily token budget/).fill("100,000");
  await screenshot(page, "create-dialog-guardrails");
  await create.getByRole("button", { name: "Create key" }).click();
  const key = await takeKey(page, "Save your API key");

  const row = page.getByRole("row", { name: /Budgeted/ });
  await expect(row).toContainText("claude-4-sonnet");
  await expect(row).toContainText("100k tokens");
  await expect(row).toContainText(/Expires [A-Z][a-z]{2} \d{1,2}, \d{4}/);
  await expect(row).toContainText("All");

  // The allow-list holds on /v1/models.
  const models = await request.get("/v1/models", { headers: { Authorization: `Bearer ${key}` } });
  expect(models.status()).toBe(200);
  expect((await models.json()).data.map((m: { id: string }) => m.id)).toEqual(["claude-4-sonnet"]);

  // Edit: rename and narrow the permissions to inference.
  await page.getByRole("button", { name: "Edit Budgeted" }).click();
  const edit = page.getByRole("dialog", { name: "Edit API key" });
  await expect(edit).toBeVisible();
  await expect(edit.getByLabel("Daily token budget", { exact: false })).toHaveValue("100000");
  await expect(edit.getByRole("checkbox", { name: "claude-4-sonnet", exact: true })).toBeChecked();
  await edit.getByLabel("Name").fill("Budgeted (inference only)");
  await edit.getByRole("radio", { name: /^Restricted/ }).check();
  await edit.getByRole("checkbox", { name: /keys:read/ }).uncheck();
  await edit.getByRole("checkbox", { name: /keys:write/ }).uncheck();
  await screenshot(page, "edit-dialog");
  await edit.getByRole("button", { name: "Save changes" }).click();
  await expect(edit).toBeHidden();
  const edited = page.getByRole("row", { name: /Budgeted \(inference only\)/ });
  await expect(edited).toContainText("inference");
  await expect(edited).not.toContainText("keys:read");

  // The permission really narrowed: the key may no longer list keys.
  const keys = await request.get("/v1/keys", { headers: { Authorization: `Bearer ${key}` } });
  expect(keys.status()).toBe(403);

  // Editing again offers only narrowing: no "All", no permission the key lacks, no later expiry.
  await page.getByRole("button", { name: "Edit Budgeted (inference only)" }).click();
  const again = page.getByRole("dialog", { name: "Edit API key" });
  await expect(again.getByRole("radio", { name: /^All Not available/ })).toBeDisabled();
  await expect(again.getByRole("checkbox", { name: /keys:read/ })).toBeDisabled();
  await expect(again.getByRole("checkbox", { name: /keys:write/ })).toBeDisabled();
  await expect(again.getByRole("checkbox", { name: /inference/ })).toBeEnabled();
  const choices = again.getByLabel("Expiration").locator("option");
  await expect(choices.first()).toHaveText(/^Keep current — /);
  await expect(again.getByLabel("Expiration").locator("option[value='90']")).toHaveCount(0);
  await expect(again.getByLabel("Expiration").locator("option[value='7']")).toHaveCount(1);
  // An earlier expiry is accepted.
  await again.getByLabel("Expiration").selectOption("7");
  await again.getByRole("button", { name: "Save changes" }).click();
  await expect(again).toBeHidden();
  await expect(edited).toContainText(/Expires in [67] days/);
});

test("roll a key: the copy-once modal shows the new key, the old one works through its grace", async ({ page, request }) => {
  await signIn(page, uniqueEmail("roller"), "Roller");
  await page.getByRole("button", { name: "Create API Key" }).click();
  await page.getByLabel("Name").fill("Deploy bot");
  await page.getByRole("button", { name: "Create key" }).click();
  const first = await takeKey(page, "Save your API key");

  await page.getByRole("button", { name: "Roll Deploy bot" }).click();
  const confirm = page.getByRole("dialog", { name: /Roll “Deploy bot”\?/ });
  await expect(confirm).toContainText("keeps working");
  await expect(confirm.getByRole("radio", { name: "24 hours" })).toBeChecked();
  await screenshot(page, "roll-dialog");
  await confirm.getByRole("button", { name: "Roll key" }).click();
  const second = await takeKey(page, "Save your rolled API key");
  expect(second).not.toBe(first);

  // The list: the old key expires in about a day and names the key that replaced it; only
  // the new key can be rolled.
  const oldRow = page.getByRole("row", { name: new RegExp(hintOf(first)) }).first();
  await expect(oldRow).toContainText(/Expires in 2[34] h — replaced by/);
  await expect(oldRow).toContainText(hintOf(second));
  await expect(page.getByRole("button", { name: "Roll Deploy bot" })).toHaveCount(1);
  await screenshot(page, "rolled-key-list");

  // Both keys work during the grace.
  for (const key of [first, second]) {
    const res = await request.get("/v1/models", { headers: { Authorization: `Bearer ${key}` } });
    expect(res.status()).toBe(200);
  }

  // Rolled "Immediately": the old key is refused at once.
  await page.getByRole("button", { name: "Roll Deploy bot" }).click();
  const now = page.getByRole("dialog", { name: /Roll “Deploy bot”\?/ });
  await now.getByText("Immediately").click();
  await expect(now.getByRole("radio", { name: "Immediately" })).toBeChecked();
  await expect(now).toContainText("stops working as soon as you roll it");
  await now.getByRole("button", { name: "Roll key" }).click();
  const third = await takeKey(page, "Save your rolled API key");

  const refused = await request.get("/v1/models", { headers: { Authorization: `Bearer ${second}` } });
  expect(refused.status()).toBe(401);
  expect((await request.get("/v1/models", { headers: { Authorization: `Bearer ${third}` } })).status()).toBe(200);
  expect((await request.get("/v1/models", { headers: { Authorization: `Bearer ${first}` } })).status()).toBe(200);
  await expect(page.getByRole("row", { name: new RegExp(hintOf(second)) }).first()).toContainText("Expired");
  // No raw key anywhere in the page.
  const content = await page.content();
  for (const key of [first, second, third]) expect(content).not.toContain(key);
});
