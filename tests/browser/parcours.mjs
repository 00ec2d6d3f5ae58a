// A dossier from deposit to lauréat through the web pages, by the four
// people of the review, each in their own browser context: sign-in and its
// error, the deposit form and its error, the pièces downloaded, an avis
// refused for want of a motivation (and kept), a page updated live while
// another person acts, two stale forms that write nothing, need to know
// (ACV sees no DAR action, a TI-only dossier is a 404), the printable
// receipt (its screenshot printed to A4 too), every page checked
// by axe-core and screenshot at 1280 and 375 px, and signing out.
//
// Environment: AMI_BASE_URL, AMI_CHROMIUM, AMI_SCREENSHOT_DIR,
// AMI_TOKEN_{DAR,BOSS,ACV,TI}, AMI_TI_ONLY_ID (a dossier of the TI
// programme only), AMI_EXAMPLES_DIR (docs/examples: the files to upload).

import fs from 'node:fs';
import path from 'node:path';
import {
  Run,
  env,
  assert,
  waitUntil,
  stateOf,
  textOf,
  expectState,
  dossierIdOf,
  chooseVerdict,
  actionButton,
  WIDE,
  NARROW,
} from './lib.mjs';

const TOKENS = {
  dar: env('AMI_TOKEN_DAR'),
  boss: env('AMI_TOKEN_BOSS'),
  acv: env('AMI_TOKEN_ACV'),
  ti: env('AMI_TOKEN_TI'),
};
const TI_ONLY = env('AMI_TI_ONLY_ID');
const EXAMPLES = env('AMI_EXAMPLES_DIR');
const PDF = path.join(EXAMPLES, 'candidature.pdf');
const XLSX = path.join(EXAMPLES, 'budget.xlsx');

const DEPOSIT = {
  commune: 'Château-Thierry',
  code_insee: '02168',
  porteur_nom: 'Ville de Château-Thierry',
  porteur_email: 'cnam@chateau-thierry.fr',
  recu_le: '2020-10-01',
  recu_a: '09:30',
};
const MOTIVATION_ACV = 'Le calendrier des travaux du centre-ville reste à préciser.';
const COMMENT_ACV = 'Vu en comité ACV le 12 octobre.';
const STALE_MOTIVATION = 'Refus écrit sur une page périmée.';

const LABELS = {
  recu: 'Reçu',
  instruit: 'Instruit par la DAR',
  avis_acv: 'Avis Action Cœur de Ville rendu',
  avis_ti: "Avis Territoires d'industrie rendu",
  laureat: 'Lauréat',
};
const STALE = 'Ce dossier a été modifié depuis votre lecture';
// The message web_browser.rs imports (tests/mail-corpus/01-candidature-nevers.eml).
const ARRIVAL_SUBJECT = 'Candidature AMI – Ville de Nevers';

const pathOf = (page) => new URL(page.url()).pathname;
const visible = (locator) => locator.filter({ visible: true }).first();
const navLink = (page, name) => visible(page.locator('header').getByRole('link', { name, exact: true }));

const text = textOf;

// The rows of a dossier table: référence (first cell's link), its href,
// the commune (second cell).
async function rows(page) {
  return page.locator('table tbody tr').evaluateAll((trs) =>
    trs.map((tr) => {
      const cells = tr.querySelectorAll('td, th');
      const link = cells[0] ? cells[0].querySelector('a') : null;
      return {
        reference: link ? link.textContent.trim() : (cells[0] ? cells[0].textContent.trim() : ''),
        href: link ? link.getAttribute('href') : null,
        commune: cells[1] ? cells[1].textContent.trim() : '',
      };
    }),
  );
}

async function fillDeposit(run, page, values) {
  for (const field of ['commune', 'code_insee', 'porteur_nom', 'porteur_email', 'recu_le', 'recu_a']) {
    assert((await page.locator(`#${field}`).count()) === 1, `nouveau dossier : pas de champ #${field}`);
    await page.fill(`#${field}`, values[field]);
  }
  for (const programme of ['acv', 'ti']) {
    const box = page.locator(`#programme-${programme}`);
    assert((await box.count()) === 1, `nouveau dossier : pas de case #programme-${programme}`);
    if (!(await box.isChecked())) await page.locator(`label[for="programme-${programme}"]`).click();
    assert(await box.isChecked(), `#programme-${programme} non cochée après un clic sur son libellé`);
  }
  await page.setInputFiles('#dossier_candidature', PDF);
  await page.setInputFiles('#budget_previsionnel', XLSX);
}

// A field refused by the server: its message beside it, non-empty, and
// tied to the field (aria-describedby) so that a screen reader reads it.
async function fieldError(page, field, what) {
  const message = await text(page.locator(`#${field}-erreur`));
  assert(message !== '', `${what} : #${field}-erreur absent ou vide`);
  const described = (await page.locator(`#${field}`).getAttribute('aria-describedby')) || '';
  assert(described.split(/\s+/).includes(`${field}-erreur`), `${what} : #${field} n'a pas aria-describedby="${field}-erreur" (« ${described} »)`);
  return message;
}

async function expectStale(run, page, what) {
  const body = await page.locator('body').innerText();
  assert(body.includes(STALE), `${what} : la page ne dit pas « ${STALE} » (${page.url()})`);
  assert((await page.locator('.fr-alert').count()) > 0, `${what} : l'avertissement n'est pas une alerte .fr-alert`);
}

async function download(run, page, href, expected, what) {
  const res = await page.request.get(run.url(href));
  assert(res.status() === 200, `${what} : ${href} répond ${res.status()}`);
  const body = await res.body();
  assert(Buffer.compare(body, expected) === 0, `${what} : ${href} ne rend pas le fichier déposé (${body.length} octets)`);
}

const run = new Run('parcours');
await run.main(async (run) => {
  const pdf = fs.readFileSync(PDF);
  const xlsx = fs.readFileSync(XLSX);

  // 1. Signed out: « / » leads to « Se connecter »; a wrong token is told.
  run.log('1. hors connexion');
  const anonymous = await run.context('anonyme');
  const anon = await anonymous.newPage();
  await run.goto(anon, '/');
  assert(pathOf(anon) === '/connexion', `« / » hors connexion mène à ${anon.url()} au lieu de /connexion`);
  await run.check(anon, 'connexion');
  await anon.fill('#jeton', 'ami_pas_un_vrai_jeton');
  await run.submit(anon, () => anon.getByRole('button', { name: 'Se connecter' }).click());
  assert((await anon.locator('.fr-alert--error').count()) > 0, 'jeton refusé : pas d\'alerte .fr-alert--error');
  await fieldError(anon, 'jeton', 'jeton refusé');
  run.summary.sign_in_error = await text(anon.locator('.fr-alert--error'));
  await run.check(anon, 'connexion-erreur');
  for (const p of ['/a-traiter', `/dossiers/${TI_ONLY}`]) {
    await run.goto(anon, p);
    assert(pathOf(anon) === '/connexion', `${p} hors connexion mène à ${anon.url()} au lieu de /connexion`);
  }
  await anonymous.close();

  // 2. The DAR agent signs in and lands on « À traiter ».
  run.log('2. connexion de l\'agent DAR');
  const darContext = await run.context('agent DAR');
  const dar = await run.signIn(darContext, TOKENS.dar);
  const queue = await rows(dar);
  assert(
    queue.some((r) => r.href === `/dossiers/${TI_ONLY}` && /^AMI2-V\d-\d{4}$/.test(r.reference)),
    `« À traiter » de l'agent DAR : pas de ligne menant au dossier TI ${TI_ONLY} (${JSON.stringify(queue)})`,
  );
  await run.check(dar, 'a-traiter-dar');

  // 3. « Nouveau dossier »: first with an empty commune (the server's own
  // check, as a browser without form validation reaches it), then for real.
  run.log('3. nouveau dossier');
  await run.submit(dar, () => navLink(dar, 'Nouveau dossier').click());
  assert(pathOf(dar) === '/dossiers/nouveau', `« Nouveau dossier » mène à ${dar.url()}`);
  await run.check(dar, 'nouveau-dossier');
  await fillDeposit(run, dar, { ...DEPOSIT, commune: '' });
  await dar.evaluate(() => {
    for (const form of document.forms) form.noValidate = true;
  });
  const deposit = visible(dar.getByRole('button', { name: 'Déposer le dossier', exact: true }));
  await run.submit(dar, () => deposit.click());
  assert((await dar.locator('.fr-alert--error').count()) > 0, 'dépôt sans commune : pas d\'alerte .fr-alert--error');
  run.summary.commune_error = await fieldError(dar, 'commune', 'dépôt sans commune');
  if ((await dar.locator('#porteur_nom').inputValue()) !== DEPOSIT.porteur_nom) {
    run.note('dépôt refusé : le nom du porteur saisi n\'est pas gardé');
  }
  await run.check(dar, 'nouveau-dossier-erreur');
  await fillDeposit(run, dar, DEPOSIT);
  await run.submit(dar, () => visible(dar.getByRole('button', { name: 'Déposer le dossier', exact: true })).click());
  const id = dossierIdOf(dar.url());
  assert(id, `après le dépôt : ${dar.url()} n'est pas une page /dossiers/{id} (${await text(dar.locator('.fr-alert'))})`);
  run.summary.dossier_id = id;
  assert((await text(dar.locator('h1'))).includes(DEPOSIT.commune), `le titre de la page du dossier ne nomme pas ${DEPOSIT.commune}`);
  await expectState(dar, LABELS.recu, 'après le dépôt');
  for (const [kind, content] of [
    ['dossier_candidature', pdf],
    ['budget_previsionnel', xlsx],
  ]) {
    const href = `/dossiers/${id}/pieces/${kind}`;
    assert((await dar.locator(`#pieces a[href="${href}"]`).count()) > 0, `#pieces : pas de lien ${href}`);
    await download(run, dar, href, content, 'téléchargement par l\'agent DAR');
  }
  await run.check(dar, 'dossier-recu');
  const reference = (await run.dossier(TOKENS.dar, id)).reference;
  run.summary.reference = reference;

  // À traiter: the new row; the filter finds it by its commune, written
  // without accent nor hyphen.
  await run.submit(dar, () => navLink(dar, 'À traiter').click());
  let found = await rows(dar);
  const own = found.find((r) => r.reference === reference);
  assert(own && own.href === `/dossiers/${id}` && own.commune === DEPOSIT.commune, `« À traiter » : ligne ${reference} attendue menant à /dossiers/${id}, commune en 2e cellule (${JSON.stringify(found)})`);
  for (const control of ['select#etat', 'select#vague', 'select#programme', 'input#q']) {
    assert((await dar.locator(control).count()) === 1, `« À traiter » : pas de ${control} dans le filtre`);
  }
  await dar.fill('#q', 'chateau thierry');
  await run.submit(dar, () => visible(dar.getByRole('button', { name: 'Filtrer', exact: true })).click());
  assert(new URL(dar.url()).searchParams.get('q') === 'chateau thierry', `« Filtrer » : ${dar.url()} sans q=`);
  found = await rows(dar);
  assert(found.length === 1 && found[0].reference === reference, `filtre q=chateau thierry : ${JSON.stringify(found)}`);
  await run.check(dar, 'a-traiter-filtre');
  await run.submit(dar, () => navLink(dar, 'Tous les dossiers').click());
  assert(pathOf(dar) === '/dossiers', `« Tous les dossiers » mène à ${dar.url()}`);
  found = await rows(dar);
  assert(found.some((r) => r.reference === reference) && found.some((r) => r.href === `/dossiers/${TI_ONLY}`), `« Tous les dossiers » : ${JSON.stringify(found)}`);
  await run.check(dar, 'dossiers');

  // 3 bis. « Courrier arrivé »: the imported message in the list, its page
  // with the guesses, « Écarter » without a motivation refused (nothing
  // written: the keyboard scenario makes a dossier of it).
  run.log('3 bis. courrier arrivé');
  await run.submit(dar, () => navLink(dar, 'Courrier arrivé').click());
  assert(pathOf(dar) === '/courrier', `« Courrier arrivé » mène à ${dar.url()}`);
  const message = dar.getByRole('link', { name: ARRIVAL_SUBJECT, exact: true });
  assert((await message.count()) === 1, `« Courrier arrivé » : pas de lien « ${ARRIVAL_SUBJECT} »`);
  await run.check(dar, 'courrier');
  await run.submit(dar, () => message.click());
  assert(/^\/courrier\/[0-9a-f-]{36}$/.test(pathOf(dar)), `le courrier mène à ${dar.url()}`);
  assert((await dar.locator('#depot-commune').inputValue()) === 'Nevers', 'courrier : la commune devinée n\'est pas proposée');
  assert((await dar.locator('#depot-piece_1').inputValue()) === 'budget_previsionnel', 'courrier : le budget deviné n\'est pas proposé');
  await run.check(dar, 'courrier-message');
  await run.submit(dar, () => dar.getByRole('button', { name: 'Écarter ce courrier', exact: true }).click());
  await fieldError(dar, 'ecarter-motivation', '« Écarter » sans motivation');
  await run.check(dar, 'courrier-ecarter-refus');

  // 4. The DAR agent instructs it: « Favorable ».
  run.log('4. instruction');
  await run.goto(dar, `/dossiers/${id}`);
  assert((await dar.locator('#action-instruire').count()) === 1, 'agent DAR : pas de formulaire #action-instruire');
  await chooseVerdict(dar, 'instruire', 'favorable');
  await run.submit(dar, () => actionButton(dar, 'instruire').click());
  assert(pathOf(dar) === `/dossiers/${id}`, `après « Instruire » : ${dar.url()} au lieu de la page du dossier`);
  await expectState(dar, LABELS.instruit, 'après l\'instruction');
  await run.check(dar, 'dossier-instruit');

  // 5. ACV: « Réservé » without motivation is refused next to the field,
  // the comment is kept and nothing is written; then with one.
  run.log('5. avis ACV');
  const acvContext = await run.context('agent ACV');
  const acv = await run.signIn(acvContext, TOKENS.acv);
  const acvQueue = await rows(acv);
  assert(acvQueue.some((r) => r.reference === reference), `« À traiter » de l'ACV : ${reference} absent (${JSON.stringify(acvQueue)})`);
  assert(!acvQueue.some((r) => r.href === `/dossiers/${TI_ONLY}`), '« À traiter » de l\'ACV montre le dossier TI');
  assert((await navLink(acv, 'Tous les dossiers').count()) === 0, 'l\'ACV voit le lien « Tous les dossiers »');
  assert((await navLink(acv, 'Nouveau dossier').count()) === 0, 'l\'ACV voit le lien « Nouveau dossier »');
  await run.check(acv, 'a-traiter-acv');
  await run.submit(acv, () => acv.locator(`table a[href="/dossiers/${id}"]`).first().click());
  assert(pathOf(acv) === `/dossiers/${id}`, `le lien de la référence mène à ${acv.url()}`);
  for (const action of ['instruire', 'declarer_laureat', 'refuser', 'ajouter_piece']) {
    assert((await acv.locator(`#action-${action}`).count()) === 0, `l'ACV voit le formulaire #action-${action}`);
  }
  await expectState(acv, LABELS.instruit, 'page du dossier pour l\'ACV');
  await download(run, acv, `/dossiers/${id}/pieces/budget_previsionnel`, xlsx, 'téléchargement par l\'ACV');
  await run.check(acv, 'dossier-acv');
  const before = (await run.dossier(TOKENS.acv, id)).version;
  await chooseVerdict(acv, 'avis_acv', 'reserve');
  await acv.fill('#avis_acv-comment', COMMENT_ACV);
  await acv.fill('#avis_acv-motivation', '');
  await acv.evaluate(() => {
    for (const form of document.forms) form.noValidate = true;
  });
  await run.submit(acv, () => actionButton(acv, 'avis_acv').click());
  assert((await acv.locator('#action-avis_acv .fr-alert--error').count()) > 0, 'avis sans motivation : pas d\'alerte .fr-alert--error dans #action-avis_acv');
  run.summary.motivation_error = await fieldError(acv, 'avis_acv-motivation', 'avis sans motivation');
  assert((await acv.locator('#avis_acv-comment').inputValue()) === COMMENT_ACV, 'avis refusé : le commentaire saisi est perdu');
  if (!(await acv.locator('#avis_acv-verdict-reserve').isChecked())) run.note('avis refusé : le verdict « Réservé » n\'est plus coché');
  await expectState(acv, LABELS.instruit, 'après l\'avis refusé');
  const after = (await run.dossier(TOKENS.acv, id)).version;
  assert(after === before, `l'avis refusé a changé la version (${before} → ${after})`);
  run.summary.version_before_refusal = before;
  run.summary.version_after_refusal = after;
  await run.check(acv, 'dossier-avis-sans-motivation');
  if (!(await acv.locator('#avis_acv-verdict-reserve').isChecked())) await chooseVerdict(acv, 'avis_acv', 'reserve');
  await acv.fill('#avis_acv-motivation', MOTIVATION_ACV);
  await run.submit(acv, () => actionButton(acv, 'avis_acv').click());
  assert(pathOf(acv) === `/dossiers/${id}`, `après l'avis ACV : ${acv.url()}`);
  await expectState(acv, LABELS.avis_acv, 'après l\'avis ACV');
  assert((await text(acv.locator('#avis'))).includes(MOTIVATION_ACV), '#avis ne montre pas la motivation de l\'ACV');
  await run.check(acv, 'dossier-avis-acv');
  run.summary.motivation_acv = MOTIVATION_ACV;
  run.summary.comment_acv = COMMENT_ACV;

  // 7. The DAR responsable has the page open (live), and a second tab
  // without JavaScript, which nothing refreshes: a stale form.
  run.log('6-8. responsable en direct, page périmée, avis TI');
  const bossContext = await run.context('responsable DAR');
  const boss = await run.signIn(bossContext, TOKENS.boss);
  await run.goto(boss, `/dossiers/${id}`);
  await expectState(boss, LABELS.avis_acv, 'page du responsable');
  assert((await boss.locator('#nouvelles').count()) === 1, 'pas de région #nouvelles sur la page du dossier');
  assert((await boss.locator('#nouvelles').getAttribute('role')) === 'status' || (await boss.locator('#nouvelles').getAttribute('aria-live')) !== null, '#nouvelles n\'est ni role=status ni aria-live');
  const bossScript = await boss.evaluate(() => [...document.scripts].map((s) => s.src).filter((s) => /\/static\/ami\//.test(s)));
  if (bossScript.length === 0) run.note('la page du dossier ne charge aucun script /static/ami/…');
  await run.check(boss, 'dossier-responsable');
  await boss.evaluate(() => {
    window.__sansRechargement = true;
  });
  const historyBefore = await text(boss.locator('#historique'));

  const staleContext = await run.context('responsable DAR sans JavaScript', { javaScriptEnabled: false });
  const stale = await run.signIn(staleContext, TOKENS.boss);
  await run.goto(stale, `/dossiers/${id}`);
  await expectState(stale, LABELS.avis_acv, 'onglet sans JavaScript');

  // 6. The TI agent gives its avis.
  const tiContext = await run.context('agent TI');
  const ti = await run.signIn(tiContext, TOKENS.ti);
  await run.check(ti, 'a-traiter-ti');
  await run.submit(ti, () => ti.locator(`table a[href="/dossiers/${id}"]`).first().click());
  await chooseVerdict(ti, 'avis_ti', 'favorable');
  await run.submit(ti, () => actionButton(ti, 'avis_ti').click());
  await expectState(ti, LABELS.avis_ti, 'après l\'avis TI');
  await run.check(ti, 'dossier-avis-ti');

  // 7. Live: the responsable's page shows it without a reload.
  const t0 = Date.now();
  await waitUntil(async () => (await stateOf(boss)) === LABELS.avis_ti, `en direct : #etat-dossier du responsable ne passe pas à « ${LABELS.avis_ti} »`, 10_000);
  run.summary.live_ms = Date.now() - t0;
  assert(await boss.evaluate(() => window.__sansRechargement === true), 'en direct : la page du responsable a été rechargée');
  const news = await waitUntil(async () => text(boss.locator('#nouvelles')), 'en direct : #nouvelles reste vide', 10_000);
  run.summary.live_news = news;
  await waitUntil(async () => (await text(boss.locator('#historique'))) !== historyBefore, 'en direct : #historique n\'a pas changé', 10_000);
  await run.check(boss, 'dossier-en-direct');

  // 8. Stale forms write nothing. First the refusal typed on the tab read
  // before the TI avis.
  const v1 = (await run.dossier(TOKENS.boss, id)).version;
  if ((await stale.locator('#action-refuser').count()) === 1) {
    await stale.fill('#refuser-motivation', STALE_MOTIVATION);
    await run.submit(stale, () => actionButton(stale, 'refuser').click());
    await expectStale(run, stale, 'refus sur une page périmée');
    await run.check(stale, 'dossier-perime-refus');
    const v2 = (await run.dossier(TOKENS.boss, id)).version;
    assert(v2 === v1, `le refus périmé a écrit (${v1} → ${v2})`);
    run.summary.stale_refusal = true;
  } else {
    run.note('le responsable n\'a pas de formulaire #action-refuser à l\'état « Avis ACV rendu »');
  }
  // Then « Déclarer lauréat » read before a corrected budget arrived
  // (sent by the DAR agent through the API).
  await run.goto(stale, `/dossiers/${id}`);
  assert((await stale.locator('#action-declarer_laureat').count()) === 1, 'le responsable n\'a pas de formulaire #action-declarer_laureat');
  const corrected = await run.api(TOKENS.dar, 'PUT', `/dossiers/${id}/pieces/budget_previsionnel`, pdf, {
    'content-type': 'application/octet-stream',
    'content-disposition': "attachment; filename*=UTF-8''budget%20corrig%C3%A9.pdf",
  });
  assert(corrected.status === 200, `budget corrigé par l'API : ${corrected.status} ${corrected.text}`);
  const v3 = corrected.json.version;
  await run.submit(stale, () => actionButton(stale, 'declarer_laureat').click());
  await expectStale(run, stale, '« Déclarer lauréat » sur une page périmée');
  await run.check(stale, 'dossier-perime-laureat');
  const v4 = (await run.dossier(TOKENS.boss, id)).version;
  assert(v4 === v3, `« Déclarer lauréat » périmé a écrit (${v3} → ${v4})`);
  run.summary.version_before_stale_laureat = v3;
  run.summary.version_after_stale_laureat = v4;
  await staleContext.close();

  // From a fresh page, the responsable declares it lauréat.
  await run.goto(boss, `/dossiers/${id}`);
  await run.submit(boss, () => actionButton(boss, 'declarer_laureat').click());
  assert(pathOf(boss) === `/dossiers/${id}`, `après « Déclarer lauréat » : ${boss.url()}`);
  await expectState(boss, LABELS.laureat, 'après « Déclarer lauréat »');
  const v1href = `/dossiers/${id}/pieces/budget_previsionnel/versions/1`;
  assert((await boss.locator(`#pieces a[href="${v1href}"]`).count()) > 0, `#pieces : pas de lien ${v1href} vers la première version du budget`);
  await download(run, boss, v1href, xlsx, 'première version du budget');
  await download(run, boss, `/dossiers/${id}/pieces/budget_previsionnel`, pdf, 'budget corrigé');
  await run.check(boss, 'dossier-laureat');

  // 8 bis. The printable receipt, from its link on the dossier page: every
  // event with its digest, no menu; printed on A4 as well.
  run.log('8 bis. récépissé');
  await run.submit(boss, () => boss.getByRole('link', { name: 'Récépissé imprimable', exact: true }).click());
  assert(pathOf(boss) === `/dossiers/${id}/recepisse`, `« Récépissé imprimable » mène à ${boss.url()}`);
  assert((await text(boss.locator('h1'))) === `Récépissé du dossier ${reference}`, `récépissé : h1 « ${await text(boss.locator('h1'))} »`);
  assert((await boss.locator('nav').count()) === 0, 'le récépissé a un menu');
  const receiptEvents = await boss.locator('#recu-historique ol > li').count();
  const receiptHistory = await run.api(TOKENS.boss, 'GET', `/dossiers/${id}/history`);
  assert(receiptEvents === receiptHistory.json.events.length, `récépissé : ${receiptEvents} événements au lieu de ${receiptHistory.json.events.length}`);
  const lastDigest = receiptHistory.json.events.at(-1).digest;
  assert((await text(boss.locator('#recu-chaine'))).includes(lastDigest), `récépissé : la dernière empreinte ${lastDigest} manque`);
  await run.check(boss, 'recepisse');
  await boss.emulateMedia({ media: 'print' });
  await boss.setViewportSize({ width: 794, height: 1123 });
  await boss.screenshot({ path: path.join(run.shots, 'recepisse-impression.png'), fullPage: true });
  await boss.pdf({ path: path.join(run.shots, 'recepisse.pdf'), format: 'A4', printBackground: false });
  await boss.emulateMedia({ media: 'screen' });
  await boss.setViewportSize(WIDE);
  run.summary.receipt_events = receiptEvents;

  // 9. Need to know: the ACV agent sees no DAR action, and a TI-only
  // dossier does not exist for them.
  run.log('9. besoin d\'en connaître');
  await run.goto(acv, `/dossiers/${id}`);
  await expectState(acv, LABELS.laureat, 'page du lauréat pour l\'ACV');
  for (const action of ['instruire', 'declarer_laureat']) {
    assert((await acv.locator(`#action-${action}`).count()) === 0, `l'ACV voit #action-${action} sur le lauréat`);
  }
  await run.check(acv, 'dossier-laureat-acv');
  await run.goto(acv, `/dossiers/${TI_ONLY}`, 404);
  assert((await text(acv.locator('h1'))) === 'Page introuvable', `dossier TI pour l'ACV : h1 « ${await text(acv.locator('h1'))} »`);
  assert(!(await acv.locator('body').innerText()).includes('Nevers'), 'la page 404 nomme la commune du dossier TI');
  await run.check(acv, '404-dossier-hors-programme');
  await run.goto(acv, '/nulle-part', 404);
  assert((await text(acv.locator('h1'))) === 'Page introuvable', `/nulle-part : h1 « ${await text(acv.locator('h1'))} »`);
  await run.check(acv, '404');

  // 11. The other pages.
  run.log('11. tableau de bord, circuit');
  for (const [page, who] of [
    [dar, 'dar'],
    [acv, 'acv'],
  ]) {
    await run.submit(page, () => navLink(page, 'Tableau de bord').click());
    assert(pathOf(page) === '/tableau-de-bord', `« Tableau de bord » mène à ${page.url()}`);
    assert((await page.locator('main svg').count()) > 0, 'tableau de bord : pas de graphique SVG');
    assert((await page.locator('main table').count()) > 0, 'tableau de bord : pas de tableau');
    await run.check(page, `tableau-de-bord-${who}`);
  }
  // At 375 px the navigation is behind the header's « Menu » button.
  await acv.setViewportSize(NARROW);
  await visible(acv.getByRole('button', { name: 'Menu', exact: true })).click();
  const mobileLink = visible(acv.getByRole('link', { name: 'Le circuit', exact: true }));
  await mobileLink.waitFor({ state: 'visible', timeout: 5_000 });
  assert(
    (await visible(acv.getByRole('button', { name: 'Se déconnecter', exact: true })).count()) === 1,
    'à 375 px, le menu ouvert n\'offre pas « Se déconnecter »',
  );
  await run.submit(acv, () => mobileLink.click());
  await acv.setViewportSize(WIDE);
  assert(pathOf(acv) === '/circuit', `« Le circuit » du menu à 375 px mène à ${acv.url()}`);
  await run.check(acv, 'circuit-acv');
  await run.submit(dar, () => navLink(dar, 'Le circuit').click());
  assert(pathOf(dar) === '/circuit', `« Le circuit » mène à ${dar.url()}`);
  assert((await dar.locator('main svg').count()) > 0, 'le circuit : pas de schéma SVG');
  assert((await dar.locator('main table').count()) > 0, 'le circuit : pas de tableau des actions');
  await run.check(dar, 'circuit');
  await run.goto(dar, '/dossiers');
  const laureat = await dar.locator('select#etat option', { hasText: LABELS.laureat }).count();
  if (laureat > 0) {
    await dar.selectOption('select#etat', { label: LABELS.laureat });
    await run.submit(dar, () => visible(dar.getByRole('button', { name: 'Filtrer', exact: true })).click());
    found = await rows(dar);
    assert(found.length === 1 && found[0].reference === reference, `« Tous les dossiers » filtrés sur Lauréat : ${JSON.stringify(found)}`);
    await run.check(dar, 'dossiers-laureats');
  } else {
    run.note('select#etat n\'a pas d\'option « Lauréat »');
  }

  // 12. Signing out.
  run.log('12. déconnexion');
  await run.submit(dar, () => visible(dar.getByRole('button', { name: 'Se déconnecter', exact: true })).click());
  assert(pathOf(dar) === '/connexion', `« Se déconnecter » mène à ${dar.url()}`);
  await run.goto(dar, '/a-traiter');
  assert(pathOf(dar) === '/connexion', `après la déconnexion, /a-traiter mène à ${dar.url()}`);
});
