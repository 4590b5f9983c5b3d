// Debian's Chromium, headless, driven by playwright-core: one way to launch it for every browser test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { Requirement } from './requirements.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const chromiumRequirement: Requirement = { available: fs.existsSync(CHROMIUM), what: `Chromium (${CHROMIUM})`, debianPackages: 'chromium' };

export interface TestBrowser {
  context: BrowserContext;
  /** The profile directory (removed on close): a place for files the test hands to the browser. */
  userDataDir: string;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

/** A fresh headless Chromium with a throw-away profile. */
export async function launchChromium(options: { ignoreHTTPSErrors?: boolean; acceptDownloads?: boolean } = {}): Promise<TestBrowser> {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xmppd-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, ...options });
  return {
    context,
    userDataDir,
    close: async () => {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Opens the web chat at `url` and logs in with Converse's form (the domain is fixed: the user name is enough). */
export async function converseLogin(page: Page, url: string, username: string, password: string): Promise<void> {
  await page.goto(url);
  await page.fill('input[name=jid]', username);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
}

/** Once logged in: waits for `contact` in the roster (online, if asked), opens the chat with it and waits for its text area. */
export async function converseOpenChat(page: Page, contact: string, options: { online?: boolean } = {}): Promise<void> {
  const link = page.locator('a.open-chat', { hasText: contact });
  await link.waitFor({ timeout: 20_000 });
  if (options.online) await page.locator('li.current-xmpp-contact.online', { hasText: contact }).waitFor({ timeout: 10_000 });
  await link.click();
  await page.locator('textarea.chat-textarea').waitFor({ timeout: 10_000 });
}
