import { expect, test } from "@playwright/test";
import { hydrated, screenshot, signIn, uniqueEmail } from "./support";

/** The administrator: WJ_ADMIN_EMAILS in playwright.config.ts names this address only. */
const ADMIN = "e2e-admin@admin.example.org";

test("an administrator disables and enables a person and revokes their key by its hint", async ({ browser, baseURL }) => {
  // The person, in their own browser, with a key.
  const personContext = await browser.newContext();
  const person = await personContext.newPage();
  const email = uniqueEmail("managed");
  await signIn(person, email, "Managed Person");
  const created = await person.request.post("/v1/keys", { data: { name: "Laptop script" } });
  expect(created.status()).toBe(201);
  const { hint, key } = await created.json();
  const withKey = { headers: { Authorization: `Bearer ${key}` } };
  expect((await person.request.get(`${baseURL}/v1/me`, withKey)).status()).toBe(200);

  // A person who is not an administrator sees no Admin link, and the page refuses them.
  const settings = person.getByRole("navigation", { name: "Settings" });
  await expect(settings.getByRole("link", { name: "Security log" })).toBeVisible();
  await expect(settings.getByRole("link", { name: "Admin" })).toHaveCount(0);
  await person.goto("/admin");
  await hydrated(person);
  await expect(person.getByText("Only an administrator may do this.").first()).toBeVisible();

  // The administrator signs in and finds Admin in the navigation.
  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  await signIn(admin, ADMIN, "Ada Admin");
  await admin.getByRole("navigation", { name: "Settings" }).getByRole("link", { name: "Admin" }).click();
  await admin.waitForURL("**/admin");
  await expect(admin.getByRole("heading", { name: "Admin", exact: true })).toBeVisible();

  // Search the person, disable them.
  await admin.getByLabel("Search people").fill(email);
  await admin.getByRole("button", { name: "Search" }).click();
  const people = admin.getByRole("table", { name: "People, newest first" });
  await expect(people.getByRole("row")).toHaveCount(2);
  const row = people.locator(`tr[data-email="${email}"]`);
  await expect(row).toContainText("Managed Person");
  await expect(row).toContainText("Active");
  await row.getByRole("button", { name: `Disable ${email}` }).click();
  const dialog = admin.getByRole("dialog", { name: `Disable ${email}?` });
  await dialog.getByRole("button", { name: "Disable account" }).click();
  await expect(admin.getByRole("dialog")).toHaveCount(0);
  await expect(row).toContainText("Disabled");

  // They are signed out and their key is refused, at once.
  await person.goto("/settings/api-keys");
  await person.waitForURL("**/login**");
  expect((await person.request.get(`${baseURL}/v1/me`, withKey)).status()).toBe(401);

  // Enabled again: they can sign in (a new session), and their key works again.
  await row.getByRole("button", { name: `Enable ${email}` }).click();
  await expect(row).toContainText("Active");
  await signIn(person, email, "Managed Person");
  expect((await person.request.get(`${baseURL}/v1/me`, withKey)).status()).toBe(200);

  // Find the key by the hint the person's key list shows, and revoke it.
  await admin.getByLabel("Key id or hint").fill(hint);
  await admin.getByRole("button", { name: "Find key" }).click();
  const found = admin.getByRole("list", { name: "Keys found" });
  await expect(found).toContainText("Laptop script");
  await expect(found).toContainText(email);
  await found.getByRole("button", { name: "Revoke Laptop script" }).click();
  await admin.getByRole("dialog", { name: /Revoke/ }).getByRole("button", { name: "Revoke key" }).click();
  await expect(admin.getByRole("dialog")).toHaveCount(0);
  await expect(found).toContainText("Revoked");
  expect((await person.request.get(`${baseURL}/v1/me`, withKey)).status()).toBe(401);

  // Everyone's log says what the administrator did, and whose it was. (Other specs run
  // alongside and add their own events, so rows are found by what they say, not by place.)
  const log = admin.getByRole("table", { name: "Everyone's security events, newest first" });
  const revokedRow = log.locator('tr[data-action="admin.key_revoke"]').filter({ hasText: "Laptop script" });
  await expect(revokedRow).toContainText("API key “Laptop script” revoked by an administrator");
  await expect(revokedRow).toContainText(ADMIN);
  await expect(revokedRow).toContainText(`about ${email}`);
  // All of what was done to them, through the API (paged: other specs' events interleave).
  const mine: { action: string; actor_email: string }[] = [];
  let after = "";
  for (let page = 0; page < 20; page++) {
    const answer = await (await admin.request.get(`/v1/admin/audit-events?limit=100${after}`)).json();
    mine.push(...answer.data.filter((e: { subject_email: string | null }) => e.subject_email === email));
    if (!answer.has_more) break;
    after = `&after=${answer.last_id}`;
  }
  expect(mine.map((e: { action: string }) => e.action)).toEqual(["admin.key_revoke", "admin.user_enable", "admin.user_disable"]);
  expect(mine.every((e: { actor_email: string }) => e.actor_email === ADMIN)).toBe(true);
  // Anyone else: 403 on the same route.
  expect((await person.request.get("/v1/admin/audit-events")).status()).toBe(403);
  await screenshot(admin, "admin");

  // The person's own security log tells them.
  await person.goto("/settings/security-log");
  await hydrated(person);
  await expect(person.getByRole("table").getByText("API key “Laptop script” revoked by an administrator")).toBeVisible();
  await expect(person.getByRole("table").getByText(`Account ${email} disabled by an administrator`)).toBeVisible();

  await personContext.close();
  await adminContext.close();
});
