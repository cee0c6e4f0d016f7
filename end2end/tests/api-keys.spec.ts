import { expect, test } from "@playwright/test";
import { hydrated, screenshot, signIn, uniqueEmail } from "./support";

const KEY_FORMAT = /^wj_live_[0-9A-Za-z]{36}$/;

test("create a key, copy it once, use it, revoke it", async ({ page, context, request }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await signIn(page, uniqueEmail("keys"), "Key Owner");

  // Empty state first.
  await expect(page.getByRole("heading", { name: "No API keys yet" })).toBeVisible();
  await screenshot(page, "api-keys-empty");

  await page.getByRole("button", { name: "Create API Key" }).click();
  const create = page.getByRole("dialog", { name: "Create API key" });
  await expect(create).toBeVisible();
  await expect(create.getByLabel("Name")).toBeFocused();
  await create.getByLabel("Name").fill("CI/CD Pipeline");
  await screenshot(page, "create-dialog");
  await create.getByLabel("Name").press("Enter");

  const modal = page.getByRole("dialog", { name: "Save your API key" });
  await expect(modal).toBeVisible();
  await expect(modal).toContainText("will not be shown again");
  const key = await modal.getByRole("textbox", { name: "API key" }).inputValue();
  expect(key).toMatch(KEY_FORMAT);
  await screenshot(page, "copy-once-modal");

  await modal.getByRole("button", { name: "Copy" }).click();
  await expect(modal.getByRole("button", { name: "Copied" })).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(key);
  await modal.getByRole("button", { name: "Done" }).click();
  await expect(modal).toBeHidden();

  // The list shows the hint, and the key is nowhere in the page.
  const hint = `wj_live_${key.slice(8, 12)}…${key.slice(-4)}`;
  await expect(page.getByRole("cell", { name: hint })).toBeVisible();
  await screenshot(page, "api-keys-list");
  expect(await page.content()).not.toContain(key);
  await page.reload();
  await hydrated(page);
  await expect(page.getByRole("cell", { name: hint })).toBeVisible();
  expect(await page.content()).not.toContain(key);
  const source = await (await request.get("/settings/api-keys")).text();
  expect(source).not.toContain(key);

  // The key works on /v1.
  const me = await request.get("/v1/me", { headers: { Authorization: `Bearer ${key}` } });
  expect(me.status()).toBe(200);
  expect((await me.json()).auth_method).toBe("api_key");

  // Revoke: Cancel first changes nothing.
  await page.getByRole("button", { name: "Revoke CI/CD Pipeline" }).click();
  const confirm = page.getByRole("dialog", { name: /Revoke “CI\/CD Pipeline”\?/ });
  await expect(confirm).toContainText("fail immediately");
  await screenshot(page, "revoke-confirmation");
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await expect(confirm).toBeHidden();
  await expect(page.getByRole("table").getByText("Active", { exact: true }).filter({ visible: true })).toBeVisible();
  expect((await request.get("/v1/me", { headers: { Authorization: `Bearer ${key}` } })).status()).toBe(200);

  await page.getByRole("button", { name: "Revoke CI/CD Pipeline" }).click();
  await page.getByRole("dialog", { name: /Revoke/ }).getByRole("button", { name: "Revoke key" }).click();
  await expect(page.getByRole("table").getByText(/^Revoked /).filter({ visible: true })).toBeVisible();
  await expect(page.getByRole("button", { name: "Revoke CI/CD Pipeline" })).toHaveCount(0);
  const after = await request.get("/v1/me", { headers: { Authorization: `Bearer ${key}` } });
  expect(after.status()).toBe(401);
  expect((await after.json()).error.code).toBe("unauthorized");
});

test("closing the copy-once modal before copying asks for confirmation", async ({ page }) => {
  await signIn(page, uniqueEmail("careful"), "Careful Person");
  await page.getByRole("button", { name: "Create API Key" }).click();
  await page.getByLabel("Name").fill("Desktop App");
  await page.getByRole("button", { name: "Create key" }).click();
  const modal = page.getByRole("dialog", { name: "Save your API key" });
  await expect(modal).toBeVisible();

  await page.keyboard.press("Escape");
  const warning = page.getByRole("dialog", { name: "You won't see this key again" });
  await expect(warning).toBeVisible();
  await screenshot(page, "copy-once-confirm-close");
  await warning.getByRole("button", { name: "Go back to the key" }).click();
  await expect(modal).toBeVisible();

  await modal.getByRole("button", { name: "Done" }).click();
  await warning.getByRole("button", { name: "Close without copying" }).click();
  await expect(page.getByRole("dialog")).toHaveCount(0);
  await expect(page.getByRole("textbox", { name: "API key" })).toHaveCount(0);
});

test("invalid names show an inline error and create nothing", async ({ page }) => {
  await signIn(page, uniqueEmail("names"), "Name Tester");
  await page.getByRole("button", { name: "Create API Key" }).click();
  const dialog = page.getByRole("dialog", { name: "Create API key" });
  await dialog.getByRole("button", { name: "Create key" }).click();
  await expect(dialog.getByText("Enter a name for the key")).toBeVisible();
  await expect(dialog.getByLabel("Name")).toHaveAttribute("aria-invalid", "true");
  await dialog.getByLabel("Name").fill("x".repeat(101));
  await dialog.getByLabel("Name").press("Enter");
  await expect(dialog.getByText("101 characters long; use at most 100")).toBeVisible();
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await expect(page.getByRole("heading", { name: "No API keys yet" })).toBeVisible();
});

test("the create dialog keeps its place while the models load, so a click lands where it was aimed", async ({ page }) => {
  // Tall enough for the whole dialog, so that the button's place is a place on the screen.
  await page.setViewportSize({ width: 1280, height: 1000 });
  await signIn(page, uniqueEmail("steady"), "Steady Hand");
  // Hold the model list until the dialog has been measured.
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route("**/api/served_models*", async (route) => {
    await held;
    await route.continue();
  });
  await page.getByRole("button", { name: "Create API Key" }).click();
  const dialog = page.getByRole("dialog", { name: "Create API key" });
  const selected = dialog.getByRole("radio", { name: /Only selected models/ });
  await expect(selected).toBeDisabled();
  await expect(dialog).toContainText("Loading models…");
  await screenshot(page, "create-dialog-loading-models");
  const submit = dialog.getByRole("button", { name: "Create key" });
  const before = await submit.boundingBox();
  const dialogBefore = await dialog.boundingBox();

  release();
  await expect(selected).toBeEnabled();
  await expect(dialog).not.toContainText("Loading models…");
  expect(await submit.boundingBox()).toEqual(before);
  expect(await dialog.boundingBox()).toEqual(dialogBefore);

  // The click made at the place measured while loading creates the key.
  await dialog.getByLabel("Name").fill("Steady key");
  await page.mouse.click(before!.x + before!.width / 2, before!.y + before!.height / 2);
  await expect(page.getByRole("dialog", { name: "Save your API key" })).toBeVisible();
});

test("another user sees none of the first user's keys", async ({ page, browser }) => {
  await signIn(page, uniqueEmail("owner"), "Owner");
  await page.getByRole("button", { name: "Create API Key" }).click();
  await page.getByLabel("Name").fill("Owner's secret key");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByRole("dialog", { name: "Save your API key" }).getByRole("button", { name: "Done" }).click();
  await page.getByRole("button", { name: "Close without copying" }).click();
  await expect(page.getByText("Owner's secret key")).toBeVisible();

  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await signIn(otherPage, uniqueEmail("stranger"), "Stranger");
  await expect(otherPage.getByRole("heading", { name: "No API keys yet" })).toBeVisible();
  await expect(otherPage.getByText("Owner's secret key")).toHaveCount(0);
  await other.close();
});

test("the Use a key box lists the models, with a curl for the first one", async ({ page }) => {
  await signIn(page, uniqueEmail("models"), "Model User");
  const box = page.getByRole("region", { name: "Use a key" });
  await expect(box).toBeVisible();
  // The e2e server's providers come from ANTHROPIC_API_KEY alone.
  const models = box.getByRole("list", { name: "Models" });
  await expect(models.getByText("claude-4-sonnet", { exact: true })).toBeVisible();
  await expect(models).toContainText("more");
  const curl = box.locator("pre");
  await expect(curl).toContainText("/v1/chat/completions");
  await expect(curl).toContainText('Authorization: Bearer $WORKJET_API_KEY');
  // The curl asks for the first configured model: the seed's own.
  await expect(curl).toContainText('"model": "claude-4-sonnet"');
  await expect(box).not.toContainText("No model provider");
  await screenshot(page, "api-keys-use-a-key");
});

test("the page works at phone width", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await signIn(page, uniqueEmail("phone"), "Phone User");
  await page.getByRole("button", { name: "Create API Key" }).click();
  await page.getByLabel("Name").fill("Phone key");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByRole("dialog", { name: "Save your API key" }).getByRole("button", { name: "Done" }).click();
  await page.getByRole("button", { name: "Close without copying" }).click();
  await expect(page.getByRole("button", { name: "Revoke Phone key" })).toBeVisible();
  await screenshot(page, "api-keys-phone");
});
