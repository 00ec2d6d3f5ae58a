// What the browser scenarios share: the browser, one context per person,
// the checks run on every page (axe-core, screenshots at two widths, no
// script error, no CSP violation), and keyboard helpers.
//
// The scenarios are started by tests/tests/web_browser.rs, which passes
// everything through environment variables (see `env` below) and reads the
// JSON summary printed on the last line of stdout.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// A required environment variable.
export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`variable d'environnement ${name} manquante`);
  return value;
}

export const WIDE = { width: 1280, height: 900 };
export const NARROW = { width: 375, height: 812 };

// Fails the scenario now, with a message saying what the page lacked.
export function fail(message) {
  throw new Error(message);
}

export function assert(condition, message) {
  if (!condition) fail(message);
}

// Waits until `probe()` returns a truthy value (polled), else fails.
export async function waitUntil(probe, message, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) fail(`${message} (après ${timeout} ms ; dernier état : ${String(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export class Run {
  constructor(name) {
    this.name = name;
    this.base = env('AMI_BASE_URL').replace(/\/$/, '');
    this.shots = env('AMI_SCREENSHOT_DIR');
    fs.mkdirSync(this.shots, { recursive: true });
    this.counter = 0;
    this.started = Date.now();
    // Problems gathered over the whole run, reported together at the end:
    // axe violations, script errors, CSP violations, invisible focus.
    this.problems = [];
    // Things worth knowing that do not fail the run (minor axe findings,
    // what the pages do beyond the contract).
    this.notes = [];
    this.screenshots = [];
    this.pagesChecked = [];
    this.pages = new Set();
    this.summary = {};
  }

  log(message) {
    const s = ((Date.now() - this.started) / 1000).toFixed(1);
    console.log(`[${this.name} ${s.padStart(6)} s] ${message}`);
  }

  note(message) {
    this.log(`NOTE : ${message}`);
    this.notes.push(message);
  }

  problem(message) {
    this.log(`PROBLÈME : ${message}`);
    this.problems.push(message);
  }

  url(p) {
    return `${this.base}${p}`;
  }

  async launch() {
    this.browser = await chromium.launch({
      executablePath: env('AMI_CHROMIUM'),
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      timeout: 60_000,
    });
    this.log(`Chromium ${this.browser.version()}`);
  }

  // A browser context of one person (its own cookies). The pages keep
  // their real Content-Security-Policy: axe is injected through the
  // DevTools protocol (`page.evaluate`), which the CSP does not govern.
  async context(who, options = {}) {
    const context = await this.browser.newContext({
      viewport: WIDE,
      locale: 'fr-FR',
      timezoneId: 'Europe/Paris',
      ...options,
    });
    context.setDefaultTimeout(15_000);
    context.setDefaultNavigationTimeout(30_000);
    context.on('page', (page) => this.watch(page, who));
    context.who = who;
    context.javaScriptEnabled = options.javaScriptEnabled !== false;
    return context;
  }

  watch(page, who) {
    this.pages.add(page);
    page.on('close', () => this.pages.delete(page));
    page.on('pageerror', (error) => this.problem(`erreur de script (${who}, ${page.url()}) : ${error.message}`));
    page.on('response', (response) => {
      const type = response.request().resourceType();
      if (type !== 'document' && type !== 'fetch' && response.status() >= 400) {
        this.problem(`${response.url()} répond ${response.status()} (${type}, page ${page.url()})`);
      }
    });
    page.on('console', (message) => {
      const text = message.text();
      if (/Content Security Policy|Content-Security-Policy/i.test(text)) {
        this.problem(`violation de la CSP (${who}, ${page.url()}) : ${text}`);
      } else if (message.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) {
        this.note(`console (${who}, ${page.url()}) : ${text}`);
      }
    });
  }

  // Opens a path and waits for the page to be ready.
  async goto(page, p, expectedStatus = 200) {
    const response = await page.goto(this.url(p), { waitUntil: 'load' });
    if (expectedStatus !== null) {
      assert(response, `pas de réponse pour ${p}`);
      assert(
        response.status() === expectedStatus,
        `${p} : statut ${response.status()} au lieu de ${expectedStatus} (${page.url()})`,
      );
    }
    await this.ready(page);
    return response;
  }

  // After a load: the DSFR script has started (when scripts run).
  async ready(page) {
    await page.waitForLoadState('load');
    const js = page.context().javaScriptEnabled;
    if (js) {
      try {
        await page.waitForSelector('html[data-fr-js="true"]', { state: 'attached', timeout: 5_000 });
      } catch {
        this.note(`le script du DSFR n'a pas démarré sur ${page.url()} (html sans data-fr-js)`);
      }
    }
  }

  // Clicks (or runs `act`) and waits for the new document to load.
  async submit(page, act) {
    const loaded = page.waitForEvent('load', { timeout: 30_000 });
    await act();
    await loaded;
    await this.ready(page);
  }

  // The checks of every page: axe-core at both widths (serious and
  // critical violations are problems), a full-page screenshot at each.
  async check(page, name) {
    this.counter += 1;
    const nn = String(this.counter).padStart(2, '0');
    const where = `${nn}-${name}`;
    this.pagesChecked.push({ name: where, url: page.url().replace(this.base, '') });
    for (const [size, label] of [
      [WIDE, '1280'],
      [NARROW, '375'],
    ]) {
      await page.setViewportSize(size);
      // Let the layout settle (DSFR's responsive header, the tables).
      await page.waitForTimeout(150);
      await this.axe(page, `${where} à ${label} px`);
      const file = path.join(this.shots, `${where}-${label}.png`);
      await page.screenshot({ path: file, fullPage: true });
      this.screenshots.push(path.basename(file));
    }
    await page.setViewportSize(WIDE);
    this.log(`page vérifiée : ${where} (${page.url().replace(this.base, '')})`);
  }

  async axe(page, where) {
    let results;
    let replay = null;
    try {
      let target = page;
      if (page.context().javaScriptEnabled === false) {
        // Nothing can be evaluated in a page without JavaScript: the same
        // HTML is replayed at the same address in a context of its own,
        // where axe can run (the page's own scripts still blocked).
        replay = await this.replay(page);
        target = replay;
      }
      // The source as an expression of the DevTools protocol: neither an
      // inline script nor eval(), which the pages' CSP forbids.
      if (!(await target.evaluate(() => !!window.axe))) await target.evaluate(AXE_SOURCE);
      results = await target.evaluate(async () => {
        const r = await window.axe.run(document, { resultTypes: ['violations'] });
        return r.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          help: v.help,
          nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
        }));
      });
    } catch (e) {
      this.problem(`axe-core n'a pas pu tourner sur ${where} : ${e.message}`);
      return;
    } finally {
      if (replay) await replay.close();
    }
    for (const v of results) {
      const targets = v.nodes.map((n) => n.target).join(' | ');
      const text = `axe ${v.impact} « ${v.id} » (${v.help}) sur ${where} : ${targets}`;
      if (v.impact === 'serious' || v.impact === 'critical') {
        this.problem(`${text}\n      ${v.nodes.map((n) => `${n.target} : ${(n.summary || '').replace(/\n/g, ' ')}`).join('\n      ')}`);
      } else {
        this.note(text);
      }
    }
  }

  // A page without JavaScript, replayed for axe: its HTML as the browser
  // holds it, at its address, with the same viewport; its stylesheets and
  // images load from the service, its scripts do not run.
  async replay(page) {
    if (!this.replayContext) {
      this.replayContext = await this.browser.newContext({ locale: 'fr-FR', timezoneId: 'Europe/Paris' });
    }
    const html = await page.content();
    const url = page.url();
    // A request's URL has no fragment (a form's action may carry one).
    const address = url.split('#')[0];
    const copy = await this.replayContext.newPage();
    await copy.setViewportSize(page.viewportSize());
    await copy.route('**/*', (route) => {
      const request = route.request();
      if (request.url() === address && request.isNavigationRequest()) {
        return route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html });
      }
      if (request.resourceType() === 'script' || request.resourceType() === 'eventsource') return route.abort();
      return route.continue();
    });
    await copy.goto(url, { waitUntil: 'load' });
    return copy;
  }

  // axe-core must find what it is there to find: a page with an image
  // without text and a field without label.
  async axeSelfTest() {
    const context = await this.browser.newContext();
    const page = await context.newPage();
    await page.setContent('<html lang="fr"><head><title>Essai</title></head><body><main><h1>Essai</h1><img src="x.png"><input type="text"></main></body></html>');
    await page.evaluate(AXE_SOURCE);
    const ids = await page.evaluate(async () => (await window.axe.run(document)).violations.map((v) => v.id));
    await context.close();
    assert(ids.includes('image-alt') && ids.includes('label'), `axe-core ne voit pas les fautes d'une page d'essai : ${ids}`);
  }

  // Screenshots of every open page, when the scenario fails.
  async failureShots() {
    let i = 0;
    for (const page of this.pages) {
      i += 1;
      try {
        const file = path.join(this.shots, `echec-${i}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 10_000 });
        this.log(`capture de l'échec : ${file} (${page.url()})`);
        const html = await page.content();
        fs.writeFileSync(path.join(this.shots, `echec-${i}.html`), html);
      } catch {
        // The page may be gone.
      }
    }
  }

  // Runs the scenario; prints the summary as the last line of stdout and
  // exits non-zero on an exception or any problem gathered.
  async main(scenario) {
    const timer = setTimeout(() => {
      console.error(`${this.name} : plus de 4 min 30 s, abandon`);
      process.exit(3);
    }, 270_000);
    let error = null;
    try {
      await this.launch();
      await this.axeSelfTest();
      await scenario(this);
    } catch (e) {
      error = e;
      console.error(`ÉCHEC de ${this.name} : ${e.stack || e}`);
      await this.failureShots();
    } finally {
      if (this.browser) await this.browser.close().catch(() => {});
      clearTimeout(timer);
    }
    const summary = {
      scenario: this.name,
      ok: !error && this.problems.length === 0,
      error: error ? String(error.message || error) : null,
      seconds: (Date.now() - this.started) / 1000,
      problems: this.problems,
      notes: this.notes,
      pages: this.pagesChecked,
      screenshots: this.screenshots,
      ...this.summary,
    };
    if (this.problems.length > 0) {
      console.error(`${this.problems.length} problème(s) :\n- ${this.problems.join('\n- ')}`);
    }
    console.log(JSON.stringify(summary));
    process.exit(summary.ok ? 0 : 1);
  }

  // --- Signing in, and the API for what happens outside the browser -------

  // Signs in with the form; lands on « À traiter ».
  async signIn(context, token) {
    const page = await context.newPage();
    await this.goto(page, '/connexion');
    await page.fill('#jeton', token);
    await this.submit(page, () => page.getByRole('button', { name: 'Se connecter' }).click());
    assert(
      new URL(page.url()).pathname === '/a-traiter',
      `après « Se connecter » : ${page.url()} au lieu de /a-traiter`,
    );
    return page;
  }

  async api(token, method, p, body, headers = {}) {
    const res = await fetch(this.url(`/api/v1${p}`), {
      method,
      headers: { authorization: `Bearer ${token}`, ...headers },
      body,
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // Not JSON.
    }
    return { status: res.status, json, text };
  }

  async dossier(token, id) {
    const r = await this.api(token, 'GET', `/dossiers/${id}`);
    assert(r.status === 200, `API GET /dossiers/${id} : ${r.status} ${r.text}`);
    return r.json;
  }
}

// --- The dossier page -------------------------------------------------------

// An element's text as written (`textContent`: the DSFR badges are
// upper-cased by CSS), spaces collapsed.
export async function textOf(locator) {
  if ((await locator.count()) === 0) return '';
  return ((await locator.first().textContent()) || '').replace(/\s+/g, ' ').trim();
}

export async function stateOf(page) {
  return textOf(page.locator('#etat-dossier'));
}

export async function expectState(page, label, what) {
  const state = await stateOf(page);
  assert(state === label, `${what} : #etat-dossier dit « ${state} » au lieu de « ${label} » (${page.url()})`);
}

// The dossier id of a page `/dossiers/{uuid}`.
export function dossierIdOf(url) {
  const m = new URL(url).pathname.match(/^\/dossiers\/([0-9a-f-]{36})$/);
  return m ? m[1] : null;
}

// Chooses a verdict by clicking its label (the DSFR radios are drawn by
// their label), and checks that the radio is checked.
export async function chooseVerdict(page, action, verdict) {
  const id = `${action}-verdict-${verdict}`;
  assert((await page.locator(`#${id}`).count()) === 1, `pas de bouton radio #${id} (${page.url()})`);
  await page.locator(`label[for="${id}"]`).click();
  assert(await page.locator(`#${id}`).isChecked(), `#${id} n'est pas coché après un clic sur son libellé`);
}

// The submit button of an action's form.
export function actionButton(page, action) {
  return page.locator(`#action-${action} button[type="submit"], #action-${action} input[type="submit"]`).first();
}

// --- Keyboard ---------------------------------------------------------------

// What has the focus, described.
export async function focused(page) {
  return page.evaluate(() => {
    const e = document.activeElement;
    if (!e || e === document.body || e === document.documentElement) return { tag: 'body', label: 'body' };
    const style = getComputedStyle(e);
    const text = (e.innerText || e.value || e.getAttribute('aria-label') || '').trim().replace(/\s+/g, ' ').slice(0, 60);
    const form = e.closest('form');
    const d = {
      tag: e.tagName.toLowerCase(),
      id: e.id || '',
      type: (e.getAttribute('type') || '').toLowerCase(),
      name: e.getAttribute('name') || '',
      text,
      href: e.getAttribute('href') || '',
      form: form ? form.id || '' : '',
      checked: !!e.checked,
      focusVisible: e.matches(':focus-visible'),
      outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
      shadow: style.boxShadow !== 'none',
    };
    d.label = `${d.tag}${d.id ? '#' + d.id : ''}${d.text ? ` « ${d.text.slice(0, 30)} »` : ''}`;
    return d;
  });
}

// Presses Tab until `test(focused)` holds; fails after `max` presses with
// the path the focus took (an unreachable control, or a keyboard trap).
export async function tabTo(run, page, what, test, max = 150) {
  const path = [];
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    path.push(f.label);
    if (test(f)) {
      await checkFocusVisible(run, page, f);
      return f;
    }
    // The same element keeping the focus through many presses: a trap
    // (a date field's segments take three presses, hence the margin).
    if (path.length >= 8 && path.slice(-8).every((l) => l === f.label)) {
      fail(`clavier : le focus reste bloqué sur ${f.label} en cherchant ${what} (${page.url()})`);
    }
  }
  fail(`clavier : ${what} jamais atteint en ${max} tabulations (${page.url()}) ; parcours : ${path.join(' → ')}`);
}

// A focused control must show it: an outline or a shadow (WCAG 2.4.7).
// Radios and checkboxes are drawn by their label in the DSFR: skipped.
async function checkFocusVisible(run, page, f) {
  if (f.type === 'radio' || f.type === 'checkbox' || f.type === 'file') return;
  if (!(f.outline || f.shadow)) {
    run.problem(`clavier : le focus ne se voit pas sur ${f.label} (${page.url().replace(run.base, '')})`);
  }
}

export const isId = (id) => (f) => f.id === id;
export const isButton = (text, form) => (f) =>
  (f.tag === 'button' || (f.tag === 'input' && f.type === 'submit')) &&
  f.text === text &&
  (form === undefined || f.form === form);
export const isLink = (text) => (f) => f.tag === 'a' && f.text === text;
export const isSubmitOf = (formId) => (f) =>
  (f.tag === 'button' || (f.tag === 'input' && f.type === 'submit')) && f.form === formId && f.type !== 'button';

// Picks a verdict with the keyboard: Tab into the radio group of the
// action's form, arrows to the verdict, Space to tick it.
export async function keyboardVerdict(run, page, action, verdict) {
  const target = `${action}-verdict-${verdict}`;
  await tabTo(run, page, `les verdicts de #action-${action}`, (f) => f.type === 'radio' && f.form === `action-${action}`);
  for (let i = 0; i < 6; i += 1) {
    const f = await focused(page);
    if (f.id === target) break;
    await page.keyboard.press('ArrowDown');
  }
  const f = await focused(page);
  assert(f.id === target, `clavier : flèches sans atteindre #${target} (focus sur ${f.label})`);
  await page.keyboard.press('Space');
  assert(await page.locator(`#${target}`).isChecked(), `clavier : #${target} non coché après Espace`);
}
