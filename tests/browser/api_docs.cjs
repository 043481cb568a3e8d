// Drives the gateway's API reference (/api/docs) in headless chromium, as a person would: pick each
// service in the dropdown, read the operations listed, then "Try it out" and "Execute" one of them.
// Usage: node api_docs.cjs BASE_URL SERVICE METHOD PATH; prints one JSON object on standard output.
// playwright-core comes from .tools/web (NODE_PATH), the browser from CHROMIUM (Debian's chromium);
// SCREENSHOT=file.png keeps a picture of the page after the call, for a person to look at.
"use strict";
const { chromium } = require("playwright-core");

const [base, tryService, tryMethod, tryPath] = process.argv.slice(2);
const STEP = 30000;

async function operations(page) {
  return page.$$eval(".opblock", (blocks) =>
    blocks.map((block) => {
      const method = block.querySelector(".opblock-summary-method").textContent.trim();
      const path = block.querySelector(".opblock-summary-path").getAttribute("data-path");
      return `${method} ${path}`;
    }),
  );
}

async function showService(page, name) {
  const url = `/api/v1/${name}/openapi.json`;
  if ((await page.locator("select#select").inputValue()) !== name) {
    await page.locator("select#select").selectOption({ label: name });
  }
  // The page shows the loaded document's URL under its title, and its operations below.
  await page.locator(".info .url", { hasText: url }).waitFor({ timeout: STEP });
  await page.locator(".opblock").first().waitFor({ timeout: STEP });
}

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, headless: true });
  const result = { services: {}, console_errors: [], page_errors: [] };
  try {
    const page = await browser.newPage();
    page.on("console", (message) => {
      if (message.type() === "error") result.console_errors.push(message.text());
    });
    page.on("pageerror", (error) => result.page_errors.push(String(error)));
    const response = await page.goto(`${base}/api/docs`);
    result.status = response.status();
    result.title = await page.title();
    await page.locator("select#select").waitFor({ timeout: STEP });
    result.dropdown = await page.$$eval("select#select option", (options) =>
      options.map((option) => option.textContent.trim()),
    );
    for (const name of result.dropdown) {
      await showService(page, name);
      result.services[name] = await operations(page);
    }

    await showService(page, tryService);
    const block = page
      .locator(`.opblock-${tryMethod.toLowerCase()}`)
      .filter({ has: page.locator(`.opblock-summary-path[data-path="${tryPath}"]`) });
    await block.locator(".opblock-summary").first().click();
    await block.getByRole("button", { name: "Try it out" }).click();
    await block.getByRole("button", { name: "Execute" }).click();
    const status = block.locator(".live-responses-table .response .response-col_status").first();
    await status.waitFor({ timeout: STEP });
    result.executed = { status: Number((await status.textContent()).trim()) };
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
