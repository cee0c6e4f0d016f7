import { expect, test } from "@playwright/test";
import { hydrated, screenshot, signIn, uniqueEmail } from "./support";

test("signing in through the built-in provider lands on Settings > API Keys, signing out returns to /login", async ({ page, context }) => {
  const email = uniqueEmail("ada");
  await page.goto("/login");
  await hydrated(page);
  await screenshot(page, "login");
  await page.getByRole("button", { name: "Sign in with Google" }).click();
  await expect(page).toHaveURL(/\/_dev\/idp\/authorize/);
  await screenshot(page, "dev-identity-provider");
  // Mid-flow: only the sealed sign-in cookie, scoped to the callback; no session yet.
  const midFlow = await context.cookies();
  expect(midFlow.find((c) => c.name === "wj_session"), "no wj_session before sign-in succeeds").toBeFalsy();
  const signin = midFlow.find((c) => c.name === "wj_signin");
  expect(signin, "wj_signin carries the sign-in in progress").toBeTruthy();
  expect(signin!.httpOnly).toBe(true);
  expect(signin!.secure).toBe(true);
  expect(signin!.sameSite).toBe("Lax");
  expect(signin!.path).toBe("/auth/google/callback");
  expect(signin!.expires - Date.now() / 1000).toBeLessThanOrEqual(600);
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Name", { exact: true }).fill("Ada Lovelace");
  await page.getByRole("button", { name: "Continue" }).click();

  await expect(page).toHaveURL(/\/settings\/api-keys$/);
  await expect(page.getByRole("heading", { name: "API Keys", level: 1 })).toBeVisible();
  await expect(page.getByText(email)).toBeVisible();

  const cookie = (await context.cookies()).find((c) => c.name === "wj_session");
  expect(cookie, "wj_session is set").toBeTruthy();
  expect((await context.cookies()).find((c) => c.name === "wj_signin"), "the callback cleared wj_signin").toBeFalsy();
  expect(cookie!.httpOnly).toBe(true);
  expect(cookie!.secure).toBe(true);
  expect(cookie!.sameSite).toBe("Lax");
  expect(cookie!.path).toBe("/");
  const week = 7 * 24 * 3600;
  expect(cookie!.expires - Date.now() / 1000).toBeGreaterThan(week - 120);

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole("heading", { name: "Sign in to Workjet" })).toBeVisible();
  expect((await context.cookies()).find((c) => c.name === "wj_session")).toBeFalsy();

  // Signed out: the settings pages send you back to sign in.
  await page.goto("/settings/api-keys");
  await expect(page).toHaveURL(/\/login\?return_to=/);
});

test("cancelling at the provider shows a clear message and leaves no session cookie", async ({ page, context }) => {
  await page.goto("/login");
  await hydrated(page);
  await page.getByRole("button", { name: "Sign in with Google" }).click();
  await expect(page.getByRole("heading", { name: "Sign in to Workjet" })).toBeVisible();
  expect((await context.cookies()).find((c) => c.name === "wj_session"), "no wj_session mid-flow").toBeFalsy();
  await page.getByRole("button", { name: "Cancel" }).click();
  await expect(page).toHaveURL(/\/login\?error=access_denied/);
  await expect(page.getByRole("alert")).toContainText("Sign-in was cancelled");
  const after = await context.cookies();
  expect(after.find((c) => c.name === "wj_session"), "a cancelled sign-in leaves no wj_session").toBeFalsy();
  expect(after.find((c) => c.name === "wj_signin"), "the callback cleared wj_signin").toBeFalsy();
});

test("a sign-in whose cookie was tampered with fails and leaves no session cookie", async ({ page, context }) => {
  await page.goto("/login");
  await hydrated(page);
  await page.getByRole("button", { name: "Sign in with Google" }).click();
  await expect(page.getByRole("heading", { name: "Sign in to Workjet" })).toBeVisible();
  const signin = (await context.cookies()).find((c) => c.name === "wj_signin");
  expect(signin).toBeTruthy();
  const flipped = signin!.value.slice(0, 10) + (signin!.value[10] === "A" ? "B" : "A") + signin!.value.slice(11);
  await context.addCookies([{ ...signin!, value: flipped }]);
  await page.getByLabel("Email", { exact: true }).fill(uniqueEmail("mallory"));
  await page.getByRole("button", { name: "Continue" }).click();
  await expect(page).toHaveURL(/\/login\?error=state_mismatch/);
  await expect(page.getByRole("alert")).toContainText("Your sign-in attempt expired");
  const after = await context.cookies();
  expect(after.find((c) => c.name === "wj_session"), "a failed sign-in leaves no wj_session").toBeFalsy();
  expect(after.find((c) => c.name === "wj_signin"), "the callback cleared wj_signin").toBeFalsy();
});

test("the sessions page lists this browser and signs out everywhere", async ({ page, browser }) => {
  const email = uniqueEmail("grace");
  await signIn(page, email, "Grace Hopper");
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await signIn(otherPage, email, "Grace Hopper");

  await page.getByRole("link", { name: "Sessions" }).click();
  await expect(page).toHaveURL(/\/settings\/sessions$/);
  await expect(page.getByRole("row")).toHaveCount(3); // header + two browsers
  await expect(page.getByText("This browser")).toBeVisible();
  await screenshot(page, "sessions");

  await page.getByRole("button", { name: "Sign out everywhere" }).click();
  const dialog = page.getByRole("dialog", { name: "Sign out everywhere?" });
  await expect(dialog).toBeVisible();
  await dialog.getByRole("button", { name: "Sign out everywhere" }).click();
  await expect(page).toHaveURL(/\/login$/);

  await otherPage.goto("/settings/api-keys");
  await expect(otherPage).toHaveURL(/\/login\?return_to=/);
  await other.close();
});
